//! Vote counts are maintained, not counted: triggers on `votes` keep `choice_counts` in step with
//! the vote rows, in the vote's own transaction (migrations/*/0003_vote_counts.sql), so a poll
//! page costs the same at ten million votes as at ten. This module checks them against the rows
//! and repairs them: `pollstr recount`, and the proof in tests that the triggers are right.
//!
//! Before counts were kept, a poll page counted its votes on every view: with one million votes
//! on a poll, PostgreSQL served 6 poll pages a second (p99 1.5 s) against 2,851 with 12 votes.

use crate::db::Db;
use crate::with_db;

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

/// The choices whose kept count is not their number of vote rows.
const DIFFERENCES: &str = "SELECT c.id, c.question_id, \
       CAST(COALESCE(k.n, 0) AS BIGINT) AS kept, CAST(COALESCE(v.n, 0) AS BIGINT) AS counted \
     FROM choices c \
     LEFT JOIN (SELECT choice_id, SUM(votes) AS n FROM choice_counts GROUP BY choice_id) k ON k.choice_id = c.id \
     LEFT JOIN (SELECT choice_id, COUNT(*) AS n FROM votes GROUP BY choice_id) v ON v.choice_id = c.id \
     WHERE COALESCE(k.n, 0) <> COALESCE(v.n, 0) ORDER BY c.id";

/// Recomputes every choice's count from the vote rows, with votes held still meanwhile (SQLite:
/// the write lock; PostgreSQL: a SHARE lock on `votes`, which waits for votes being written and
/// makes new ones wait until this commits). Returns what it had to fix: nothing, when the
/// triggers kept every count right.
pub async fn recount(db: &Db) -> sqlx::Result<Vec<Fix>> {
    // How each backend holds votes still, and spreads a count over rows (the migrations' shard).
    let (hold, shard) = match db {
        Db::Sqlite(_) => (None, "0"),
        Db::Postgres(_) => (Some("LOCK TABLE votes IN SHARE MODE"), "user_id % 16"),
    };
    let rows: Vec<(i64, i64, i64, i64)> = with_db!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        if let Some(hold) = hold {
            sqlx::query(hold).execute(&mut *tx).await?;
        }
        let rows = sqlx::query_as(DIFFERENCES).fetch_all(&mut *tx).await?;
        if !rows.is_empty() {
            sqlx::query("DELETE FROM choice_counts").execute(&mut *tx).await?;
            sqlx::query(&format!(
                "INSERT INTO choice_counts (choice_id, shard, votes) \
                 SELECT choice_id, {shard} AS s, COUNT(*) FROM votes GROUP BY choice_id, s"
            ))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        rows
    });
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
