//! The `recovery_codes` table: a user's codes as keyed hashes, each used once.

use crate::db::{self, Db};
use crate::with_db;

/// Replaces the user's codes with these hashes, in one transaction.
pub async fn replace(db: &Db, user: i64, hashes: &[String]) -> sqlx::Result<()> {
    with_db!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        for h in hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user)
                .bind(h)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    })
}

/// Uses the code with this hash if it is the user's and unused, in one statement: of two
/// requests with the same code, one wins.
pub async fn use_code(db: &Db, user: i64, hash: &str) -> sqlx::Result<bool> {
    with_db!(db, p => sqlx::query(
        "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
    )
    .bind(db::now())
    .bind(user)
    .bind(hash)
    .execute(p)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// How many unused codes the user has.
pub async fn left(db: &Db, user: i64) -> sqlx::Result<i64> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user)
    .fetch_one(p)
    .await)
}

pub async fn remove_all(db: &Db, user: i64) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user)
        .execute(p)
        .await
        .map(|_| ()))
}
