//! The login without a password: a discoverable passkey (the browser offers the user's passkeys
//! for this site, in the username field's autofill or behind *Sign in with a passkey*) answers
//! a challenge that names no user; its user handle and credential ID find the account. With user
//! verification (a PIN, a fingerprint) it proves both factors, as GitHub and Authelia decide. An
//! answer without it is refused, here as at `/2fa/passkey/`: webauthn-rs enrols every passkey
//! with user verification and refuses a later answer without it (a downgrade). The pages are
//! `accounts`' (`/login/`, `/login/passkey/`): this file only checks the answer.

use tower_sessions::Session;
use webauthn_rs::prelude::{PublicKeyCredential, WebauthnError};

use super::{challenge_of, credential_id, relying, store, STATE_LIFETIME};
use crate::error::AppResult;
use crate::events::{self, Kind};
use crate::session::{self, Ceremony};
use crate::state::AppState;

/// A new request for any of this site's passkeys (the login page's form carries it); empty
/// when passkeys are not set up on this server.
pub async fn begin(state: &AppState, session: &Session) -> AppResult<String> {
    let Ok(relying) = relying(state) else {
        return Ok(String::new());
    };
    let (options, auth) = relying
        .start_discoverable_authentication()
        .map_err(|e| anyhow::anyhow!("passkey sign-in: {e}"))?;
    let ceremony = Ceremony {
        state: auth,
        at: crate::db::now(),
        user_handle: String::new(),
        options: String::new(),
    };
    session::PASSKEY_SIGNIN.insert(session, ceremony).await?;
    Ok(serde_json::to_string(&options).map_err(anyhow::Error::from)?)
}

/// What an answer proved.
pub enum Outcome {
    /// The passkey of this user, with user verification: both factors.
    Both { user: i64, passkey: String },
    /// Refused, with what the page says (the event is recorded).
    Refused(&'static str),
}

const AGAIN: &str =
    "That passkey was not accepted. Please try again, or log in with your password.";

/// Checks an answer to this session's request (taken out of the session first: answered once).
pub async fn finish(
    state: &AppState,
    session: &Session,
    ip: &str,
    answer: &str,
) -> AppResult<Outcome> {
    let ceremony = session::PASSKEY_SIGNIN.get(session).await?;
    session::PASSKEY_SIGNIN.remove(session).await?;
    let refused = |user: Option<i64>, detail: String, say: &'static str| async move {
        events::record(&state.db, Kind::PasskeyRefused, user, ip, &detail).await?;
        AppResult::Ok(Outcome::Refused(say))
    };
    let Some(ceremony) = ceremony.filter(|c| crate::db::now() - c.at <= STATE_LIFETIME) else {
        let say = "That passkey request has expired or was already answered. Please try again.";
        return refused(None, "login: no request open in this session".into(), say).await;
    };
    let Ok(answer) = serde_json::from_str::<PublicKeyCredential>(answer) else {
        return refused(None, "login: an answer that does not read".into(), AGAIN).await;
    };
    let relying = relying(state)?;
    let stored = match relying.identify_discoverable_authentication(&answer) {
        Ok((handle, id)) => store::by_credential(&state.db, &credential_id(id))
            .await?
            .filter(|p| p.user_handle == handle.to_string()),
        Err(_) => None,
    };
    let Some(stored) = stored else {
        return refused(None, "login: a passkey not registered here".into(), AGAIN).await;
    };
    let user = Some(stored.user_id);
    let mut passkey = super::passkey_of(&stored)?;
    let result = match relying.finish_discoverable_authentication_v2(
        &answer,
        ceremony.state,
        &passkey,
    ) {
        Ok(result) => result,
        Err(WebauthnError::CredentialPossibleCompromise) => {
            let detail = format!(
                "passkey \"{}\": its signature counter went backwards (a cloned authenticator?)",
                stored.name
            );
            events::record(&state.db, Kind::PasskeyCounterBackwards, user, ip, &detail).await?;
            return refused(
                user,
                "login: signature counter went backwards".into(),
                AGAIN,
            )
            .await;
        }
        Err(WebauthnError::UserNotVerified) => {
            let say = "Your passkey did not check that it is you (no PIN, fingerprint or face). Please try again, or log in with your password.";
            return refused(user, "login: no user verification".into(), say).await;
        }
        Err(e) => return refused(user, format!("login: {e}"), AGAIN).await,
    };
    let fresh = match challenge_of(&answer.response.client_data_json) {
        Some(c) => store::claim_challenge(&state.db, &c).await?,
        None => false,
    };
    if !fresh {
        return refused(user, "login: an answer already used".into(), AGAIN).await;
    }
    passkey.update_credential(&result);
    let json = serde_json::to_string(&passkey).map_err(anyhow::Error::from)?;
    let synced = super::backup_eligible(&passkey);
    store::used(&state.db, stored.id, &json, synced).await?;
    Ok(Outcome::Both {
        user: stored.user_id,
        passkey: stored.name,
    })
}
