//! Security notifications: a short plain-text message to a user's confirmed address (never to
//! an unconfirmed one) saying what happened to their account, when, from which browser and
//! address, and what to do if it was not them. The caller names the event in words; the
//! message never holds a code, a password or a whole phone number (callers pass none). Sent
//! through the outbox, after the page answers; with email off, nothing is sent.
//! Built so far for: a password changed (`change_password`) or reset with a link (`reset`).

use crate::error::AppResult;
use crate::mail::{Mail, Outbox};
use crate::state::AppState;
use crate::users::email;

/// Tells `user` that `what` happened (a sentence's end: "was changed"), once.
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
