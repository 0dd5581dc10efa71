//! The user records' SQL (`users`): finding a user by id or by name, creating one (the same
//! name and look-alikes refused by unique indexes), passwords, ending a user's sessions, and
//! password-reset links (their keyed hashes: `users::reset`).
//! `users` re-exports these, so callers say `users::find`.

use sqlx::FromRow;

use super::validation::{username_key, username_skeleton};
use crate::db::{self, Db};
use crate::with_db;

#[derive(Clone, FromRow)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password: String,
    pub is_active: bool,
    /// Moves on when all the user's sessions are ended; a session carries the epoch it began in.
    pub session_epoch: i64,
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
    #[error("That username looks too much like an existing one. Please choose another.")]
    LooksLike,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Usernames are one when their keys are ([`username_key`]): `ＴＥＳＴ` and `Test` find `test`.
pub async fn find_by_username(db: &Db, username: &str) -> sqlx::Result<Option<User>> {
    with_db!(db, p => sqlx::query_as::<_, User>(
        "SELECT id, username, password, is_active, session_epoch FROM users WHERE username_key = $1",
    )
    .bind(username_key(username))
    .fetch_optional(p)
    .await)
}

/// Why a user row's name could not be written: the same name, or one that looks like it.
async fn name_conflict(db: &Db, username: &str) -> sqlx::Result<CreateUserError> {
    let same = with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT id FROM users WHERE username_key = $1",
    )
    .bind(username_key(username))
    .fetch_optional(p)
    .await)?;
    Ok(match same {
        Some(_) => CreateUserError::Taken,
        None => CreateUserError::LooksLike,
    })
}

/// Fills in the name keys of rows written before they existed (migration 0007), at start-up.
/// Two old rows whose names are now one (`Émile` and `émile` on SQLite, which folded ASCII
/// only) cannot both keep them: the later one's key gets a `#id` suffix, which no typed name
/// has, and a warning names both; an admin renames it.
pub async fn fill_username_keys(db: &Db) -> sqlx::Result<()> {
    let rows: Vec<(i64, String)> = with_db!(db, p => sqlx::query_as(
        "SELECT id, username FROM users WHERE username_key IS NULL OR username_skeleton IS NULL ORDER BY id",
    )
    .fetch_all(p)
    .await)?;
    for (id, username) in rows {
        let (key, skeleton) = (username_key(&username), username_skeleton(&username));
        let set = |key: String, skeleton: String| async move {
            with_db!(db, p => sqlx::query(
                "UPDATE users SET username_key = $1, username_skeleton = $2 WHERE id = $3",
            )
            .bind(key)
            .bind(skeleton)
            .bind(id)
            .execute(p)
            .await
            .map(|_| ()))
        };
        match set(key.clone(), skeleton.clone()).await {
            Err(e) if db::is_unique_violation(&e) => {
                tracing::warn!(
                    user = id,
                    username = %username,
                    "this username is the same as, or looks like, an older user's: it cannot log in by name until renamed"
                );
                set(format!("{key}#{id}"), format!("{skeleton}#{id}")).await?;
            }
            other => other?,
        }
    }
    Ok(())
}

pub async fn find(db: &Db, id: i64) -> sqlx::Result<Option<User>> {
    with_db!(db, p => sqlx::query_as::<_, User>(
        "SELECT id, username, password, is_active, session_epoch FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(p)
    .await)
}

/// Creates a user named `username` (as [`crate::users::validation::Username`] gives it).
/// The unique indexes on its key and skeleton refuse the same name and look-alikes, also
/// between simultaneous sign-ups.
pub async fn create(db: &Db, username: &str, password_hash: &str) -> Result<i64, CreateUserError> {
    let res = with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "INSERT INTO users (username, username_key, username_skeleton, password, date_joined) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(username)
    .bind(username_key(username))
    .bind(username_skeleton(username))
    .bind(password_hash)
    .bind(db::now())
    .fetch_one(p)
    .await);
    match res {
        Ok(id) => Ok(id),
        Err(e) if db::is_unique_violation(&e) => Err(name_conflict(db, username).await?),
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

/// Ends every session of the user, and sets a new password hash if one is given (then the
/// user's password-reset links go too), in one transaction: the rows go, and the session epoch moves on so that no session begun before
/// can be written afterwards (`db::session_store`). Returns the new epoch, which the caller's
/// own new session carries. The caller clears the in-memory sessions
/// (`AppSessionStore::forget_cached`).
pub async fn end_sessions(db: &Db, id: i64, new_password: Option<&str>) -> sqlx::Result<i64> {
    let delete = format!(
        "DELETE FROM {} WHERE user_id = $1",
        crate::db::session_store::table(db)
    );
    with_db!(db, p => {
        let mut tx = p.begin().await?;
        let epoch: i64 = sqlx::query_scalar(
            "UPDATE users SET session_epoch = session_epoch + 1, password = COALESCE($1, password) \
             WHERE id = $2 RETURNING session_epoch",
        )
        .bind(new_password)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(&delete).bind(id).execute(&mut *tx).await?;
        if new_password.is_some() {
            // A new password makes every reset link of the user worthless.
            sqlx::query("DELETE FROM password_reset_tokens WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(epoch)
    })
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

/// Stores a reset link's token hash for `user`, valid until `expires_at`, in place of any link
/// the user had (one link at a time: a new one makes the older ones worthless, also when two
/// are made at once: the user's row is locked first).
pub async fn add_reset_token(
    db: &Db,
    token_hash: &str,
    user: i64,
    expires_at: i64,
) -> sqlx::Result<()> {
    let lock = db.lock_row("users");
    with_db!(db, p => {
        let mut tx = p.begin_with(db.begin_write()).await?;
        // Two at once for one user: the second waits here, then deletes the first's row.
        if let Some(lock) = &lock {
            sqlx::query(lock).bind(user).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM password_reset_tokens WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO password_reset_tokens (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user)
        .bind(db::now())
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })
}

/// The accounts a self-service reset request names (`/password-reset/`): active, with a
/// confirmed address, whose username is `typed` (compared as usernames are) or whose address
/// is (ignoring ASCII case); at most `at_most`. One statement whatever was typed.
pub async fn reset_recipients(
    db: &Db,
    typed: &str,
    at_most: i64,
) -> sqlx::Result<Vec<(i64, String, String)>> {
    with_db!(db, p => sqlx::query_as::<_, (i64, String, String)>(
        "SELECT id, username, email FROM users \
         WHERE is_active AND email_confirmed AND email <> '' \
         AND (username_key = $1 OR LOWER(email) = $2) ORDER BY id LIMIT $3",
    )
    .bind(username_key(typed))
    .bind(typed.trim().to_ascii_lowercase())
    .bind(at_most)
    .fetch_all(p)
    .await)
}

/// The user of a reset link that still works: unused, unexpired, and its user active.
pub async fn reset_token_user(db: &Db, token_hash: &str) -> sqlx::Result<Option<User>> {
    with_db!(db, p => sqlx::query_as::<_, User>(
        "SELECT u.id, u.username, u.password, u.is_active, u.session_epoch \
         FROM password_reset_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > $2 AND u.is_active",
    )
    .bind(token_hash)
    .bind(db::now())
    .fetch_optional(p)
    .await)
}

/// Uses a reset link up, if it still works (as [`reset_token_user`]): one statement, so of two
/// uses at once exactly one gets the user's id.
pub async fn claim_reset_token(db: &Db, token_hash: &str) -> sqlx::Result<Option<i64>> {
    let now = db::now();
    with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "UPDATE password_reset_tokens SET used_at = $1 \
         WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 \
         AND user_id IN (SELECT id FROM users WHERE is_active) RETURNING user_id",
    )
    .bind(now)
    .bind(token_hash)
    .fetch_optional(p)
    .await)
}

/// Deletes reset links that expired or were used (housekeeping).
pub async fn prune_reset_tokens(db: &Db) -> sqlx::Result<u64> {
    with_db!(db, p => sqlx::query(
        "DELETE FROM password_reset_tokens WHERE expires_at <= $1 OR used_at IS NOT NULL",
    )
    .bind(db::now())
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
}

/// A user's email address and whether it is confirmed (`users::email`).
pub async fn email_of(db: &Db, user: i64) -> sqlx::Result<Option<(String, bool)>> {
    with_db!(db, p => sqlx::query_as::<_, (String, bool)>(
        "SELECT email, email_confirmed FROM users WHERE id = $1",
    )
    .bind(user)
    .fetch_optional(p)
    .await)
}

/// Sets a user's address as typed, unconfirmed (registration); `''` removes it.
pub async fn set_unconfirmed_email(db: &Db, user: i64, email: &str) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query(
        "UPDATE users SET email = $1, email_confirmed = FALSE WHERE id = $2",
    )
    .bind(email)
    .bind(user)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Stores a confirmation link's token hash for `user` and `email`, in place of any pending one.
pub async fn add_email_confirmation(
    db: &Db,
    token_hash: &str,
    user: i64,
    email: &str,
    expires_at: i64,
) -> sqlx::Result<()> {
    let lock = db.lock_row("users");
    with_db!(db, p => {
        let mut tx = p.begin_with(db.begin_write()).await?;
        // Two at once for one user: the second waits here, then deletes the first's row.
        if let Some(lock) = &lock {
            sqlx::query(lock).bind(user).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM email_confirmations WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO email_confirmations (token_hash, user_id, email, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user)
        .bind(email)
        .bind(db::now())
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })
}

/// The (user, address) of a confirmation link that still works, without using it.
pub async fn email_confirmation(db: &Db, token_hash: &str) -> sqlx::Result<Option<(i64, String)>> {
    with_db!(db, p => sqlx::query_as::<_, (i64, String)>(
        "SELECT c.user_id, c.email FROM email_confirmations c JOIN users u ON u.id = c.user_id \
         WHERE c.token_hash = $1 AND c.expires_at > $2 AND u.is_active",
    )
    .bind(token_hash)
    .bind(db::now())
    .fetch_optional(p)
    .await)
}

/// Uses a confirmation link: in one transaction the link goes (of two uses at once one gets it)
/// and its address becomes the user's, confirmed. Returns (user, new address, the old address
/// if it was confirmed and is another one).
pub async fn confirm_email(
    db: &Db,
    token_hash: &str,
) -> sqlx::Result<Option<(i64, String, Option<String>)>> {
    let now = db::now();
    with_db!(db, p => {
        let mut tx = p.begin_with(db.begin_write()).await?;
        let Some((user, email)) = sqlx::query_as::<_, (i64, String)>(
            "DELETE FROM email_confirmations WHERE token_hash = $1 AND expires_at > $2 \
             AND user_id IN (SELECT id FROM users WHERE is_active) RETURNING user_id, email",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await? else {
            return Ok(None);
        };
        let (old, was_confirmed) = sqlx::query_as::<_, (String, bool)>(
            "SELECT email, email_confirmed FROM users WHERE id = $1",
        )
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE users SET email = $1, email_confirmed = TRUE WHERE id = $2")
            .bind(&email)
            .bind(user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let old = (was_confirmed && !old.eq_ignore_ascii_case(&email)).then_some(old);
        Ok(Some((user, email, old)))
    })
}

/// Deletes confirmation links that expired (housekeeping).
pub async fn prune_email_confirmations(db: &Db) -> sqlx::Result<u64> {
    with_db!(db, p => sqlx::query("DELETE FROM email_confirmations WHERE expires_at <= $1")
        .bind(db::now())
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}
