//! Security notifications: a short plain-text message to a user's confirmed address (never to
//! an unconfirmed one) saying what happened to their account, when, from which browser and
//! address, and what to do if it was not them. The caller names the event in words; the
//! message never holds a code, a password or a whole phone number (callers pass none: a
//! number only masked). Sent through the outbox, after the page answers; with email off,
//! nothing is sent. It lives under `users` so that the second factors' pages (below
//! `accounts`) can tell too.
//!
//! Sent for: a password changed (`accounts::change_password`) or reset with a link
//! (`accounts::reset`); a phone number replaced (`two_factor::sms::code`); an authenticator
//! app added or removed (`two_factor::totp`); new recovery codes, and a recovery code used
//! (`two_factor::recovery`); a passkey added or removed (`two_factor::passkeys::manage`); and a
//! login whose password was right but whose second factor then failed [`FAILURES_TOLD`] times
//! ([`second_factor_failed`], from `two_factor::challenge`). Each is sent where its event is
//! recorded, once per event.

use std::time::Duration;

use tower_sessions::Session;

use crate::error::AppResult;
use crate::events::{self, Kind};
use crate::limits::{self, Limit, Scope};
use crate::mail::{Mail, Outbox};
use crate::state::AppState;
use crate::users::email;

/// Wrong second-factor answers after a right password that make a login worth a mail (as
/// Vaultwarden tells of failed second factors): CODE_LIMIT_PER_USER's default lets five through.
pub const FAILURES_TOLD: i64 = 5;

/// Tells `user` that `what` happened (a whole sentence or two), once.
pub async fn security(
    state: &AppState,
    user: i64,
    subject: &str,
    what: &str,
    headers: &axum::http::HeaderMap,
    ip: &str,
) -> AppResult<()> {
    let Some(to) = email::confirmed(&state.db, user).await? else {
        return Ok(());
    };
    let browser = crate::web::client::browser_label(headers);
    let at = crate::events::format_time(crate::db::now());
    state.part::<Outbox>().send(Mail {
        to,
        subject: subject.to_string(),
        body: format!(
            "Hello,\n\n{what}\n\nWhen: {at}\nBrowser: {browser}\nAddress: {ip}\n\n\
             If this was you, there is nothing to do.\n\nIf it was not you: log in and change \
             your password, check your second factors and sessions on your account page, and \
             log out everywhere else. If you cannot log in, ask the site's staff for help.\n"
        ),
    });
    Ok(())
}

/// After a wrong second-factor answer (already recorded as `code_wrong`) in `session`: when
/// the answers since this session's login reach [`FAILURES_TOLD`], tells the user, once per
/// login (a once-marker among the limits, so answers sent together mail once).
pub async fn second_factor_failed(
    state: &AppState,
    session: &Session,
    user: i64,
    headers: &axum::http::HeaderMap,
    ip: &str,
) -> AppResult<()> {
    let Some(device) = crate::session::DEVICE.get(session).await? else {
        return Ok(());
    };
    let wrong = events::count_since(&state.db, user, Kind::CodeWrong, device.since).await?;
    if wrong < FAILURES_TOLD {
        return Ok(());
    }
    let marker = format!("{user}:{}", device.since);
    let once = [Limit {
        count: 1,
        window: Duration::from_secs(24 * 3600),
    }];
    if limits::reserve(
        state,
        &[(Scope::FactorAlert, marker.as_str(), once.as_slice())],
    )
    .await?
    .is_err()
    {
        return Ok(());
    }
    security(
        state,
        user,
        "Failed second-factor checks on your Pollstr account",
        &format!(
            "Someone logged in to your Pollstr account with the right password, then gave a \
             wrong second factor (code, app, passkey or recovery code) {FAILURES_TOLD} times. \
             If it was not you, your password is known to someone else: change it now."
        ),
        headers,
        ip,
    )
    .await
}
