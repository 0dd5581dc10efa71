//! The mail settings (`SMTP_URL`, `MAIL_FROM`, `MAIL_ATTEMPTS`, `SMTP_TIMEOUT`): where mail goes
//! and how hard the outbox tries (`mail`). `smtp://` is STARTTLS (required: no credentials or
//! mail before the upgrade), `smtps://` implicit TLS; `?tls=none` (plain SMTP) only to a relay on
//! this machine. Without `SMTP_URL`, development prints mail to the log and production has none.

use std::time::Duration;

use super::env::{Env, Result};
use super::err;

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtp://`: STARTTLS, required.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://…?tls=none`: plain, only to a loopback relay.
    None,
}

/// An SMTP server, from `SMTP_URL`. `Debug` hides the password.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Certificates to trust besides the platform's (PEM): a private CA, or a test's own.
    pub extra_root_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The mail settings of [`super::Config`].
#[derive(Clone, Debug)]
pub struct MailConfig {
    pub smtp: Option<SmtpSettings>,
    /// The sender, `Name <address>` or an address.
    pub from: String,
    /// Tries per message before it is given up (logged).
    pub attempts: u32,
    /// How long one try may take, connection to reply.
    pub timeout: Duration,
}

fn loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `smtp://user:pass@host:587`, `smtps://host`, `smtp://127.0.0.1:25?tls=none`.
pub fn parse_smtp_url(raw: &str) -> std::result::Result<SmtpSettings, String> {
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|_| "not a URL: use e.g. smtp://user:password@mail.example.com:587".to_string())?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("the URL names no host")?
        .to_string();
    let plain = match url.query() {
        None | Some("") => false,
        Some("tls=none") => true,
        Some(q) => return Err(format!("{q:?}: the only option is tls=none")),
    };
    let tls = match (url.scheme(), plain) {
        ("smtp", false) => SmtpTls::StartTls,
        ("smtp", true) if loopback(&host) => SmtpTls::None,
        ("smtp", true) => {
            return Err(
                "tls=none (plain SMTP) only to a relay on this machine (localhost)".to_string(),
            )
        }
        ("smtps", false) => SmtpTls::Implicit,
        ("smtps", true) => return Err("smtps:// is TLS: tls=none does not apply".to_string()),
        (s, _) => return Err(format!("{s}://: use smtp:// (STARTTLS) or smtps:// (TLS)")),
    };
    let port = url.port().unwrap_or(match tls {
        SmtpTls::Implicit => 465,
        SmtpTls::StartTls => 587,
        SmtpTls::None => 25,
    });
    let user = Some(decode(url.username())).filter(|u| !u.is_empty());
    let password = url.password().map(decode);
    Ok(SmtpSettings {
        host,
        port,
        tls,
        user,
        password,
        extra_root_pem: None,
    })
}

pub(super) fn read(env: &Env) -> Result<MailConfig> {
    let smtp = env.parsed(
        "SMTP_URL",
        |v| parse_smtp_url(v).ok(),
        |v| parse_smtp_url(v).err().unwrap_or_default(),
    )?;
    let from = env.text("MAIL_FROM", "Pollstr <pollstr@localhost>");
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(err(
            "MAIL_FROM",
            format!("{from:?} is not an address such as Pollstr <polls@example.com>"),
        ));
    }
    Ok(MailConfig {
        smtp,
        from,
        attempts: env.number("MAIL_ATTEMPTS", 3, 1..=10, "a whole number from 1 to 10")?,
        timeout: env.duration_within(
            "SMTP_TIMEOUT",
            Duration::from_secs(10),
            (1, 300),
            "from 1s to 5m, e.g. 10s",
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        let s = parse_smtp_url("smtp://me%40x:p%3Ass@mail.example.com:2525").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("mail.example.com", 2525, SmtpTls::StartTls)
        );
        assert_eq!(s.user.as_deref(), Some("me@x"));
        assert_eq!(s.password.as_deref(), Some("p:ss"));
        assert!(!format!("{s:?}").contains("p:ss"));
        let s = parse_smtp_url("smtps://mail.example.com").unwrap();
        assert_eq!((s.port, s.tls), (465, SmtpTls::Implicit));
        assert_eq!(parse_smtp_url("smtp://h").unwrap().port, 587);
        let s = parse_smtp_url("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!(s.tls, SmtpTls::None);
        for bad in [
            "",
            "mail.example.com",
            "http://mail.example.com",
            "smtp://mail.example.com?tls=none",
            "smtps://localhost?tls=none",
            "smtp://localhost?tls=maybe",
        ] {
            assert!(parse_smtp_url(bad).is_err(), "{bad}");
        }
    }
}
