//! The SMS factor, the original's: the flow `/2fa/` (new) → `/2fa/create/` (send a code) →
//! `/2fa/verify/` (the code form, with "Call me instead": `/2fa/next/`) → `/2fa/confirm/`
//! (check it). Providers implement [`Verifier`] ([`vonage_v2`], [`vonage`] for v1,
//! [`console`]); a proven number is one account's ([`numbers`]); every send passes the SMS
//! pumping [`guard`], which Verify v2's signed [`callbacks`] inform. The pages by job: this file
//! shows the number form and the code form (and what they share); `send.rs` sends a code,
//! `call_me.rs` moves a code to the next channel, `code.rs` checks it.

mod call_me;
pub mod callbacks;
mod code;
pub mod console;
pub mod guard;
pub mod phone;
mod send;
pub mod store;
pub mod verifier;
pub mod vonage;
pub mod vonage_v2;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::error::{AppError, AppResult};

use crate::limits::{self, human_wait, Scope};
use crate::session::{self, SmsPending as Pending};
use crate::state::AppState;
use crate::web::routes::{get, post, Routes};
use crate::web::{self, flash, Level, Page, PageContext, SafeNext};
use guard::Destination;
use phone::PhoneNumber;
use store::{numbers, requests};
pub use verifier::{CheckOutcome, NextOutcome, StartOutcome, Verifier, VerifyChannel, VerifyError};

/// The Verify provider this server talks to (registered by `app::new_state`).
fn verifier(state: &AppState) -> &dyn Verifier {
    state.part::<std::sync::Arc<dyn Verifier>>().as_ref()
}

pub fn router() -> Routes {
    Routes::new()
        .route("/2fa/", get(new))
        .route("/2fa/create/", post(send::create))
        .route("/2fa/verify/", get(verify))
        .route("/2fa/next/", post(call_me::next_channel))
        .route("/2fa/confirm/", post(code::confirm))
}

fn login_redirect(here: &str, next: &SafeNext) -> Response {
    let target = next.url(here);
    Redirect::to(&format!("/login/?next={}", web::next::url_encode(&target))).into_response()
}

#[derive(Template)]
#[template(path = "two_factor/new.html")]
pub struct NewPage {
    pub ctx: PageContext,
    pub next: String,
    /// The user's proven number, masked.
    pub bound: Option<String>,
    /// Show the number field (no proven number yet, or the user asked to change it).
    pub changing: bool,
    pub number: String,
    pub error: Option<String>,
}

#[derive(Deserialize)]
pub struct NewQuery {
    next: Option<String>,
    change: Option<String>,
    /// `sms`: this page even for a user with an authenticator app.
    method: Option<String>,
}

pub async fn new(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<NewQuery>,
) -> AppResult<Response> {
    let next = SafeNext::or_default(q.next.as_deref());
    let Some(user) = page.ctx.user.clone() else {
        return Ok(login_redirect("/2fa/", &next));
    };
    // A passkey is offered first, then an authenticator app; this page stays one link away.
    let chosen = q.method.is_some() || q.change.is_some();
    if !chosen && super::passkeys::store::has_any(&state.db, user.id).await? {
        return Ok(next.redirect("/2fa/passkey/"));
    }
    if q.method.as_deref() != Some("sms") && super::totp::has_factor(&state, user.id).await? {
        return Ok(next.redirect("/2fa/totp/"));
    }
    let bound = numbers::of_user(&state.db, user.id).await?;
    let changing = bound.is_none() || q.change.is_some();
    let pending: Option<Pending> = session::SMS_PENDING.get(&page.session).await?;
    let number = pending
        .filter(|_| changing)
        .map(|p| p.number)
        .filter(|n| bound.as_ref().is_none_or(|b| b.e164() != n))
        .unwrap_or_default();
    web::render(&NewPage {
        ctx: page.ctx,
        next: next.as_str().to_string(),
        bound: bound.map(|b| b.masked()),
        changing,
        number,
        error: None,
    })
}

/// Counts one send (a new code, or the code again by another channel) against every send limit
/// and the guard's budgets for its destination; the seconds to wait when one is reached.
async fn reserve_send(
    state: &AppState,
    user_id: i64,
    number: &PhoneNumber,
    to: &Destination,
    ip: &str,
) -> AppResult<Result<limits::Reservation, u64>> {
    let uid = user_id.to_string();
    let l = &state.config.limits;
    let [country, prefix] = to.budgets(&state.config);
    let subject = crate::web::client::limit_subject(ip, l.ipv6_prefix);
    let checks = [
        (Scope::SmsPerUser, uid.as_str(), l.sms_per_user.as_slice()),
        (
            Scope::SmsPerNumber,
            number.e164(),
            l.sms_per_number.as_slice(),
        ),
        (Scope::SmsPerIp, subject.as_str(), l.sms_per_ip.as_slice()),
        country,
        prefix,
    ];
    Ok(limits::reserve(state, &checks).await?)
}

const ENDED: &str = "Your code request has ended. Send a new code.";
const NO_OTHER_WAY: &str =
    "There is no other way to send this code. Send a new code if it did not arrive.";

/// A warning for the next page, and there.
async fn warn_and_go(page: &Page, to: &str, msg: &str) -> AppResult<Response> {
    flash::push(&page.session, Level::Warning, msg).await?;
    Ok(Redirect::to(to).into_response())
}

const NOT_ALLOWED: &str = "This site does not send codes to phone numbers in that country. Please use a number from another country.";

/// A number that is not a person's phone (`kind`: `premium-rate`, …).
fn cannot_receive(kind: &str) -> String {
    format!("This number cannot receive codes: {kind} numbers are not accepted. Please use a mobile number.")
}

fn paused(wait: u64) -> String {
    format!(
        "Codes to phone numbers in this country are paused for a while to stop abuse. Please try again in {}.",
        human_wait(wait)
    )
}

fn too_many_sends(wait: u64) -> String {
    format!(
        "Too many codes were sent. To protect you and keep costs down, please try again in {}.",
        human_wait(wait)
    )
}

/// The provider says a request to this number is running: this account's own, if it started
/// one (named by the provider, or, when it names none, the newest this account started to the
/// number within a code's lifetime), else none.
async fn own_running_request(
    state: &AppState,
    user_id: i64,
    number: &PhoneNumber,
    named: Option<String>,
) -> AppResult<Option<String>> {
    Ok(match named {
        Some(id) => (requests::owner(&state.db, &id).await? == Some(user_id)).then_some(id),
        None => {
            let since = crate::db::now() - guard::settle_after(&state.config).as_secs() as i64;
            requests::latest_of(&state.db, user_id, number.e164(), since).await?
        }
    })
}

/// Counts a code sent or confirmed (`pollstr_codes_sent_total`, `…_confirmed_total`) by the
/// destination's country (its ISO code, `001` for none, `unknown`) and the channel.
fn count_code(
    state: &AppState,
    name: &'static str,
    to: &guard::Destination,
    channel: VerifyChannel,
) {
    let country = if to.country == "??" {
        "unknown".to_string()
    } else {
        to.country.clone()
    };
    state.part::<crate::telemetry::Telemetry>().count(
        name,
        &[
            ("country", country.into()),
            ("channel", channel.as_str().into()),
        ],
    );
}

fn first_channel(state: &AppState) -> VerifyChannel {
    channel_at(state, 0).unwrap_or(VerifyChannel::Sms)
}

/// The channel at this place in the provider's workflow.
fn channel_at(state: &AppState, index: usize) -> Option<VerifyChannel> {
    verifier(state).workflow().get(index).copied()
}

/// Whether the request's session is still in the store (a logout or the end of the session
/// removes it while a slow call runs).
async fn session_alive(state: &AppState, session: &tower_sessions::Session) -> AppResult<bool> {
    use tower_sessions::SessionStore;
    let Some(id) = session.id() else {
        return Ok(false);
    };
    let found = state
        .sessions
        .load(&id)
        .await
        .map_err(|e| AppError::Unavailable(anyhow::anyhow!("session store: {e}")))?;
    Ok(found.is_some())
}

/// What the user is told when the provider did not send (`sending`) or check a code, logged
/// loudly when the fault is ours (the keys or the account) or the provider cannot be reached.
fn provider_trouble(e: &VerifyError, sending: bool) -> String {
    match e {
        VerifyError::Busy { retry_after, .. } => {
            tracing::warn!(error = %e, "verify provider busy");
            let when = match retry_after {
                Some(wait) => human_wait(*wait),
                None => "a minute".into(),
            };
            format!("The SMS service is busy right now. Please try again in {when}.")
        }
        VerifyError::Misconfigured { .. } => {
            tracing::error!(error = %e, "verify provider refused our request: check NEXMO_API_KEY, NEXMO_API_SECRET (or the Vonage application) and the account");
            if sending {
                "We cannot send verification codes right now. Please try again later; we have been notified.".into()
            } else {
                "We cannot check codes right now. Please try again later; we have been notified."
                    .into()
            }
        }
        VerifyError::Transport(_) => {
            tracing::error!(error = %e, "verify provider unreachable");
            "We could not reach the SMS service. Please try again in a minute.".into()
        }
    }
}

/// A provider's fault as a response: 503, with the provider's `Retry-After` when it gave one.
fn with_provider_wait(res: Response, e: &VerifyError) -> Response {
    match e {
        VerifyError::Busy {
            retry_after: Some(wait),
            ..
        } => web::retry_after(res, *wait),
        _ => res,
    }
}

async fn refuse_new(
    page: &Page,
    next: &SafeNext,
    bound: Option<&PhoneNumber>,
    typed: &str,
    status: StatusCode,
    msg: &str,
) -> AppResult<Response> {
    let body = web::render(&NewPage {
        ctx: page.ctx.clone(),
        next: next.as_str().to_string(),
        bound: bound.map(|b| b.masked()),
        changing: bound.is_none() || !typed.is_empty() || status == StatusCode::FORBIDDEN,
        number: typed.chars().take(32).collect(),
        error: Some(msg.to_string()),
    })?;
    Ok((status, body).into_response())
}

#[derive(Template, Clone)]
#[template(path = "two_factor/verify.html")]
pub struct VerifyPage {
    pub ctx: PageContext,
    pub next: String,
    pub masked: String,
    pub error: Option<String>,
    /// Days a trusted browser skips the second factor (0: the box is not shown).
    pub trust_days: u32,
    /// How the code came: by text message, or read out in a call.
    pub by_call: bool,
    /// "5 minutes".
    pub valid_for: String,
    /// The button to the workflow's next channel ("Call me instead"), if it has one.
    pub other_channel: Option<&'static str>,
    /// The account has a passkey: a link to use it instead.
    pub has_passkey: bool,
}

impl VerifyPage {
    fn new(state: &AppState, ctx: PageContext, next: &SafeNext, p: &Pending) -> VerifyPage {
        VerifyPage {
            ctx,
            next: next.as_str().to_string(),
            masked: PhoneNumber::from_stored(p.number.clone()).masked(),
            has_passkey: false,
            error: None,
            trust_days: state.config.trusted_browser_days,
            by_call: channel_at(state, p.channel) == Some(VerifyChannel::Voice),
            valid_for: human_wait(state.config.verify.channel_timeout.as_secs()),
            other_channel: channel_at(state, p.channel + 1).map(|c| match c {
                VerifyChannel::Voice => "Call me instead",
                VerifyChannel::Sms => "Text me instead",
            }),
        }
    }

    fn with_error(&self, status: StatusCode, msg: impl Into<String>) -> AppResult<Response> {
        let mut page = self.clone();
        page.error = Some(msg.into());
        let body = web::render(&page)?;
        Ok((status, body).into_response())
    }
}

pub async fn verify(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<web::next::NextQuery>,
) -> AppResult<Response> {
    let next = SafeNext::or_default(q.next.as_deref());
    let Some(user) = page.ctx.user.clone() else {
        return Ok(login_redirect("/2fa/verify/", &next));
    };
    let Some(p) = session::SMS_PENDING.get(&page.session).await? else {
        return Ok(next.redirect("/2fa/"));
    };
    let mut form = VerifyPage::new(&state, page.ctx, &next, &p);
    form.has_passkey = super::passkeys::store::has_any(&state.db, user.id).await?;
    web::render(&form)
}
