//! The client's address, as limits and the audit trail see it, and the scheme the client used:
//! both come from the TCP peer, or from the headers of a proxy in `TRUSTED_PROXIES`.
//!
//! An IPv4 client reaching an IPv6 socket appears as `::ffff:a.b.c.d`: it is that IPv4 address,
//! for the proxy check, the audit trail and the limits alike. The audit trail keeps an IPv6
//! client's whole address, but per-address limits count its network ([`limit_subject`]): one
//! subscriber is given a /64, and could otherwise send from 2^64 addresses, each with its own
//! budget.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::error::AppError;
use crate::state::AppState;

/// The client's address: the peer, or with a trusted proxy in front, the last address in
/// `X-Forwarded-For` that is not one of the trusted proxies; an IPv4-mapped address as the IPv4
/// address it is.
pub fn client_ip(headers: &HeaderMap, peer: IpAddr, trusted: &[ipnet::IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip, trusted))
        .unwrap_or(peer)
}

/// Whether `ip` is one of the trusted proxies, `::ffff:10.0.0.5` matching `10.0.0.0/8` as
/// `10.0.0.5` does (and a setting written in the mapped form matching too).
fn is_trusted(ip: IpAddr, trusted: &[ipnet::IpNet]) -> bool {
    let ip = ip.to_canonical();
    let mapped = match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    };
    trusted
        .iter()
        .any(|net| net.contains(&ip) || net.contains(&mapped))
}

/// What per-address limits count a client address (as [`ClientIp`] gives it) under: an IPv4
/// address as itself, an IPv6 address as its network of `ipv6_prefix` bits
/// (`2001:db8:1:2::/64`), an IPv4-mapped one as its IPv4 address. Text that is no address
/// (never from [`ClientIp`]) counts as itself.
pub fn limit_subject(ip: &str, ipv6_prefix: u8) -> String {
    match ip.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => ipnet::Ipv6Net::new(v6, ipv6_prefix.min(128))
            .map(|net| net.trunc().to_string())
            .unwrap_or_else(|_| v6.to_string()),
        Err(_) => ip.to_string(),
    }
}

/// Whether the client reached the site over https: always with `SESSION_SECURE` (the site is
/// served over TLS, by itself or a proxy), else when a trusted proxy says so in
/// `X-Forwarded-Proto` (its first value, as Django reads `SECURE_PROXY_SSL_HEADER`). Anyone
/// else's `X-Forwarded-Proto` is ignored: it would let a page choose which origins count as
/// this site's.
pub fn is_https(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    trusted: &[ipnet::IpNet],
    session_secure: bool,
) -> bool {
    if session_secure {
        return true;
    }
    if !peer.is_some_and(|p| is_trusted(p, trusted)) {
        return false;
    }
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// A short name for the browser, from its `User-Agent` ("Firefox on Linux"), for the account
/// page's lists of sessions and trusted browsers.
pub fn browser_label(headers: &HeaderMap) -> String {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let browser = ["Edg/", "Firefox/", "Chrome/", "Safari/"]
        .iter()
        .find(|b| ua.contains(*b))
        .map(|b| b.trim_end_matches('/').replace("Edg", "Edge"))
        .unwrap_or_else(|| "A browser".into());
    let system = ["Android", "iPhone", "iPad", "Windows", "Mac OS X", "Linux"]
        .iter()
        .find(|s| ua.contains(*s))
        .map(|s| s.replace("Mac OS X", "macOS"));
    match system {
        Some(s) => format!("{browser} on {s}"),
        None => browser,
    }
}

/// Extracts the client's address ([`client_ip`] with the configured `TRUSTED_PROXIES`), as text.
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip())
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no peer address")))?;
        Ok(ClientIp(
            client_ip(&parts.headers, peer, &state.config.trusted_proxies).to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{client_ip, is_https, limit_subject};
    use axum::http::HeaderMap;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn mapped_addresses_are_their_ipv4_address() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let mapped_proxy = "::ffff:10.0.0.5".parse().unwrap();
        // A mapped peer is the IPv4 address: a trusted proxy, whose header is believed.
        assert_eq!(
            client_ip(&xff("::ffff:203.0.113.9"), mapped_proxy, &trusted).to_string(),
            "203.0.113.9"
        );
        // A mapped proxy in the chain is skipped like the plain one.
        assert_eq!(
            client_ip(&xff("203.0.113.9, ::ffff:10.0.0.7"), mapped_proxy, &trusted).to_string(),
            "203.0.113.9"
        );
        // A mapped client is given (and recorded) as IPv4.
        let client = "::ffff:198.51.100.7".parse().unwrap();
        assert_eq!(
            client_ip(&HeaderMap::new(), client, &[]).to_string(),
            "198.51.100.7"
        );
        // TRUSTED_PROXIES written in the mapped form matches the IPv4 peer too.
        let mapped_net = vec!["::ffff:10.0.0.0/104".parse().unwrap()];
        assert_eq!(
            client_ip(
                &xff("203.0.113.9"),
                "10.0.0.5".parse().unwrap(),
                &mapped_net
            )
            .to_string(),
            "203.0.113.9"
        );
    }

    #[test]
    fn limits_count_an_ipv6_client_by_its_network() {
        let a = limit_subject("2001:db8:1:2:aaaa::1", 64);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(limit_subject("2001:db8:1:2:ffff:ffff:ffff:ffff", 64), a);
        assert_ne!(limit_subject("2001:db8:1:3::1", 64), a);
        assert_eq!(limit_subject("2001:db8:1:2::1", 48), "2001:db8:1::/48");
        assert_eq!(limit_subject("2001:db8::1", 128), "2001:db8::1/128");
        assert_eq!(limit_subject("2001:db8::1", 0), "::/0");
        // IPv4, mapped or not, is one address.
        assert_eq!(limit_subject("203.0.113.9", 64), "203.0.113.9");
        assert_eq!(limit_subject("::ffff:203.0.113.9", 64), "203.0.113.9");
        assert_eq!(limit_subject("not an ip", 64), "not an ip");
    }

    #[test]
    fn https_from_the_setting_or_a_trusted_proxy_only() {
        let proto = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-proto", v.parse().unwrap());
            h
        };
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy = Some("10.0.0.5".parse().unwrap());
        let stranger = Some("198.51.100.7".parse().unwrap());
        assert!(is_https(&HeaderMap::new(), None, &[], true));
        assert!(!is_https(&HeaderMap::new(), proxy, &trusted, false));
        assert!(is_https(&proto("https"), proxy, &trusted, false));
        assert!(is_https(&proto("HTTPS, http"), proxy, &trusted, false));
        assert!(!is_https(&proto("http"), proxy, &trusted, false));
        assert!(!is_https(&proto("https"), stranger, &trusted, false));
        assert!(!is_https(&proto("https"), proxy, &[], false));
        assert!(!is_https(&proto("https"), None, &trusted, false));
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let proxy = "10.0.0.5".parse().unwrap();
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        // No trusted proxies: the header is ignored, whoever sends it.
        assert_eq!(client_ip(&xff("203.0.113.9"), proxy, &[]), proxy);
        // A client that is not a trusted proxy cannot spoof its address.
        let client = "198.51.100.7".parse().unwrap();
        assert_eq!(client_ip(&xff("203.0.113.9"), client, &trusted), client);
        // Behind the proxy: the last address the proxies did not add.
        assert_eq!(
            client_ip(&xff("1.2.3.4, 203.0.113.9, 10.0.0.7"), proxy, &trusted).to_string(),
            "203.0.113.9"
        );
        // Garbage or a missing header falls back to the peer.
        assert_eq!(client_ip(&xff("not an ip"), proxy, &trusted), proxy);
        assert_eq!(client_ip(&HeaderMap::new(), proxy, &trusted), proxy);
    }
}
