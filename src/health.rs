//! Liveness and readiness, for an orchestrator and for the proxy in front.
//!
//! - `/livez`: 200 whenever the process can answer. It never touches the database: an
//!   orchestrator restarts an instance whose liveness fails, and restarting every instance
//!   because the database blinked makes the outage worse (endatix #1034 split the two for this).
//! - `/readyz`: 200 when the database answers, every migration this build knows is applied, and
//!   the instance is not shutting down; else 503. A proxy or load balancer sends traffic only to
//!   ready instances.
//! - `/healthz`: kept for existing set-ups, and now the same as `/readyz` (it was the database
//!   check alone, so it also turns 503 while the instance drains).
//!
//! On SIGTERM [`Draining`] is set at once (readiness 503), the instance keeps serving for
//! `SHUTDOWN_DRAIN` so that the proxy stops sending it new requests, then closes its listener
//! and finishes what is in flight (`app::serve_until`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;
use crate::web::routes::{get, Routes};

/// Set when the instance has been told to stop: from then on it is not ready.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The three routes (outside the session layer: a probe has no cookie and needs none).
pub fn router() -> Routes {
    Routes::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/healthz", get(readyz))
}

async fn livez() -> Response {
    plain(StatusCode::OK, "ok")
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.part::<Draining>().is_draining() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    if !state.db.ping().await {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
    }
    if !state.db.migrations_current().await {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "migrations not applied");
    }
    plain(StatusCode::OK, "ok")
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut res = (status, text).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
