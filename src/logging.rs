//! Log lines, each naming the request it was written for (method, path, `x-request-id`): plain
//! text ([`LineFormat`]) or, with `LOG_FORMAT=json`, one JSON object per line ([`JsonFormat`]:
//! `time`, `level`, `target`, `message`, `method`, `route`, `request_id`, `user_id` where
//! known, and the event's own fields, `status` among them where it has one). Both write the same
//! events with the same fields: what the text format keeps out of the log (codes, passwords,
//! keys, whole phone numbers) the JSON format never sees either.
//!
//! The request is kept in a task-local for the duration of the handler rather than in a
//! `tracing` span: a span per request (created, its fields formatted, then dropped) cost about a
//! tenth of the poll list's throughput, although few requests ever write a line.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::extract::{MatchedPath, Request};
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
    /// The route template (`/polls/{id}/`), when the path is a route.
    route: Option<MatchedPath>,
    /// The signed-in user, once the session has been read (0: none known).
    user: AtomicI64,
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
            route: req.extensions().get::<MatchedPath>().cloned(),
            user: AtomicI64::new(0),
        }
    }

    /// Runs `handling` (the rest of the request) so that its log lines name this request.
    pub async fn scope<F: Future>(self, handling: F) -> F::Output {
        REQUEST.scope(self, handling).await
    }
}

/// Notes the signed-in user of the request being handled, for its later log lines.
pub fn note_user(id: i64) {
    let _ = REQUEST.try_with(|r| r.user.store(id, Ordering::Relaxed));
}

/// How log lines are written (`LOG_FORMAT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
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

/// One JSON object per line (see the module documentation).
pub struct JsonFormat;

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        use serde_json::{Map, Value};
        let meta = event.metadata();
        let mut line = Map::new();
        let stamp = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        line.insert("time".into(), stamp.into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        let _ = REQUEST.try_with(|r| {
            line.insert("method".into(), r.method.as_str().into());
            if let Some(route) = &r.route {
                line.insert("route".into(), route.as_str().into());
            }
            line.insert("request_id".into(), r.id.to_str().unwrap_or("-").into());
            let user = r.user.load(Ordering::Relaxed);
            if user != 0 {
                line.insert("user_id".into(), user.into());
            }
        });
        let mut fields = JsonFields(Map::new());
        event.record(&mut fields);
        let mut fields = fields.0;
        line.insert(
            "message".into(),
            fields
                .remove("message")
                .unwrap_or(Value::String(String::new())),
        );
        for (k, v) in fields {
            line.entry(k).or_insert(v);
        }
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// An event's fields as JSON values.
struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}
