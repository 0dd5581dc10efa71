//! Settings: read once at start-up from the environment (and `.env`), typed; nothing else in
//! the app reads the environment. Each concern reads its own in a file of its own, through
//! one typed getter ([`env`]) whose errors name the setting: the web-facing ones ([`http`]),
//! the Verify provider and the SMS guard ([`verify`]), the limits ([`limits`]), mail
//! ([`mail`]); the database and the secrets are read here. `docs/configuration.md` documents them (and the limits,
//! `docs/security.md`); a test (`tests.rs`) checks that it and `.env.example` name exactly the
//! settings the code reads.

mod env;
mod http;
mod limits;
mod mail;
#[cfg(test)]
mod tests;
mod verify;
mod webauthn;

use std::net::SocketAddr;
use std::time::Duration;

pub use crate::duration::parse_duration;
pub use http::{origin_of, without_default_port};
pub use limits::Limits;
pub use mail::{parse_smtp_url, MailConfig, SmtpSettings, SmtpTls};
pub use verify::{
    SmsGuardConfig, VerifyBackend, VerifyChannel, VerifySettings, VonageApplication, VonageConfig,
};
pub use webauthn::WebauthnSettings;

use env::Env;

/// Which defaults the server runs with (`POLLSTR_ENV`, see [`Config::is_development`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    /// `cargo run` on a developer's machine: cookies without `Secure`, a key made and kept on
    /// disk, codes printed to the log without Vonage keys, the demo user test / test1234.
    Development,
    /// Real users: none of the above.
    Production,
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
    /// Where mail goes (`SMTP_URL`, `MAIL_FROM`, …; `mail`).
    pub mail: MailConfig,
    /// How long a password-reset link works (`RESET_LINK_TTL`).
    pub reset_link_ttl: Duration,
    /// How long "Trust this browser" lasts, in days (0: the box is not offered).
    pub trusted_browser_days: u32,
    /// How long security events are kept (`events`).
    pub event_retention: Duration,
    /// Timeouts and the connection cap of the HTTP server.
    pub http: crate::server::HttpLimits,
    /// The passkeys' relying party (`WEBAUTHN_RP_ID`, `WEBAUTHN_ORIGIN`).
    pub webauthn: WebauthnSettings,
    /// How long the server goes on serving, not ready, once told to stop (`health`).
    pub shutdown_drain: Duration,
    /// `LOG_FORMAT`: plain text lines, or one JSON object per line.
    pub log_format: crate::logging::LogFormat,
    /// Where `/metrics` is served (`telemetry`); unset, metrics are off.
    pub metrics_addr: Option<SocketAddr>,
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
        Self::read(&Env::new(&get))
    }

    fn read(env: &Env) -> Result<Self, ConfigError> {
        let server = http::read(env)?;
        let verify = verify::read(env)?;
        let development = is_development(server.environment, &server.addr, &server.trusted_proxies);
        let seed_demo = env.flag("POLLSTR_SEED_DEMO")?.unwrap_or(development);
        let secret_key = env.parsed(
            "POLLSTR_SECRET_KEY",
            crate::crypto::SecretKey::parse,
            |_| "32 bytes in URL-safe base64 (43 characters) or hex (64): make one with `pollstr secret-key`".into(),
        )?;
        let limits = limits::read(env)?;
        let webauthn = webauthn::read(env, &server.addr)?;
        // The connection cap counts an IPv6 peer as every per-address limit does.
        let http = crate::server::HttpLimits {
            ipv6_prefix: limits.ipv6_prefix,
            ..server.http
        };
        Ok(Config {
            database_url: env.text("DATABASE_URL", "sqlite://pollstr.db"),
            database_max_connections: env.number(
                "DATABASE_MAX_CONNECTIONS",
                10,
                2..=u32::MAX,
                "a whole number of 2 or more",
            )?,
            database_connect_timeout: env.duration(
                "DATABASE_CONNECT_TIMEOUT",
                Duration::from_secs(5),
                "use e.g. 5s",
            )?,
            addr: server.addr,
            environment: server.environment,
            session_secure: server.session_secure.unwrap_or(!development),
            session_ttl: server.session_ttl,
            verify_backend: verify.backend,
            verify_backend_chosen: verify.backend_chosen,
            vonage: verify.vonage,
            vonage_application: verify.application,
            vonage_signature_secret: verify.signature_secret,
            verify: verify.settings,
            sms_guard: verify.sms_guard,
            default_region: verify.default_region,
            limits,
            trusted_proxies: server.trusted_proxies,
            csrf_trusted_origins: server.csrf_trusted_origins,
            secret_key,
            sudo_window: env.duration("SUDO_WINDOW", Duration::from_secs(600), "use e.g. 10m")?,
            mail: mail::read(env)?,
            reset_link_ttl: env.duration_within(
                "RESET_LINK_TTL",
                Duration::from_secs(3600),
                (60, 7 * 86400),
                "from 1m to 7d, e.g. 1h",
            )?,
            trusted_browser_days: env.number(
                "TRUSTED_BROWSER_DAYS",
                30,
                0..=365,
                "a whole number of days from 0 to 365",
            )?,
            event_retention: env.duration(
                "EVENT_RETENTION",
                Duration::from_secs(90 * 86400),
                "use e.g. 90d",
            )?,
            http,
            webauthn,
            shutdown_drain: server.shutdown_drain,
            metrics_addr: server.metrics_addr,
            log_format: env
                .parsed(
                    "LOG_FORMAT",
                    |v| match v.trim().to_ascii_lowercase().as_str() {
                        "text" => Some(crate::logging::LogFormat::Text),
                        "json" => Some(crate::logging::LogFormat::Json),
                        _ => None,
                    },
                    |v| format!("{v:?}: use text or json"),
                )?
                .unwrap_or_default(),
            seed_demo,
        })
    }

    /// The settings the code reads (for the test that keeps their documentation in step).
    #[cfg(test)]
    fn names_read() -> std::collections::BTreeSet<&'static str> {
        let get = |_: &str| None;
        let env = Env::new(&get);
        Self::read(&env).expect("the defaults are a valid configuration");
        env.names()
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
        self.webauthn.check_for_serving(&self.in_production())
    }
}
