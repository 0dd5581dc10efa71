//! Passkeys (WebAuthn, through webauthn-rs 0.6): a login with no code to type and no SMS to pay
//! for. [`manage`] is `/account/passkeys/` (add in sudo mode, list, rename, remove with the
//! password); [`login`] is the passkey as the second factor at `/2fa/passkey/`, offered first,
//! through [`super::challenge`] like every factor. The design is in `docs/passkeys.md`.
//!
//! Every ceremony's state is kept in the server-side session only ([`crate::session::Ceremony`])
//! and taken out when its answer comes; since two requests sent together both read the session,
//! a login's challenge is also claimed in the database ([`store::claim_challenge`]): of a burst
//! of answers to one challenge, one is accepted. A passkey is stored as webauthn-rs's `Passkey`
//! (public key, counter, backup flags) as JSON. [`signin`] checks the login without a password
//! (the pages are `accounts`').

pub mod login;
pub mod manage;
pub mod signin;
pub mod store;

use base64::Engine;
use webauthn_rs::prelude::{Passkey, Webauthn, WebauthnBuilder};

use crate::config::WebauthnSettings;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::routes::Routes;

/// How long a ceremony may take, from the page that starts it to the answer (the browser's
/// prompt times out after [`PROMPT_TIMEOUT`]).
pub const STATE_LIFETIME: i64 = 600;
const PROMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

pub fn router(state: &AppState) -> Routes {
    Routes::new()
        .merge(manage::router(state))
        .merge(login::router())
}

/// Whether a pending ceremony may still be shown again: begun less than half of
/// [`STATE_LIFETIME`] ago, so that its page leaves time to answer.
pub fn reusable<T>(ceremony: &crate::session::Ceremony<T>) -> bool {
    !ceremony.options.is_empty() && crate::db::now() - ceremony.at <= STATE_LIFETIME / 2
}

/// The relying party, built once from the settings (a part of the state).
pub struct Relying(Option<Webauthn>);

impl Relying {
    pub fn new(settings: &WebauthnSettings) -> Relying {
        let built = WebauthnBuilder::new(&settings.rp_id, &settings.origin)
            .map(|b| b.rp_name("Pollstr").timeout(PROMPT_TIMEOUT))
            .and_then(|b| b.build());
        match built {
            Ok(webauthn) => Relying(Some(webauthn)),
            Err(e) => {
                tracing::error!(error = %e, "passkeys are off: WEBAUTHN_RP_ID and WEBAUTHN_ORIGIN do not go together");
                Relying(None)
            }
        }
    }
}

/// The relying party, or a 503 when the settings could not make one.
pub fn relying(state: &AppState) -> AppResult<&Webauthn> {
    state.part::<Relying>().0.as_ref().ok_or_else(|| {
        AppError::Unavailable(anyhow::anyhow!("passkeys are not set up on this server"))
    })
}

/// A credential ID as stored and compared: base64url without padding.
pub fn credential_id(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether a passkey may be synced between devices (the authenticator's backup-eligible flag).
pub fn backup_eligible(passkey: &Passkey) -> bool {
    serde_json::to_value(passkey)
        .ok()
        .and_then(|v| v.pointer("/cred/backup_eligible").and_then(|b| b.as_bool()))
        .unwrap_or(false)
}

/// A stored passkey, read back.
pub fn passkey_of(stored: &store::Stored) -> AppResult<Passkey> {
    serde_json::from_str(&stored.passkey)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("passkey {}: {e}", stored.id)))
}

/// The challenge an assertion answers (from its client data), for [`store::claim_challenge`].
pub fn challenge_of(client_data_json: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(client_data_json).ok()?;
    v.get("challenge")?.as_str().map(str::to_string)
}
