//! Flash messages: stored in the session, shown once on the next page.

use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::error::AppResult;

const KEY: &str = "flash";

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Success,
    Warning,
    Error,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Flash {
    pub level: Level,
    pub text: String,
}

impl Flash {
    pub fn css(&self) -> &'static str {
        match self.level {
            Level::Info => "info",
            Level::Success => "success",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

pub async fn push(session: &Session, level: Level, text: impl Into<String>) -> AppResult<()> {
    let mut all: Vec<Flash> = session.get(KEY).await?.unwrap_or_default();
    all.push(Flash {
        level,
        text: text.into(),
    });
    session.insert(KEY, all).await?;
    Ok(())
}

/// Takes the pending messages (they are shown once).
pub async fn take(session: &Session) -> AppResult<Vec<Flash>> {
    // `get` first: `remove` would mark every session modified and cost a write per page.
    let all: Option<Vec<Flash>> = session.get(KEY).await?;
    match all {
        Some(v) => {
            session.remove::<Vec<Flash>>(KEY).await?;
            Ok(v)
        }
        None => Ok(Vec::new()),
    }
}
