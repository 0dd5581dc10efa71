//! Queries on `phone_numbers`: a number belongs to a user once it is proven, and to one user only.

use crate::db::{self, Db};
use crate::with_db;

use super::phone::PhoneNumber;

pub async fn of_user(db: &Db, user_id: i64) -> sqlx::Result<Option<PhoneNumber>> {
    let n = with_db!(db, p => sqlx::query_scalar::<_, String>("SELECT number FROM phone_numbers WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(p)
        .await)?;
    Ok(n.map(PhoneNumber::from_stored))
}

/// The user who holds `number`, if any.
pub async fn owner(db: &Db, number: &PhoneNumber) -> sqlx::Result<Option<i64>> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>("SELECT user_id FROM phone_numbers WHERE number = $1")
        .bind(number.e164())
        .fetch_optional(p)
        .await)
}

/// Binds a proven number to the user (replacing theirs). False when another account holds it.
pub async fn bind(db: &Db, user_id: i64, number: &PhoneNumber) -> sqlx::Result<bool> {
    let res = with_db!(db, p => sqlx::query(
        "INSERT INTO phone_numbers (user_id, number, verified_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET number = excluded.number, verified_at = excluded.verified_at",
    )
    .bind(user_id)
    .bind(number.e164())
    .bind(db::now())
    .execute(p)
    .await
    .map(|r| r.rows_affected()));
    match res {
        Ok(_) => Ok(true),
        Err(e) if db::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}
