//! The SMS pumping guard's SQL: every verification sent (`sms_sends`, with its destination and
//! what became of it) and the countries paused (`sms_pauses`). The guard (`sms/guard.rs`)
//! decides with these figures.

use std::time::Duration;

use crate::db::{self, Db};
use crate::with_db;

/// The end of the country's pause, if one is running now.
pub async fn paused_until(db: &Db, country: &str) -> sqlx::Result<Option<i64>> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT paused_until FROM sms_pauses WHERE country = $1 AND paused_until > $2",
    )
    .bind(country)
    .bind(db::now())
    .fetch_optional(p)
    .await)
}

/// A verification went out (a new request, not a running one continued).
pub async fn record_send(
    db: &Db,
    request_id: &str,
    country: &str,
    prefix: &str,
) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query(
        "INSERT INTO sms_sends (request_id, country, prefix, sent_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(request_id)
    .bind(country)
    .bind(prefix)
    .bind(db::now())
    .execute(p)
    .await
    .map(|_| ()))
}

/// The request's code went out again by its next channel.
pub async fn record_next_channel(db: &Db, request_id: &str) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query("UPDATE sms_sends SET channels = channels + 1 WHERE request_id = $1")
        .bind(request_id)
        .execute(p)
        .await
        .map(|_| ()))
}

/// The request's code was confirmed.
pub async fn record_confirmed(db: &Db, request_id: &str) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query(
        "UPDATE sms_sends SET confirmed_at = $2 WHERE request_id = $1 AND confirmed_at IS NULL",
    )
    .bind(request_id)
    .bind(db::now())
    .execute(p)
    .await
    .map(|_| ()))
}

/// What the provider reported of a request (a signed callback); returns the request's country
/// when the request is ours.
pub async fn record_outcome(
    db: &Db,
    request_id: &str,
    outcome: &str,
) -> sqlx::Result<Option<String>> {
    with_db!(db, p => sqlx::query_scalar::<_, String>(
        "UPDATE sms_sends SET outcome = $2, outcome_at = $3 WHERE request_id = $1 RETURNING country",
    )
    .bind(request_id)
    .bind(outcome)
    .bind(db::now())
    .fetch_optional(p)
    .await)
}

/// The end of the country's latest pause, running or over.
pub async fn last_pause(db: &Db, country: &str) -> sqlx::Result<Option<i64>> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT paused_until FROM sms_pauses WHERE country = $1",
    )
    .bind(country)
    .fetch_optional(p)
    .await)
}

/// The country's sends since `since` that are settled (confirmed, reported on, or sent at or
/// before `settled_before`), and how many of them were confirmed.
pub async fn settled_and_confirmed(
    db: &Db,
    country: &str,
    since: i64,
    settled_before: i64,
) -> sqlx::Result<(i64, i64)> {
    with_db!(db, p => sqlx::query_as(
        "SELECT COUNT(*), COUNT(confirmed_at) FROM sms_sends \
         WHERE country = $1 AND sent_at > $2 \
           AND (confirmed_at IS NOT NULL OR outcome IS NOT NULL OR sent_at <= $3)",
    )
    .bind(country)
    .bind(since)
    .bind(settled_before)
    .fetch_one(p)
    .await)
}

/// Pauses the country until `until`, unless a pause runs at `now` already (another instance
/// made it a moment ago): whether this call made it.
pub async fn pause(
    db: &Db,
    country: &str,
    until: i64,
    reason: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let made = with_db!(db, p => sqlx::query(
        "INSERT INTO sms_pauses (country, paused_until, reason) VALUES ($1, $2, $3) \
         ON CONFLICT (country) DO UPDATE SET paused_until = excluded.paused_until, reason = excluded.reason \
         WHERE sms_pauses.paused_until <= $4",
    )
    .bind(country)
    .bind(until)
    .bind(reason)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(made != 0)
}

/// Ends the country's running pause at `now`; whether one was running.
pub async fn lift_pause(db: &Db, country: &str, now: i64) -> sqlx::Result<bool> {
    let done = with_db!(db, p => sqlx::query(
        "UPDATE sms_pauses SET paused_until = $2 WHERE country = $1 AND paused_until > $2",
    )
    .bind(country)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Forgets sends older than `keep`.
pub async fn prune(db: &Db, keep: Duration) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query("DELETE FROM sms_sends WHERE sent_at < $1")
        .bind(db::now() - keep.as_secs() as i64)
        .execute(p)
        .await
        .map(|_| ()))
}

/// One line of the report: a country or a prefix.
#[derive(Debug, sqlx::FromRow)]
pub struct ReportRow {
    pub key: String,
    pub sends: i64,
    pub confirmed: i64,
    /// Sends a callback reported as failed, rejected or expired.
    pub undelivered: i64,
    pub calls: i64,
}

#[derive(Debug, sqlx::FromRow)]
pub struct PauseRow {
    pub country: String,
    pub paused_until: i64,
    pub reason: String,
}

/// Sends, confirmations, undelivered sends and calls since `since`, by `column` (`country` or
/// `prefix`), the most sends first, at most 200 lines.
pub async fn sends_by(db: &Db, column: &str, since: i64) -> sqlx::Result<Vec<ReportRow>> {
    let sql = format!(
        "SELECT {column} AS key, COUNT(*) AS sends, COUNT(confirmed_at) AS confirmed, \
         COUNT(CASE WHEN outcome IN ('failed', 'rejected', 'expired') THEN 1 END) AS undelivered, \
         CAST(COALESCE(SUM(channels - 1), 0) AS BIGINT) AS calls \
         FROM sms_sends WHERE sent_at >= $1 GROUP BY {column} ORDER BY sends DESC, key LIMIT 200"
    );
    with_db!(db, p => sqlx::query_as::<_, ReportRow>(&sql)
        .bind(since)
        .fetch_all(p)
        .await)
}

/// The pauses running now, by country.
pub async fn running_pauses(db: &Db) -> sqlx::Result<Vec<PauseRow>> {
    with_db!(db, p => sqlx::query_as::<_, PauseRow>(
        "SELECT country, paused_until, reason FROM sms_pauses WHERE paused_until > $1 ORDER BY country",
    )
    .bind(db::now())
    .fetch_all(p)
    .await)
}
