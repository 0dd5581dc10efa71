//! The limits' SQL (`limit_events`): an attempt reserved against its limits in one
//! transaction, taken back, and old events deleted. A subject is locked while it is counted
//! (SQLite: the write lock; PostgreSQL: `Db::lock_key` per scope and subject, in order).

use std::time::Duration;

use super::{Check, Scope};
use crate::db::{self, Db};
use crate::with_db;

/// Counts one attempt against every check, under a lock on each of `keys` (sorted, one per
/// scope and subject): the ids of the events written, or, when any limit is reached, nothing
/// written, the seconds to wait (the longest of the limits reached) and the scopes whose limit
/// was reached.
pub(super) async fn reserve(
    db: &Db,
    keys: &[String],
    checks: &[Check<'_>],
) -> sqlx::Result<Result<Vec<i64>, (u64, Vec<Scope>)>> {
    let lock = db.lock_key();
    let now = db::now();
    let id = db.row_id();
    let insert =
        format!("INSERT INTO limit_events (scope, subject, at) VALUES ($1, $2, $3) RETURNING {id}");
    with_db!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        if let Some(lock) = lock {
            for key in keys {
                sqlx::query(lock)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let mut wait: Option<u64> = None;
        let mut over: Vec<Scope> = Vec::new();
        for (scope, subject, limits) in checks {
            for limit in limits.iter() {
                let since = now - limit.window.as_secs() as i64;
                let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT COUNT(*), MIN(at) FROM limit_events WHERE scope = $1 AND subject = $2 AND at > $3",
                )
                .bind(scope.name())
                .bind(*subject)
                .bind(since)
                .fetch_one(&mut *tx)
                .await?;
                if count >= limit.count {
                    // Conservative: wait until the oldest counted event leaves the window.
                    let until = oldest.unwrap_or(now) + limit.window.as_secs() as i64;
                    let secs = (until - now).max(1) as u64;
                    wait = Some(wait.map_or(secs, |w| w.max(secs)));
                    if !over.iter().any(|s| s.name() == scope.name()) {
                        over.push(*scope);
                    }
                }
            }
        }
        if let Some(wait) = wait {
            tx.rollback().await?;
            return Ok(Err((wait, over)));
        }
        let mut ids = Vec::with_capacity(checks.len());
        for (scope, subject, _) in checks {
            let id: i64 = sqlx::query_scalar(&insert)
                .bind(scope.name())
                .bind(*subject)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(Ok(ids))
    })
}

/// Deletes the events with these ids (a reservation taken back).
pub(super) async fn delete(db: &Db, ids: &[i64]) -> sqlx::Result<()> {
    let sql = format!("DELETE FROM limit_events WHERE {} = $1", db.row_id());
    for &event in ids {
        with_db!(db, p => sqlx::query(&sql).bind(event).execute(p).await.map(|_| ()))?;
    }
    Ok(())
}

/// Deletes events older than `keep` (the longest window in use).
pub async fn prune(db: &Db, keep: Duration) -> sqlx::Result<u64> {
    let done = with_db!(db, p => sqlx::query("DELETE FROM limit_events WHERE at < $1")
        .bind(db::now() - keep.as_secs() as i64)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(done)
}
