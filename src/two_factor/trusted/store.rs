//! The trusted browsers' SQL (`trusted_browsers`): a trust is a token's keyed hash bound to a
//! user until it expires; found, listed, forgotten and pruned here.

use crate::db::{self, Db};
use crate::with_db;

/// Stores a trust: the token's hash, its user, the browser's label, until `expires_at`.
pub async fn add(
    db: &Db,
    token_hash: &str,
    user: i64,
    label: &str,
    created_at: i64,
    expires_at: i64,
) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query(
        "INSERT INTO trusted_browsers (token_hash, user_id, label, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(user)
    .bind(label)
    .bind(created_at)
    .bind(expires_at)
    .execute(p)
    .await
    .map(|_| ()))
}

/// Whether `user` trusts the browser whose token has this hash, and the trust has not ended.
pub async fn holds(db: &Db, token_hash: &str, user: i64) -> sqlx::Result<bool> {
    let found = with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT user_id FROM trusted_browsers WHERE token_hash = $1 AND user_id = $2 AND expires_at > $3",
    )
    .bind(token_hash)
    .bind(user)
    .bind(db::now())
    .fetch_optional(p)
    .await)?;
    Ok(found.is_some())
}

/// A browser the user trusts, for the account page.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Trusted {
    pub label: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub async fn of_user(db: &Db, user: i64) -> sqlx::Result<Vec<Trusted>> {
    with_db!(db, p => sqlx::query_as::<_, Trusted>(
        "SELECT label, created_at, expires_at FROM trusted_browsers WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC",
    )
    .bind(user)
    .bind(db::now())
    .fetch_all(p)
    .await)
}

/// Ends every trust of the user (a password change, a factor removed, or asked for).
pub async fn forget_all(db: &Db, user: i64) -> sqlx::Result<u64> {
    with_db!(db, p => sqlx::query("DELETE FROM trusted_browsers WHERE user_id = $1")
        .bind(user)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}

/// Deletes trusts that have ended (housekeeping).
pub async fn prune(db: &Db) -> sqlx::Result<u64> {
    with_db!(db, p => sqlx::query("DELETE FROM trusted_browsers WHERE expires_at <= $1")
        .bind(db::now())
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}
