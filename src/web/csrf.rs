//! CSRF protection: a random token rendered in every POST form as `csrf_token`, and checked for
//! every unsafe request before any handler runs.
//!
//! The token lives in the session once there is one (a logged-in user). An anonymous visitor's
//! forms (log in, sign up) use a token kept in its own cookie instead, as Django does: showing
//! the login form then writes nothing to the database, so a crawler or a flood of visitors
//! cannot fill the session table. A cross-site page can neither read that cookie nor set it.
//!
//! The body is read here, so its limit is decided here, before a byte of it is read: bodies
//! over [`FORM_LIMIT`] only where a page needs them and only from a session the admin lets in
//! ([`LargeBodies`]), and only [`LARGE_BODIES_AT_ONCE`] of those read at once (each may hold
//! 5 MiB: 120 at once from any signed-in user took the server from 42 MB to 387 MB).
//!
//! Defence in depth, as Django does: an unsafe request whose `Origin` (or, without one, whose
//! `Referer`) names another site is refused before its token is looked at. A site is a scheme,
//! a host and a port: an `https://` page of this host is another site to the `http://` one
//! (whoever serves that page can run script there), and the other way round. A request with
//! neither header (privacy tools strip them) relies on the token alone.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use axum::http::{header, HeaderMap, HeaderValue, Method};
use base64::Engine;
use rand::RngCore;
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use crate::config::{origin_of, without_default_port};
use crate::error::{AppError, AppResult};
use crate::session;
use crate::state::AppState;

pub const FIELD: &str = "csrf_token";
/// The anonymous visitor's token.
pub const COOKIE: &str = "pollstr_csrf";
/// Tokens are 32 random bytes in unpadded URL-safe base64.
const TOKEN_LEN: usize = 43;
/// The largest form body accepted (login, vote and 2FA forms are a few hundred bytes).
pub const FORM_LIMIT: usize = 16 * 1024;
/// The largest file an admin may upload (a fixture).
pub const UPLOAD_LIMIT: usize = 5 * 1024 * 1024;
/// The largest `multipart/form-data` body read from an admin session: [`UPLOAD_LIMIT`] and
/// room for the other fields, so that a file just over the limit reaches its handler, which
/// says so on its form. Everyone else's bodies are held to [`FORM_LIMIT`].
pub const MULTIPART_LIMIT: usize = UPLOAD_LIMIT + 64 * 1024;
/// The one page that takes an upload (the admin's fixture import).
pub const UPLOAD_PATH: &str = "/admin/fixtures/";
/// The admin's poll forms: a question and many choices, each up to 200 characters, which
/// URL-encoding makes up to nine bytes each.
const ADMIN_POLLS: &str = "/admin/polls/";
const ADMIN_FORM_LIMIT: usize = 256 * 1024;
/// How many bodies over [`FORM_LIMIT`] are read at once: at most about 21 MiB held by uploads,
/// plenty for a site's few admins.
pub const LARGE_BODIES_AT_ONCE: usize = 4;
/// What a large body over the bound is told to wait before sending again (seconds).
const LARGE_BODY_RETRY_AFTER: u64 = 5;

/// Whether a session may send a body over [`FORM_LIMIT`] (the admin's rule: `app` registers
/// `admin::may_send_large_bodies`, as this module must not depend on the admin).
pub type LargeBodyRule = for<'a> fn(
    &'a AppState,
    &'a Session,
) -> Pin<Box<dyn Future<Output = AppResult<bool>> + Send + 'a>>;

/// Who may send large bodies, and the permits bounding how many are read at once.
pub struct LargeBodies {
    rule: LargeBodyRule,
    permits: Arc<Semaphore>,
}

impl LargeBodies {
    pub fn new(rule: LargeBodyRule, at_once: usize) -> LargeBodies {
        LargeBodies {
            rule,
            permits: Arc::new(Semaphore::new(at_once)),
        }
    }
}

/// A large body's place, held until its response is made.
pub struct LargeBodyPermit {
    _held: OwnedSemaphorePermit,
}

pub async fn token(session: &Session) -> AppResult<Option<String>> {
    Ok(session::CSRF.get(session).await?)
}

/// The session's token, made on first use.
pub async fn ensure_token(session: &Session) -> AppResult<String> {
    if let Some(t) = token(session).await? {
        return Ok(t);
    }
    let t = new_token();
    session::CSRF.insert(session, t.clone()).await?;
    Ok(t)
}

/// Replaces the token (at login and at verification, with the session id).
pub async fn rotate(session: &Session) -> AppResult<()> {
    session::CSRF.insert(session, new_token()).await?;
    Ok(())
}

/// The anonymous token the request's cookie carries, if it is well-formed.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    super::cookie(headers, COOKIE)
        .filter(|t| {
            t.len() == TOKEN_LEN
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
}

/// A token made on this request for an anonymous form, to be sent as the [`COOKIE`]. The guard
/// puts an empty one in every request and sends what it holds afterwards.
#[derive(Clone, Default)]
pub struct IssuedToken(Arc<OnceLock<String>>);

impl IssuedToken {
    /// A new token, kept to be sent with the response.
    pub fn issue(&self) -> String {
        self.0.get_or_init(new_token).clone()
    }

    /// The `Set-Cookie` value for the token issued on this request, if any.
    pub fn set_cookie(&self, secure: bool) -> Option<HeaderValue> {
        let token = self.0.get()?;
        let secure = if secure { "; Secure" } else { "" };
        HeaderValue::try_from(format!(
            "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"
        ))
        .ok()
    }
}

pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An unsafe request must carry the session's token in its form body (URL-encoded, or a field
/// of a `multipart/form-data` upload). The body is read here (bounded by [`FORM_LIMIT`], or for
/// a session the admin lets in [`MULTIPART_LIMIT`] on [`UPLOAD_PATH`] and 256 KiB on the
/// admin's poll forms, [`LARGE_BODIES_AT_ONCE`] at a time (past that 503 with `Retry-After`):
/// larger is 413; by `body_timeout`: slower is 408) and handed back unchanged, with the large
/// body's permit, to be held until the response is made.
pub async fn check(
    state: &AppState,
    session: &Session,
    req: Request,
    body_timeout: Duration,
    trusted_origins: &[String],
) -> Result<(Request, Option<LargeBodyPermit>), AppError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok((req, None));
    }
    if let Some(source) = foreign_source(&req, trusted_origins) {
        tracing::warn!(path = %req.uri().path(), source = %source, "CSRF check failed: a request from another site");
        return Err(forbidden());
    }
    let boundary = multipart_boundary(req.headers());
    // Larger bodies only where a page needs them, and only from a session the admin lets in.
    let larger = match (&boundary, req.uri().path()) {
        (Some(_), UPLOAD_PATH) => Some(MULTIPART_LIMIT),
        (None, path) if path.starts_with(ADMIN_POLLS) => Some(ADMIN_FORM_LIMIT),
        _ => None,
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // A body declared small needs no permit (the common case: the admin's short poll forms).
    let larger = larger.filter(|_| declared.is_none_or(|n| n > FORM_LIMIT));
    let (limit, permit) = match larger {
        Some(limit) => match large_body_permit(state, session).await? {
            Some(permit) => (limit, Some(permit)),
            None => (FORM_LIMIT, None),
        },
        None => (FORM_LIMIT, None),
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(AppError::PayloadTooLarge);
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(body_timeout, to_bytes(body, limit));
    let bytes = read
        .await
        .map_err(|_| AppError::RequestTimeout)?
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                AppError::PayloadTooLarge
            } else {
                AppError::bad_request("The request body could not be read.")
            }
        })?;
    let given = match boundary {
        Some(boundary) => multipart_field(&bytes, boundary, FIELD).await,
        None => form_urlencoded_field(&bytes, FIELD),
    };
    let expected = match token(session).await? {
        Some(t) => Some(t),
        None => cookie_token(&parts.headers),
    };
    let valid = match (&expected, &given) {
        (Some(e), Some(g)) => bool::from(e.as_bytes().ct_eq(g.as_bytes())),
        _ => false,
    };
    if !valid {
        tracing::warn!(path = %parts.uri.path(), "CSRF check failed");
        return Err(forbidden());
    }
    Ok((Request::from_parts(parts, Body::from(bytes)), permit))
}

/// A place to read a large body, for a session the rule lets send one (`None`: it is held to
/// [`FORM_LIMIT`]); past [`LARGE_BODIES_AT_ONCE`], 503 at once rather than a queue of bodies
/// waiting to be read.
async fn large_body_permit(
    state: &AppState,
    session: &Session,
) -> Result<Option<LargeBodyPermit>, AppError> {
    let large = state.part::<LargeBodies>();
    if !(large.rule)(state, session).await? {
        return Ok(None);
    }
    match large.permits.clone().try_acquire_owned() {
        Ok(permit) => Ok(Some(LargeBodyPermit { _held: permit })),
        Err(_) => Err(AppError::Busy {
            message:
                "Other uploads are being read right now. Please send this again in a few seconds."
                    .into(),
            retry_after_secs: LARGE_BODY_RETRY_AFTER,
        }),
    }
}

fn forbidden() -> AppError {
    AppError::Forbidden(
        "This form has expired or did not come from Pollstr. Go back, reload the page and try again."
            .into(),
    )
}

/// The scheme a request reached this site by, which its `Origin` must name: `https` with
/// `SESSION_SECURE` or a trusted proxy's `X-Forwarded-Proto` ([`super::client::is_https`]),
/// else `http`. The guard puts it in every request before [`check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteScheme(pub &'static str);

/// The `Origin` (or else `Referer`) of a request when it names another site than the one the
/// request was sent to (the [`SiteScheme`] and its `Host`) and than every trusted origin; `None`
/// when it is this site or absent. An opaque `Origin: null` (a sandboxed frame, a `data:` page)
/// is foreign.
fn foreign_source(req: &Request, trusted_origins: &[String]) -> Option<String> {
    let headers = req.headers();
    let raw = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))?;
    let source = String::from_utf8_lossy(raw.as_bytes()).into_owned();
    // Without the guard's word, plain http: an https page is then refused, never let in.
    let SiteScheme(site) = req
        .extensions()
        .get::<SiteScheme>()
        .copied()
        .unwrap_or(SiteScheme("http"));
    let ours = origin_of(&source).is_some_and(|(scheme, authority)| {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| without_default_port(&h.to_ascii_lowercase(), site));
        (scheme == site && host.as_deref() == Some(authority.as_str()))
            || trusted_origins.contains(&format!("{scheme}://{authority}"))
    });
    (!ours).then_some(source)
}

fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The boundary of a `multipart/form-data` body, if the request declares one.
fn multipart_boundary(headers: &HeaderMap) -> Option<String> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = content_type.split(';').next()?.trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    multer::parse_boundary(content_type).ok()
}

/// The text of the field `name` in a multipart body (read up to that field only).
async fn multipart_field(body: &axum::body::Bytes, boundary: String, name: &str) -> Option<String> {
    let stream = Body::from(body.clone()).into_data_stream();
    let mut fields = multer::Multipart::new(stream, boundary);
    while let Ok(Some(field)) = fields.next_field().await {
        if field.name() == Some(name) {
            return field.text().await.ok();
        }
    }
    None
}
