//! `/2fa/passkey/`: a passkey as the second factor after the password, offered first when the
//! account has one, through the challenge skeleton ([`challenge::answer`]: the wrong-code limit,
//! the events, "trust this browser"). Every answer must carry user verification (a PIN, a
//! fingerprint): webauthn-rs enrols passkeys with it and then refuses an answer without it, so
//! that a stolen key cannot be used with a touch alone. Refused:
//! an answer for another origin, to another session's challenge, with another user's
//! credential, one already used (a replay, or the losers of a burst: [`store::claim_challenge`]),
//! and a signature counter gone backwards (also recorded as `passkey_counter_backwards`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use webauthn_rs::prelude::{PasskeyAuthentication, PublicKeyCredential, WebauthnError};

use super::{challenge_of, credential_id, relying, store, STATE_LIFETIME};
use crate::error::AppResult;
use crate::events::{self, Kind};
use crate::session::{self, Ceremony, SessionUser};
use crate::state::AppState;
use crate::two_factor::challenge::{self, Attempt, Factor, Verdict};
use crate::two_factor::{recovery, totp};
use crate::web::next::NextQuery;
use crate::web::routes::{get, Routes};
use crate::web::{self, ClientIp, Form, Page, PageContext, SafeNext};

pub fn router() -> Routes {
    Routes::new().route("/2fa/passkey/", get(login_page).post(login))
}

#[derive(Template, Clone)]
#[template(path = "two_factor/passkey_login.html")]
pub struct LoginPage {
    pub ctx: PageContext,
    pub next: String,
    pub error: Option<String>,
    /// The request for the browser (JSON); its ceremony is in the session.
    pub options: String,
    /// The user has an authenticator app (a link to it is shown).
    pub has_app: bool,
    pub recovery_left: i64,
    /// Days a trusted browser skips the second factor (0: the box is not shown).
    pub trust_days: u32,
}

fn elsewhere(next: &SafeNext) -> Response {
    Redirect::to(&format!("/2fa/?method=sms&next={}", next.query_value())).into_response()
}

/// A new request for one of the user's passkeys, its ceremony kept in the session.
async fn begin(state: &AppState, page: &Page, user: &SessionUser) -> AppResult<String> {
    if let Some(pending) = session::PASSKEY_CHECK.get(&page.session).await? {
        if super::reusable(&pending) {
            return Ok(pending.options);
        }
    }
    let keys = store::of_user(&state.db, user.id)
        .await?
        .iter()
        .map(super::passkey_of)
        .collect::<AppResult<Vec<_>>>()?;
    let (options, auth) = relying(state)?
        .start_passkey_authentication(&keys)
        .map_err(|e| anyhow::anyhow!("passkey authentication: {e}"))?;
    let options = serde_json::to_string(&options).map_err(anyhow::Error::from)?;
    let ceremony = Ceremony {
        state: auth,
        at: crate::db::now(),
        user_handle: String::new(),
        options: options.clone(),
    };
    session::PASSKEY_CHECK
        .insert(&page.session, ceremony)
        .await?;
    Ok(options)
}

async fn form(
    state: &AppState,
    page: &Page,
    user: &SessionUser,
    next: &SafeNext,
) -> AppResult<LoginPage> {
    Ok(LoginPage {
        ctx: page.ctx.clone(),
        next: next.as_str().to_string(),
        error: None,
        options: begin(state, page, user).await?,
        has_app: totp::has_factor(state, user.id).await?,
        recovery_left: recovery::store::left(&state.db, user.id).await?,
        trust_days: state.config.trusted_browser_days,
    })
}

async fn login_page(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<NextQuery>,
) -> AppResult<Response> {
    let next = SafeNext::or_default(q.next.as_deref());
    let Some(user) = page.ctx.user.clone() else {
        return Ok(next.redirect("/login/"));
    };
    if !store::has_any(&state.db, user.id).await? {
        return Ok(elsewhere(&next));
    }
    let page = page.with_form().await?;
    web::render(&form(&state, &page, &user, &next).await?)
}

#[derive(Deserialize)]
pub struct AnswerForm {
    /// The browser's answer (JSON), filled in by `static/passkeys.js`.
    #[serde(default)]
    credential: String,
    next: Option<String>,
    /// "Trust this browser" was ticked.
    remember: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    page: Page,
    Form(answer): Form<AnswerForm>,
) -> AppResult<Response> {
    let next = SafeNext::or_default(answer.next.as_deref());
    let Some(user) = page.ctx.user.clone() else {
        return Ok(next.redirect("/login/"));
    };
    if !store::has_any(&state.db, user.id).await? {
        return Ok(elsewhere(&next));
    }
    let page = page.with_form().await?;
    // The ceremony this answer may close is taken out before anything else: answered once.
    let ceremony = session::PASSKEY_CHECK.get(&page.session).await?;
    session::PASSKEY_CHECK.remove(&page.session).await?;
    let challenge = PasskeyChallenge {
        // A refusal shows the form again with a new request.
        form: form(&state, &page, &user, &next).await?,
        ceremony: ceremony.filter(|c| crate::db::now() - c.at <= STATE_LIFETIME),
    };
    let remember = answer.remember.is_some();
    let at = Attempt::new(&state, &page, &user, &ip, &headers, &next, remember);
    challenge::answer(&challenge, at, &answer.credential).await
}

/// A passkey's challenge at login: the form, and the ceremony the answer must close.
struct PasskeyChallenge {
    form: LoginPage,
    ceremony: Option<Ceremony<PasskeyAuthentication>>,
}

fn wrong(detail: impl Into<String>, message: &str) -> Verdict {
    Verdict::Wrong {
        detail: format!("passkey: {}", detail.into()),
        message: message.into(),
    }
}

#[async_trait::async_trait]
impl Factor for PasskeyChallenge {
    type Answer = PublicKeyCredential;
    const NAME: &'static str = "passkey";
    const LABEL: &'static str = "passkey";

    fn parse(&self, typed: &str) -> Result<PublicKeyCredential, String> {
        serde_json::from_str(typed)
            .map_err(|_| "Your browser's answer could not be read. Please try again.".into())
    }

    async fn check(&self, at: &Attempt<'_>, answer: PublicKeyCredential) -> AppResult<Verdict> {
        let (state, user) = (at.state, at.user);
        let Some(ceremony) = &self.ceremony else {
            return Ok(wrong(
                "no request open in this session",
                "That passkey request has expired or was already answered. Please try again.",
            ));
        };
        let again = "That passkey was not accepted. Please try again, or use another way below.";
        let result = match relying(state)?.finish_passkey_authentication(&answer, &ceremony.state) {
            Ok(result) => result,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                let id = credential_id(answer.get_credential_id());
                let name = match store::by_credential(&state.db, &id).await? {
                    Some(p) if p.user_id == user.id => p.name,
                    _ => id,
                };
                let detail = format!("passkey \"{name}\": its signature counter went backwards (a cloned authenticator?)");
                let kind = Kind::PasskeyCounterBackwards;
                events::record(&state.db, kind, Some(user.id), at.ip, &detail).await?;
                return Ok(wrong("signature counter went backwards", again));
            }
            Err(e) => return Ok(wrong(e.to_string(), again)),
        };
        let fresh = match challenge_of(&answer.response.client_data_json) {
            Some(c) => store::claim_challenge(&state.db, &c).await?,
            None => false,
        };
        if !fresh {
            return Ok(wrong("an answer already used", again));
        }
        let id = credential_id(result.cred_id());
        let Some(stored) = store::by_credential(&state.db, &id)
            .await?
            .filter(|p| p.user_id == user.id)
        else {
            // Removed between the page and the answer.
            return Ok(wrong("a passkey no longer stored", again));
        };
        let mut passkey = super::passkey_of(&stored)?;
        passkey.update_credential(&result);
        let json = serde_json::to_string(&passkey).map_err(anyhow::Error::from)?;
        let synced = super::backup_eligible(&passkey);
        store::used(&state.db, stored.id, &json, synced).await?;
        session::PASSKEY_CHECK.remove(at.session).await?;
        Ok(Verdict::Right {
            detail: format!("passkey \"{}\"", stored.name),
            also: Vec::new(),
        })
    }

    fn refuse(&self, status: StatusCode, message: String) -> AppResult<Response> {
        let body = web::render(&LoginPage {
            error: Some(message),
            ..self.form.clone()
        })?;
        Ok((status, body).into_response())
    }
}
