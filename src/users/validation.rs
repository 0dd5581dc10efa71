//! Usernames (normalised, compared case-folded, look-alikes refused) and Django's password rules (`AUTH_PASSWORD_VALIDATORS`): minimum length 8, not
//! entirely numeric, not a common password (Django's list of 20,000, shipped with Django under
//! the BSD licence), not too similar to the username. One message per broken rule.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use unicode_normalization::UnicodeNormalization;
use unicode_security::MixedScript;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .map(str::trim)
        .collect()
});

pub const MIN_LENGTH: usize = 8;
pub const MAX_PASSWORD: usize = 4096;
pub const MAX_USERNAME: usize = 150;
const MAX_SIMILARITY: f64 = 0.7;

/// A username as Django accepts it: 1–150 characters, letters, digits and `@ . + - _`, stored
/// NFKC-normalised (as Django's `normalize_username`), and in one script (plus digits and
/// punctuation), so that `pаypal` with a Cyrillic `а` is refused outright.
///
/// Two usernames are the same when their [`username_key`]s are equal, and too alike when their
/// [`username_skeleton`]s are: the database holds both, each under a unique index, so the rule
/// is the same on SQLite and PostgreSQL and holds between simultaneous sign-ups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Username, String> {
        let s: String = raw.trim().nfkc().collect();
        let s = s.as_str();
        if s.is_empty() {
            return Err("Enter a username.".into());
        }
        if s.chars().count() > MAX_USERNAME {
            return Err(format!("Usernames have at most {MAX_USERNAME} characters."));
        }
        if !s
            .chars()
            .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
        {
            return Err("Enter a valid username. It may contain only letters, numbers, and @/./+/-/_ characters.".into());
        }
        if !s.is_single_script() {
            return Err("Use the letters of one alphabet in a username: mixing them makes names that look like other people's.".into());
        }
        Ok(Username(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The key usernames are compared by: NFKC, Unicode full case folding, NFKC again (Unicode's
/// "compatibility caseless match"), so `ＴＥＳＴ`, `Test` and `test` are one name, and so are
/// `Straße` and `STRASSE`.
pub fn username_key(raw: &str) -> String {
    let nfkc: String = raw.trim().nfkc().collect();
    caseless::default_case_fold_str(&nfkc).nfkc().collect()
}

/// What a username looks like: the Unicode confusables skeleton (UTS #39) of its key, folded
/// again so that `0` and `o`, or `1`, `I` and `l`, meet. Two names with one skeleton are too
/// easily mistaken for each other.
pub fn username_skeleton(raw: &str) -> String {
    let key = username_key(raw);
    let skeleton: String = unicode_security::skeleton(&key).collect();
    caseless::default_case_fold_str(&skeleton).nfkc().collect()
}

/// Every rule `password` breaks, as user-facing messages (empty when it is acceptable).
pub fn password_problems(password: &str, username: &str) -> Vec<String> {
    let mut out = Vec::new();
    if password.chars().count() < MIN_LENGTH {
        out.push(format!(
            "This password is too short. It must contain at least {MIN_LENGTH} characters."
        ));
    }
    if password.chars().count() > MAX_PASSWORD {
        out.push(format!(
            "This password is too long. Use at most {MAX_PASSWORD} characters."
        ));
    }
    if is_too_similar(password, username) {
        out.push("The password is too similar to the username.".into());
    }
    if COMMON.contains(password.to_lowercase().trim()) {
        out.push("This password is too common.".into());
    }
    if !password.is_empty() && password.chars().all(|c| c.is_numeric()) {
        out.push("This password is entirely numeric.".into());
    }
    out
}

/// Django's `UserAttributeSimilarityValidator` on the username: the whole name and its parts
/// split on non-word characters, compared with difflib's `quick_ratio`.
fn is_too_similar(password: &str, username: &str) -> bool {
    let pw = password.to_lowercase();
    let name = username.to_lowercase();
    if name.is_empty() {
        return false;
    }
    let mut parts: Vec<&str> = name
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .collect();
    parts.push(&name);
    parts.into_iter().filter(|p| !p.is_empty()).any(|part| {
        let pw_len = pw.chars().count();
        let part_len = part.chars().count();
        // Django skips parts far shorter than the password (`exceeds_maximum_length_ratio`).
        let bound = MAX_SIMILARITY / 2.0 * pw_len as f64;
        if pw_len >= 10 * part_len && (part_len as f64) < bound {
            return false;
        }
        quick_ratio(&pw, part) >= MAX_SIMILARITY
    })
}

/// difflib `SequenceMatcher.quick_ratio`: 2·(multiset intersection) / (len a + len b).
fn quick_ratio(a: &str, b: &str) -> f64 {
    let total = a.chars().count() + b.chars().count();
    if total == 0 {
        return 1.0;
    }
    let mut counts: HashMap<char, i64> = HashMap::new();
    for c in b.chars() {
        *counts.entry(c).or_default() += 1;
    }
    let mut matches = 0;
    for c in a.chars() {
        if let Some(n) = counts.get_mut(&c) {
            if *n > 0 {
                *n -= 1;
                matches += 1;
            }
        }
    }
    2.0 * matches as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_has_its_message() {
        assert_eq!(
            password_problems("Xk3!pq9z#Lm", "alice"),
            Vec::<String>::new()
        );
        assert!(password_problems("short", "alice")[0].contains("too short"));
        assert!(password_problems("password", "alice")
            .iter()
            .any(|m| m.contains("too common")));
        assert!(password_problems("81726354912", "alice")
            .iter()
            .any(|m| m.contains("entirely numeric")));
        assert!(password_problems("alice2024x", "alice2024")
            .iter()
            .any(|m| m.contains("too similar")));
        assert!(password_problems("test1234", "test")
            .iter()
            .any(|m| m.contains("too common")));
    }

    #[test]
    fn usernames() {
        assert_eq!(
            Username::parse("  bob.smith+1@x ").unwrap().as_str(),
            "bob.smith+1@x"
        );
        assert!(Username::parse("").is_err());
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse("<script>").is_err());
        assert!(Username::parse(&"a".repeat(151)).is_err());
        // Stored NFKC: full-width letters become ASCII; accents compose.
        assert_eq!(Username::parse("ＴＥＳＴ").unwrap().as_str(), "TEST");
        assert_eq!(Username::parse("E\u{301}mile").unwrap().as_str(), "Émile");
        // One script per name.
        assert!(Username::parse("p\u{430}ypal").is_err());
        assert!(Username::parse("Émile_2024").is_ok());
        assert!(Username::parse("山田たろう").is_ok());
    }

    #[test]
    fn keys_fold_case_and_width() {
        for (a, b) in [
            ("test", "ＴＥＳＴ"),
            ("Émile", "émile"),
            ("E\u{301}MILE", "émile"),
            ("Straße", "STRASSE"),
            ("ǅemal", "džemal"),
        ] {
            assert_eq!(username_key(a), username_key(b), "{a} {b}");
        }
        assert_ne!(username_key("emile"), username_key("émile"));
    }

    #[test]
    fn look_alikes_share_a_skeleton() {
        for (a, b) in [
            ("bob", "b0b"),
            ("paypal", "p\u{430}yp\u{430}l"),
            ("admin", "\u{430}dmin"),
            ("will", "wi11"),
            ("test", "ＴＥＳＴ"),
        ] {
            assert_eq!(username_skeleton(a), username_skeleton(b), "{a} {b}");
        }
        assert_ne!(username_skeleton("alice"), username_skeleton("alicia"));
        assert_ne!(username_skeleton("test"), username_skeleton("tests"));
    }
}
