//! Vote receipts (docs/polls.md, "Receipts and the sealed result").
//!
//! When a vote is recorded the voter is shown a receipt once: 20 random bytes (160 bits), in
//! RFC 4648 base32 (letters and the digits 2–7: nothing to confuse, no case to get wrong), in
//! eight groups of four joined by `-`. Only the SHA-256 of the receipt's 32 characters (without
//! the dashes, in capitals), in lowercase hex, is stored with the vote: `printf %s CODE |
//! sha256sum` gives the same. Cost on the vote path: 20 bytes from the thread's RNG and one
//! SHA-256 of 32 bytes, about a microsecond, and 64 bytes more per vote row.
//!
//! **Shown once, without a session write** ([`Shown`]). The receipt goes to the page after the
//! vote in a cookie sealed under the server's key (XChaCha20-Poly1305, `crypto::SecretKey`) for
//! this user, poll and session, on the poll's own paths only, for ten minutes at most; the page
//! that shows it clears it. It first went as a flash message in the session: a session write
//! per vote, and one more to take it, which cut the votes a second to 40% on SQLite (23,370 →
//! 9,302) and 55% on PostgreSQL (7,728 → 4,287) against the release before receipts, and raised
//! their p99 from 12–13 ms to 20–23 ms (`AB_ONLY=votes bash bench/ab.sh`, docs/benchmarks-history.md).

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::crypto::SecretKey;

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

/// The cookie that carries a new receipt to the next page.
pub const COOKIE: &str = "pollstr_receipt";
/// How long a receipt waits for its page, in seconds (the browser follows the vote's redirect at
/// once; this bounds how long the sealed receipt stays in the browser if it does not).
const SHOWN_WITHIN: i64 = 600;

/// What the page after a vote shows once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    pub code: String,
    /// The poll's results wait for its close (the voter is sent to the poll's page).
    pub results_wait: bool,
}

/// Who and what a sealed receipt is for: it opens for this user, poll and session only.
fn owner(user: i64, question: i64, session: &str) -> String {
    format!("receipt:{user}:{question}:{session}")
}

impl Shown {
    /// The messages the page shows (success messages, as the flash messages are shown).
    pub fn messages(&self) -> Vec<crate::web::Flash> {
        let mut texts = vec![format!(
            "Your vote was counted. Your receipt: {}. Copy it now: it is shown only once. When \
             the poll closes, its SHA-256 is in the poll's audit file.",
            self.code
        )];
        if self.results_wait {
            texts.push("The results of this poll are shown when it closes.".into());
        }
        texts
            .into_iter()
            .map(|text| crate::web::Flash {
                level: crate::web::Level::Success,
                text,
            })
            .collect()
    }

    /// The `Set-Cookie` value that carries this to the poll's pages, sealed at `now`.
    pub fn cookie(
        &self,
        key: &SecretKey,
        user: i64,
        question: i64,
        session: &str,
        now: i64,
        secure: bool,
    ) -> String {
        let plain = format!("{now}:{}:{}", u8::from(self.results_wait), self.code);
        let sealed = key.seal(plain.as_bytes(), &owner(user, question, session));
        cookie_line(question, &sealed, SHOWN_WITHIN, secure)
    }

    /// What a sealed cookie value carries, if it was sealed under `key` for this user, poll and
    /// session within [`SHOWN_WITHIN`] of `now` (`None`: anything else, altered or old).
    pub fn open(
        key: &SecretKey,
        sealed: &str,
        user: i64,
        question: i64,
        session: &str,
        now: i64,
    ) -> Option<Shown> {
        let plain = key.open(sealed, &owner(user, question, session))?;
        let plain = String::from_utf8(plain).ok()?;
        let mut parts = plain.splitn(3, ':');
        let at: i64 = parts.next()?.parse().ok()?;
        let results_wait = parts.next()? == "1";
        let code = parts.next()?.to_string();
        (now - at <= SHOWN_WITHIN && at <= now + 60).then_some(Shown { code, results_wait })
    }
}

/// The `Set-Cookie` value that clears the receipt cookie of a poll (it was shown).
pub fn clearing_cookie(question: i64, secure: bool) -> String {
    cookie_line(question, "", 0, secure)
}

fn cookie_line(question: i64, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/polls/{question}/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_cookie_opens_once_for_its_user_poll_and_session_only() {
        let key = SecretKey::generate();
        let shown = Shown {
            code: Receipt::new().code,
            results_wait: true,
        };
        let now = 1_000_000;
        let line = shown.cookie(&key, 7, 3, "sid", now, true);
        assert!(line.starts_with("pollstr_receipt="));
        assert!(line.ends_with("; Path=/polls/3/; Max-Age=600; HttpOnly; SameSite=Strict; Secure"));
        assert!(!line.contains(&shown.code) && !line.contains(&shown.code.replace('-', "")));
        let sealed = &line["pollstr_receipt=".len()..line.find(';').unwrap()];
        assert_eq!(
            Shown::open(&key, sealed, 7, 3, "sid", now + 5),
            Some(shown.clone())
        );
        // Another user, poll, session or key; too late; altered.
        assert_eq!(Shown::open(&key, sealed, 8, 3, "sid", now), None);
        assert_eq!(Shown::open(&key, sealed, 7, 4, "sid", now), None);
        assert_eq!(Shown::open(&key, sealed, 7, 3, "other", now), None);
        assert_eq!(
            Shown::open(&SecretKey::generate(), sealed, 7, 3, "sid", now),
            None
        );
        assert_eq!(Shown::open(&key, sealed, 7, 3, "sid", now + 601), None);
        assert_eq!(Shown::open(&key, &sealed[1..], 7, 3, "sid", now), None);
        assert_eq!(Shown::open(&key, "", 7, 3, "sid", now), None);
        let texts: Vec<String> = shown.messages().into_iter().map(|m| m.text).collect();
        assert!(texts[0].contains(&format!("Your receipt: {}.", shown.code)));
        assert_eq!(
            texts[1],
            "The results of this poll are shown when it closes."
        );
        assert_eq!(
            clearing_cookie(3, false),
            "pollstr_receipt=; Path=/polls/3/; Max-Age=0; HttpOnly; SameSite=Strict"
        );
    }

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
