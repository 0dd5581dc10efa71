//! One challenge skeleton for every second factor, as kanidm sends every factor through one
//! `credential_step`: a factor says only how its answer is read ([`Factor::parse`]), how it is
//! checked ([`Factor::check`]) and how its form shows a refusal ([`Factor::refuse`]); [`answer`]
//! does the rest the same way for all of them: the wrong-code limit that every factor shares
//! (reserved before the check, so answers sent together cannot all slip under it; given back
//! when the answer proves right or was not checked), the `code_ok`/`code_wrong` events, the
//! `Retry-After` of a refusal, and on a right answer [`gate::complete`] (a new session id, the
//! session marked verified, the browser trusted if asked). Before it, the SMS, authenticator and
//! recovery-code pages each wrote these steps out, and a new factor would have been a fourth copy.

use async_trait::async_trait;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tower_sessions::Session;

use crate::error::AppResult;
use crate::events::{self, Kind};
use crate::limits;
use crate::session::SessionUser;
use crate::state::AppState;
use crate::telemetry::Telemetry;
use crate::two_factor::gate;
use crate::web::{self, Page, SafeNext};

/// Who answers a challenge, from where, and where they go when it passes.
pub struct Attempt<'a> {
    pub state: &'a AppState,
    pub session: &'a Session,
    pub user: &'a SessionUser,
    /// The client's address, for the events.
    pub ip: &'a str,
    pub headers: &'a HeaderMap,
    pub next: &'a SafeNext,
    /// "Trust this browser" was ticked.
    pub remember: bool,
}

impl<'a> Attempt<'a> {
    pub fn new(
        state: &'a AppState,
        page: &'a Page,
        user: &'a SessionUser,
        ip: &'a str,
        headers: &'a HeaderMap,
        next: &'a SafeNext,
        remember: bool,
    ) -> Self {
        Attempt {
            state,
            session: &page.session,
            user,
            ip,
            headers,
            next,
            remember,
        }
    }
}

/// What a factor's check found.
pub enum Verdict {
    /// Right: recorded as `code_ok` with `detail` (then each of `also`), and the session passes.
    Right {
        detail: String,
        also: Vec<(Kind, String)>,
    },
    /// Wrong: it counts against the wrong-code limit, is recorded as `code_wrong` with `detail`,
    /// and the form is shown again (400) with `message`.
    Wrong { detail: String, message: String },
    /// Wrong, and the challenge is over (the provider ended it): recorded as `code_wrong` with
    /// `detail`; the attempt counts against the limit if `counts`; `then` is the answer.
    Ended {
        detail: String,
        counts: bool,
        then: Response,
    },
    /// Not a verdict on the answer (the provider did not answer, the secret does not open, a
    /// right code whose number cannot be bound, a session that ended meanwhile): the attempt is
    /// given back and `then` is the answer (the factor records what it needs to).
    NotChecked(Response),
}

/// A second factor, as [`answer`] drives it.
#[async_trait]
pub trait Factor: Send + Sync {
    /// The answer once read (a code's digits, a normalised recovery code).
    type Answer: Send;
    /// The factor's name in events and in the wrong-code limit's refusal ("authenticator app").
    const NAME: &'static str;
    /// The factor in the metrics' `factor` label (`sms`, `totp`, `recovery`, `passkey`).
    const LABEL: &'static str;
    /// Reads what the user typed, or says what was expected.
    fn parse(&self, typed: &str) -> Result<Self::Answer, String>;
    /// Checks the answer, doing what a right one means to this factor (using a code up,
    /// binding a number).
    async fn check(&self, at: &Attempt<'_>, answer: Self::Answer) -> AppResult<Verdict>;
    /// The factor's form again, with `message`.
    fn refuse(&self, status: StatusCode, message: String) -> AppResult<Response>;
}

/// Runs one answer to `factor`'s challenge through the skeleton (see the module documentation).
pub async fn answer<F: Factor>(factor: &F, at: Attempt<'_>, typed: &str) -> AppResult<Response> {
    // Every check's outcome, once: `pollstr_second_factor_checks_total{factor, outcome}`.
    let outcome = |outcome: &'static str| {
        at.state.part::<Telemetry>().count(
            "pollstr_second_factor_checks_total",
            &[("factor", F::LABEL.into()), ("outcome", outcome.into())],
        )
    };
    let answer = match factor.parse(typed) {
        Ok(answer) => answer,
        Err(message) => {
            outcome("malformed");
            return factor.refuse(StatusCode::BAD_REQUEST, message);
        }
    };
    let attempt = match gate::reserve_code_check(at.state, at.user, at.ip, F::NAME).await? {
        Ok(attempt) => attempt,
        Err(wait) => {
            outcome("refused");
            let res = factor.refuse(StatusCode::TOO_MANY_REQUESTS, gate::too_many_codes(wait))?;
            return Ok(web::retry_after(res, wait));
        }
    };
    let db = &at.state.db;
    let note = |kind: Kind, detail: String| async move {
        events::record(db, kind, Some(at.user.id), at.ip, &detail).await
    };
    match factor.check(&at, answer).await? {
        Verdict::Right { detail, also } => {
            outcome("right");
            limits::release(db, attempt).await?;
            note(Kind::CodeOk, detail).await?;
            for (kind, detail) in also {
                note(kind, detail).await?;
            }
            gate::complete(
                at.state,
                at.session,
                at.user,
                at.remember,
                at.headers,
                at.next,
            )
            .await
        }
        Verdict::Wrong { detail, message } => {
            outcome("wrong");
            note(Kind::CodeWrong, detail).await?;
            told_of_failures(&at).await?;
            factor.refuse(StatusCode::BAD_REQUEST, message)
        }
        Verdict::Ended {
            detail,
            counts,
            then,
        } => {
            outcome("ended");
            if !counts {
                limits::release(db, attempt).await?;
            }
            note(Kind::CodeWrong, detail).await?;
            told_of_failures(&at).await?;
            Ok(then)
        }
        Verdict::NotChecked(then) => {
            outcome("not_checked");
            limits::release(db, attempt).await?;
            Ok(then)
        }
    }
}

/// After a wrong answer: the user is told (once a login) when the wrong answers since the
/// password reach `users::notify::FAILURES_TOLD`.
async fn told_of_failures(at: &Attempt<'_>) -> AppResult<()> {
    crate::users::notify::second_factor_failed(at.state, at.session, at.user.id, at.headers, at.ip)
        .await
}
