//! The one place that decides where `next` may point: a path on this site, nothing else.

/// A redirect target known to stay on this site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafeNext(String);

pub const DEFAULT_NEXT: &str = "/polls/";

impl SafeNext {
    /// Accepts a local absolute path (`/polls/1/`), refuses everything that could leave the site:
    /// absolute URLs, `//host`, `/\host`, `javascript:`, control characters, and any of these
    /// hidden behind percent-encoding.
    pub fn parse(raw: &str) -> Option<SafeNext> {
        if raw.is_empty() || raw.len() > 2000 || !is_local(raw) {
            return None;
        }
        // Decode repeatedly so that double encoding cannot hide `//` or `\`.
        let mut current = raw.to_string();
        for _ in 0..4 {
            let decoded = percent_decode(&current)?;
            if !is_local(&decoded) {
                return None;
            }
            if decoded == current {
                return Some(SafeNext(raw.to_string()));
            }
            current = decoded;
        }
        None
    }

    /// `raw` if it is safe, else the poll list.
    pub fn or_default(raw: Option<&str>) -> SafeNext {
        raw.and_then(SafeNext::parse)
            .unwrap_or_else(|| SafeNext(DEFAULT_NEXT.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `path` with this as its `next` (`/2fa/?next=%2Fpolls%2F1%2F`): every page that sends a
    /// visitor on, and back here afterwards, builds its address with this.
    pub fn url(&self, path: &str) -> String {
        format!("{path}?next={}", self.query_value())
    }

    /// A redirect to `path` with this as its `next`.
    pub fn redirect(&self, path: &str) -> axum::response::Response {
        use axum::response::IntoResponse;
        axum::response::Redirect::to(&self.url(path)).into_response()
    }

    /// The value encoded for use inside a query string (`?next=…`).
    pub fn query_value(&self) -> String {
        url_encode(&self.0)
    }
}

fn is_local(s: &str) -> bool {
    s.starts_with('/')
        && !s.starts_with("//")
        && !s.contains('\\')
        && !s.chars().any(char::is_control)
}

/// Decodes `%XX` escapes; a `%` without two hex digits after it is refused (the crate would
/// keep it as it is, and a malformed address is nobody's `next`).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let well_formed = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'%')
        .all(|(i, _)| {
            bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        });
    if !well_formed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// What [`url_encode`] leaves as it is: unreserved characters and `/`.
const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes everything but unreserved characters and `/`.
pub fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_pass() {
        for ok in [
            "/",
            "/polls/",
            "/polls/1/?page=2",
            "/polls/1/results/#top",
            "/a%20b/",
        ] {
            assert_eq!(SafeNext::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn everything_off_site_is_refused() {
        for bad in [
            "https://evil.example/",
            "http:/evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "/%2F%2Fevil.example",
            "%2F%2Fevil.example",
            "/%5Cevil.example",
            "/%252F%252Fevil.example",
            "/%2525252F%2525252Fevil.example",
            "/\t/evil.example",
            "/%09/evil.example",
            "/%0d%0aSet-Cookie:x",
            "polls/",
            "",
            "/%zz",
        ] {
            assert!(SafeNext::parse(bad).is_none(), "{bad:?} passed");
        }
    }

    #[test]
    fn default_is_the_poll_list() {
        assert_eq!(SafeNext::or_default(Some("//x")).as_str(), "/polls/");
        assert_eq!(SafeNext::or_default(None).as_str(), "/polls/");
    }

    #[test]
    fn encoding_for_query() {
        assert_eq!(url_encode("/polls/1/?a=b&c"), "/polls/1/%3Fa%3Db%26c");
    }
}

/// `?next=…` on a GET page.
#[derive(serde::Deserialize)]
pub struct NextQuery {
    pub next: Option<String>,
}
