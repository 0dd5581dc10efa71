//! Email addresses: a user's address (`users.email`) counts, that is, is ever mailed, only once
//! a link sent to it is followed (`email_confirmed`). A confirmation link carries 32 random
//! bytes; the database keeps their keyed hash (purpose `email-confirm`, as reset links), the
//! user and the address it confirms, for [`CONFIRM_TTL`]. An address imported from a Django
//! fixture (`auth.user.email`) is kept unconfirmed and never mailed until confirmed.
//! The pages are in `accounts::email`.

use base64::Engine;
use rand::RngCore;

use super::store;
use crate::crypto::SecretKey;
use crate::db::Db;

const PURPOSE: &str = "email-confirm";

/// How long a confirmation link works: a day, as allauth's default is three and a mailbox may
/// be read the next morning; short enough that an old mail in a mailbox is worth little.
pub const CONFIRM_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The longest address (RFC 5321's path limit, and Django's `EmailField`).
pub const MAX_EMAIL: usize = 254;

/// The path of a confirmation link.
pub fn path(token: &str) -> String {
    format!("/account/email/confirm/{token}/")
}

/// An address as typed, checked: trimmed, `Ok(None)` when empty (no address), else a plain
/// `local@domain` with nothing that could break a mail header. The message says what is wrong.
pub fn parse(typed: &str) -> Result<Option<String>, String> {
    let email = typed.trim();
    if email.is_empty() {
        return Ok(None);
    }
    let bad = || Err("Enter a valid email address, such as ada@example.com.".to_string());
    if email.chars().count() > MAX_EMAIL {
        return Err(format!(
            "An email address has at most {MAX_EMAIL} characters."
        ));
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return bad();
    };
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && !"<>()[],;:\"\\@".contains(c))
    };
    if !plain(local)
        || !plain(domain)
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return bad();
    }
    Ok(Some(email.to_string()))
}

/// Shows an address without giving it away whole in a log or an event: `a***@example.com`.
pub fn masked(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "…".into(),
    }
}

fn hash(key: &SecretKey, token: &str) -> String {
    key.digest(PURPOSE, token.as_bytes())
}

fn well_formed(token: &str) -> bool {
    super::reset::well_formed(token)
}

/// Makes a link confirming `email` for `user` (replacing any pending one): the token.
pub async fn issue(db: &Db, key: &SecretKey, user: i64, email: &str) -> sqlx::Result<String> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let expires = crate::db::now() + CONFIRM_TTL.as_secs() as i64;
    store::add_email_confirmation(db, &hash(key, &token), user, email, expires).await?;
    Ok(token)
}

/// The (user, address) a link would confirm, without using it.
pub async fn peek(db: &Db, key: &SecretKey, token: &str) -> sqlx::Result<Option<(i64, String)>> {
    if !well_formed(token) {
        return Ok(None);
    }
    store::email_confirmation(db, &hash(key, token)).await
}

/// Uses the link: (user, confirmed address, the old confirmed address it replaced).
pub async fn confirm(
    db: &Db,
    key: &SecretKey,
    token: &str,
) -> sqlx::Result<Option<(i64, String, Option<String>)>> {
    if !well_formed(token) {
        return Ok(None);
    }
    store::confirm_email(db, &hash(key, token)).await
}

/// The address to mail `user` at: their address if confirmed, else none.
pub async fn confirmed(db: &Db, user: i64) -> sqlx::Result<Option<String>> {
    Ok(store::email_of(db, user)
        .await?
        .filter(|(email, ok)| *ok && !email.is_empty())
        .map(|(email, _)| email))
}

pub use store::{email_of, prune_email_confirmations as prune, set_unconfirmed_email};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        assert_eq!(parse("  "), Ok(None));
        assert_eq!(
            parse(" ada@example.com "),
            Ok(Some("ada@example.com".into()))
        );
        for bad in [
            "ada",
            "ada@",
            "@example.com",
            "ada@localhost",
            "ada@example.com\r\nBcc: eve@example.com",
            "Ada <ada@example.com>",
            "a,b@example.com",
            "ada@.example.com",
            "ada@example.com.",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn addresses_are_masked() {
        assert_eq!(masked("ada@example.com"), "a***@example.com");
    }
}
