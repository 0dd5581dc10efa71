//! The client's address, as limits and the audit trail see it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::error::AppError;
use crate::state::AppState;

/// The client's address: the peer, or with a trusted proxy in front, the last address in
/// `X-Forwarded-For` that is not one of the trusted proxies.
pub fn client_ip(headers: &HeaderMap, peer: IpAddr, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
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
    use super::client_ip;
    use axum::http::HeaderMap;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
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
