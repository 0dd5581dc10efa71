//! How the server meets the web (`POLLSTR_ADDR`, `POLLSTR_ENV`, `SESSION_*`, `TRUSTED_PROXIES`,
//! `CSRF_TRUSTED_ORIGINS`, `HTTP_*`, `SHUTDOWN_DRAIN`, `METRICS_ADDR`): where it listens, whether it runs with
//! development defaults, who may forward for it, the limits that keep slow clients from holding
//! it, how long it goes on serving once told to stop, and where its metrics are served.

use std::net::SocketAddr;
use std::time::Duration;

use super::env::{Env, Result};
use super::Environment;
use crate::server::HttpLimits;

/// The web-facing settings of [`super::Config`].
pub(super) struct ServerPart {
    pub addr: SocketAddr,
    pub environment: Option<Environment>,
    pub session_secure: Option<bool>,
    pub session_ttl: Duration,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub csrf_trusted_origins: Vec<String>,
    pub http: HttpLimits,
    pub shutdown_drain: Duration,
    pub metrics_addr: Option<SocketAddr>,
}

pub(super) fn read(env: &Env) -> Result<ServerPart> {
    let addr = env
        .parsed(
            "POLLSTR_ADDR",
            |v| v.parse().ok(),
            |v| format!("{v:?} is not host:port, e.g. 127.0.0.1:8000"),
        )?
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8000)));
    let environment = env.parsed(
        "POLLSTR_ENV",
        |v| match v.trim().to_ascii_lowercase().as_str() {
            "production" => Some(Environment::Production),
            "development" => Some(Environment::Development),
            _ => None,
        },
        |v| {
            format!(
                "{:?}: use production or development",
                v.trim().to_ascii_lowercase()
            )
        },
    )?;
    let trusted_proxies = env.list("TRUSTED_PROXIES", |s| {
        s.parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| format!("{s:?} is not an address or CIDR"))
    })?;
    let csrf_trusted_origins = env.list("CSRF_TRUSTED_ORIGINS", |s| {
        // An origin: a scheme and a host, no path.
        let bare = s
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.trim_end_matches('/').contains(['/', '?', '#']));
        match origin_of(s) {
            Some((scheme, authority)) if bare => Ok(format!("{scheme}://{authority}")),
            _ => Err(format!(
                "{s:?} is not an origin such as https://polls.example.com"
            )),
        }
    })?;
    let http = http_limits(env, &trusted_proxies)?;
    Ok(ServerPart {
        addr,
        environment,
        session_secure: env.flag("SESSION_SECURE")?,
        session_ttl: env.duration(
            "SESSION_TTL",
            Duration::from_secs(12 * 3600),
            "use e.g. 12h, 30m",
        )?,
        trusted_proxies,
        csrf_trusted_origins,
        http,
        metrics_addr: env.parsed(
            "METRICS_ADDR",
            |v| v.parse().ok(),
            |v| format!("{v:?} is not host:port, e.g. 127.0.0.1:9100"),
        )?,
        shutdown_drain: env
            .parsed(
                "SHUTDOWN_DRAIN",
                |v| match v.trim() {
                    "0" | "0s" => Some(Duration::ZERO),
                    v => super::parse_duration(v).filter(|d| d.as_secs() <= 3600),
                },
                |_| "use e.g. 5s (0 to stop at once; at most 1h)".into(),
            )?
            .unwrap_or(Duration::from_secs(5)),
    })
}

fn http_limits(env: &Env, trusted_proxies: &[ipnet::IpNet]) -> Result<HttpLimits> {
    let defaults = HttpLimits::default();
    let count = |name, default| env.number(name, default, 1..=1_000_000, "a whole number from 1");
    let header_timeout = env.duration(
        "HTTP_HEADER_TIMEOUT",
        defaults.header_timeout,
        "use e.g. 10s",
    )?;
    // The first head's limit never exceeds the later heads'.
    let first_header_timeout = env.duration(
        "HTTP_FIRST_HEADER_TIMEOUT",
        defaults.first_header_timeout.min(header_timeout),
        "use e.g. 5s",
    )?;
    if first_header_timeout > header_timeout {
        return Err(super::err(
            "HTTP_FIRST_HEADER_TIMEOUT",
            "at most HTTP_HEADER_TIMEOUT",
        ));
    }
    Ok(HttpLimits {
        first_header_timeout,
        header_timeout,
        body_timeout: env.duration("HTTP_BODY_TIMEOUT", defaults.body_timeout, "use e.g. 30s")?,
        write_timeout: env.duration(
            "HTTP_WRITE_TIMEOUT",
            defaults.write_timeout,
            "use e.g. 15s",
        )?,
        max_connections: count("HTTP_MAX_CONNECTIONS", defaults.max_connections)?,
        max_connections_per_ip: count(
            "HTTP_MAX_CONNECTIONS_PER_IP",
            defaults.max_connections_per_ip,
        )?,
        per_ip_exempt: trusted_proxies.to_vec(),
        // Set from IPV6_LIMIT_PREFIX with the other limits (`Config::read`).
        ipv6_prefix: defaults.ipv6_prefix,
    })
}

/// `HTTPS://Host:443/path` → `("https", "host")`: the scheme and authority of a URL, lower-case,
/// without the scheme's default port. `None` for anything else (`null`, user info, no host).
pub fn origin_of(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    if authority.is_empty()
        || authority.contains('@')
        || !matches!(scheme.as_str(), "http" | "https")
    {
        return None;
    }
    let authority = without_default_port(&authority, &scheme);
    Some((scheme, authority))
}

/// `host:443` on https and `host:80` on http are `host`, as browsers write them.
pub fn without_default_port(authority: &str, scheme: &str) -> String {
    let default = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else {
        ":80"
    };
    authority
        .strip_suffix(default)
        .unwrap_or(authority)
        .to_string()
}
