//! The `passkeys` table (a user's WebAuthn credentials: public keys, never a secret) and
//! `passkey_challenges_used` (each login challenge accepted once).

use crate::db::{self, Db};
use crate::with_db;

/// One passkey as the pages show it and the ceremonies use it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Stored {
    pub id: i64,
    pub user_id: i64,
    pub credential_id: String,
    pub user_handle: String,
    pub name: String,
    /// webauthn-rs's `Passkey` as JSON (public key, counter, backup flags).
    pub passkey: String,
    pub backup_eligible: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

const COLUMNS: &str = "id, user_id, credential_id, user_handle, name, passkey, backup_eligible, \
                       created_at, last_used_at";

pub async fn of_user(db: &Db, user: i64) -> sqlx::Result<Vec<Stored>> {
    let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY id");
    with_db!(db, p => sqlx::query_as::<_, Stored>(&sql)
        .bind(user)
        .fetch_all(p)
        .await)
}

pub async fn has_any(db: &Db, user: i64) -> sqlx::Result<bool> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM passkeys WHERE user_id = $1",
    )
    .bind(user)
    .fetch_one(p)
    .await
    .map(|n| n > 0))
}

/// The passkey with this credential ID (base64url), whoever's it is.
pub async fn by_credential(db: &Db, credential_id: &str) -> sqlx::Result<Option<Stored>> {
    let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1");
    with_db!(db, p => sqlx::query_as::<_, Stored>(&sql)
        .bind(credential_id)
        .fetch_optional(p)
        .await)
}

/// What [`add`] stores.
pub struct New<'a> {
    pub user: i64,
    pub credential_id: &'a str,
    pub user_handle: &'a str,
    pub name: &'a str,
    pub passkey: &'a str,
    pub backup_eligible: bool,
}

/// Adds a passkey; false if its credential ID is already stored (for anyone).
pub async fn add(db: &Db, new: New<'_>) -> sqlx::Result<bool> {
    with_db!(db, p => sqlx::query(
        "INSERT INTO passkeys (user_id, credential_id, user_handle, name, passkey, \
         backup_eligible, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (credential_id) DO NOTHING",
    )
    .bind(new.user)
    .bind(new.credential_id)
    .bind(new.user_handle)
    .bind(new.name)
    .bind(new.passkey)
    .bind(i64::from(new.backup_eligible))
    .bind(db::now())
    .execute(p)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// After a login: the credential's new state (counter, backup flags) and when it was used.
pub async fn used(db: &Db, id: i64, passkey: &str, backup_eligible: bool) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query(
        "UPDATE passkeys SET passkey = $1, backup_eligible = $2, last_used_at = $3 WHERE id = $4",
    )
    .bind(passkey)
    .bind(i64::from(backup_eligible))
    .bind(db::now())
    .bind(id)
    .execute(p)
    .await
    .map(|_| ()))
}

/// Renames one of the user's passkeys; false if it is not theirs.
pub async fn rename(db: &Db, user: i64, id: i64, name: &str) -> sqlx::Result<bool> {
    with_db!(db, p => sqlx::query("UPDATE passkeys SET name = $1 WHERE id = $2 AND user_id = $3")
        .bind(name)
        .bind(id)
        .bind(user)
        .execute(p)
        .await
        .map(|r| r.rows_affected() == 1))
}

/// Removes one of the user's passkeys: its name, if it was theirs.
pub async fn remove(db: &Db, user: i64, id: i64) -> sqlx::Result<Option<String>> {
    with_db!(db, p => sqlx::query_scalar::<_, String>(
        "DELETE FROM passkeys WHERE id = $1 AND user_id = $2 RETURNING name",
    )
    .bind(id)
    .bind(user)
    .fetch_optional(p)
    .await)
}

/// Removes every passkey of the user (the admin's reset); how many there were.
pub async fn remove_all(db: &Db, user: i64) -> sqlx::Result<u64> {
    with_db!(db, p => sqlx::query("DELETE FROM passkeys WHERE user_id = $1")
        .bind(user)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}

/// Claims a login challenge: true for the first request that answers it, false for any other
/// (sent at the same time, or a replay), in one statement.
pub async fn claim_challenge(db: &Db, challenge: &str) -> sqlx::Result<bool> {
    with_db!(db, p => sqlx::query(
        "INSERT INTO passkey_challenges_used (challenge, used_at) VALUES ($1, $2) \
         ON CONFLICT (challenge) DO NOTHING",
    )
    .bind(challenge)
    .bind(db::now())
    .execute(p)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Forgets claimed challenges older than `before` (a ceremony state older than
/// [`super::STATE_LIFETIME`] is refused anyway).
pub async fn prune_challenges(db: &Db, before: i64) -> sqlx::Result<u64> {
    with_db!(db, p => sqlx::query("DELETE FROM passkey_challenges_used WHERE used_at < $1")
        .bind(before)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}
