//! Password-reset links: a link (`/account/reset/{token}/`) carries 32 random bytes; the
//! database keeps only their keyed hash (`crypto::SecretKey::digest`, purpose
//! `password-reset`), bound to the user, valid for `RESET_LINK_TTL` and used once. A copy of
//! the database alone opens no link, and a link made for one user cannot be pointed at
//! another (the hash names the row, the row names the user). Making a new link makes the
//! user's older ones worthless; setting a password deletes them all (`store::end_sessions`).
//! The pages are in `accounts::reset`; the admin makes links (`admin::users`), and a user asks
//! for one by mail at `/password-reset/` (`accounts::forgot`, [`recipients`]).

use base64::Engine;
use rand::RngCore;

use super::store::{self, User};
use crate::crypto::SecretKey;
use crate::db::Db;

const PURPOSE: &str = "password-reset";

/// The path of a reset link.
pub fn path(token: &str) -> String {
    format!("/account/reset/{token}/")
}

/// A token as it may appear in a link (43 characters of URL-safe base64): anything else is
/// unknown without a database read.
pub fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn hash(key: &SecretKey, token: &str) -> String {
    key.digest(PURPOSE, token.as_bytes())
}

/// Makes a link for `user`, valid for `ttl`: the token, shown once and never stored.
pub async fn issue(
    db: &Db,
    key: &SecretKey,
    user: i64,
    ttl: std::time::Duration,
) -> sqlx::Result<String> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let expires = crate::db::now() + ttl.as_secs() as i64;
    store::add_reset_token(db, &hash(key, &token), user, expires).await?;
    Ok(token)
}

/// The user a link still works for (unused, unexpired, user active), without using it up.
pub async fn peek(db: &Db, key: &SecretKey, token: &str) -> sqlx::Result<Option<User>> {
    if !well_formed(token) {
        return Ok(None);
    }
    store::reset_token_user(db, &hash(key, token)).await
}

/// Uses the link up: the user's id if it still worked. Of two uses at once, one gets it.
pub async fn claim(db: &Db, key: &SecretKey, token: &str) -> sqlx::Result<Option<i64>> {
    if !well_formed(token) {
        return Ok(None);
    }
    store::claim_reset_token(db, &hash(key, token)).await
}

/// The most accounts one self-service request mails (one address may be several accounts').
pub const MAX_RECIPIENTS: i64 = 5;

/// The accounts a self-service request for `typed` (a username or an address) would mail:
/// (id, username, confirmed address), active accounts only. Anything longer than a username
/// or an address may be names nobody, without a read.
pub async fn recipients(db: &Db, typed: &str) -> sqlx::Result<Vec<(i64, String, String)>> {
    let typed = typed.trim();
    if typed.is_empty() || typed.chars().count() > super::email::MAX_EMAIL {
        return Ok(Vec::new());
    }
    store::reset_recipients(db, typed, MAX_RECIPIENTS).await
}

pub use store::prune_reset_tokens as prune;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_for_shape_before_any_read() {
        assert!(well_formed(&"a".repeat(43)));
        assert!(well_formed("abcdefghijklmnopqrstuvwxyz-_ABCDEFGHIJ01234"));
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &"a".repeat(42),
            &format!("{}/", "a".repeat(42)),
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn only_the_hash_would_be_stored() {
        let key = SecretKey::generate();
        let token = "a".repeat(43);
        assert_ne!(hash(&key, &token), token);
        assert_ne!(hash(&key, &token), hash(&SecretKey::generate(), &token));
    }
}
