//! Vote receipts (docs/polls.md, "Receipts and the sealed result").
//!
//! When a vote is recorded the voter is shown a receipt once: 20 random bytes (160 bits), in
//! RFC 4648 base32 (letters and the digits 2–7: nothing to confuse, no case to get wrong), in
//! eight groups of four joined by `-`. Only the SHA-256 of the receipt's 32 characters (without
//! the dashes, in capitals), in lowercase hex, is stored with the vote: `printf %s CODE |
//! sha256sum` gives the same. Cost on the vote path: 20 bytes from the thread's RNG and one
//! SHA-256 of 32 bytes, about a microsecond, and 64 bytes more per vote row.

use rand::RngCore;
use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new receipt: the code shown once, and the hash stored with the vote.
#[derive(Clone, Debug)]
pub struct Receipt {
    /// `ABCD-EFGH-…`: eight groups of four.
    pub code: String,
    /// SHA-256 of the code without dashes, lowercase hex.
    pub hash: String,
}

impl Receipt {
    pub fn new() -> Receipt {
        let mut bytes = [0u8; 20];
        rand::rng().fill_bytes(&mut bytes);
        Receipt::from_bytes(&bytes)
    }

    /// The receipt for these 160 bits (a new one draws them at random).
    pub fn from_bytes(bytes: &[u8; 20]) -> Receipt {
        let plain = base32(bytes);
        let hash = hash_plain(&plain);
        let groups: Vec<&str> = (0..8).map(|i| &plain[i * 4..i * 4 + 4]).collect();
        Receipt {
            code: groups.join("-"),
            hash,
        }
    }
}

impl Default for Receipt {
    fn default() -> Self {
        Receipt::new()
    }
}

/// RFC 4648 base32 of 20 bytes: 32 characters, no padding.
fn base32(bytes: &[u8; 20]) -> String {
    let mut out = String::with_capacity(32);
    for chunk in bytes.chunks(5) {
        let n = chunk.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
        for i in (0..8).rev() {
            out.push(ALPHABET[((n >> (i * 5)) & 31) as usize] as char);
        }
    }
    out
}

fn hash_plain(plain: &str) -> String {
    hex::encode(Sha256::digest(plain.as_bytes()))
}

/// The stored hash of a receipt as someone typed or pasted it (dashes, spaces and case do
/// not matter); `None` if it is not 32 base32 characters.
pub fn hash_of(typed: &str) -> Option<String> {
    let plain: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t' | '\n' | '\r'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (plain.len() == 32 && plain.bytes().all(|b| ALPHABET.contains(&b))).then(|| hash_plain(&plain))
}

/// The audit file of a poll's counted votes, from (receipt hash, choice text) rows in any
/// order: the header `receipt_sha256,choice`, then one line per vote, `HASH,CHOICE` (`-` for a
/// vote from before receipts; the choice as a CSV field, `csv::field`), sorted by their bytes;
/// every line ends with `\n`. The same votes give the same bytes on any backend or instance.
pub fn audit_file(rows: &[(Option<String>, String)]) -> String {
    let mut lines: Vec<String> = rows
        .iter()
        .map(|(hash, choice)| {
            format!(
                "{},{}\n",
                hash.as_deref().unwrap_or("-"),
                super::csv::field(choice)
            )
        })
        .collect();
    lines.sort_unstable();
    let mut out = String::from(AUDIT_HEADER);
    for line in lines {
        out.push_str(&line);
    }
    out
}

/// The audit file's first line.
pub const AUDIT_HEADER: &str = "receipt_sha256,choice\n";

/// The digest of an audit file: SHA-256 of its exact bytes, lowercase hex (as `sha256sum`).
pub fn digest(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_is_base32_in_groups_and_hashes_as_sha256sum_would() {
        let r = Receipt::from_bytes(&[0u8; 20]);
        assert_eq!(r.code, "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA");
        // printf %s AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA | sha256sum
        assert_eq!(
            r.hash,
            "22a48051594c1949deed7040850c1f0f8764537f5191be56732d16a54c1d8153"
        );
        let r = Receipt::from_bytes(&[0xff; 20]);
        assert_eq!(r.code, "7777-7777-7777-7777-7777-7777-7777-7777");
        // RFC 4648's test vector "foobar" → MZXW6YTBOI (here in 20 bytes).
        let mut b = [0u8; 20];
        b[..5].copy_from_slice(b"fooba");
        assert!(Receipt::from_bytes(&b).code.starts_with("MZXW-6YTB"));
        assert_eq!(hash_of(&r.code.to_lowercase()), Some(r.hash.clone()));
        assert_eq!(hash_of(&r.code.replace('-', " ")), Some(r.hash));
        assert_eq!(hash_of("not a receipt"), None);
        assert_eq!(hash_of(&"1".repeat(32)), None);
    }

    #[test]
    fn the_audit_file_is_sorted_and_its_digest_is_sha256sum() {
        let rows = vec![
            (Some("bb".to_string()), "Yes, of course".to_string()),
            (None, "=1+1".to_string()),
            (Some("aa".to_string()), "No".to_string()),
        ];
        let body = audit_file(&rows);
        assert_eq!(
            body,
            "receipt_sha256,choice\n-,'=1+1\naa,No\nbb,\"Yes, of course\"\n"
        );
        let mut reversed = rows.clone();
        reversed.reverse();
        assert_eq!(audit_file(&reversed), body);
        // printf 'receipt_sha256,choice\n' | sha256sum
        assert_eq!(
            digest(AUDIT_HEADER),
            "e25eeab62065ac76a523a28237430000f042837b3a8fe51a93f83c02fd3df970"
        );
    }

    #[test]
    fn receipts_differ() {
        let a = Receipt::new();
        let b = Receipt::new();
        assert_ne!(a.code, b.code);
        assert_eq!(a.code.len(), 39);
        assert_eq!(a.hash.len(), 64);
    }
}
