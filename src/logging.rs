//! Log lines, each naming the request it was written for (method, path, `x-request-id`).
//!
//! The request is kept in a task-local for the duration of the handler rather than in a
//! `tracing` span: a span per request (created, its fields formatted, then dropped) cost about a
//! tenth of the poll list's throughput, although few requests ever write a line.

use std::fmt;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::Response;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The request a log line belongs to.
#[derive(Clone)]
struct RequestInfo {
    method: Method,
    uri: Uri,
    id: Option<HeaderValue>,
}

tokio::task_local! {
    static REQUEST: RequestInfo;
}

/// Middleware (inside the request id layer): log lines written while the request is handled
/// name it.
pub async fn in_request(req: Request, next: Next) -> Response {
    let info = RequestInfo {
        method: req.method().clone(),
        uri: req.uri().clone(),
        id: req.headers().get(crate::app::REQUEST_ID).cloned(),
    };
    REQUEST.scope(info, next.run(req)).await
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
            let id = r.id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-");
            write!(writer, "{} {} [{id}] ", r.method, r.uri.path())
        }) {
            written?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
