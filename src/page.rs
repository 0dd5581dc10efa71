//! What every page's template is given besides its own data: the signed-in user, the CSRF token
//! and the flash messages. Below `web` and `error` (an error page is a page too).

use crate::session::{Flash, SessionUser};

/// Data the base template needs on every page.
#[derive(Clone, Debug, Default)]
pub struct PageContext {
    pub user: Option<SessionUser>,
    /// The session's CSRF token, empty on pages with no form for anonymous visitors.
    pub csrf: String,
    pub messages: Vec<Flash>,
}

impl PageContext {
    /// An anonymous visitor with no session data to show: the page is the same for all of them.
    pub fn is_plain_anonymous(&self) -> bool {
        self.user.is_none() && self.csrf.is_empty() && self.messages.is_empty()
    }

    pub fn username(&self) -> &str {
        self.user
            .as_ref()
            .map(|u| u.username.as_str())
            .unwrap_or("")
    }
}
