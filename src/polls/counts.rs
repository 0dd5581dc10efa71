//! Vote counts are maintained, not counted: triggers on `votes` keep `choice_counts` in step with
//! the vote rows, in the vote's own transaction (migrations/*/0003_vote_counts.sql), so a poll
//! page costs the same at ten million votes as at ten. This module checks them against the rows
//! and repairs them: `pollstr recount`, and the proof in tests that the triggers are right.
//!
//! Before counts were kept, a poll page counted its votes on every view: with one million votes
//! on a poll, PostgreSQL served 6 poll pages a second (p99 1.5 s) against 2,851 with 12 votes.

use super::store;
use crate::db::Db;

/// A choice whose kept count differed from its vote rows, and was set right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fix {
    pub choice_id: i64,
    pub question_id: i64,
    /// What `choice_counts` said (imported votes without rows not included).
    pub kept: i64,
    /// The vote rows that point at the choice.
    pub counted: i64,
}

/// Recomputes every choice's count from the vote rows, with votes held still meanwhile
/// ([`store::recount`]). Returns what it had to fix: nothing, when the triggers kept every count
/// right.
pub async fn recount(db: &Db) -> sqlx::Result<Vec<Fix>> {
    let rows = store::recount(db).await?;
    Ok(rows
        .into_iter()
        .map(|(choice_id, question_id, kept, counted)| Fix {
            choice_id,
            question_id,
            kept,
            counted,
        })
        .collect())
}
