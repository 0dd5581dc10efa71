//! One error type for every handler. Each variant is a page with its status; 5xx errors are
//! logged (inside the request's span, which carries the request id) and never show internals.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::page::PageContext;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("request body too slow")]
    RequestTimeout,
    #[error("too many requests: {message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The server is at a bound of its own (not the client's fault): 503 with `Retry-After`.
    #[error("busy: {message}")]
    Busy {
        message: String,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What an error page said, kept on the response so that `web::guard` can
/// render it again with the signed-in user's navbar.
#[derive(Clone, Debug)]
pub struct ErrorDetails {
    pub status: StatusCode,
    pub title: &'static str,
    pub message: String,
}

impl ErrorDetails {
    pub fn render(&self, ctx: PageContext) -> Result<String, askama::Error> {
        ErrorPage {
            ctx,
            status: self.status.as_u16(),
            title: self.title,
            message: self.message.clone(),
        }
        .render()
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub ctx: PageContext,
    pub status: u16,
    pub title: &'static str,
    pub message: String,
}

impl AppError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        AppError::BadRequest(msg.into())
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing at this address. It may have moved, or the link may be wrong."
                    .into(),
            ),
            AppError::BadRequest(m) => (
                StatusCode::BAD_REQUEST,
                "That request could not be understood",
                m.clone(),
            ),
            AppError::Forbidden(m) => (StatusCode::FORBIDDEN, "Forbidden", m.clone()),
            AppError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "This address does not accept that kind of request.".into(),
            ),
            AppError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too much data",
                "The form you sent is larger than Pollstr accepts.".into(),
            ),
            AppError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "Too slow",
                "The form took too long to arrive. Please send it again.".into(),
            ),
            AppError::TooManyRequests { message, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Please slow down",
                message.clone(),
            ),
            AppError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Pollstr is briefly unavailable",
                "We cannot reach our database right now. Please try again in a moment.".into(),
            ),
            AppError::Busy { message, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Pollstr is busy",
                message.clone(),
            ),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "An unexpected error happened on our side. It has been logged; please try again."
                    .into(),
            ),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => AppError::Unavailable(e.into()),
            sqlx::Error::Database(ref d) if is_transient(d.as_ref()) => {
                AppError::Unavailable(e.into())
            }
            e => AppError::Internal(e.into()),
        }
    }
}

/// A database that is there but cannot answer now: SQLite busy or locked past the busy timeout
/// (another process, such as `pollstr loaddata`, holding the write lock); PostgreSQL connection
/// failures, shutdowns, too many connections, lock timeouts, deadlocks and serialization
/// failures. Trying again later works, so these are the 503 page, not a 500.
fn is_transient(e: &dyn sqlx::error::DatabaseError) -> bool {
    if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // The primary result code is the low byte of the extended one.
        return e
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)); // SQLITE_BUSY, SQLITE_LOCKED
    }
    if let Some(e) = e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let code = e.code();
        return ["08", "53", "57P"]
            .iter()
            .any(|class| code.starts_with(class))
            || matches!(code, "55P03" | "40001" | "40P01");
    }
    false
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(e: tower_sessions::session::Error) -> Self {
        // The session store is the database: a failure there is an outage, not a bug.
        AppError::Unavailable(e.into())
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        AppError::Internal(e.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            AppError::Internal(e) => tracing::error!(error = ?e, "internal error"),
            AppError::Unavailable(e) => tracing::error!(error = %e, "dependency unavailable"),
            _ => {}
        }
        let (status, title, message) = self.parts();
        let details = ErrorDetails {
            status,
            title,
            message,
        };
        let body = details
            .render(PageContext::default())
            .unwrap_or_else(|_| format!("<!doctype html><title>{title}</title><h1>{title}</h1>"));
        let mut res = (status, Html(body)).into_response();
        res.extensions_mut().insert(details);
        if let AppError::TooManyRequests {
            retry_after_secs, ..
        }
        | AppError::Busy {
            retry_after_secs, ..
        } = self
        {
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(e: AppError) -> (StatusCode, String) {
        let res = e.into_response();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).to_string())
    }

    #[tokio::test]
    async fn internals_never_reach_the_page() {
        let (status, body) = body_of(AppError::Internal(anyhow::anyhow!(
            "password=hunter2 at db.rs:42"
        )))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("Something went wrong") && !body.contains("hunter2"));
        let (status, body) = body_of(AppError::Unavailable(anyhow::anyhow!(
            "connection refused 10.0.0.3"
        )))
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!body.contains("10.0.0.3"));
    }

    #[tokio::test]
    async fn too_many_requests_says_when() {
        let res = AppError::TooManyRequests {
            message: "wait".into(),
            retry_after_secs: 90,
        }
        .into_response();
        assert_eq!(res.headers()[header::RETRY_AFTER], "90");
    }

    /// Another connection holds SQLite's write lock past the busy timeout: the 503 page.
    #[tokio::test]
    async fn a_busy_sqlite_database_is_unavailable_not_an_error() {
        use sqlx::sqlite::SqliteConnectOptions;
        use sqlx::{ConnectOptions, Connection};
        let dir = tempfile::tempdir().unwrap();
        let opts = SqliteConnectOptions::new()
            .filename(dir.path().join("busy.db"))
            .create_if_missing(true)
            .busy_timeout(std::time::Duration::ZERO);
        let mut holder = opts.connect().await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&mut holder)
            .await
            .unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut holder)
            .await
            .unwrap();
        let mut other = opts.connect().await.unwrap();
        let err = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut other)
            .await
            .unwrap_err();
        assert!(
            matches!(AppError::from(err), AppError::Unavailable(_)),
            "busy is an outage"
        );
        // A real error stays one.
        let err = sqlx::query("INSERT INTO nowhere VALUES (1)")
            .execute(&mut holder)
            .await
            .unwrap_err();
        assert!(matches!(AppError::from(err), AppError::Internal(_)));
        holder.close().await.unwrap();
    }
}
