//! Secrets at rest (an authenticator's TOTP secret): sealed with XChaCha20-Poly1305 under the
//! server's key (`POLLSTR_SECRET_KEY`, 32 bytes), with a random 24-byte nonce per secret and
//! the owner as associated data, so a sealed value copied to another user's row does not open.
//! Values kept only to be compared (recovery codes) are keyed hashes under the same key
//! ([`SecretKey::digest`]): a copy of the database alone cannot be searched for them.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `bytes` random bytes from the OS CSPRNG, as lowercase hex (ids, not secrets at rest).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The server's key for secrets at rest. `Debug` does not show it.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> SecretKey {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        SecretKey(key)
    }

    /// A key written as 32 bytes in URL-safe base64 (43 characters, as [`SecretKey::encode`]
    /// writes it) or in hex (64 characters).
    pub fn parse(text: &str) -> Option<SecretKey> {
        let text = text.trim();
        let bytes = if text.len() == 64 {
            hex::decode(text).ok()?
        } else {
            B64.decode(text.trim_end_matches('=')).ok()?
        };
        Some(SecretKey(bytes.try_into().ok()?))
    }

    pub fn encode(&self) -> String {
        B64.encode(self.0)
    }

    /// HMAC-SHA-256 of `value` for `purpose`, in base64: equal values give equal digests.
    pub fn digest(&self, purpose: &str, value: &[u8]) -> String {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        B64.encode(mac.finalize().into_bytes())
    }

    /// `plaintext` sealed for `owner`: base64 of nonce and ciphertext.
    pub fn seal(&self, plaintext: &[u8], owner: &str) -> String {
        let cipher = XChaCha20Poly1305::new(&Key::from(self.0));
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: owner.as_bytes(),
                },
            )
            .expect("encryption into a Vec cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        B64.encode(out)
    }

    /// The plaintext of a value [`SecretKey::seal`]ed for `owner` under this key; `None` if it
    /// was sealed under another key, for another owner, or altered.
    pub fn open(&self, sealed: &str, owner: &str) -> Option<Vec<u8>> {
        let bytes = B64.decode(sealed).ok()?;
        if bytes.len() < 24 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().ok()?;
        XChaCha20Poly1305::new(&Key::from(self.0))
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: owner.as_bytes(),
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_owner() {
        let key = SecretKey::generate();
        let sealed = key.seal(b"the secret", "totp:1");
        assert!(!sealed.contains("the secret"));
        assert_eq!(key.open(&sealed, "totp:1").unwrap(), b"the secret");
        assert!(key.open(&sealed, "totp:2").is_none(), "another owner");
        assert!(
            SecretKey::generate().open(&sealed, "totp:1").is_none(),
            "another key"
        );
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert!(key
            .open(std::str::from_utf8(&altered).unwrap(), "totp:1")
            .is_none());
        // Two seals of one secret differ (a fresh nonce each).
        assert_ne!(key.seal(b"x", "o"), key.seal(b"x", "o"));
    }

    #[test]
    fn digests_depend_on_key_purpose_and_value() {
        let key = SecretKey::generate();
        let d = key.digest("recovery", b"abcde-fghij");
        assert_eq!(d, key.digest("recovery", b"abcde-fghij"));
        assert_ne!(d, key.digest("recovery", b"abcde-fghik"));
        assert_ne!(d, key.digest("other", b"abcde-fghij"));
        assert_ne!(d, SecretKey::generate().digest("recovery", b"abcde-fghij"));
    }

    #[test]
    fn keys_parse_from_base64_or_hex() {
        let key = SecretKey::generate();
        let again = SecretKey::parse(&key.encode()).unwrap();
        assert_eq!(again.0, key.0);
        assert_eq!(SecretKey::parse(&hex::encode(key.0)).unwrap().0, key.0);
        for bad in ["", "short", &"a".repeat(63), &key.encode()[..40]] {
            assert!(SecretKey::parse(bad).is_none(), "{bad}");
        }
        assert!(!format!("{key:?}").contains(&key.encode()));
    }
}
