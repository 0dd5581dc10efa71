//! A password check counts as a login: a place in the server's hash queue, the failed-login
//! limits (per client address and per username) reserved before any hashing, one argon2 hash,
//! and a failure in the audit trail. Login uses [`reserve_password_check`]; every page that asks
//! a signed-in user for their password again (change it, confirm it, remove a factor, new
//! recovery codes) uses [`check_current_password`].

use axum::http::StatusCode;
use axum::response::Response;

use crate::error::AppResult;
use crate::events::{self, Kind};
use crate::limits::{self, Scope};
use crate::session::SessionUser;
use crate::state::AppState;

use super::password::{self, Verdict};
use super::validation;

/// Reserves a password check against the failed-login limits, per client address (an IPv6
/// client by its network) and per username (password guessing), before any hashing work. The attempt counts as failed until
/// the password proves right (`limits::release`), so that guesses sent together cannot all pass
/// the limits. `Err(seconds)`: refused, try again then.
pub async fn reserve_password_check(
    state: &AppState,
    ip: &str,
    username: &str,
) -> AppResult<Result<limits::Reservation, u64>> {
    let name_key = validation::username_key(username);
    let l = &state.config.limits;
    let subject = crate::web::client::limit_subject(ip, l.ipv6_prefix);
    let checks = [
        (
            Scope::FailedLoginPerIp,
            subject.as_str(),
            l.login_per_ip.as_slice(),
        ),
        (
            Scope::FailedLoginPerUsername,
            name_key.as_str(),
            l.login_per_username.as_slice(),
        ),
    ];
    Ok(limits::reserve(state, &checks).await?)
}

/// What a page says when the failed-login limits refused a password check.
pub fn too_many_passwords(wait: u64) -> String {
    format!(
        "Too many wrong passwords. Please try again in {}.",
        crate::limits::human_wait(wait)
    )
}

/// The form of a page that asks for the password before a change (templates' `password_form`).
#[derive(serde::Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    pub password: String,
}

/// What [`check_current_password`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    Right,
    /// Wrong (recorded as a failed login, with `why`).
    Wrong,
    /// Refused by a failed-login limit before checking: try again in this many seconds.
    Limited(u64),
}

impl Check {
    /// `None` when the password was right; otherwise what the page answers: `wrong` (with
    /// `status`) for a wrong password, 429 with the wait for a limited one.
    pub fn refusal(self, status: StatusCode, wrong: &str) -> Option<Refusal> {
        match self {
            Check::Right => None,
            Check::Wrong => Some(Refusal {
                status,
                message: wrong.to_string(),
                wait: None,
            }),
            Check::Limited(wait) => Some(Refusal {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: too_many_passwords(wait),
                wait: Some(wait),
            }),
        }
    }
}

/// A refused password check, as the page that asked shows it again.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    wait: Option<u64>,
}

impl Refusal {
    /// The page's answer, with `Retry-After` when a limit refused the check.
    pub fn answer(&self, res: Response) -> Response {
        match self.wait {
            Some(wait) => crate::web::retry_after(res, wait),
            None => res,
        }
    }
}

/// Checks the signed-in `user`'s current password (`why` names the page, for the audit trail).
/// A full hash queue answers 429 through the error.
pub async fn check_current_password(
    state: &AppState,
    user: &SessionUser,
    ip: &str,
    given: &str,
    why: &str,
) -> AppResult<Check> {
    let _place = state.part::<super::password::HashQueue>().enter()?;
    let attempt = match reserve_password_check(state, ip, &user.username).await? {
        Ok(attempt) => attempt,
        Err(wait) => {
            let detail = format!("failed-login limit ({why})");
            events::record(&state.db, Kind::LoginRefused, Some(user.id), ip, &detail).await?;
            return Ok(Check::Limited(wait));
        }
    };
    let stored = super::find(&state.db, user.id)
        .await?
        .filter(|u| u.is_active && u.session_epoch == user.epoch)
        .map(|u| u.password);
    let right = given.len() <= validation::MAX_PASSWORD
        && password::verify(given.to_string(), stored).await? != Verdict::Invalid;
    if !right {
        let detail = format!("wrong password ({why})");
        events::record(&state.db, Kind::LoginFailed, Some(user.id), ip, &detail).await?;
        return Ok(Check::Wrong);
    }
    limits::release(&state.db, attempt).await?;
    Ok(Check::Right)
}
