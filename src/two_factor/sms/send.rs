//! Sending a code: `POST /2fa/create/` (a new number, the proven one, or "Send a new code").
//! [`create`] reads as its steps, each of which goes on or stops with a refusal that
//! [`Sending::answer`] turns into the number form again (with its event and `Retry-After`):
//! which number ([`Sending::number`]), the SMS pumping guard ([`Sending::admit`]), the
//! password when a proven number is replaced and the one-account-per-number rule
//! ([`Sending::may_bind`]), the send limits ([`Sending::reserve`]), and the provider
//! ([`Sending::start`]). The order matters: nothing is spent (a limit, a provider call) on a
//! number that a cheaper check refuses.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::guard::{self, Admission, Destination};
use super::numbers;
use super::phone::PhoneNumber;
use super::requests;
use super::{
    cannot_receive, count_code, first_channel, login_redirect, own_running_request, paused,
    provider_trouble, refuse_new, reserve_send, too_many_sends, verifier, Pending, StartOutcome,
    VerifyChannel, VerifyError, NOT_ALLOWED,
};
use crate::error::{AppError, AppResult};
use crate::events::{self, Kind};
use crate::limits::{self, Reservation};
use crate::session::{self, SessionUser};
use crate::state::AppState;
use crate::users::current_password::{check_current_password, too_many_passwords, Check};
use crate::web::{self, flash, ClientIp, Form, Level, Page, SafeNext};

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
    let sending = Sending {
        bound: numbers::of_user(&state.db, user.id).await?,
        pending: session::SMS_PENDING.get(&page.session).await?,
        state: &state,
        user: &user,
        ip: &ip,
        page: &page,
        next: &next,
        typed: form.number.trim(),
    };
    match sending.send(&form).await {
        Ok(res) => Ok(res),
        Err(stop) => sending.answer(stop).await,
    }
}

/// One request to send a code, and what is known before it is sent.
struct Sending<'a> {
    state: &'a AppState,
    user: &'a SessionUser,
    ip: &'a str,
    page: &'a Page,
    next: &'a SafeNext,
    /// The account's proven number.
    bound: Option<PhoneNumber>,
    /// The code being verified in this session, if any.
    pending: Option<Pending>,
    /// The number as typed (empty: the proven one, or a resend).
    typed: &'a str,
}

/// Why a step did not go on.
enum Stop {
    /// The number form again: its status and message, the `code_refused` event's detail (if
    /// any), and `Retry-After`.
    Refused {
        status: StatusCode,
        message: String,
        event: Option<String>,
        retry_after: Option<u64>,
    },
    /// Elsewhere: a redirect to this address.
    Redirect(String),
    Failed(AppError),
}

impl From<AppError> for Stop {
    fn from(e: AppError) -> Self {
        Stop::Failed(e)
    }
}

impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Self {
        Stop::Failed(e.into())
    }
}

fn refused(status: StatusCode, message: impl Into<String>, event: Option<String>) -> Stop {
    Stop::Refused {
        status,
        message: message.into(),
        event,
        retry_after: None,
    }
}

fn refused_for(wait: u64, status: StatusCode, message: String, event: String) -> Stop {
    Stop::Refused {
        status,
        message,
        event: Some(event),
        retry_after: Some(wait),
    }
}

impl Sending<'_> {
    async fn send(&self, form: &CreateForm) -> Result<Response, Stop> {
        let number = self.number(form.resend.is_some())?;
        let to = Destination::of(&number);
        self.admit(&number, &to).await?;
        let resending = self
            .pending
            .as_ref()
            .is_some_and(|p| p.number == number.e164());
        self.may_bind(&number, resending, &form.password).await?;
        let reservation = self.reserve(&number, &to).await?;
        // Switching numbers: stop the code still running for the old one, where the API allows.
        if let Some(p) = self.pending.as_ref().filter(|p| p.number != number.e164()) {
            if let Err(e) = verifier(self.state).cancel(&p.request_id).await {
                tracing::info!(error = %e, "could not cancel the previous verify request");
            }
        }
        let (request_id, message) = self.start(&number, &to, reservation).await?;
        Ok(self
            .started(&number, request_id, resending, message)
            .await?)
    }

    /// Which number: the one being verified (a resend), the one typed, or the proven one.
    fn number(&self, resend: bool) -> Result<PhoneNumber, Stop> {
        if resend && self.typed.is_empty() {
            return match &self.pending {
                Some(p) => Ok(PhoneNumber::from_stored(p.number.clone())),
                None => Err(Stop::Redirect(self.next.url("/2fa/"))),
            };
        }
        if self.typed.is_empty() {
            return self
                .bound
                .clone()
                .ok_or_else(|| refused(StatusCode::BAD_REQUEST, "Enter your phone number.", None));
        }
        PhoneNumber::parse(self.typed, self.state.config.default_region)
            .map_err(|msg| refused(StatusCode::BAD_REQUEST, msg, None))
    }

    /// The SMS pumping guard, before anything else is spent on this number.
    async fn admit(&self, number: &PhoneNumber, to: &Destination) -> Result<(), Stop> {
        let state = self.state;
        let (masked, country) = (number.masked(), &to.country);
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        match guard::admit(state, to).await? {
            Admission::Allowed => Ok(()),
            Admission::CannotReceive(kind) => Err(refused(
                status,
                cannot_receive(kind),
                Some(format!(
                    "{masked} in {country}: {kind} numbers take no codes"
                )),
            )),
            Admission::CountryNotAllowed => Err(refused(
                status,
                NOT_ALLOWED,
                Some(format!("{masked} is in {country}, not an allowed country")),
            )),
            Admission::Paused { until } => {
                let wait = (until - crate::db::now()).max(1) as u64;
                Err(refused_for(
                    wait,
                    StatusCode::SERVICE_UNAVAILABLE,
                    paused(wait),
                    format!("{masked} is in {country}, where sends are paused"),
                ))
            }
        }
    }

    /// Replacing a proven number is binding a new factor: it takes the password again (a
    /// resend of the code being verified does not). A number another account proved is not
    /// this account's to prove.
    async fn may_bind(
        &self,
        number: &PhoneNumber,
        resending: bool,
        password: &str,
    ) -> Result<(), Stop> {
        let (state, user) = (self.state, self.user);
        let is_change = self.bound.as_ref().is_some_and(|b| b != number);
        if is_change && !resending {
            let why = "replacing the phone number";
            let check = match password.is_empty() {
                true => Check::Wrong,
                false => check_current_password(state, user, self.ip, password, why).await?,
            };
            match check {
                Check::Right => {}
                Check::Wrong => {
                    let msg = "To change your phone number, enter your current password.";
                    return Err(refused(StatusCode::FORBIDDEN, msg, None));
                }
                Check::Limited(wait) => {
                    let msg = too_many_passwords(wait);
                    return Err(refused(StatusCode::TOO_MANY_REQUESTS, msg, None));
                }
            }
        }
        let owner = numbers::owner(&state.db, number).await?;
        if owner.is_some_and(|owner| owner != user.id) {
            return Err(refused(
                StatusCode::CONFLICT,
                "This number is already verified by another account. Use a different number.",
                Some(format!("{} belongs to another account", number.masked())),
            ));
        }
        Ok(())
    }

    /// Limits: a refused send never reaches the provider. The send is counted before it is
    /// made, so that sends asked for together cannot all pass the limits.
    async fn reserve(&self, number: &PhoneNumber, to: &Destination) -> Result<Reservation, Stop> {
        match reserve_send(self.state, self.user.id, number, to, self.ip).await? {
            Ok(reservation) => Ok(reservation),
            Err(wait) => Err(refused_for(
                wait,
                StatusCode::TOO_MANY_REQUESTS,
                too_many_sends(wait),
                format!("send limit, to {}", number.masked()),
            )),
        }
    }

    /// Asks the provider for a code: the request's id and what the next page says. A send that
    /// did not happen (the provider failed or refused, or another account's code runs) takes
    /// its reservation back: the country and prefix budgets are everyone's.
    async fn start(
        &self,
        number: &PhoneNumber,
        to: &Destination,
        reservation: Reservation,
    ) -> Result<(String, String), Stop> {
        let (state, user, masked) = (self.state, self.user, number.masked());
        let client_ref = format!("u{}", user.id);
        let started = match verifier(state).start(number, &client_ref).await {
            Ok(StartOutcome::InProgress { request_id }) => Ok(StartOutcome::InProgress {
                request_id: own_running_request(state, user.id, number, request_id).await?,
            }),
            other => other,
        };
        let refusal = match started {
            Ok(StartOutcome::Started { request_id }) => {
                requests::record(&state.db, &request_id, user.id, number.e164()).await?;
                guard::record_send(&state.db, &request_id, to).await?;
                count_code(state, "pollstr_codes_sent_total", to, first_channel(state));
                let message = match first_channel(state) {
                    VerifyChannel::Sms => format!("We have sent a code to {masked}."),
                    VerifyChannel::Voice => format!("We are calling {masked} to read you a code."),
                };
                return Ok((request_id, message));
            }
            Ok(StartOutcome::InProgress {
                request_id: Some(request_id),
            }) => {
                let message = format!(
                    "A code was already sent to {masked} a moment ago and is still valid. Enter it below."
                );
                return Ok((request_id, message));
            }
            // Another account's running request is not joined: its wrong codes would end it.
            Ok(StartOutcome::InProgress { request_id: None }) => refused(
                StatusCode::CONFLICT,
                "A code was sent to this number from another account a moment ago. Please try again in a few minutes.",
                Some(format!("{masked} has a code running for another account")),
            ),
            Ok(StartOutcome::Rejected) => refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "This number cannot be verified. Please use a different number.",
                Some(format!("the provider rejected {masked}")),
            ),
            Err(e) => Stop::Refused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: provider_trouble(&e, true),
                event: Some(format!("provider error: {e}")),
                retry_after: match e {
                    VerifyError::Busy {
                        retry_after: Some(wait),
                        ..
                    } => Some(wait),
                    _ => None,
                },
            },
        };
        limits::release(&state.db, reservation).await?;
        Err(refusal)
    }

    /// The code went out (or a running one goes on): recorded, kept in the session with what
    /// it may replace, and on to the code page.
    async fn started(
        &self,
        number: &PhoneNumber,
        request_id: String,
        resending: bool,
        message: String,
    ) -> AppResult<Response> {
        let (state, session) = (self.state, &self.page.session);
        let detail = format!("to {}", number.masked());
        events::record(
            &state.db,
            Kind::CodeSent,
            Some(self.user.id),
            self.ip,
            &detail,
        )
        .await?;
        // What this code may replace: the number proven now, or for a new code to the same
        // number, what the first one was allowed to replace (a resend asks no password).
        let replaces = match self.pending.as_ref() {
            Some(p) if resending => p.replaces.clone(),
            _ => self.bound.as_ref().map(|b| b.e164().to_string()),
        };
        // A running request continued stays on the channel it reached.
        let channel = self
            .pending
            .as_ref()
            .filter(|p| p.request_id == request_id)
            .map_or(0, |p| p.channel);
        let pending = Pending {
            request_id,
            number: number.e164().to_string(),
            replaces,
            channel,
        };
        session::SMS_PENDING.insert(session, pending).await?;
        flash::push(session, Level::Info, message).await?;
        let to = self.next.url("/2fa/verify/");
        Ok(Redirect::to(&to).into_response())
    }

    /// A refusal as the number form again (or the redirect a step asked for).
    async fn answer(&self, stop: Stop) -> AppResult<Response> {
        let (status, message, event, retry_after) = match stop {
            Stop::Failed(e) => return Err(e),
            Stop::Redirect(to) => return Ok(Redirect::to(&to).into_response()),
            Stop::Refused {
                status,
                message,
                event,
                retry_after,
            } => (status, message, event, retry_after),
        };
        if let Some(detail) = event {
            let (db, user) = (&self.state.db, Some(self.user.id));
            events::record(db, Kind::CodeRefused, user, self.ip, &detail).await?;
        }
        let bound = self.bound.as_ref();
        let res = refuse_new(self.page, self.next, bound, self.typed, status, &message).await?;
        Ok(match retry_after {
            Some(wait) => web::retry_after(res, wait),
            None => res,
        })
    }
}
