//! The audit trail: security events in the database (logins, codes, numbers, password changes,
//! logouts, what staff do in the admin), each with the user when known, the time and the client address; phone numbers
//! appear masked. `pollstr events` prints them; the server's housekeeping deletes those older
//! than `EVENT_RETENTION`.
//!
//! An event is written where it happens, before the page answers; a failure to write it is the
//! request's failure (an audit trail with holes in it is not one). The SQL is in `store.rs`.

mod store;

use crate::db::Db;

pub use store::{prune, Event};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    LoginOk,
    /// A wrong password, or an unknown or inactive user.
    LoginFailed,
    /// Turned away by a failed-login limit before the password was checked.
    LoginRefused,
    SignedUp,
    /// A sign-up turned away by the sign-up limit before its password was hashed.
    SignupRefused,
    Logout,
    /// A code went out (or a running request was continued).
    CodeSent,
    /// A send refused: a limit, a number of another account, the provider.
    CodeRefused,
    CodeOk,
    CodeWrong,
    NumberBound,
    NumberReplaced,
    PasswordChanged,
    /// A password set without the old one: `pollstr set-password`, or a reset link used.
    PasswordReset,
    /// A password-reset link mailed on a self-service request (`/password-reset/`), or one
    /// not mailed because a limit was reached (the detail says which; the address masked).
    ResetLinkMailed,
    /// A second factor set up (the detail says which).
    FactorAdded,
    FactorRemoved,
    /// A second factor given a new name (a passkey).
    FactorRenamed,
    OtherSessionsEnded,
    TrustedBrowsersForgotten,
    /// An email address confirmed, removed, or a confirmation link sent (masked address).
    EmailChanged,
    /// The SMS pumping guard paused sends to a country (no user: the site's event).
    SmsCountryPaused,
    /// A passkey's answer refused outside a login's code check (adding one, the login without a
    /// password).
    PasskeyRefused,
    /// A passkey's signature counter went backwards: the credential may have been cloned.
    PasskeyCounterBackwards,
    /// Something a staff user did in the admin; the detail names the admin and the target.
    AdminAction,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::LoginOk => "login_ok",
            Kind::LoginFailed => "login_failed",
            Kind::LoginRefused => "login_refused",
            Kind::SignedUp => "signed_up",
            Kind::SignupRefused => "signup_refused",
            Kind::Logout => "logout",
            Kind::CodeSent => "code_sent",
            Kind::CodeRefused => "code_refused",
            Kind::CodeOk => "code_ok",
            Kind::CodeWrong => "code_wrong",
            Kind::NumberBound => "number_bound",
            Kind::NumberReplaced => "number_replaced",
            Kind::PasswordChanged => "password_changed",
            Kind::PasswordReset => "password_reset",
            Kind::ResetLinkMailed => "reset_link_mailed",
            Kind::FactorAdded => "factor_added",
            Kind::FactorRemoved => "factor_removed",
            Kind::FactorRenamed => "factor_renamed",
            Kind::OtherSessionsEnded => "other_sessions_ended",
            Kind::TrustedBrowsersForgotten => "trusted_browsers_forgotten",
            Kind::EmailChanged => "email_changed",
            Kind::SmsCountryPaused => "sms_country_paused",
            Kind::PasskeyRefused => "passkey_refused",
            Kind::PasskeyCounterBackwards => "passkey_counter_backwards",
            Kind::AdminAction => "admin_action",
        }
    }
}

/// Records one event. `detail` must not hold secrets or whole phone numbers (use
/// `PhoneNumber::masked`).
pub async fn record(
    db: &Db,
    kind: Kind,
    user: Option<i64>,
    ip: &str,
    detail: &str,
) -> sqlx::Result<()> {
    store::insert(db, kind.as_str(), user, ip, detail).await
}

/// How many events of `kind` `user` has had since `since` (Unix seconds).
pub async fn count_since(db: &Db, user: i64, kind: Kind, since: i64) -> sqlx::Result<i64> {
    store::count_since(db, user, kind.as_str(), since).await
}

/// Events since `since` (Unix seconds), oldest first, of one user if `user` is given (compared
/// as usernames are), at most `limit`: the newest ones when there are more.
pub async fn list(db: &Db, user: Option<i64>, since: i64, limit: i64) -> sqlx::Result<Vec<Event>> {
    let mut events = store::newest(db, user, since, limit).await?;
    events.reverse();
    Ok(events)
}

/// A Unix time as `2026-12-01 18:00:00Z`.
pub fn format_time(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| ts.to_string())
}

/// One event as a line of text: time (UTC), kind, user, address, detail.
pub fn line(e: &Event) -> String {
    let at = format_time(e.at);
    let who = match (&e.username, e.user_id) {
        (Some(name), _) => name.clone(),
        (None, Some(id)) => format!("user #{id}"),
        (None, None) => "-".to_string(),
    };
    format!("{at}  {:<16} {:<20} {:<15} {}", e.kind, who, e.ip, e.detail)
        .trim_end()
        .to_string()
}
