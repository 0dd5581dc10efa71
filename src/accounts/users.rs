//! Queries on the `users` table.

use sqlx::FromRow;

use crate::db::{self, Db};
use crate::with_db;

#[derive(Clone, FromRow)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password: String,
    pub is_active: bool,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("A user with that username already exists.")]
    Taken,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Usernames are unique case-insensitively: `Test` finds `test`.
pub async fn find_by_username(db: &Db, username: &str) -> sqlx::Result<Option<User>> {
    with_db!(db, p => sqlx::query_as::<_, User>(
        "SELECT id, username, password, is_active FROM users WHERE lower(username) = lower($1)",
    )
    .bind(username)
    .fetch_optional(p)
    .await)
}

pub async fn find(db: &Db, id: i64) -> sqlx::Result<Option<User>> {
    with_db!(db, p => sqlx::query_as::<_, User>(
        "SELECT id, username, password, is_active FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(p)
    .await)
}

pub async fn create(db: &Db, username: &str, password_hash: &str) -> Result<i64, CreateUserError> {
    let res = with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "INSERT INTO users (username, password, date_joined) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(username)
    .bind(password_hash)
    .bind(db::now())
    .fetch_one(p)
    .await);
    match res {
        Ok(id) => Ok(id),
        Err(e) if db::is_unique_violation(&e) => Err(CreateUserError::Taken),
        Err(e) => Err(e.into()),
    }
}

pub async fn set_password(db: &Db, id: i64, password_hash: &str) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query("UPDATE users SET password = $1 WHERE id = $2")
        .bind(password_hash)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn touch_last_login(db: &Db, id: i64) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query("UPDATE users SET last_login = $1 WHERE id = $2")
        .bind(db::now())
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}
