//! The second factor. [`gate`] decides what a session has proven and guards the pages that need
//! it; each factor is a folder beside it with its own pages and state: [`sms`] (a code by text
//! message through a Verify provider), [`totp`] (an authenticator app), [`recovery`] (single-use
//! codes for a lost phone). A new factor is a folder
//! here and a line in [`router`].

pub mod gate;
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
}
