//! The composition root: the state with every feature's part, the router of every feature,
//! housekeeping, and serving with graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use axum::middleware;
use axum::Router;
use tokio::net::TcpListener;
use tower_sessions::cookie::SameSite;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::config::{Config, VerifyBackend};
use crate::db::lane::Lane;
use crate::db::{AppSessionStore, Db, PoolSettings};
use crate::health::{self, Draining};
use crate::limits;
use crate::polls::cache::PollCache;
use crate::polls::read_batch::ReadBatch;
use crate::polls::vote_queue::VoteQueue;
use crate::state::Parts;
use crate::telemetry::Telemetry;
use crate::two_factor::sms::console::ConsoleVerifier;
use crate::two_factor::sms::vonage::VonageVerifier;
use crate::two_factor::sms::vonage_v2::VonageV2Verifier;
use crate::two_factor::sms::Verifier;
use crate::users::password::HashQueue;
use crate::web::routes::Routes;
use crate::{accounts, admin, polls, two_factor, web};

pub use crate::state::AppState;

/// The state of a server: the shared pieces and each feature's part. Must run inside a Tokio
/// runtime (it starts the vote writer).
pub fn new_state(db: Db, config: Config, verifier: Arc<dyn Verifier>) -> AppState {
    // On SQLite this process is the only server, so it sees every vote.
    let polls = Arc::new(PollCache::new(db.is_embedded()));
    let large_bodies = web::csrf::LargeBodies::new(
        admin::may_send_large_bodies,
        web::csrf::LARGE_BODIES_AT_ONCE,
    );
    // build_state refused a configuration whose mailer cannot be made; here (tests) email is off.
    let outbox = crate::mail::Outbox::from_config(&config).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the mailer cannot be made: email is off");
        crate::mail::Outbox::new(None, 1, Duration::from_secs(1))
    });
    let telemetry = match config.metrics_addr {
        Some(_) => Telemetry::on(if db.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }),
        None => Telemetry::off(),
    };
    if telemetry.is_on() {
        // Histogram samples are folded in every few seconds even when nobody scrapes.
        let t = telemetry.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                t.upkeep();
            }
        });
    }
    let mut parts = Parts::default()
        .with(outbox)
        .with(crate::accounts::forgot::Requests::default())
        .with(large_bodies)
        .with(verifier)
        .with(HashQueue::default())
        .with(two_factor::passkeys::Relying::new(&config.webauthn))
        .with(Draining::default())
        .with(polls.clone());
    parts = parts
        .with(VoteQueue::start(db.clone(), polls, telemetry.clone()))
        .with(telemetry);
    if let Some(pool) = db.as_postgres() {
        if let Some(lane) = Lane::new(pool.clone(), config.database_max_connections) {
            let lane = Arc::new(lane);
            parts = parts.with(ReadBatch::start(lane.clone())).with(lane);
        }
    }
    AppState::new(db.clone(), config, AppSessionStore::for_server(&db), parts)
}

/// Connects, migrates, and picks the Verify provider named by the configuration; checks that
/// its mailer can be made (`mail::Outbox::from_config`).
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let db = connect(&config).await?;
    let verifier: Arc<dyn Verifier> = match config.verify_backend {
        VerifyBackend::VonageV2 => Arc::new(VonageV2Verifier::new(
            config.vonage.clone(),
            config.vonage_application.clone(),
            config.verify.clone(),
        )?),
        VerifyBackend::Vonage => Arc::new(VonageVerifier::new(config.vonage.clone())?),
        VerifyBackend::Console => {
            tracing::warn!(
                "no Vonage keys set: using the console verify provider, which prints codes to this log (development only)"
            );
            Arc::new(ConsoleVerifier::new(db.clone()).with_settings(&config.verify))
        }
    };
    crate::mail::Outbox::from_config(&config)?;
    match (&config.mail.smtp, config.is_development()) {
        (Some(s), _) => tracing::info!(host = %s.host, port = s.port, "mail goes through SMTP"),
        (None, true) => tracing::warn!(
            "no SMTP_URL: using the console mailer, which prints mail to this log (development only)"
        ),
        (None, false) => tracing::warn!(
            "no SMTP_URL: email is off (no confirmation, reset or notification mail; the pages say so)"
        ),
    }
    Ok(new_state(db, config, verifier))
}

/// Opens and migrates the configured database.
pub async fn connect(config: &Config) -> anyhow::Result<Db> {
    let settings = PoolSettings {
        max_connections: config.database_max_connections,
        connect_timeout: config.database_connect_timeout,
    };
    let db = Db::connect(&config.database_url, &settings).await?;
    db.migrate().await?;
    crate::users::fill_username_keys(&db).await?;
    Ok(db)
}

/// Every route behind the session and the CSRF check ([`web::guard`]): each feature's pages.
fn pages(state: &AppState) -> Routes {
    Routes::new()
        .merge(polls::router(state))
        .merge(accounts::router(state))
        .merge(two_factor::router(state))
        .merge(admin::router(state))
}

/// Outside the session and CSRF layers: a stylesheet needs neither, Vonage's callbacks are
/// signed requests, not a browser's, and a health probe has no cookie.
fn outside() -> Routes {
    Routes::new()
        .route("/static/{file}", web::routes::get(web::assets::serve))
        .merge(two_factor::sms::callbacks::router())
        .merge(health::router())
}

/// Every (method, path) the app serves, from the routers themselves ([`Routes`]).
pub fn routes(state: &AppState) -> Vec<(Method, &'static str)> {
    let mut list = pages(state).list().to_vec();
    list.extend_from_slice(outside().list());
    list
}

/// The whole app: every module's router; the CSRF check and error pages with the user's navbar
/// ([`web::guard`]); sessions; and around everything, the request id, log context and security
/// headers ([`web::envelope`]).
pub fn router(state: AppState) -> Router {
    let sessions = SessionManagerLayer::new(state.sessions.clone())
        .with_name("pollstr_session")
        .with_secure(state.config.session_secure)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_expiry(Expiry::OnInactivity(
            time::Duration::try_from(state.config.session_ttl).unwrap_or(time::Duration::hours(12)),
        ));
    pages(&state)
        .into_router()
        .fallback(web::not_found)
        .method_not_allowed_fallback(|| async { crate::error::AppError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), web::guard))
        .layer(sessions)
        .merge(outside().into_router())
        .layer(web::envelope::EnvelopeLayer::new(
            state.part::<Telemetry>().clone(),
        ))
        .with_state(state)
}

/// The metrics listener's one route (`METRICS_ADDR`): `/metrics`, with the gauges read now.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(state)
}

async fn scrape(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let t = state.part::<Telemetry>();
    t.gauge(
        "pollstr_vote_queue_depth",
        &[],
        state.part::<VoteQueue>().depth() as f64,
    );
    let hashes = state.part::<HashQueue>();
    t.gauge("pollstr_hash_queue_depth", &[], hashes.depth() as f64);
    t.total("pollstr_hash_queue_refusals_total", &[], hashes.refusals());
    let (size, idle) = state.db.pool_use();
    t.gauge(
        "pollstr_db_connections",
        &[("state", "in_use".into())],
        (size as usize).saturating_sub(idle) as f64,
    );
    t.gauge(
        "pollstr_db_connections",
        &[("state", "idle".into())],
        idle as f64,
    );
    match t.render() {
        Some(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

/// Deletes expired sessions, old limit events, security events past their retention, and
/// used or expired password-reset links, once a minute.
pub fn spawn_housekeeping(state: &AppState) -> tokio::task::JoinHandle<()> {
    let db = state.db.clone();
    let sessions = state.sessions.clone();
    let keep = state.config.limits.longest_window();
    let retention = state.config.event_retention;
    // The guard's figures: as long as its window, and at least as long as events are kept.
    let sends_kept = retention.max(state.config.sms_guard.conversion_window);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = sessions.delete_expired().await {
                tracing::warn!(error = %e, "could not delete expired sessions");
            }
            if let Err(e) = limits::prune(&db, keep).await {
                tracing::warn!(error = %e, "could not prune limit events");
            }
            if let Err(e) = crate::events::prune(&db, retention).await {
                tracing::warn!(error = %e, "could not prune security events");
            }
            if let Err(e) = crate::users::reset::prune(&db).await {
                tracing::warn!(error = %e, "could not prune password-reset links");
            }
            if let Err(e) = crate::users::email::prune(&db).await {
                tracing::warn!(error = %e, "could not prune email confirmation links");
            }
            let day_ago = crate::db::now() - 86400;
            if let Err(e) = two_factor::passkeys::store::prune_challenges(&db, day_ago).await {
                tracing::warn!(error = %e, "could not prune used passkey challenges");
            }
            if let Err(e) = two_factor::trusted::prune(&db).await {
                tracing::warn!(error = %e, "could not prune trusted browsers");
            }
            if let Err(e) = two_factor::sms::store::requests::prune(&db).await {
                tracing::warn!(error = %e, "could not prune verify request owners");
            }
            if let Err(e) = two_factor::sms::guard::prune(&db, sends_kept).await {
                tracing::warn!(error = %e, "could not prune the SMS guard's sends");
            }
        }
    })
}

/// Serves until SIGINT/SIGTERM, then drains ([`serve_until`]); `/metrics` on `metrics` (bound
/// to `METRICS_ADDR`) until then.
pub async fn serve(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    state: AppState,
) -> anyhow::Result<()> {
    let housekeeping = spawn_housekeeping(&state);
    let metrics = metrics.map(|listener| {
        let limits = state.config.http.clone();
        let router = metrics_router(state.clone());
        tokio::spawn(async move {
            crate::server::serve(listener, router, &limits, std::future::pending()).await
        })
    });
    serve_until(listener, state, shutdown_signal()).await;
    housekeeping.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    Ok(())
}

/// Serves until `stop` completes; then `/readyz` answers 503 at once while the instance goes on
/// serving for `SHUTDOWN_DRAIN` (the proxy notices and stops sending), then the listener closes,
/// the requests in flight finish, and the vote writer commits every vote it was given (a voter
/// who hung up included) before this returns.
pub async fn serve_until(listener: TcpListener, state: AppState, stop: impl Future<Output = ()>) {
    let limits = state.config.http.clone();
    let drain = state.config.shutdown_drain;
    let draining = state.part::<Draining>().clone();
    let votes = state.part::<VoteQueue>().clone();
    let shutdown = async move {
        stop.await;
        draining.start();
        tracing::info!(
            drain_ms = drain.as_millis() as u64,
            "shutting down: not ready; serving on until the drain ends"
        );
        tokio::time::sleep(drain).await;
        tracing::info!("shutting down: listener closed, finishing requests in flight");
    };
    crate::server::serve(listener, router(state), &limits, shutdown).await;
    votes.flushed().await;
    tracing::info!("shut down: every request and vote finished");
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
