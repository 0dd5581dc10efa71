//! Log lines, each naming the request it was written for (method, path, `x-request-id`).
//!
//! The request is kept in a task-local for the duration of the handler rather than in a
//! `tracing` span: a span per request (created, its fields formatted, then dropped) cost about a
//! tenth of the poll list's throughput, although few requests ever write a line.

use std::fmt;

use std::future::Future;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, Uri};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The request a log line belongs to.
pub struct RequestInfo {
    method: Method,
    uri: Uri,
    id: HeaderValue,
}

tokio::task_local! {
    static REQUEST: RequestInfo;
}

impl RequestInfo {
    pub fn new(req: &Request, id: HeaderValue) -> Self {
        RequestInfo {
            method: req.method().clone(),
            uri: req.uri().clone(),
            id,
        }
    }

    /// Runs `handling` (the rest of the request) so that its log lines name this request.
    pub async fn scope<F: Future>(self, handling: F) -> F::Output {
        REQUEST.scope(self, handling).await
    }
}

/// `2026-11-25T10:00:00.123456Z  WARN pollstr::two_factor: POST /2fa/create/ [id] message k=v`
pub struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let now = time::OffsetDateTime::now_utc();
        let stamp = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        write!(writer, "{stamp} {:>5} {}: ", meta.level(), meta.target())?;
        if let Ok(written) = REQUEST.try_with(|r| {
            let id = r.id.to_str().unwrap_or("-");
            write!(writer, "{} {} [{id}] ", r.method, loggable(r.uri.path()))
        }) {
            written?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// A path as the log shows it: a password-reset or email confirmation link's token is a secret until used, and a
/// log reader must not be able to use it first.
fn loggable(path: &str) -> &str {
    if path.starts_with("/account/reset/") {
        "/account/reset/[token]/"
    } else if path.starts_with("/account/email/confirm/") {
        "/account/email/confirm/[token]/"
    } else {
        path
    }
}
