//! CSRF protection: a random token bound to the session, rendered in every POST form as
//! `csrf_token`, and checked for every unsafe request before any handler runs.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, Method};
use base64::Engine;
use rand::RngCore;
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use crate::error::{AppError, AppResult};

const KEY: &str = "csrf";
pub const FIELD: &str = "csrf_token";
/// The largest form body accepted (login, vote and 2FA forms are a few hundred bytes).
pub const FORM_LIMIT: usize = 16 * 1024;

pub async fn token(session: &Session) -> AppResult<Option<String>> {
    Ok(session.get(KEY).await?)
}

/// The session's token, made on first use.
pub async fn ensure_token(session: &Session) -> AppResult<String> {
    if let Some(t) = token(session).await? {
        return Ok(t);
    }
    let t = new_token();
    session.insert(KEY, &t).await?;
    Ok(t)
}

/// Replaces the token (at login and at verification, with the session id).
pub async fn rotate(session: &Session) -> AppResult<()> {
    session.insert(KEY, new_token()).await?;
    Ok(())
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An unsafe request must carry the session's token in its form body. The body is read here
/// (bounded by [`FORM_LIMIT`]: larger is 413) and handed back unchanged.
pub async fn check(session: &Session, req: Request) -> Result<Request, AppError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(req);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > FORM_LIMIT) {
        return Err(AppError::PayloadTooLarge);
    }
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, FORM_LIMIT).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            AppError::PayloadTooLarge
        } else {
            AppError::bad_request("The request body could not be read.")
        }
    })?;
    let given = form_urlencoded_field(&bytes, FIELD);
    let expected = token(session).await?;
    let valid = match (&expected, &given) {
        (Some(e), Some(g)) => bool::from(e.as_bytes().ct_eq(g.as_bytes())),
        _ => false,
    };
    if !valid {
        tracing::warn!(path = %parts.uri.path(), "CSRF check failed");
        return Err(AppError::Forbidden(
            "This form has expired or did not come from Pollstr. Go back, reload the page and try again."
                .into(),
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}
