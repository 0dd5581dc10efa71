//! The Verify provider's settings (`VERIFY_*`, `NEXMO_*`/`VONAGE_*`, `PHONE_DEFAULT_REGION`)
//! and the SMS pumping guard's (`SMS_*` but the limits): which provider, its credentials and
//! address (a v1 address with the v2 backend is refused, as it would fail every call), the
//! workflow, and where codes may go.

use std::time::Duration;

use super::env::{Env, Result};
use super::err;

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

/// The Verify settings of [`super::Config`], read together: which provider follows from the
/// keys.
pub(super) struct VerifyPart {
    pub backend: VerifyBackend,
    pub backend_chosen: bool,
    pub vonage: VonageConfig,
    pub application: Option<VonageApplication>,
    pub signature_secret: Option<String>,
    pub settings: VerifySettings,
    pub sms_guard: SmsGuardConfig,
    pub default_region: Option<phonenumber::country::Id>,
}

pub(super) fn read(env: &Env) -> Result<VerifyPart> {
    let api_key = env
        .raw("NEXMO_API_KEY")
        .or_else(|| env.raw("VONAGE_API_KEY"));
    let api_secret = env
        .raw("NEXMO_API_SECRET")
        .or_else(|| env.raw("VONAGE_API_SECRET"));
    let application = application(env)?;
    let has_keys = api_key.is_some() && api_secret.is_some();
    let (backend, backend_chosen) = backend(env, has_keys, application.is_some())?;
    let brand = env.text("NEXMO_BRAND", "Pollstr");
    if brand.chars().count() > 18 || brand.contains(['/', '{', '}', ':', '$']) {
        return Err(err(
            "NEXMO_BRAND",
            "at most 18 characters, without / { } : $ (Verify's rules)",
        ));
    }
    let base_url = base_url(env, &backend)?;
    let settings = verify_settings(env)?;
    let signature_secret = env.raw("VONAGE_SIGNATURE_SECRET");
    if signature_secret.as_deref().is_some_and(|s| s.len() < 32) {
        return Err(err(
            "VONAGE_SIGNATURE_SECRET",
            "the account's signature secret (Vonage makes them at least 32 characters long)",
        ));
    }
    let timeout = env.duration("VERIFY_TIMEOUT", Duration::from_secs(10), "use e.g. 10s")?;
    let default_region = env.parsed(
        "PHONE_DEFAULT_REGION",
        |v| v.trim().to_ascii_uppercase().parse().ok(),
        |v| format!("{v:?} is not a two-letter region code such as GB or US"),
    )?;
    Ok(VerifyPart {
        backend,
        backend_chosen,
        vonage: VonageConfig {
            api_key: api_key.unwrap_or_default(),
            api_secret: api_secret.unwrap_or_default(),
            brand,
            base_url,
            timeout,
        },
        application,
        signature_secret,
        settings,
        sms_guard: sms_guard(env)?,
        default_region,
    })
}

/// A Vonage application: both its id and its key file, or neither.
fn application(env: &Env) -> Result<Option<VonageApplication>> {
    match (
        env.raw("VONAGE_APPLICATION_ID"),
        env.raw("VONAGE_PRIVATE_KEY_PATH"),
    ) {
        (None, None) => Ok(None),
        (Some(id), Some(path)) => Ok(Some(VonageApplication {
            id: id.trim().to_string(),
            private_key_pem: read_private_key(&path)?,
        })),
        (Some(_), None) => Err(err(
            "VONAGE_PRIVATE_KEY_PATH",
            "VONAGE_APPLICATION_ID needs the application's private key file",
        )),
        (None, Some(_)) => Err(err(
            "VONAGE_APPLICATION_ID",
            "VONAGE_PRIVATE_KEY_PATH needs the application's id",
        )),
    }
}

/// The provider: chosen by `VERIFY_BACKEND`, else Verify v2 with keys and the console without;
/// and whether it was chosen.
fn backend(env: &Env, has_keys: bool, has_application: bool) -> Result<(VerifyBackend, bool)> {
    let chosen = env.raw("VERIFY_BACKEND");
    let backend = match chosen.as_deref() {
        Some("vonage-v2") => VerifyBackend::VonageV2,
        Some("vonage") => VerifyBackend::Vonage,
        Some("console") => VerifyBackend::Console,
        Some(other) => {
            return Err(err(
                "VERIFY_BACKEND",
                format!("{other:?}: use vonage-v2, vonage (Verify v1) or console"),
            ))
        }
        None if has_keys || has_application => VerifyBackend::VonageV2,
        None => VerifyBackend::Console,
    };
    if backend == VerifyBackend::Vonage && !has_keys {
        return Err(err(
            "NEXMO_API_KEY",
            "VERIFY_BACKEND=vonage needs NEXMO_API_KEY and NEXMO_API_SECRET",
        ));
    }
    if backend == VerifyBackend::VonageV2 && !has_keys && !has_application {
        return Err(err(
            "NEXMO_API_KEY",
            "VERIFY_BACKEND=vonage-v2 needs NEXMO_API_KEY and NEXMO_API_SECRET, or VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY_PATH",
        ));
    }
    Ok((backend, chosen.is_some()))
}

/// The Verify address: the backend's default, or `NEXMO_VERIFY_URL` (a fake or staging).
fn base_url(env: &Env, backend: &VerifyBackend) -> Result<String> {
    let default_url = match backend {
        VerifyBackend::Vonage => "https://api.nexmo.com/verify",
        _ => "https://api.nexmo.com/v2/verify",
    };
    let base_url = env
        .text("NEXMO_VERIFY_URL", default_url)
        .trim_end_matches('/')
        .to_string();
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(err(
            "NEXMO_VERIFY_URL",
            "must start with http:// or https://",
        ));
    }
    // The other version's address, kept from an older setup, would fail every call.
    let wrong_version = match backend {
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
    Ok(base_url)
}

/// Reads the Vonage application's private key (a PEM RSA key, as the dashboard downloads it).
fn read_private_key(path: &str) -> Result<Vec<u8>> {
    const NAME: &str = "VONAGE_PRIVATE_KEY_PATH";
    let pem = std::fs::read(path).map_err(|e| err(NAME, format!("cannot read {path:?}: {e}")))?;
    jsonwebtoken::EncodingKey::from_rsa_pem(&pem)
        .map_err(|e| err(NAME, format!("{path:?} is not a PEM RSA private key: {e}")))?;
    Ok(pem)
}

fn verify_settings(env: &Env) -> Result<VerifySettings> {
    let defaults = VerifySettings::default();
    let channel = |c: &str| match c.to_ascii_lowercase().as_str() {
        "sms" => Ok(VerifyChannel::Sms),
        "voice" => Ok(VerifyChannel::Voice),
        other => Err(format!(
            "{other:?} is not a channel: use sms and voice, e.g. sms,voice"
        )),
    };
    let given = env.list("VERIFY_WORKFLOW", channel)?;
    let workflow = match (env.raw("VERIFY_WORKFLOW"), given.len()) {
        (None, _) => defaults.workflow,
        (Some(_), 1..=3) => given,
        (Some(_), _) => {
            return Err(err(
                "VERIFY_WORKFLOW",
                "one to three channels, e.g. sms,voice",
            ))
        }
    };
    let channel_timeout = env.duration_within(
        "VERIFY_CHANNEL_TIMEOUT",
        defaults.channel_timeout,
        (15, 900),
        "from 15s to 15m (Verify's limits), e.g. 5m",
    )?;
    let locale = env.parsed(
        "VERIFY_LOCALE",
        |v| {
            let v = v.trim().to_ascii_lowercase();
            let ok = v.len() <= 10
                && v.split('-').count() == 2
                && v.split('-').all(|p| {
                    (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase())
                });
            ok.then_some(v)
        },
        |_| "a locale such as en-us or es-es".into(),
    )?;
    Ok(VerifySettings {
        workflow,
        channel_timeout,
        locale: locale.unwrap_or(defaults.locale),
    })
}

fn sms_guard(env: &Env) -> Result<SmsGuardConfig> {
    let allowed_countries = env.list("SMS_ALLOWED_COUNTRIES", |s| {
        let code = s.to_ascii_uppercase();
        let known = code == crate::two_factor::sms::phone::NON_GEOGRAPHIC
            || code.parse::<phonenumber::country::Id>().is_ok();
        known.then_some(code).ok_or_else(|| {
            format!("{s:?} is not a two-letter country code such as GB or US, or 001 (numbers of no country)")
        })
    })?;
    let min_conversion = env.parsed(
        "SMS_MIN_CONVERSION",
        |v| {
            let t = v.trim();
            t.strip_suffix('%')
                .unwrap_or(t)
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| (0.0..=100.0).contains(p))
                .map(|p| p / 100.0)
        },
        |_| "a percentage from 0% to 100%, e.g. 20%".into(),
    )?;
    Ok(SmsGuardConfig {
        allowed_countries,
        min_conversion: min_conversion.unwrap_or(0.2),
        conversion_min_sends: env.number(
            "SMS_CONVERSION_MIN_SENDS",
            50,
            1..=u32::MAX,
            "a whole number from 1",
        )?,
        conversion_window: env.duration(
            "SMS_CONVERSION_WINDOW",
            Duration::from_secs(86_400),
            "use e.g. 1d",
        )?,
        pause: env.duration("SMS_PAUSE", Duration::from_secs(3600), "use e.g. 1h")?,
    })
}
