//! The code from the text message (or the call): `POST /2fa/confirm/`, checked by the Verify
//! provider through the challenge skeleton ([`crate::two_factor::challenge`]). A right code
//! binds the number to the account (one account per number; a number proven since the code was
//! sent is not replaced), which is why this factor's check does more than compare a code.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::phone::PhoneNumber;
use super::store::numbers::{self, Bind};
use super::{
    guard, login_redirect, provider_trouble, refuse_new, session_alive, verifier, warn_and_go,
    with_provider_wait, CheckOutcome, Pending, VerifyChannel, VerifyPage, ENDED,
};
use crate::error::AppResult;
use crate::events::{self, Kind};
use crate::session;
use crate::state::AppState;
use crate::two_factor::challenge::{self, Attempt, Factor, Verdict};
use crate::web::{flash, ClientIp, Form, Level, Page, SafeNext};

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    code: String,
    next: Option<String>,
    /// "Trust this browser" was ticked.
    remember: Option<String>,
}

pub async fn confirm(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    page: Page,
    Form(form): Form<ConfirmForm>,
) -> AppResult<Response> {
    let next = SafeNext::or_default(form.next.as_deref());
    let Some(user) = page.ctx.user.clone() else {
        return Ok(login_redirect("/2fa/verify/", &next));
    };
    let Some(pending) = session::SMS_PENDING.get(&page.session).await? else {
        return warn_and_go(&page, &next.url("/2fa/"), ENDED).await;
    };
    let mut shown = VerifyPage::new(&state, page.ctx.clone(), &next, &pending);
    shown.has_passkey = crate::two_factor::passkeys::store::has_any(&state.db, user.id).await?;
    let challenge = TextChallenge {
        form: shown,
        masked: PhoneNumber::from_stored(pending.number.clone()).masked(),
        pending,
        page: &page,
    };
    let remember = form.remember.is_some();
    let at = Attempt::new(&state, &page, &user, &ip, &headers, &next, remember);
    challenge::answer(&challenge, at, &form.code).await
}

/// The text message's challenge: the request the code answers, and the page it came from.
struct TextChallenge<'a> {
    form: VerifyPage,
    pending: Pending,
    /// The number as pages and events show it.
    masked: String,
    page: &'a Page,
}

#[async_trait::async_trait]
impl Factor for TextChallenge<'_> {
    type Answer = String;
    const NAME: &'static str = "text message";
    const LABEL: &'static str = "sms";

    fn parse(&self, typed: &str) -> Result<String, String> {
        let code: String = typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err("Enter the 6-digit code from the text message.".into());
        }
        Ok(code)
    }

    async fn check(&self, at: &Attempt<'_>, code: String) -> AppResult<Verdict> {
        let (state, masked) = (at.state, &self.masked);
        let outcome = match verifier(state).check(&self.pending.request_id, &code).await {
            Ok(o) => o,
            Err(e) => {
                // Not a wrong code: the provider did not answer.
                let res =
                    self.refuse(StatusCode::SERVICE_UNAVAILABLE, provider_trouble(&e, false))?;
                return Ok(Verdict::NotChecked(with_provider_wait(res, &e)));
            }
        };
        let ended = |detail: String, counts: bool, msg: &'static str| async move {
            session::SMS_PENDING.remove(at.session).await?;
            flash::push(at.session, Level::Warning, msg).await?;
            let then = Redirect::to(&at.next.url("/2fa/"));
            AppResult::Ok(Verdict::Ended {
                detail,
                counts,
                then: then.into_response(),
            })
        };
        match outcome {
            CheckOutcome::Verified => self.bind(at).await,
            CheckOutcome::WrongCode => Ok(Verdict::Wrong {
                detail: format!("for {masked}"),
                message: "That code is not right. Please try again.".into(),
            }),
            CheckOutcome::TooManyWrong => {
                ended(
                    format!("for {masked}: too many wrong codes, the request ended"),
                    true,
                    "That code was wrong too many times, so it no longer works. Send a new code.",
                )
                .await
            }
            CheckOutcome::Expired => {
                ended(
                    format!("for {masked}: expired or already used"),
                    false,
                    "That code has expired or was already used. Send a new code.",
                )
                .await
            }
        }
    }

    fn refuse(&self, status: StatusCode, message: String) -> AppResult<Response> {
        self.form.with_error(status, message)
    }
}

impl TextChallenge<'_> {
    /// A right code: the number becomes the account's, unless the session ended meanwhile,
    /// another account has it, or the account's number changed since the code was sent.
    async fn bind(&self, at: &Attempt<'_>) -> AppResult<Verdict> {
        let (state, user, masked) = (at.state, at.user, &self.masked);
        if !session_alive(state, at.session).await? {
            // Logged out (in another tab) while the provider answered: nothing is done in the
            // name of a session that has ended, and no new one is started from it.
            return Ok(Verdict::NotChecked(login_redirect("/2fa/verify/", at.next)));
        }
        let number = PhoneNumber::from_stored(self.pending.number.clone());
        let bound_before = numbers::of_user(&state.db, user.id).await?;
        let refused = match numbers::bind(&state.db, user.id, &number, self.pending.replaces.as_deref()).await? {
            Bind::Bound => None,
            Bind::Taken => Some("This number is already verified by another account. Use a different number."),
            Bind::Changed => Some("Your phone number was changed in another session meanwhile. To replace it, send a code again and confirm with your password."),
        };
        if let Some(message) = refused {
            let detail = format!("right code, but {masked} was not bound: {message}");
            events::record(&state.db, Kind::CodeRefused, Some(user.id), at.ip, &detail).await?;
            session::SMS_PENDING.remove(at.session).await?;
            let bound = numbers::of_user(&state.db, user.id).await?;
            let res = refuse_new(
                self.page,
                at.next,
                bound.as_ref(),
                "",
                StatusCode::CONFLICT,
                message,
            )
            .await?;
            return Ok(Verdict::NotChecked(res));
        }
        guard::record_confirmed(&state.db, &self.pending.request_id).await?;
        let channel = super::channel_at(state, self.pending.channel).unwrap_or(VerifyChannel::Sms);
        super::count_code(
            state,
            "pollstr_codes_confirmed_total",
            &guard::Destination::of(&number),
            channel,
        );
        let also = match bound_before {
            Some(old) if old == number => vec![],
            Some(old) => {
                let detail = format!("{} replaced by {masked}", old.masked());
                let what = format!(
                    "The phone number of your Pollstr account was replaced: {} by {masked}.",
                    old.masked()
                );
                let subject = "Your Pollstr phone number was replaced";
                crate::users::notify::security(state, user.id, subject, &what, at.headers, at.ip)
                    .await?;
                vec![(Kind::NumberReplaced, detail)]
            }
            None => vec![(Kind::NumberBound, masked.clone())],
        };
        flash::push(at.session, Level::Success, "Your phone number is verified.").await?;
        Ok(Verdict::Right {
            detail: format!("for {masked}"),
            also,
        })
    }
}
