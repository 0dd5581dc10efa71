//! Flash messages: stored in the session ([`session::FLASH`]), shown once on the next page.

use tower_sessions::Session;

use crate::error::AppResult;
use crate::session;
pub use crate::session::{Flash, Level};

pub async fn push(session: &Session, level: Level, text: impl Into<String>) -> AppResult<()> {
    let mut all = session::FLASH.get(session).await?.unwrap_or_default();
    all.push(Flash {
        level,
        text: text.into(),
    });
    session::FLASH.insert(session, all).await?;
    Ok(())
}

/// Takes the pending messages (they are shown once).
pub async fn take(session: &Session) -> AppResult<Vec<Flash>> {
    // `get` first: `remove` would mark every session modified and cost a write per page.
    match session::FLASH.get(session).await? {
        Some(v) => {
            session::FLASH.remove(session).await?;
            Ok(v)
        }
        None => Ok(Vec::new()),
    }
}
