//! The second factor. [`gate`] decides what a session has proven and guards the pages that need
//! it; each factor is a folder beside it with its own pages and state: [`sms`] (a code by text
//! message through a Verify provider), [`totp`] (an authenticator app), [`recovery`] (single-use
//! codes for a lost phone), [`passkeys`] (WebAuthn credentials, also a login without the password). Each factor's answer at login goes through one skeleton,
//! [`challenge::answer`] (limits, events, completion), the factor supplying only how its answer
//! is read and checked. A new factor is a folder here, an implementation of
//! [`challenge::Factor`], and a line in [`router`].

pub mod challenge;
pub mod gate;
pub mod passkeys;
pub mod recovery;
pub mod sms;
pub mod totp;
pub mod trusted;

use crate::state::AppState;
use crate::web::routes::Routes;

/// The pages of every factor.
pub fn router(state: &AppState) -> Routes {
    Routes::new()
        .merge(sms::router())
        .merge(totp::router(state))
        .merge(recovery::router())
        .merge(passkeys::router(state))
}
