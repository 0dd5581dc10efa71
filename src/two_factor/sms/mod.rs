//! The SMS factor, the original's: the flow `/2fa/` (new) → `/2fa/create/` (send a code) →
//! `/2fa/verify/` (the code form, with "Call me instead": `/2fa/next/`) → `/2fa/confirm/`
//! (check it). Providers implement [`Verifier`] ([`vonage_v2`], [`vonage`] for v1,
//! [`console`]); a proven number is one account's ([`numbers`]); every send passes the SMS
//! pumping [`guard`], which Verify v2's signed [`callbacks`] inform.

pub mod callbacks;
mod code;
pub mod console;
pub mod guard;
pub mod phone;
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
use crate::events::{self, Kind};
use crate::limits::{self, human_wait, Scope};
use crate::session::{self, SmsPending as Pending};
use crate::state::AppState;
use crate::users::current_password::{check_current_password, too_many_passwords, Check};
use crate::web::routes::{get, post, Routes};
use crate::web::{self, flash, ClientIp, Form, Level, Page, PageContext, SafeNext};
use guard::{Admission, Destination};
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
        .route("/2fa/create/", post(create))
        .route("/2fa/verify/", get(verify))
        .route("/2fa/next/", post(next_channel))
        .route("/2fa/confirm/", post(code::confirm))
}

fn login_redirect(here: &str, next: &SafeNext) -> Response {
    let target = format!("{here}?next={}", next.query_value());
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
    // An authenticator app is offered first; this page stays one link away.
    if q.method.as_deref() != Some("sms") && super::totp::has_factor(&state, user.id).await? {
        return Ok(
            Redirect::to(&format!("/2fa/totp/?next={}", next.query_value())).into_response(),
        );
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

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    number: String,
    #[serde(default)]
    password: String,
    /// "Send a new code" to the number being verified.
    resend: Option<String>,
    next: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    page: Page,
    Form(form): Form<CreateForm>,
) -> AppResult<Response> {
    let next = SafeNext::or_default(form.next.as_deref());
    let Some(user) = page.ctx.user.clone() else {
        return Ok(login_redirect("/2fa/", &next));
    };
    let refused = |detail: String| {
        let (db, ip) = (state.db.clone(), ip.clone());
        async move { events::record(&db, Kind::CodeRefused, Some(user.id), &ip, &detail).await }
    };
    let bound = numbers::of_user(&state.db, user.id).await?;
    let pending: Option<Pending> = session::SMS_PENDING.get(&page.session).await?;
    let typed = form.number.trim();

    // Which number: the one being verified (resend), the one typed, or the proven one.
    let number = if form.resend.is_some() && typed.is_empty() {
        match &pending {
            Some(p) => PhoneNumber::from_stored(p.number.clone()),
            None => {
                return Ok(
                    Redirect::to(&format!("/2fa/?next={}", next.query_value())).into_response()
                )
            }
        }
    } else if typed.is_empty() {
        match &bound {
            Some(b) => b.clone(),
            None => {
                return refuse_new(
                    &page,
                    &next,
                    None,
                    typed,
                    StatusCode::BAD_REQUEST,
                    "Enter your phone number.",
                )
                .await
            }
        }
    } else {
        match PhoneNumber::parse(typed, state.config.default_region) {
            Ok(n) => n,
            Err(msg) => {
                return refuse_new(
                    &page,
                    &next,
                    bound.as_ref(),
                    typed,
                    StatusCode::BAD_REQUEST,
                    &msg,
                )
                .await
            }
        }
    };

    // The SMS pumping guard, before anything else is spent on this number.
    let to = Destination::of(&number);
    match guard::admit(&state.db, &state.config, &to).await? {
        Admission::Allowed => {}
        Admission::CannotReceive(kind) => {
            refused(format!(
                "{} in {}: {kind} numbers take no codes",
                number.masked(),
                to.country
            ))
            .await?;
            return refuse_new(
                &page,
                &next,
                bound.as_ref(),
                typed,
                StatusCode::UNPROCESSABLE_ENTITY,
                &cannot_receive(kind),
            )
            .await;
        }
        Admission::CountryNotAllowed => {
            refused(format!(
                "{} is in {}, not an allowed country",
                number.masked(),
                to.country
            ))
            .await?;
            return refuse_new(
                &page,
                &next,
                bound.as_ref(),
                typed,
                StatusCode::UNPROCESSABLE_ENTITY,
                NOT_ALLOWED,
            )
            .await;
        }
        Admission::Paused { until } => {
            refused(format!(
                "{} is in {}, where sends are paused",
                number.masked(),
                to.country
            ))
            .await?;
            let wait = (until - crate::db::now()).max(1) as u64;
            let res = refuse_new(
                &page,
                &next,
                bound.as_ref(),
                typed,
                StatusCode::SERVICE_UNAVAILABLE,
                &paused(wait),
            )
            .await?;
            return Ok(web::retry_after(res, wait));
        }
    }

    // Replacing a proven number is binding a new factor: it takes the password again.
    let is_change = bound.as_ref().is_some_and(|b| b != &number);
    let resending_pending = pending.as_ref().is_some_and(|p| p.number == number.e164());
    if is_change && !resending_pending {
        let why = "replacing the phone number";
        let check = match form.password.is_empty() {
            true => Check::Wrong,
            false => check_current_password(&state, &user, &ip, &form.password, why).await?,
        };
        let (status, msg) = match check {
            Check::Right => (StatusCode::OK, String::new()),
            Check::Wrong => (
                StatusCode::FORBIDDEN,
                "To change your phone number, enter your current password.".to_string(),
            ),
            Check::Limited(wait) => (StatusCode::TOO_MANY_REQUESTS, too_many_passwords(wait)),
        };
        if status != StatusCode::OK {
            return refuse_new(&page, &next, bound.as_ref(), typed, status, &msg).await;
        }
    }
    if numbers::owner(&state.db, &number)
        .await?
        .is_some_and(|owner| owner != user.id)
    {
        refused(format!("{} belongs to another account", number.masked())).await?;
        return refuse_new(
            &page,
            &next,
            bound.as_ref(),
            typed,
            StatusCode::CONFLICT,
            "This number is already verified by another account. Use a different number.",
        )
        .await;
    }

    // Limits: a refused send never reaches the provider. The send is counted before it is
    // made, so that sends asked for together cannot all pass the limits.
    // A send that did not happen (the provider failed or refused, or another account's code
    // runs) takes its reservation back: the country and prefix budgets are everyone's.
    let reservation = match reserve_send(&state, user.id, &number, &to, &ip).await? {
        Ok(reservation) => reservation,
        Err(wait) => {
            refused(format!("send limit, to {}", number.masked())).await?;
            let res = refuse_new(
                &page,
                &next,
                bound.as_ref(),
                typed,
                StatusCode::TOO_MANY_REQUESTS,
                &too_many_sends(wait),
            )
            .await?;
            return Ok(web::retry_after(res, wait));
        }
    };

    // Switching numbers: stop the code still running for the old one, where the API allows.
    if let Some(p) = pending.as_ref().filter(|p| p.number != number.e164()) {
        if let Err(e) = verifier(&state).cancel(&p.request_id).await {
            tracing::info!(error = %e, "could not cancel the previous verify request");
        }
    }

    // What this code may replace: the number proven now, or for a new code to the same number,
    // what the first one was allowed to replace (a resend asks no password).
    let replaces = match pending.as_ref() {
        Some(p) if resending_pending => p.replaces.clone(),
        _ => bound.as_ref().map(|b| b.e164().to_string()),
    };
    let client_ref = format!("u{}", user.id);
    let started = verifier(&state).start(&number, &client_ref).await;
    let started = match started {
        Ok(StartOutcome::InProgress { request_id }) => Ok(StartOutcome::InProgress {
            request_id: own_running_request(&state, user.id, &number, request_id).await?,
        }),
        other => other,
    };
    let (request_id, message) = match started {
        Ok(StartOutcome::Started { request_id }) => {
            requests::record(&state.db, &request_id, user.id, number.e164()).await?;
            guard::record_send(&state.db, &request_id, &to).await?;
            (
                request_id,
                match first_channel(&state) {
                    VerifyChannel::Sms => format!("We have sent a code to {}.", number.masked()),
                    VerifyChannel::Voice => {
                        format!("We are calling {} to read you a code.", number.masked())
                    }
                },
            )
        }
        // Another account's running request is not joined: its wrong codes would end it.
        Ok(StartOutcome::InProgress { request_id: None }) => {
            limits::release(&state.db, reservation).await?;
            refused(format!(
                "{} has a code running for another account",
                number.masked()
            ))
            .await?;
            return refuse_new(
                &page,
                &next,
                bound.as_ref(),
                typed,
                StatusCode::CONFLICT,
                "A code was sent to this number from another account a moment ago. Please try again in a few minutes.",
            )
            .await;
        }
        Ok(StartOutcome::InProgress {
            request_id: Some(request_id),
        }) => (
            request_id,
            format!(
                "A code was already sent to {} a moment ago and is still valid. Enter it below.",
                number.masked()
            ),
        ),
        Ok(StartOutcome::Rejected) => {
            limits::release(&state.db, reservation).await?;
            refused(format!("the provider rejected {}", number.masked())).await?;
            return refuse_new(
                &page,
                &next,
                bound.as_ref(),
                typed,
                StatusCode::UNPROCESSABLE_ENTITY,
                "This number cannot be verified. Please use a different number.",
            )
            .await;
        }
        Err(e) => {
            limits::release(&state.db, reservation).await?;
            refused(format!("provider error: {e}")).await?;
            return provider_failure(&page, &next, bound.as_ref(), typed, e).await;
        }
    };
    events::record(
        &state.db,
        Kind::CodeSent,
        Some(user.id),
        &ip,
        &format!("to {}", number.masked()),
    )
    .await?;
    // A running request continued stays on the channel it reached.
    let channel = pending
        .as_ref()
        .filter(|p| p.request_id == request_id)
        .map_or(0, |p| p.channel);
    session::SMS_PENDING
        .insert(
            &page.session,
            Pending {
                request_id,
                number: number.e164().to_string(),
                replaces,
                channel,
            },
        )
        .await?;
    flash::push(&page.session, Level::Info, message).await?;
    Ok(Redirect::to(&format!("/2fa/verify/?next={}", next.query_value())).into_response())
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
    Ok(limits::reserve(&state.db, &checks).await?)
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

async fn provider_failure(
    page: &Page,
    next: &SafeNext,
    bound: Option<&PhoneNumber>,
    typed: &str,
    e: VerifyError,
) -> AppResult<Response> {
    let msg = provider_trouble(&e, true);
    let res = refuse_new(
        page,
        next,
        bound,
        typed,
        StatusCode::SERVICE_UNAVAILABLE,
        &msg,
    )
    .await?;
    Ok(with_provider_wait(res, &e))
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
}

impl VerifyPage {
    fn new(state: &AppState, ctx: PageContext, next: &SafeNext, p: &Pending) -> VerifyPage {
        VerifyPage {
            ctx,
            next: next.as_str().to_string(),
            masked: PhoneNumber::from_stored(p.number.clone()).masked(),
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
    if page.ctx.user.is_none() {
        return Ok(login_redirect("/2fa/verify/", &next));
    }
    let Some(p) = session::SMS_PENDING.get(&page.session).await? else {
        return Ok(Redirect::to(&format!("/2fa/?next={}", next.query_value())).into_response());
    };
    web::render(&VerifyPage::new(&state, page.ctx, &next, &p))
}

#[derive(Deserialize)]
pub struct NextForm {
    next: Option<String>,
}

/// "Call me instead": the running request's code by the workflow's next channel. It costs a
/// send, so it is counted against the same limits and budgets as one.
pub async fn next_channel(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    page: Page,
    Form(form): Form<NextForm>,
) -> AppResult<Response> {
    let next = SafeNext::or_default(form.next.as_deref());
    let Some(user) = page.ctx.user.clone() else {
        return Ok(login_redirect("/2fa/verify/", &next));
    };
    let Some(mut pending) = session::SMS_PENDING.get(&page.session).await? else {
        return warn_and_go(&page, &format!("/2fa/?next={}", next.query_value()), ENDED).await;
    };
    let to_verify = format!("/2fa/verify/?next={}", next.query_value());
    let Some(channel) = channel_at(&state, pending.channel + 1) else {
        return warn_and_go(&page, &to_verify, NO_OTHER_WAY).await;
    };
    let number = PhoneNumber::from_stored(pending.number.clone());
    let masked = number.masked();
    let to = Destination::of(&number);
    let page_now = VerifyPage::new(&state, page.ctx.clone(), &next, &pending);
    match guard::admit(&state.db, &state.config, &to).await? {
        Admission::Allowed => {}
        Admission::CannotReceive(kind) => {
            let detail = format!("{masked} in {}: {kind} numbers take no calls", to.country);
            events::record(&state.db, Kind::CodeRefused, Some(user.id), &ip, &detail).await?;
            return page_now.with_error(StatusCode::UNPROCESSABLE_ENTITY, cannot_receive(kind));
        }
        Admission::CountryNotAllowed => {
            return page_now.with_error(StatusCode::UNPROCESSABLE_ENTITY, NOT_ALLOWED);
        }
        Admission::Paused { until } => {
            let wait = (until - crate::db::now()).max(1) as u64;
            let res = page_now.with_error(StatusCode::SERVICE_UNAVAILABLE, paused(wait))?;
            return Ok(web::retry_after(res, wait));
        }
    }
    let reservation = match reserve_send(&state, user.id, &number, &to, &ip).await? {
        Ok(r) => r,
        Err(wait) => {
            events::record(
                &state.db,
                Kind::CodeRefused,
                Some(user.id),
                &ip,
                &format!("send limit, {} to {masked}", channel.as_str()),
            )
            .await?;
            let res = page_now.with_error(StatusCode::TOO_MANY_REQUESTS, too_many_sends(wait))?;
            return Ok(web::retry_after(res, wait));
        }
    };
    let outcome = match verifier(&state).next_channel(&pending.request_id).await {
        Ok(outcome) => outcome,
        Err(e) => {
            limits::release(&state.db, reservation).await?;
            let res =
                page_now.with_error(StatusCode::SERVICE_UNAVAILABLE, provider_trouble(&e, true))?;
            return Ok(with_provider_wait(res, &e));
        }
    };
    match outcome {
        NextOutcome::Moved => {
            guard::record_next_channel(&state.db, &pending.request_id).await?;
            events::record(
                &state.db,
                Kind::CodeSent,
                Some(user.id),
                &ip,
                &format!("by {} to {masked}", channel.as_str()),
            )
            .await?;
            pending.channel += 1;
            session::SMS_PENDING.insert(&page.session, pending).await?;
            let msg = match channel {
                VerifyChannel::Voice => {
                    format!("We are calling {masked} now to read you a new code.")
                }
                VerifyChannel::Sms => format!("We have sent a new code to {masked}."),
            };
            flash::push(&page.session, Level::Info, msg).await?;
            Ok(Redirect::to(&to_verify).into_response())
        }
        NextOutcome::NoMore => {
            limits::release(&state.db, reservation).await?;
            pending.channel = verifier(&state).workflow().len().saturating_sub(1);
            session::SMS_PENDING.insert(&page.session, pending).await?;
            warn_and_go(&page, &to_verify, NO_OTHER_WAY).await
        }
        NextOutcome::Expired => {
            limits::release(&state.db, reservation).await?;
            session::SMS_PENDING.remove(&page.session).await?;
            flash::push(
                &page.session,
                Level::Warning,
                "That code has expired or was already used. Send a new code.",
            )
            .await?;
            Ok(Redirect::to(&format!("/2fa/?next={}", next.query_value())).into_response())
        }
    }
}
