//! Settings: read once at start-up from the environment (and `.env`), typed, documented in
//! `.env.example`. Nothing else in the app reads the environment.

use std::net::SocketAddr;
use std::time::Duration;

pub use crate::duration::parse_duration;
use crate::limits::Limit;

/// Which Verify provider sends and checks codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyBackend {
    /// The Vonage (Nexmo) Verify API v1.
    Vonage,
    /// Codes made and checked by the app, printed to the log: development only.
    Console,
}

/// Credentials and endpoint of the Vonage Verify API. `Debug` hides the secret.
#[derive(Clone)]
pub struct VonageConfig {
    pub api_key: String,
    pub api_secret: String,
    pub brand: String,
    pub base_url: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for VonageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VonageConfig")
            .field("api_key", &self.api_key)
            .field("api_secret", &"[redacted]")
            .field("brand", &self.brand)
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Abuse limits on code sends and code checks.
#[derive(Clone, Debug)]
pub struct Limits {
    pub sms_per_user: Vec<Limit>,
    pub sms_per_number: Vec<Limit>,
    pub sms_per_ip: Vec<Limit>,
    pub code_per_user: Vec<Limit>,
    pub login_per_ip: Vec<Limit>,
    pub login_per_username: Vec<Limit>,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
    pub database_max_connections: u32,
    pub database_connect_timeout: Duration,
    pub addr: SocketAddr,
    pub session_secure: bool,
    pub session_ttl: Duration,
    pub verify_backend: VerifyBackend,
    /// Whether `VERIFY_BACKEND` was set, rather than the provider inferred from the keys.
    pub verify_backend_chosen: bool,
    pub vonage: VonageConfig,
    pub default_region: Option<phonenumber::country::Id>,
    pub limits: Limits,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Origins besides the request's own `Host` whose forms may post here (`https://host`).
    pub csrf_trusted_origins: Vec<String>,
    /// The key that seals secrets at rest (`POLLSTR_SECRET_KEY`). `serve` on a loopback
    /// address makes and keeps a development key when it is unset (`main.rs`).
    pub secret_key: Option<crate::crypto::SecretKey>,
    /// How long a password given in a session counts for setting up a factor (sudo mode).
    pub sudo_window: Duration,
    /// How long "Trust this browser" lasts, in days (0: the box is not offered).
    pub trusted_browser_days: u32,
    /// How long security events are kept (`events`).
    pub event_retention: Duration,
    /// Timeouts and the connection cap of the HTTP server.
    pub http: crate::server::HttpLimits,
    /// Load `fixtures/all.json` when the database has no polls and no users (`cargo run`).
    /// Default: on a loopback address only.
    pub seed_demo: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("setting {name}: {message}")]
pub struct ConfigError {
    pub name: &'static str,
    pub message: String,
}

fn err(name: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        message: message.into(),
    }
}

impl Config {
    /// Reads `.env` (if present) and the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Builds the configuration from any key lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let database_url = get("DATABASE_URL").unwrap_or_else(|| "sqlite://pollstr.db".into());
        let addr: SocketAddr = match get("POLLSTR_ADDR") {
            Some(v) => v.parse().map_err(|_| {
                err(
                    "POLLSTR_ADDR",
                    format!("{v:?} is not host:port, e.g. 127.0.0.1:8000"),
                )
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 8000)),
        };
        let session_secure = match get("SESSION_SECURE") {
            Some(v) => parse_bool(&v).ok_or_else(|| err("SESSION_SECURE", "use true or false"))?,
            None => !addr.ip().is_loopback(),
        };
        let session_ttl = match get("SESSION_TTL") {
            Some(v) => parse_duration(&v).ok_or_else(|| err("SESSION_TTL", "use e.g. 12h, 30m"))?,
            None => Duration::from_secs(12 * 3600),
        };
        let database_max_connections =
            match get("DATABASE_MAX_CONNECTIONS") {
                Some(v) => v.parse::<u32>().ok().filter(|n| *n >= 2).ok_or_else(|| {
                    err("DATABASE_MAX_CONNECTIONS", "a whole number of 2 or more")
                })?,
                None => 10,
            };
        let database_connect_timeout = match get("DATABASE_CONNECT_TIMEOUT") {
            Some(v) => {
                parse_duration(&v).ok_or_else(|| err("DATABASE_CONNECT_TIMEOUT", "use e.g. 5s"))?
            }
            None => Duration::from_secs(5),
        };

        let api_key = get("NEXMO_API_KEY").or_else(|| get("VONAGE_API_KEY"));
        let api_secret = get("NEXMO_API_SECRET").or_else(|| get("VONAGE_API_SECRET"));
        let verify_backend = match get("VERIFY_BACKEND").as_deref() {
            Some("vonage") => VerifyBackend::Vonage,
            Some("console") => VerifyBackend::Console,
            Some(other) => {
                return Err(err(
                    "VERIFY_BACKEND",
                    format!("{other:?}: use vonage or console"),
                ))
            }
            None if api_key.is_some() && api_secret.is_some() => VerifyBackend::Vonage,
            None => VerifyBackend::Console,
        };
        let verify_backend_chosen = get("VERIFY_BACKEND").is_some();
        if verify_backend == VerifyBackend::Vonage && (api_key.is_none() || api_secret.is_none()) {
            return Err(err(
                "NEXMO_API_KEY",
                "VERIFY_BACKEND=vonage needs NEXMO_API_KEY and NEXMO_API_SECRET",
            ));
        }
        let brand = get("NEXMO_BRAND").unwrap_or_else(|| "Pollstr".into());
        if brand.chars().count() > 18 {
            return Err(err("NEXMO_BRAND", "at most 18 characters (Verify's limit)"));
        }
        let base_url = get("NEXMO_VERIFY_URL")
            .unwrap_or_else(|| "https://api.nexmo.com/verify".into())
            .trim_end_matches('/')
            .to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(err(
                "NEXMO_VERIFY_URL",
                "must start with http:// or https://",
            ));
        }
        let timeout = match get("VERIFY_TIMEOUT") {
            Some(v) => parse_duration(&v).ok_or_else(|| err("VERIFY_TIMEOUT", "use e.g. 10s"))?,
            None => Duration::from_secs(10),
        };
        let default_region = match get("PHONE_DEFAULT_REGION") {
            Some(v) => Some(
                v.trim()
                    .to_ascii_uppercase()
                    .parse::<phonenumber::country::Id>()
                    .map_err(|_| {
                        err(
                            "PHONE_DEFAULT_REGION",
                            format!("{v:?} is not a two-letter region code such as GB or US"),
                        )
                    })?,
            ),
            None => None,
        };
        let limit = |name: &'static str, default: &str| -> Result<Vec<Limit>, ConfigError> {
            let raw = get(name).unwrap_or_else(|| default.to_string());
            Limit::parse_list(&raw).map_err(|m| err(name, m))
        };
        let limits = Limits {
            sms_per_user: limit("SMS_LIMIT_PER_USER", "3/10m,10/1d")?,
            sms_per_number: limit("SMS_LIMIT_PER_NUMBER", "3/10m")?,
            sms_per_ip: limit("SMS_LIMIT_PER_IP", "20/1h")?,
            code_per_user: limit("CODE_LIMIT_PER_USER", "5/15m")?,
            login_per_ip: limit("LOGIN_LIMIT_PER_IP", "20/15m")?,
            login_per_username: limit("LOGIN_LIMIT_PER_USERNAME", "100/1h")?,
        };
        let trusted_proxies = match get("TRUSTED_PROXIES") {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<ipnet::IpNet>()
                        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| {
                            err(
                                "TRUSTED_PROXIES",
                                format!("{s:?} is not an address or CIDR"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let csrf_trusted_origins = match get("CSRF_TRUSTED_ORIGINS") {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    // An origin: a scheme and a host, no path.
                    let bare = s.split_once("://").is_some_and(|(_, rest)| {
                        !rest.trim_end_matches('/').contains(['/', '?', '#'])
                    });
                    match origin_of(s) {
                        Some((scheme, authority)) if bare => Ok(format!("{scheme}://{authority}")),
                        _ => Err(err(
                            "CSRF_TRUSTED_ORIGINS",
                            format!("{s:?} is not an origin such as https://polls.example.com"),
                        )),
                    }
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let secret_key = match get("POLLSTR_SECRET_KEY") {
            Some(v) => Some(crate::crypto::SecretKey::parse(&v).ok_or_else(|| {
                err(
                    "POLLSTR_SECRET_KEY",
                    "32 bytes in URL-safe base64 (43 characters) or hex (64): make one with `pollstr secret-key`",
                )
            })?),
            None => None,
        };
        let sudo_window = match get("SUDO_WINDOW") {
            Some(v) => parse_duration(&v).ok_or_else(|| err("SUDO_WINDOW", "use e.g. 10m"))?,
            None => Duration::from_secs(600),
        };
        let trusted_browser_days = match get("TRUSTED_BROWSER_DAYS") {
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|d| *d <= 365)
                .ok_or_else(|| {
                    err(
                        "TRUSTED_BROWSER_DAYS",
                        "a whole number of days from 0 to 365",
                    )
                })?,
            None => 30,
        };
        let event_retention = match get("EVENT_RETENTION") {
            Some(v) => parse_duration(&v).ok_or_else(|| err("EVENT_RETENTION", "use e.g. 90d"))?,
            None => Duration::from_secs(90 * 86400),
        };
        let defaults = crate::server::HttpLimits::default();
        let http =
            crate::server::HttpLimits {
                header_timeout: match get("HTTP_HEADER_TIMEOUT") {
                    Some(v) => parse_duration(&v)
                        .ok_or_else(|| err("HTTP_HEADER_TIMEOUT", "use e.g. 10s"))?,
                    None => defaults.header_timeout,
                },
                body_timeout: match get("HTTP_BODY_TIMEOUT") {
                    Some(v) => parse_duration(&v)
                        .ok_or_else(|| err("HTTP_BODY_TIMEOUT", "use e.g. 30s"))?,
                    None => defaults.body_timeout,
                },
                max_connections: match get("HTTP_MAX_CONNECTIONS") {
                    Some(v) => v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=1_000_000).contains(n))
                        .ok_or_else(|| err("HTTP_MAX_CONNECTIONS", "a whole number from 1"))?,
                    None => defaults.max_connections,
                },
            };
        let seed_demo = match get("POLLSTR_SEED_DEMO") {
            Some(v) => {
                parse_bool(&v).ok_or_else(|| err("POLLSTR_SEED_DEMO", "use true or false"))?
            }
            // The demo user test / test1234 only on a development machine.
            None => addr.ip().is_loopback(),
        };
        Ok(Config {
            database_url,
            database_max_connections,
            database_connect_timeout,
            addr,
            session_secure,
            session_ttl,
            verify_backend,
            verify_backend_chosen,
            vonage: VonageConfig {
                api_key: api_key.unwrap_or_default(),
                api_secret: api_secret.unwrap_or_default(),
                brand,
                base_url,
                timeout,
            },
            default_region,
            limits,
            trusted_proxies,
            csrf_trusted_origins,
            secret_key,
            sudo_window,
            trusted_browser_days,
            event_retention,
            http,
            seed_demo,
        })
    }
}

impl Config {
    /// What `pollstr serve` refuses to start with. On an address other people can reach, the
    /// console provider (codes printed to the log, so anyone can pass the second factor of an
    /// account whose password they know, if they can read the log, and nobody gets an SMS)
    /// must be chosen explicitly: missing keys must not quietly fall back to it.
    pub fn check_for_serving(&self) -> Result<(), ConfigError> {
        if !self.addr.ip().is_loopback()
            && self.verify_backend == VerifyBackend::Console
            && !self.verify_backend_chosen
        {
            return Err(err(
                "VERIFY_BACKEND",
                format!(
                    "serving on {}, which other machines can reach, with no Vonage keys: set NEXMO_API_KEY and NEXMO_API_SECRET, or VERIFY_BACKEND=console to print codes to the log (development only)",
                    self.addr
                ),
            ));
        }
        if !self.addr.ip().is_loopback() && self.secret_key.is_none() {
            return Err(err(
                "POLLSTR_SECRET_KEY",
                format!(
                    "serving on {}, which other machines can reach, without the key that seals authenticator secrets: make one with `pollstr secret-key` and keep it safe",
                    self.addr
                ),
            ));
        }
        Ok(())
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_a_local_console_setup() {
        let c = with(&[]).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:8000");
        assert!(!c.session_secure);
        assert_eq!(c.verify_backend, VerifyBackend::Console);
        assert_eq!(c.vonage.base_url, "https://api.nexmo.com/verify");
        assert_eq!(c.limits.sms_per_user.len(), 2);
    }

    #[test]
    fn keys_select_vonage_and_secret_is_hidden() {
        let c = with(&[("VONAGE_API_KEY", "k"), ("VONAGE_API_SECRET", "s3cr3t")]).unwrap();
        assert_eq!(c.verify_backend, VerifyBackend::Vonage);
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_public_address_needs_keys_or_an_explicit_console_and_has_no_demo_user() {
        let local = with(&[]).unwrap();
        assert!(local.check_for_serving().is_ok());
        assert!(local.seed_demo);
        let public = with(&[("POLLSTR_ADDR", "0.0.0.0:8000")]).unwrap();
        assert_eq!(
            public.check_for_serving().unwrap_err().name,
            "VERIFY_BACKEND"
        );
        assert!(!public.seed_demo);
        let key = crate::crypto::SecretKey::generate().encode();
        let console = with(&[
            ("POLLSTR_ADDR", "0.0.0.0:8000"),
            ("VERIFY_BACKEND", "console"),
            ("POLLSTR_SECRET_KEY", &key),
        ])
        .unwrap();
        assert!(console.check_for_serving().is_ok());
        let keys = with(&[
            ("POLLSTR_ADDR", "[::]:8000"),
            ("NEXMO_API_KEY", "k"),
            ("NEXMO_API_SECRET", "s"),
            ("POLLSTR_SECRET_KEY", &key),
        ])
        .unwrap();
        assert!(keys.check_for_serving().is_ok());
        // Without the secret key, a public server does not start either.
        let keyless = with(&[
            ("POLLSTR_ADDR", "[::]:8000"),
            ("NEXMO_API_KEY", "k"),
            ("NEXMO_API_SECRET", "s"),
        ])
        .unwrap();
        assert_eq!(
            keyless.check_for_serving().unwrap_err().name,
            "POLLSTR_SECRET_KEY"
        );
        let seeded = with(&[
            ("POLLSTR_ADDR", "0.0.0.0:8000"),
            ("POLLSTR_SEED_DEMO", "true"),
        ])
        .unwrap();
        assert!(seeded.seed_demo);
    }

    #[test]
    fn public_address_makes_cookies_secure() {
        assert!(
            with(&[("POLLSTR_ADDR", "0.0.0.0:8000")])
                .unwrap()
                .session_secure
        );
    }

    #[test]
    fn bad_values_name_the_setting() {
        for (k, v) in [
            ("POLLSTR_ADDR", "nope"),
            ("VERIFY_BACKEND", "twilio"),
            ("SMS_LIMIT_PER_USER", "3/10x"),
            ("TRUSTED_PROXIES", "10.0.0.0/99"),
            ("PHONE_DEFAULT_REGION", "XX1"),
            ("NEXMO_BRAND", "a brand name that is far too long"),
            ("HTTP_HEADER_TIMEOUT", "0s"),
            ("HTTP_BODY_TIMEOUT", "soon"),
            ("HTTP_MAX_CONNECTIONS", "0"),
            ("EVENT_RETENTION", "forever"),
            ("POLLSTR_SECRET_KEY", "not-a-key"),
            ("TRUSTED_BROWSER_DAYS", "forever"),
            ("CSRF_TRUSTED_ORIGINS", "polls.example.com"),
            ("CSRF_TRUSTED_ORIGINS", "https://polls.example.com/vote/"),
        ] {
            let e = with(&[(k, v)]).unwrap_err();
            assert_eq!(e.name, k, "{e}");
        }
        assert_eq!(
            with(&[("VERIFY_BACKEND", "vonage")]).unwrap_err().name,
            "NEXMO_API_KEY"
        );
    }
}
