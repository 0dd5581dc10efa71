//! Who started each Verify request (`verify_requests`): a send to a number whose code is still
//! running joins that request only for the account that started it.

use std::time::Duration;

use crate::db::{self, Db};
use crate::with_db;

/// Requests are kept this long: a Verify request lives for minutes, this is its owner's record.
pub const KEEP: Duration = Duration::from_secs(86_400);

pub async fn record(db: &Db, request_id: &str, user_id: i64, number: &str) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query(
        "INSERT INTO verify_requests (request_id, user_id, started_at, number) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(request_id)
    .bind(user_id)
    .bind(db::now())
    .bind(number)
    .execute(p)
    .await
    .map(|_| ()))
}

/// The account that started the request, if this app started it.
pub async fn owner(db: &Db, request_id: &str) -> sqlx::Result<Option<i64>> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT user_id FROM verify_requests WHERE request_id = $1",
    )
    .bind(request_id)
    .fetch_optional(p)
    .await)
}

/// The newest request this account started to `number` since `since` (Unix seconds) that is
/// not known to be over (confirmed, or finished by a callback): the one a provider means when
/// it says a request to the number is running without naming it.
pub async fn latest_of(
    db: &Db,
    user_id: i64,
    number: &str,
    since: i64,
) -> sqlx::Result<Option<String>> {
    with_db!(db, p => sqlx::query_scalar::<_, String>(
        "SELECT v.request_id FROM verify_requests v \
         WHERE v.user_id = $1 AND v.number = $2 AND v.started_at >= $3 \
         AND NOT EXISTS (SELECT 1 FROM sms_sends s WHERE s.request_id = v.request_id \
                         AND (s.confirmed_at IS NOT NULL OR s.outcome IS NOT NULL)) \
         ORDER BY v.started_at DESC LIMIT 1",
    )
    .bind(user_id)
    .bind(number)
    .bind(since)
    .fetch_optional(p)
    .await)
}

/// Forgets requests older than [`KEEP`].
pub async fn prune(db: &Db) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query("DELETE FROM verify_requests WHERE started_at < $1")
        .bind(db::now() - KEEP.as_secs() as i64)
        .execute(p)
        .await
        .map(|_| ()))
}
