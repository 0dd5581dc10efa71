//! Password hashing: argon2id for new hashes; Django `pbkdf2_sha256$…` hashes still verify, and
//! are upgraded to argon2id at the next successful login (as Django's `must_update` does).
//!
//! Hashing is slow on purpose, so it runs on the blocking pool, and a semaphore bounds how many
//! run at once: a login storm cannot take every core or unbounded memory (argon2id uses 19 MiB).

use std::sync::{Arc, LazyLock};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::Engine;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// A hash of a password that no one knows, checked when the user is unknown so that an unknown
/// username costs as much time as a wrong password.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_blocking("pollstr-dummy-password-for-timing"));

/// At most this many hashes at once (one per core: more would only queue inside the pool).
static HASHING: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Arc::new(Semaphore::new(n))
});

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    /// Valid, and the stored hash should be replaced by this argon2id hash.
    ValidUpgrade(String),
    Invalid,
}

pub fn hash_blocking(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        // Hashing only fails for absurd parameters or an empty RNG, never for user input.
        .unwrap_or_else(|e| panic!("argon2 hashing failed: {e}"))
}

fn verify_blocking(password: &str, stored: &str) -> Verdict {
    if stored.starts_with("$argon2") {
        return match Argon2::default().verify_password(password.as_bytes(), stored) {
            Ok(()) => Verdict::Valid,
            Err(_) => Verdict::Invalid,
        };
    }
    if stored.starts_with("pbkdf2_sha256$") {
        return if verify_django_pbkdf2(password, stored) {
            Verdict::ValidUpgrade(hash_blocking(password))
        } else {
            Verdict::Invalid
        };
    }
    Verdict::Invalid
}

/// Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`: the salt is used as raw ASCII
/// bytes, the hash is padded standard base64.
pub fn verify_django_pbkdf2(password: &str, stored: &str) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    let [_, iterations, salt, expected] = parts.as_slice() else {
        return false;
    };
    let Ok(iterations) = iterations.parse::<u32>() else {
        return false;
    };
    // Bound the work an imported hash can ask for.
    if iterations == 0 || iterations > 10_000_000 {
        return false;
    }
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(expected) else {
        return false;
    };
    if expected.is_empty() || expected.len() > 64 {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    pbkdf2::pbkdf2_hmac::<pbkdf2::sha2::Sha256>(
        password.as_bytes(),
        salt.as_bytes(),
        iterations,
        &mut out,
    );
    bool::from(out.ct_eq(&expected))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    let _permit = HASHING.clone().acquire_owned().await?;
    Ok(tokio::task::spawn_blocking(f).await?)
}

/// Hashes a new password with argon2id.
pub async fn hash(password: String) -> anyhow::Result<String> {
    blocking(move || hash_blocking(&password)).await
}

/// Checks `password` against `stored`; with no stored hash (unknown user) it checks a dummy hash
/// and answers `Invalid` in about the same time.
pub async fn verify(password: String, stored: Option<String>) -> anyhow::Result<Verdict> {
    blocking(move || match stored {
        Some(s) => verify_blocking(&password, &s),
        None => {
            let _ = verify_blocking(&password, &DUMMY_HASH);
            Verdict::Invalid
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str =
        "pbkdf2_sha256$24000$rk8toKlZt2vr$dsOOeY/jjjwYLqkmaT5gcRYSrtFabI+eZVgbPylP9EA=";

    #[test]
    fn django_seed_hash() {
        assert!(verify_django_pbkdf2("test1234", SEED));
        assert!(!verify_django_pbkdf2("test12345", SEED));
        assert!(!verify_django_pbkdf2(
            "test1234",
            "pbkdf2_sha256$x$salt$abc="
        ));
        assert!(!verify_django_pbkdf2(
            "test1234",
            "pbkdf2_sha256$24000$salt"
        ));
    }

    #[test]
    fn django_hash_upgrades_to_argon2() {
        match verify_blocking("test1234", SEED) {
            Verdict::ValidUpgrade(h) => {
                assert!(h.starts_with("$argon2id$"));
                assert_eq!(verify_blocking("test1234", &h), Verdict::Valid);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn argon2_round_trip_and_garbage() {
        let h = hash_blocking("correct horse");
        assert_eq!(verify_blocking("correct horse", &h), Verdict::Valid);
        assert_eq!(verify_blocking("wrong horse", &h), Verdict::Invalid);
        assert_eq!(verify_blocking("x", "!"), Verdict::Invalid);
        assert_eq!(verify_blocking("x", "$argon2id$garbage"), Verdict::Invalid);
    }
}
