//! The `totp_factors` table: one authenticator per user, its secret sealed.

use crate::db::{self, Db};
use crate::with_db;

/// A user's authenticator: the sealed secret and the last step accepted.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Factor {
    pub secret: String,
    pub last_step: i64,
    pub created_at: i64,
}

/// What a sealed secret is bound to (the associated data of its encryption).
pub fn owner(user: i64) -> String {
    format!("totp:{user}")
}

pub async fn of_user(db: &Db, user: i64) -> sqlx::Result<Option<Factor>> {
    with_db!(db, p => sqlx::query_as::<_, Factor>(
        "SELECT secret, last_step, created_at FROM totp_factors WHERE user_id = $1",
    )
    .bind(user)
    .fetch_optional(p)
    .await)
}

/// Adds the user's authenticator; false if they already have one.
pub async fn add(db: &Db, user: i64, sealed: &str, step: i64) -> sqlx::Result<bool> {
    with_db!(db, p => sqlx::query(
        "INSERT INTO totp_factors (user_id, secret, last_step, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(user)
    .bind(sealed)
    .bind(step)
    .bind(db::now())
    .execute(p)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Accepts `step` for the user if no code of this step or a later one was accepted before, in
/// one statement: of two requests with the same code, one wins.
pub async fn accept_step(db: &Db, user: i64, step: i64) -> sqlx::Result<bool> {
    with_db!(db, p => sqlx::query(
        "UPDATE totp_factors SET last_step = $1 WHERE user_id = $2 AND last_step < $1",
    )
    .bind(step)
    .bind(user)
    .execute(p)
    .await
    .map(|r| r.rows_affected() == 1))
}

pub async fn remove(db: &Db, user: i64) -> sqlx::Result<bool> {
    with_db!(db, p => sqlx::query("DELETE FROM totp_factors WHERE user_id = $1")
        .bind(user)
        .execute(p)
        .await
        .map(|r| r.rows_affected() == 1))
}
