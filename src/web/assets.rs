//! Static files, compiled into the binary: a deployed `pollstr` needs no folder beside it.

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

/// (name under `/static/`, content type, bytes)
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "pollstr.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/pollstr.css"),
    ),
    (
        "passkeys.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/passkeys.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../static/favicon.svg"),
    ),
];

pub async fn serve(Path(name): Path<String>) -> Result<Response, AppError> {
    let (_, content_type, bytes) = FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or(AppError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        *bytes,
    )
        .into_response())
}
