//! The passkeys' relying party (`WEBAUTHN_RP_ID`, `WEBAUTHN_ORIGIN`): the domain a passkey is
//! bound to and the one origin whose pages may use it. A browser signs the origin of the page
//! into every assertion, and an authenticator binds a passkey to the RP ID for good, so both
//! must name the address people use: `cargo run` works with the defaults (`localhost` and
//! `http://localhost:<port>`), and `serve` on a public address refuses values no browser
//! accepts there ([`WebauthnSettings::check_for_serving`]).

use std::net::SocketAddr;

use super::env::{Env, Result};
use super::{err, ConfigError};

/// The relying party of the passkeys.
#[derive(Clone, Debug)]
pub struct WebauthnSettings {
    /// A domain (`polls.example.com`, or `example.com` for its subdomains too).
    pub rp_id: String,
    /// `https://polls.example.com` (a port when it is not the scheme's default).
    pub origin: webauthn_rs::prelude::Url,
}

pub(super) fn read(env: &Env, addr: &SocketAddr) -> Result<WebauthnSettings> {
    let rp_id = env
        .parsed(
            "WEBAUTHN_RP_ID",
            |v| {
                let v = v.trim().to_ascii_lowercase();
                let ok = !v.is_empty()
                    && !v.starts_with('.')
                    && !v.ends_with('.')
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
                ok.then_some(v)
            },
            |v| format!("{v:?} is not a domain such as polls.example.com (no scheme, no port)"),
        )?
        .unwrap_or_else(|| "localhost".into());
    let default_origin = format!("http://localhost:{}", addr.port());
    let origin = env
        .parsed(
            "WEBAUTHN_ORIGIN",
            |v| {
                let url = webauthn_rs::prelude::Url::parse(v.trim()).ok()?;
                let bare = matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some()
                    && url.path() == "/"
                    && url.query().is_none()
                    && url.fragment().is_none()
                    && url.username().is_empty();
                bare.then_some(url)
            },
            |v| format!("{v:?} is not an origin such as https://polls.example.com"),
        )?
        .unwrap_or_else(|| {
            webauthn_rs::prelude::Url::parse(&default_origin).expect("a valid default origin")
        });
    let host = origin.host_str().unwrap_or_default().to_ascii_lowercase();
    if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
        return Err(err(
            "WEBAUTHN_RP_ID",
            format!("{rp_id:?} is neither the host of WEBAUTHN_ORIGIN ({host}) nor a domain it is under"),
        ));
    }
    Ok(WebauthnSettings { rp_id, origin })
}

impl WebauthnSettings {
    /// On an address other people reach, browsers offer passkeys only to an `https` page whose
    /// host is the RP ID or under it: `localhost` there would make every passkey fail.
    pub fn check_for_serving(&self, why: &str) -> std::result::Result<(), ConfigError> {
        if self.origin.scheme() != "https" {
            return Err(err(
                "WEBAUTHN_ORIGIN",
                format!(
                    "serving {why} with the passkey origin {}: browsers use passkeys only on https pages (set WEBAUTHN_ORIGIN to the address people use, e.g. https://polls.example.com)",
                    self.origin.as_str().trim_end_matches('/')
                ),
            ));
        }
        let loopback_name = self.rp_id == "localhost" || self.rp_id.ends_with(".localhost");
        if loopback_name || self.rp_id.parse::<std::net::IpAddr>().is_ok() {
            return Err(err(
                "WEBAUTHN_RP_ID",
                format!(
                    "serving {why} with the passkey RP ID {:?}: it must be the site's domain (e.g. polls.example.com)",
                    self.rp_id
                ),
            ));
        }
        Ok(())
    }
}
