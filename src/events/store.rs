//! The audit trail's SQL (`security_events`): an event written, the newest listed with their
//! user's name, the old ones deleted.

use std::time::Duration;

use crate::db::{self, Db};
use crate::with_db;

/// Writes one event, now.
pub async fn insert(
    db: &Db,
    kind: &str,
    user: Option<i64>,
    ip: &str,
    detail: &str,
) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query(
        "INSERT INTO security_events (at, kind, user_id, ip, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(db::now())
    .bind(kind)
    .bind(user)
    .bind(ip)
    .bind(detail)
    .execute(p)
    .await
    .map(|_| ()))
}

/// An event as listed, with the user's current name.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Event {
    pub at: i64,
    pub kind: String,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub ip: String,
    pub detail: String,
}

/// The newest events since `since`, newest first, of one user if `user` is given, at most
/// `limit`.
pub async fn newest(
    db: &Db,
    user: Option<i64>,
    since: i64,
    limit: i64,
) -> sqlx::Result<Vec<Event>> {
    with_db!(db, p => sqlx::query_as::<_, Event>(
        "SELECT e.at, e.kind, e.user_id, u.username, e.ip, e.detail FROM security_events e \
         LEFT JOIN users u ON u.id = e.user_id \
         WHERE e.at >= $1 AND ($2 IS NULL OR e.user_id = $2) \
         ORDER BY e.at DESC, e.id DESC LIMIT $3",
    )
    .bind(since)
    .bind(user)
    .bind(limit)
    .fetch_all(p)
    .await)
}

/// How many events of `kind` `user` has had since `since` (Unix seconds).
pub async fn count_since(db: &Db, user: i64, kind: &str, since: i64) -> sqlx::Result<i64> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM security_events WHERE user_id = $1 AND kind = $2 AND at >= $3",
    )
    .bind(user)
    .bind(kind)
    .bind(since)
    .fetch_one(p)
    .await)
}

/// Deletes events older than `keep`; returns how many.
pub async fn prune(db: &Db, keep: Duration) -> sqlx::Result<u64> {
    with_db!(db, p => sqlx::query("DELETE FROM security_events WHERE at < $1")
        .bind(db::now() - keep.as_secs() as i64)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}
