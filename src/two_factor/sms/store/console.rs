//! The console provider's SQL (`console_verify_requests`): its requests, as Verify v1 keeps
//! them, in the database so that it works across instances and restarts. A request is
//! `pending` until verified, failed, cancelled or expired; at most one per number is pending
//! (a unique index on the pending ones).

use crate::db::Db;
use crate::with_db;

/// Marks the number's pending request expired if its time is up (it stays `pending` until
/// then).
pub async fn expire_ended(db: &Db, number: &str, now: i64) -> sqlx::Result<u64> {
    with_db!(db, p => sqlx::query(
        "UPDATE console_verify_requests SET state = 'expired' \
         WHERE number = $1 AND state = 'pending' AND expires_at <= $2",
    )
    .bind(number)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
}

/// Starts a request, unless the number has one pending: then nothing is written (0).
pub async fn start(
    db: &Db,
    request_id: &str,
    number: &str,
    code_hash: &str,
    now: i64,
    expires_at: i64,
) -> sqlx::Result<u64> {
    with_db!(db, p => sqlx::query(
        "INSERT INTO console_verify_requests (request_id, number, code_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (number) WHERE state = 'pending' DO NOTHING",
    )
    .bind(request_id)
    .bind(number)
    .bind(code_hash)
    .bind(now)
    .bind(expires_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
}

/// The number's pending request.
pub async fn pending_of(db: &Db, number: &str) -> sqlx::Result<Option<String>> {
    with_db!(db, p => sqlx::query_scalar::<_, String>(
        "SELECT request_id FROM console_verify_requests WHERE number = $1 AND state = 'pending'",
    )
    .bind(number)
    .fetch_optional(p)
    .await)
}

/// A request's code hash, expiry and state.
pub async fn find(db: &Db, request_id: &str) -> sqlx::Result<Option<(String, i64, String)>> {
    with_db!(db, p => sqlx::query_as::<_, (String, i64, String)>(
        "SELECT code_hash, expires_at, state FROM console_verify_requests WHERE request_id = $1",
    )
    .bind(request_id)
    .fetch_optional(p)
    .await)
}

/// Marks a pending request verified; 1 for the one check that does it.
pub async fn verify(db: &Db, request_id: &str) -> sqlx::Result<u64> {
    with_db!(db, p => sqlx::query(
        "UPDATE console_verify_requests SET state = 'verified' WHERE request_id = $1 AND state = 'pending'",
    )
    .bind(request_id)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
}

/// Counts a wrong code against a pending request, which fails at `max_wrong`; the wrong codes
/// so far, or none if the request was not pending.
pub async fn count_wrong(db: &Db, request_id: &str, max_wrong: i64) -> sqlx::Result<Option<i64>> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "UPDATE console_verify_requests SET wrong_codes = wrong_codes + 1, \
         state = CASE WHEN wrong_codes + 1 >= $2 THEN 'failed' ELSE state END \
         WHERE request_id = $1 AND state = 'pending' RETURNING wrong_codes",
    )
    .bind(request_id)
    .bind(max_wrong)
    .fetch_optional(p)
    .await)
}

/// Cancels a pending request started at or before `started_by`; 1 if it did.
pub async fn cancel(db: &Db, request_id: &str, started_by: i64) -> sqlx::Result<u64> {
    with_db!(db, p => sqlx::query(
        "UPDATE console_verify_requests SET state = 'cancelled' \
         WHERE request_id = $1 AND state = 'pending' AND created_at <= $2",
    )
    .bind(request_id)
    .bind(started_by)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
}

/// Moves a pending, unexpired request to its next channel (of `channels`) with a new code
/// until `expires_at`: its number and new channel, or none if it cannot move.
pub async fn next_channel(
    db: &Db,
    request_id: &str,
    code_hash: &str,
    expires_at: i64,
    now: i64,
    channels: i64,
) -> sqlx::Result<Option<(String, i64)>> {
    with_db!(db, p => sqlx::query_as::<_, (String, i64)>(
        "UPDATE console_verify_requests SET code_hash = $2, channel = channel + 1, expires_at = $3 \
         WHERE request_id = $1 AND state = 'pending' AND expires_at > $4 AND channel + 1 < $5 \
         RETURNING number, channel",
    )
    .bind(request_id)
    .bind(code_hash)
    .bind(expires_at)
    .bind(now)
    .bind(channels)
    .fetch_optional(p)
    .await)
}

/// Whether the request is pending and unexpired.
pub async fn is_running(db: &Db, request_id: &str, now: i64) -> sqlx::Result<bool> {
    let n = with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM console_verify_requests \
         WHERE request_id = $1 AND state = 'pending' AND expires_at > $2",
    )
    .bind(request_id)
    .bind(now)
    .fetch_one(p)
    .await)?;
    Ok(n == 1)
}
