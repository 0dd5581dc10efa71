//! The envelope every response passes through: a request id, the log context, the security
//! headers, the 503 page when the session store could not save, and the request's metrics
//! (its route template, status and duration, when metrics are on).
//!
//! One hand-written layer instead of eight stacked ones (request id, its propagation, the log
//! context, four response headers, the outage page): each stacked layer cost a clone of the
//! inner service and, for `from_fn`, two boxes on every request.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::error::AppError;
use crate::telemetry::Telemetry;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers every response carries unless its handler set them.
const SECURITY_HEADERS: [(HeaderName, HeaderValue); 4] = [
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    ),
];

/// Request ids `<instance>-<n>`: a random tag for this process (so ids from several instances
/// do not collide in shared logs) and a counter. A random UUID per request cost a `getrandom`
/// system call on every request. An id the request already carries (from a proxy) is kept.
#[derive(Clone)]
pub struct EnvelopeLayer {
    instance: Arc<str>,
    next: Arc<AtomicU64>,
    telemetry: Telemetry,
}

impl EnvelopeLayer {
    pub fn new(telemetry: Telemetry) -> Self {
        EnvelopeLayer {
            instance: format!("{:08x}", rand::random::<u32>()).into(),
            next: Arc::default(),
            telemetry,
        }
    }

    fn request_id(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::try_from(format!("{}-{n}", self.instance))
            .unwrap_or(HeaderValue::from_static("-"))
    }
}

impl Default for EnvelopeLayer {
    fn default() -> Self {
        Self::new(Telemetry::off())
    }
}

impl<S> Layer<S> for EnvelopeLayer {
    type Service = Envelope<S>;

    fn layer(&self, inner: S) -> Envelope<S> {
        Envelope {
            inner,
            ids: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Envelope<S> {
    inner: S,
    ids: EnvelopeLayer,
}

impl<S> Service<Request> for Envelope<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let id = match req.headers().get(REQUEST_ID).filter(|id| acceptable(id)) {
            Some(id) => id.clone(),
            None => {
                let id = self.ids.request_id();
                req.headers_mut().insert(REQUEST_ID, id.clone());
                id
            }
        };
        let context = crate::logging::RequestInfo::new(&req, id.clone());
        let measured = self.ids.telemetry.is_on().then(|| {
            let route = req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .cloned();
            let method = crate::telemetry::method_label(req.method());
            (
                self.ids.telemetry.clone(),
                route,
                method,
                std::time::Instant::now(),
            )
        });
        // The service that was made ready is the one to call; a clone stays for next time.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(async move {
            let Ok(res) = context.scope(inner.call(req)).await;
            let res = finish(res, id);
            if let Some((telemetry, route, method, started)) = measured {
                // Not a route (a 404 from the fallback): one series for all of them.
                let route = route.as_ref().map_or("unmatched", |r| r.as_str());
                telemetry.request(route, method, res.status().as_u16(), started.elapsed());
            }
            Ok(res)
        })
    }
}

/// An id from the client or a proxy is kept only if it is short and plain: it goes into every
/// log line of the request.
fn acceptable(id: &HeaderValue) -> bool {
    let id = id.as_bytes();
    !id.is_empty()
        && id.len() <= 64
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn finish(mut res: Response, id: HeaderValue) -> Response {
    // The session layer answers a bare 500 when it cannot save a session, which only happens
    // when the database is away: that is the 503 page like every other outage.
    if res.status() == StatusCode::INTERNAL_SERVER_ERROR
        && !res.headers().contains_key(header::CONTENT_TYPE)
    {
        res = AppError::Unavailable(anyhow::anyhow!("the session store could not save"))
            .into_response();
    }
    let headers: &mut HeaderMap = res.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, value);
        }
    }
    if !headers.contains_key(REQUEST_ID) {
        headers.insert(REQUEST_ID, id);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route("/", get(|| async { "hello" }))
            .route(
                "/framed",
                get(|| async { ([(header::X_FRAME_OPTIONS, "SAMEORIGIN")], "own header") }),
            )
            .route(
                "/bare-500",
                get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .layer(EnvelopeLayer::default())
    }

    async fn get_with(path: &str, id: Option<&str>) -> Response {
        let mut req = Request::builder().uri(path);
        if let Some(id) = id {
            req = req.header(REQUEST_ID, id);
        }
        app()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn every_response_gets_the_headers_and_a_fresh_id() {
        let layer = EnvelopeLayer::default();
        let (a, b) = (layer.request_id(), layer.request_id());
        assert_ne!(a, b);
        let res = get_with("/", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(res.headers()[&name], value, "{name}");
        }
        assert!(!res.headers()[REQUEST_ID].is_empty());
    }

    #[tokio::test]
    async fn a_handlers_own_header_and_a_proxys_id_are_kept() {
        let res = get_with("/framed", Some("from-proxy")).await;
        assert_eq!(res.headers()[header::X_FRAME_OPTIONS], "SAMEORIGIN");
        assert_eq!(res.headers()[REQUEST_ID], "from-proxy");
        // Not one that would clutter or forge log lines: a fresh id instead.
        for odd in ["a b=c", &"x".repeat(65), "id\tx", "ü"] {
            let res = get_with("/", Some(odd)).await;
            assert_ne!(
                res.headers()[REQUEST_ID].as_bytes(),
                odd.as_bytes(),
                "{odd}"
            );
        }
    }

    #[tokio::test]
    async fn a_bare_500_becomes_the_outage_page() {
        let res = get_with("/bare-500", None).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
}
