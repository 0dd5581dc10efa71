//! Polls that end, and who sees their results (docs/polls.md).
//!
//! A poll is closed once its close is recorded (`closed_at`: staff's *Close now*, or the first
//! read of its results after its closing time) or its closing time (`closes_at`) has passed.
//! The vote statement itself refuses a closed poll, and a close is recorded with the votes held
//! still (`store::record_close`): every vote is either written before it or refused, and the
//! counts read after it are final. The results are shown by [`Visibility`] until then, and to
//! everyone once the poll is closed; staff always see them.

use super::store::{self, Question};
use crate::db::Db;

/// Who sees a poll's results before it closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Everyone who may vote (as before polls had the setting).
    Always,
    /// Those who voted on it.
    AfterVoting,
    /// Nobody but staff, until the poll closes.
    AfterClosing,
}

impl Visibility {
    pub const ALL: [Visibility; 3] = [
        Visibility::Always,
        Visibility::AfterVoting,
        Visibility::AfterClosing,
    ];

    /// The stored value (`questions.results_visibility`); anything unknown hides the results.
    pub fn parse(stored: &str) -> Visibility {
        match stored {
            "always" => Visibility::Always,
            "voted" => Visibility::AfterVoting,
            _ => Visibility::AfterClosing,
        }
    }

    /// The form's value, if it is one.
    pub fn from_key(key: &str) -> Option<Visibility> {
        Visibility::ALL.into_iter().find(|v| v.key() == key)
    }

    pub fn key(self) -> &'static str {
        match self {
            Visibility::Always => "always",
            Visibility::AfterVoting => "voted",
            Visibility::AfterClosing => "closed",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Visibility::Always => "Always",
            Visibility::AfterVoting => "To those who voted",
            Visibility::AfterClosing => "After the poll closes",
        }
    }
}

/// Whether a poll with this closing time and recorded close is closed at `now`.
pub fn is_closed(closes_at: Option<i64>, closed_at: Option<i64>, now: i64) -> bool {
    closed_at.is_some() || closes_at.is_some_and(|t| t <= now)
}

impl Question {
    pub fn is_closed(&self, now: i64) -> bool {
        is_closed(self.closes_at, self.closed_at, now)
    }

    pub fn visibility(&self) -> Visibility {
        Visibility::parse(&self.results_visibility)
    }

    /// "This poll closed on 2026-12-01 15:00 UTC."
    pub fn closed_message(&self) -> String {
        closed_message(self.closes_at.or(self.closed_at))
    }
}

pub fn closed_message(when: Option<i64>) -> String {
    match when {
        Some(t) => format!("This poll closed on {}.", crate::web::when(t)),
        None => "This poll is closed.".to_string(),
    }
}

/// Why the results are hidden from someone (`None`: they are shown). Staff see them always.
pub fn hidden_because(
    question: &Question,
    voted: bool,
    staff: bool,
    now: i64,
) -> Option<&'static str> {
    if staff || question.is_closed(now) {
        return None;
    }
    match question.visibility() {
        Visibility::Always => None,
        Visibility::AfterVoting if voted => None,
        Visibility::AfterVoting => Some("The results of this poll are shown once you have voted."),
        Visibility::AfterClosing => Some("The results of this poll are shown when it closes."),
    }
}

/// What the public list says of a poll's end: "closed", "closes in 3 days", or nothing.
pub fn ends_label(closes_at: Option<i64>, closed_at: Option<i64>, now: i64) -> Option<String> {
    if is_closed(closes_at, closed_at, now) {
        return Some("Closed".into());
    }
    let left = closes_at? - now;
    let (n, unit) = match left {
        ..=3_599 => ((left + 59) / 60, "minute"),
        3_600..=86_399 => (left / 3_600, "hour"),
        _ => (left / 86_400, "day"),
    };
    Some(format!(
        "Closes in {n} {unit}{}",
        if n == 1 { "" } else { "s" }
    ))
}

/// Records the close of a poll whose closing time has passed, unless it is recorded already
/// (read first, so that the votes are held only once per close). The counts read after it are
/// final.
pub async fn ensure_recorded(db: &Db, question_id: i64) -> sqlx::Result<()> {
    if let Some((_, None)) = store::closing(db, question_id).await? {
        store::record_close(db, question_id, false).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_says_how_long_is_left() {
        let now = 1_000_000;
        assert_eq!(ends_label(None, None, now), None);
        assert_eq!(ends_label(Some(now), None, now).unwrap(), "Closed");
        assert_eq!(ends_label(None, Some(now - 5), now).unwrap(), "Closed");
        assert_eq!(
            ends_label(Some(now + 3 * 86_400 + 5), None, now).unwrap(),
            "Closes in 3 days"
        );
        assert_eq!(
            ends_label(Some(now + 7_200), None, now).unwrap(),
            "Closes in 2 hours"
        );
        assert_eq!(
            ends_label(Some(now + 30), None, now).unwrap(),
            "Closes in 1 minute"
        );
    }

    #[test]
    fn unknown_visibility_hides() {
        assert_eq!(Visibility::parse("x"), Visibility::AfterClosing);
        for v in Visibility::ALL {
            assert_eq!(Visibility::parse(v.key()), v);
            assert_eq!(Visibility::from_key(v.key()), Some(v));
        }
    }
}
