//! Queries on `phone_numbers`: a number belongs to a user once it is proven, and to one user only.

use crate::db::{self, Db};
use crate::with_db;

use super::super::phone::PhoneNumber;

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

/// What binding a proven number did.
#[derive(Debug, PartialEq, Eq)]
pub enum Bind {
    Bound,
    /// Another account holds the number.
    Taken,
    /// The user's number is no longer the one this proof was allowed to replace (another of
    /// their sessions proved a number meanwhile): nothing was changed.
    Changed,
}

/// Binds a proven number to the user, in one statement: as their first number, in place of
/// `replaces` (the number they had when the code was sent, which the password, if it was
/// asked for, allowed to replace), or again in place of itself.
pub async fn bind(
    db: &Db,
    user_id: i64,
    number: &PhoneNumber,
    replaces: Option<&str>,
) -> sqlx::Result<Bind> {
    let res = with_db!(db, p => sqlx::query(
        "INSERT INTO phone_numbers (user_id, number, verified_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET number = excluded.number, verified_at = excluded.verified_at \
         WHERE phone_numbers.number = excluded.number OR phone_numbers.number = $4",
    )
    .bind(user_id)
    .bind(number.e164())
    .bind(db::now())
    .bind(replaces)
    .execute(p)
    .await
    .map(|r| r.rows_affected()));
    match res {
        Ok(0) => Ok(Bind::Changed),
        Ok(_) => Ok(Bind::Bound),
        Err(e) if db::is_unique_violation(&e) => Ok(Bind::Taken),
        Err(e) => Err(e),
    }
}
