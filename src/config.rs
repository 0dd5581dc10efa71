//! Settings: read once at start-up from the environment (and `.env`), typed, documented in
//! `.env.example`. Nothing else in the app reads the environment.

use std::net::SocketAddr;
use std::time::Duration;

pub use crate::duration::parse_duration;
use crate::limits::Limit;

/// Which Verify provider sends and checks codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyBackend {
    /// The Vonage (Nexmo) Verify API v1, which Vonage now calls "Verify Legacy".
    Vonage,
    /// The Vonage Verify API v2: the default when keys are set.
    VonageV2,
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

/// A way to deliver a code, in the order of `VERIFY_WORKFLOW`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyChannel {
    Sms,
    Voice,
}

impl VerifyChannel {
    /// The name in Verify v2's `workflow` and in `VERIFY_WORKFLOW`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyChannel::Sms => "sms",
            VerifyChannel::Voice => "voice",
        }
    }
}

/// How codes are delivered: the channels in order, how long each is given before the next, the
/// language of the message. Verify v2 takes all three; the console provider follows the
/// workflow; v1 uses its own default workflow.
#[derive(Clone, Debug)]
pub struct VerifySettings {
    pub workflow: Vec<VerifyChannel>,
    pub channel_timeout: Duration,
    pub locale: String,
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings {
            workflow: vec![VerifyChannel::Sms, VerifyChannel::Voice],
            channel_timeout: Duration::from_secs(300),
            locale: "en-us".into(),
        }
    }
}

/// A Vonage application (its id and private key) for JWT authentication on Verify v2.
#[derive(Clone)]
pub struct VonageApplication {
    pub id: String,
    /// The private key, PEM (checked to be an RSA key when the settings are read).
    pub private_key_pem: Vec<u8>,
}

impl std::fmt::Debug for VonageApplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VonageApplication")
            .field("id", &self.id)
            .field("private_key_pem", &"[redacted]")
            .finish()
    }
}

/// Which defaults the server runs with (`POLLSTR_ENV`, see [`Config::is_development`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    /// `cargo run` on a developer's machine: cookies without `Secure`, a key made and kept on
    /// disk, codes printed to the log without Vonage keys, the demo user test / test1234.
    Development,
    /// Real users: none of the above.
    Production,
}

/// The SMS pumping guard (`two_factor::sms::guard`); the budgets are in [`Limits`].
#[derive(Clone, Debug)]
pub struct SmsGuardConfig {
    /// Destination countries codes may go to, as ISO 3166 codes (`GB`), and `001` (the
    /// numbers of no country: satellite phones, international networks). Empty: every
    /// country, and no number of no country.
    pub allowed_countries: Vec<String>,
    /// Below this share of codes confirmed (0.0 to 1.0; 0: never), a country's sends pause.
    pub min_conversion: f64,
    /// Sends a country needs in the window before its conversion is judged.
    pub conversion_min_sends: u32,
    /// The rolling window conversion is measured over.
    pub conversion_window: Duration,
    /// How long a country's sends pause.
    pub pause: Duration,
}

/// Abuse limits on code sends and code checks.
#[derive(Clone, Debug)]
pub struct Limits {
    pub sms_per_user: Vec<Limit>,
    pub sms_per_number: Vec<Limit>,
    pub sms_per_ip: Vec<Limit>,
    /// Budgets per destination country and per number prefix (the SMS pumping guard).
    pub sms_per_country: Vec<Limit>,
    pub sms_per_prefix: Vec<Limit>,
    pub code_per_user: Vec<Limit>,
    pub login_per_ip: Vec<Limit>,
    pub login_per_username: Vec<Limit>,
    /// Sign-ups that reach the password hash, per client address.
    pub signup_per_ip: Vec<Limit>,
    /// The length of the network an IPv6 client is counted by in every per-address limit
    /// (`IPV6_LIMIT_PREFIX`): one subscriber gets a whole /64, so counting each address would
    /// hand it 2^64 budgets (`web::client::limit_subject`).
    pub ipv6_prefix: u8,
}

impl Limits {
    /// The longest window of any limit: how long a limit event must be kept.
    pub fn longest_window(&self) -> Duration {
        [
            &self.sms_per_user,
            &self.sms_per_number,
            &self.sms_per_ip,
            &self.sms_per_country,
            &self.sms_per_prefix,
            &self.code_per_user,
            &self.login_per_ip,
            &self.login_per_username,
            &self.signup_per_ip,
        ]
        .into_iter()
        .flatten()
        .map(|l| l.window)
        .max()
        .unwrap_or(Duration::from_secs(86400))
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
    pub database_max_connections: u32,
    pub database_connect_timeout: Duration,
    pub addr: SocketAddr,
    /// `POLLSTR_ENV`, when set; see [`Config::is_development`].
    pub environment: Option<Environment>,
    pub session_secure: bool,
    pub session_ttl: Duration,
    pub verify_backend: VerifyBackend,
    /// Whether `VERIFY_BACKEND` was set, rather than the provider inferred from the keys.
    pub verify_backend_chosen: bool,
    pub vonage: VonageConfig,
    /// JWT authentication on Verify v2, instead of the key and secret.
    pub vonage_application: Option<VonageApplication>,
    /// Verifies the signed Verify v2 callbacks; unset, `/2fa/vonage/events` is not served.
    pub vonage_signature_secret: Option<String>,
    pub verify: VerifySettings,
    pub sms_guard: SmsGuardConfig,
    pub default_region: Option<phonenumber::country::Id>,
    pub limits: Limits,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Origins besides the request's own `Host` whose forms may post here (`https://host`).
    pub csrf_trusted_origins: Vec<String>,
    /// The key that seals secrets at rest (`POLLSTR_SECRET_KEY`). `serve` in development
    /// makes and keeps a development key when it is unset (`main.rs`); elsewhere it is required.
    pub secret_key: Option<crate::crypto::SecretKey>,
    /// How long a password given in a session counts for setting up a factor (sudo mode).
    pub sudo_window: Duration,
    /// How long "Trust this browser" lasts, in days (0: the box is not offered).
    pub trusted_browser_days: u32,
    /// How long security events are kept (`events`).
    pub event_retention: Duration,
    /// Timeouts and the connection cap of the HTTP server.
    pub http: crate::server::HttpLimits,
    /// Load the demo polls when the database has no polls and no users (`cargo run`), with
    /// the demo user test / test1234 in development only. Default: in development.
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
        let environment = match get("POLLSTR_ENV").map(|v| v.trim().to_ascii_lowercase()) {
            Some(v) if v == "production" => Some(Environment::Production),
            Some(v) if v == "development" => Some(Environment::Development),
            Some(v) => {
                return Err(err(
                    "POLLSTR_ENV",
                    format!("{v:?}: use production or development"),
                ))
            }
            None => None,
        };
        let session_secure = match get("SESSION_SECURE") {
            Some(v) => {
                Some(parse_bool(&v).ok_or_else(|| err("SESSION_SECURE", "use true or false"))?)
            }
            None => None,
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
        let vonage_application =
            match (get("VONAGE_APPLICATION_ID"), get("VONAGE_PRIVATE_KEY_PATH")) {
                (None, None) => None,
                (Some(id), Some(path)) => Some(VonageApplication {
                    id: id.trim().to_string(),
                    private_key_pem: read_private_key(&path)?,
                }),
                (Some(_), None) => {
                    return Err(err(
                        "VONAGE_PRIVATE_KEY_PATH",
                        "VONAGE_APPLICATION_ID needs the application's private key file",
                    ))
                }
                (None, Some(_)) => {
                    return Err(err(
                        "VONAGE_APPLICATION_ID",
                        "VONAGE_PRIVATE_KEY_PATH needs the application's id",
                    ))
                }
            };
        let has_keys = api_key.is_some() && api_secret.is_some();
        let verify_backend = match get("VERIFY_BACKEND").as_deref() {
            Some("vonage-v2") => VerifyBackend::VonageV2,
            Some("vonage") => VerifyBackend::Vonage,
            Some("console") => VerifyBackend::Console,
            Some(other) => {
                return Err(err(
                    "VERIFY_BACKEND",
                    format!("{other:?}: use vonage-v2, vonage (Verify v1) or console"),
                ))
            }
            None if has_keys || vonage_application.is_some() => VerifyBackend::VonageV2,
            None => VerifyBackend::Console,
        };
        let verify_backend_chosen = get("VERIFY_BACKEND").is_some();
        if verify_backend == VerifyBackend::Vonage && !has_keys {
            return Err(err(
                "NEXMO_API_KEY",
                "VERIFY_BACKEND=vonage needs NEXMO_API_KEY and NEXMO_API_SECRET",
            ));
        }
        if verify_backend == VerifyBackend::VonageV2 && !has_keys && vonage_application.is_none() {
            return Err(err(
                "NEXMO_API_KEY",
                "VERIFY_BACKEND=vonage-v2 needs NEXMO_API_KEY and NEXMO_API_SECRET, or VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY_PATH",
            ));
        }
        let brand = get("NEXMO_BRAND").unwrap_or_else(|| "Pollstr".into());
        if brand.chars().count() > 18 || brand.contains(['/', '{', '}', ':', '$']) {
            return Err(err(
                "NEXMO_BRAND",
                "at most 18 characters, without / { } : $ (Verify's rules)",
            ));
        }
        let default_url = match verify_backend {
            VerifyBackend::Vonage => "https://api.nexmo.com/verify",
            _ => "https://api.nexmo.com/v2/verify",
        };
        let base_url = get("NEXMO_VERIFY_URL")
            .unwrap_or_else(|| default_url.into())
            .trim_end_matches('/')
            .to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(err(
                "NEXMO_VERIFY_URL",
                "must start with http:// or https://",
            ));
        }
        // The other version's address, kept from an older setup, would fail every call.
        let wrong_version = match verify_backend {
            VerifyBackend::VonageV2 => base_url.ends_with("nexmo.com/verify"),
            VerifyBackend::Vonage => base_url.ends_with("/v2/verify"),
            VerifyBackend::Console => false,
        };
        if wrong_version {
            return Err(err(
                "NEXMO_VERIFY_URL",
                format!("{base_url} is the address of the other Verify version: unset it (the default follows VERIFY_BACKEND), or set VERIFY_BACKEND=vonage for Verify v1"),
            ));
        }
        let verify = verify_settings(&get)?;
        let vonage_signature_secret = get("VONAGE_SIGNATURE_SECRET");
        if vonage_signature_secret
            .as_deref()
            .is_some_and(|s| s.len() < 32)
        {
            return Err(err(
                "VONAGE_SIGNATURE_SECRET",
                "the account's signature secret (Vonage makes them at least 32 characters long)",
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
            sms_per_country: limit("SMS_LIMIT_PER_COUNTRY", "1000/1d")?,
            sms_per_prefix: limit("SMS_LIMIT_PER_PREFIX", "100/1d")?,
            code_per_user: limit("CODE_LIMIT_PER_USER", "5/15m")?,
            login_per_ip: limit("LOGIN_LIMIT_PER_IP", "20/15m")?,
            login_per_username: limit("LOGIN_LIMIT_PER_USERNAME", "100/1h")?,
            // A household, an office or a classroom behind one NAT signs up a few people at
            // once; 20 an hour lets that through, and holds one address to 100 accounts a day
            // (a flood made 1,316 a minute without it).
            signup_per_ip: limit("SIGNUP_LIMIT_PER_IP", "20/1h,100/1d")?,
            ipv6_prefix: match get("IPV6_LIMIT_PREFIX") {
                Some(v) => v
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|n| *n <= 128)
                    .ok_or_else(|| {
                        err(
                            "IPV6_LIMIT_PREFIX",
                            "a prefix length from 0 to 128, e.g. 64",
                        )
                    })?,
                None => 64,
            },
        };
        let sms_guard = sms_guard(&get)?;
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
        let development = is_development(environment, &addr, &trusted_proxies);
        let session_secure = session_secure.unwrap_or(!development);
        let seed_demo = match get("POLLSTR_SEED_DEMO") {
            Some(v) => {
                parse_bool(&v).ok_or_else(|| err("POLLSTR_SEED_DEMO", "use true or false"))?
            }
            None => development,
        };
        Ok(Config {
            database_url,
            database_max_connections,
            database_connect_timeout,
            addr,
            environment,
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
            vonage_application,
            vonage_signature_secret,
            verify,
            sms_guard,
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

/// Development is `POLLSTR_ENV=development`, or with `POLLSTR_ENV` unset a loopback address
/// with no `TRUSTED_PROXIES`. A proxy in front (nginx on the same host forwarding to
/// 127.0.0.1, the usual set-up) means other people reach the server: production.
fn is_development(
    environment: Option<Environment>,
    addr: &SocketAddr,
    trusted_proxies: &[ipnet::IpNet],
) -> bool {
    match environment {
        Some(e) => e == Environment::Development,
        None => addr.ip().is_loopback() && trusted_proxies.is_empty(),
    }
}

impl Config {
    /// Whether the server runs with development defaults: cookies without `Secure`, a
    /// development key kept on disk, the console provider without keys, the demo user. The one
    /// place that decides it.
    pub fn is_development(&self) -> bool {
        is_development(self.environment, &self.addr, &self.trusted_proxies)
    }

    /// Why this server counts as production, for the messages that refuse to start it.
    fn in_production(&self) -> String {
        if self.environment == Some(Environment::Production) {
            format!("on {} with POLLSTR_ENV=production", self.addr)
        } else if !self.trusted_proxies.is_empty() {
            format!(
                "on {} behind a proxy (TRUSTED_PROXIES is set), which other people reach",
                self.addr
            )
        } else {
            format!("on {}, which other machines can reach", self.addr)
        }
    }

    /// What `pollstr serve` refuses to start with. In production, the console provider (codes
    /// printed to the log, so anyone can pass the second factor of an account whose password
    /// they know, if they can read the log, and nobody gets an SMS) must be chosen explicitly:
    /// missing keys must not quietly fall back to it; and the secret key must be given, not
    /// made and kept beside the database.
    pub fn check_for_serving(&self) -> Result<(), ConfigError> {
        if self.is_development() {
            return Ok(());
        }
        if self.verify_backend == VerifyBackend::Console && !self.verify_backend_chosen {
            return Err(err(
                "VERIFY_BACKEND",
                format!(
                    "serving {} with no Vonage keys: set NEXMO_API_KEY and NEXMO_API_SECRET, or VERIFY_BACKEND=console to print codes to the log (development only)",
                    self.in_production()
                ),
            ));
        }
        if self.secret_key.is_none() {
            return Err(err(
                "POLLSTR_SECRET_KEY",
                format!(
                    "serving {} without the key that seals authenticator secrets: make one with `pollstr secret-key` and keep it safe",
                    self.in_production()
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

/// Reads the Vonage application's private key (a PEM RSA key, as the dashboard downloads it).
fn read_private_key(path: &str) -> Result<Vec<u8>, ConfigError> {
    const NAME: &str = "VONAGE_PRIVATE_KEY_PATH";
    let pem = std::fs::read(path).map_err(|e| err(NAME, format!("cannot read {path:?}: {e}")))?;
    jsonwebtoken::EncodingKey::from_rsa_pem(&pem)
        .map_err(|e| err(NAME, format!("{path:?} is not a PEM RSA private key: {e}")))?;
    Ok(pem)
}

fn verify_settings(get: &impl Fn(&str) -> Option<String>) -> Result<VerifySettings, ConfigError> {
    let defaults = VerifySettings::default();
    let workflow = match get("VERIFY_WORKFLOW") {
        Some(v) => {
            let channels = v
                .split(',')
                .map(|c| match c.trim().to_ascii_lowercase().as_str() {
                    "sms" => Ok(VerifyChannel::Sms),
                    "voice" => Ok(VerifyChannel::Voice),
                    other => Err(err(
                        "VERIFY_WORKFLOW",
                        format!("{other:?} is not a channel: use sms and voice, e.g. sms,voice"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if channels.is_empty() || channels.len() > 3 {
                return Err(err(
                    "VERIFY_WORKFLOW",
                    "one to three channels, e.g. sms,voice",
                ));
            }
            channels
        }
        None => defaults.workflow,
    };
    let channel_timeout = match get("VERIFY_CHANNEL_TIMEOUT") {
        Some(v) => parse_duration(&v)
            .filter(|d| (15..=900).contains(&d.as_secs()))
            .ok_or_else(|| {
                err(
                    "VERIFY_CHANNEL_TIMEOUT",
                    "from 15s to 15m (Verify's limits), e.g. 5m",
                )
            })?,
        None => defaults.channel_timeout,
    };
    let locale = match get("VERIFY_LOCALE") {
        Some(v) => {
            let v = v.trim().to_ascii_lowercase();
            let ok = v.len() <= 10
                && v.split('-').count() == 2
                && v.split('-').all(|p| {
                    (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase())
                });
            if !ok {
                return Err(err("VERIFY_LOCALE", "a locale such as en-us or es-es"));
            }
            v
        }
        None => defaults.locale,
    };
    Ok(VerifySettings {
        workflow,
        channel_timeout,
        locale,
    })
}

fn sms_guard(get: &impl Fn(&str) -> Option<String>) -> Result<SmsGuardConfig, ConfigError> {
    let allowed_countries = match get("SMS_ALLOWED_COUNTRIES") {
        Some(v) => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let code = s.to_ascii_uppercase();
                let known = code == crate::two_factor::sms::phone::NON_GEOGRAPHIC
                    || code.parse::<phonenumber::country::Id>().is_ok();
                known.then_some(code).ok_or_else(|| {
                    err(
                        "SMS_ALLOWED_COUNTRIES",
                        format!("{s:?} is not a two-letter country code such as GB or US, or 001 (numbers of no country)"),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let min_conversion = match get("SMS_MIN_CONVERSION") {
        Some(v) => {
            let t = v.trim();
            t.strip_suffix('%')
                .unwrap_or(t)
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| (0.0..=100.0).contains(p))
                .map(|p| p / 100.0)
                .ok_or_else(|| {
                    err(
                        "SMS_MIN_CONVERSION",
                        "a percentage from 0% to 100%, e.g. 20%",
                    )
                })?
        }
        None => 0.2,
    };
    let conversion_min_sends = match get("SMS_CONVERSION_MIN_SENDS") {
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| err("SMS_CONVERSION_MIN_SENDS", "a whole number from 1"))?,
        None => 50,
    };
    let conversion_window = match get("SMS_CONVERSION_WINDOW") {
        Some(v) => parse_duration(&v).ok_or_else(|| err("SMS_CONVERSION_WINDOW", "use e.g. 1d"))?,
        None => Duration::from_secs(86_400),
    };
    let pause = match get("SMS_PAUSE") {
        Some(v) => parse_duration(&v).ok_or_else(|| err("SMS_PAUSE", "use e.g. 1h"))?,
        None => Duration::from_secs(3600),
    };
    Ok(SmsGuardConfig {
        allowed_countries,
        min_conversion,
        conversion_min_sends,
        conversion_window,
        pause,
    })
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
        assert_eq!(c.vonage.base_url, "https://api.nexmo.com/v2/verify");
        assert_eq!(c.limits.sms_per_user.len(), 2);
        assert_eq!(c.limits.signup_per_ip.len(), 2);
        assert_eq!(c.limits.ipv6_prefix, 64);
        let whole = with(&[("IPV6_LIMIT_PREFIX", "128")]).unwrap();
        assert_eq!(whole.limits.ipv6_prefix, 128);
    }

    #[test]
    fn keys_select_vonage_and_secret_is_hidden() {
        let c = with(&[("VONAGE_API_KEY", "k"), ("VONAGE_API_SECRET", "s3cr3t")]).unwrap();
        assert_eq!(c.verify_backend, VerifyBackend::VonageV2);
        assert_eq!(c.vonage.base_url, "https://api.nexmo.com/v2/verify");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        // Staying on Verify v1 is one setting.
        let v1 = with(&[
            ("VONAGE_API_KEY", "k"),
            ("VONAGE_API_SECRET", "s3cr3t"),
            ("VERIFY_BACKEND", "vonage"),
        ])
        .unwrap();
        assert_eq!(v1.verify_backend, VerifyBackend::Vonage);
        assert_eq!(v1.vonage.base_url, "https://api.nexmo.com/verify");
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
    fn behind_a_proxy_or_told_so_is_production() {
        let key = crate::crypto::SecretKey::generate().encode();
        assert!(with(&[]).unwrap().is_development());
        // nginx on the same host forwards to 127.0.0.1: other people reach this server.
        for production in [
            &[("TRUSTED_PROXIES", "127.0.0.1")][..],
            &[("POLLSTR_ENV", "production")][..],
            &[("POLLSTR_ENV", " Production ")][..],
        ] {
            let c = with(production).unwrap();
            assert!(!c.is_development(), "{production:?}");
            assert!(c.session_secure && !c.seed_demo, "{production:?}");
            assert_eq!(c.check_for_serving().unwrap_err().name, "VERIFY_BACKEND");
            let console = with(&[production, &[("VERIFY_BACKEND", "console")]].concat()).unwrap();
            let e = console.check_for_serving().unwrap_err();
            assert_eq!(e.name, "POLLSTR_SECRET_KEY", "{production:?}");
            let keyed = [
                production,
                &[("VERIFY_BACKEND", "console"), ("POLLSTR_SECRET_KEY", &key)],
            ]
            .concat();
            assert!(with(&keyed).unwrap().check_for_serving().is_ok());
        }
        let proxied = with(&[
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("VERIFY_BACKEND", "console"),
        ]);
        let e = proxied
            .unwrap()
            .check_for_serving()
            .unwrap_err()
            .to_string();
        assert!(e.contains("behind a proxy (TRUSTED_PROXIES is set)"), "{e}");
        // Each default can still be set, and development asked for on any address.
        let c = with(&[
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("SESSION_SECURE", "false"),
            ("POLLSTR_SEED_DEMO", "true"),
        ])
        .unwrap();
        assert!(!c.session_secure && c.seed_demo && !c.is_development());
        let dev = with(&[
            ("POLLSTR_ADDR", "0.0.0.0:8000"),
            ("POLLSTR_ENV", "development"),
        ])
        .unwrap();
        assert!(dev.is_development() && !dev.session_secure && dev.seed_demo);
        assert!(dev.check_for_serving().is_ok());
        assert_eq!(
            with(&[("POLLSTR_ENV", "staging")]).unwrap_err().name,
            "POLLSTR_ENV"
        );
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
            ("VERIFY_WORKFLOW", "sms,fax"),
            ("VERIFY_WORKFLOW", "sms,voice,sms,voice"),
            ("VERIFY_CHANNEL_TIMEOUT", "5s"),
            ("VERIFY_LOCALE", "english"),
            ("NEXMO_BRAND", "Polls: {new}"),
            ("SMS_ALLOWED_COUNTRIES", "GB,Mars"),
            ("SMS_ALLOWED_COUNTRIES", "GB,002"),
            ("SMS_LIMIT_PER_COUNTRY", "lots"),
            ("SMS_LIMIT_PER_PREFIX", "5/never"),
            ("SIGNUP_LIMIT_PER_IP", "20"),
            ("IPV6_LIMIT_PREFIX", "129"),
            ("IPV6_LIMIT_PREFIX", "/64"),
            ("SMS_MIN_CONVERSION", "120%"),
            ("SMS_CONVERSION_MIN_SENDS", "0"),
            ("VONAGE_SIGNATURE_SECRET", "short"),
        ] {
            let e = with(&[(k, v)]).unwrap_err();
            assert_eq!(e.name, k, "{e}");
        }
        assert_eq!(
            with(&[("VERIFY_BACKEND", "vonage")]).unwrap_err().name,
            "NEXMO_API_KEY"
        );
        assert_eq!(
            with(&[("VERIFY_BACKEND", "vonage-v2")]).unwrap_err().name,
            "NEXMO_API_KEY"
        );
        // A v1 address kept from an older setup, now that keys mean v2.
        let old_url = with(&[
            ("NEXMO_API_KEY", "k"),
            ("NEXMO_API_SECRET", "s"),
            ("NEXMO_VERIFY_URL", "https://api.nexmo.com/verify"),
        ]);
        assert_eq!(old_url.unwrap_err().name, "NEXMO_VERIFY_URL");
        assert_eq!(
            with(&[("VONAGE_PRIVATE_KEY_PATH", "/nonexistent/key.pem")])
                .unwrap_err()
                .name,
            "VONAGE_APPLICATION_ID"
        );
        assert_eq!(
            with(&[
                (
                    "VONAGE_APPLICATION_ID",
                    "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
                ),
                ("VONAGE_PRIVATE_KEY_PATH", "/nonexistent/key.pem"),
            ])
            .unwrap_err()
            .name,
            "VONAGE_PRIVATE_KEY_PATH"
        );
    }

    #[test]
    fn guard_and_workflow_settings() {
        let c = with(&[
            ("SMS_ALLOWED_COUNTRIES", "gb, US"),
            ("SMS_MIN_CONVERSION", "25%"),
            ("VERIFY_WORKFLOW", "voice"),
            ("VERIFY_CHANNEL_TIMEOUT", "2m"),
        ])
        .unwrap();
        assert_eq!(c.sms_guard.allowed_countries, ["GB", "US"]);
        let satellites = with(&[("SMS_ALLOWED_COUNTRIES", "GB,001")]).unwrap();
        assert_eq!(satellites.sms_guard.allowed_countries, ["GB", "001"]);
        assert!((c.sms_guard.min_conversion - 0.25).abs() < 1e-9);
        assert_eq!(c.verify.workflow, vec![VerifyChannel::Voice]);
        assert_eq!(c.verify.channel_timeout, Duration::from_secs(120));
        let d = with(&[]).unwrap();
        assert_eq!(
            d.verify.workflow,
            vec![VerifyChannel::Sms, VerifyChannel::Voice]
        );
        assert!(d.sms_guard.allowed_countries.is_empty());
    }
}
