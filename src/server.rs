//! The HTTP/1.1 server: hyper's connection builder with the limits a public site needs, in
//! place of `axum::serve`, which has none of them.
//!
//! - **Header timeout** (`HTTP_HEADER_TIMEOUT`): a client must deliver a request's headers within
//!   this time, counted from when the connection opens or its previous response was sent. Hyper
//!   starts the timer whenever it waits for a request head, so the same setting closes idle
//!   keep-alive connections and connections that trickle their headers (slowloris).
//! - **Body timeout** (`HTTP_BODY_TIMEOUT`): the whole form body must arrive within this time
//!   (enforced where it is read, in [`crate::web::csrf::check`]), or the answer is 408.
//! - **Connection cap** (`HTTP_MAX_CONNECTIONS`): beyond it a new connection is answered `503`
//!   with `Retry-After` and closed at once, so the process never runs out of file descriptors
//!   and every client gets an answer.
//!
//! HTTP/2 is not offered: browsers speak it only over TLS, which the proxy in front terminates,
//! and cleartext HTTP/2 would need its own idle limits.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// The server's limits (see the module documentation).
#[derive(Clone, Debug)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 768,
        }
    }
}

/// What a connection over the cap is told before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 5\r\n\
connection: close\r\n\
content-length: 58\r\n\
\r\n\
Pollstr is very busy right now. Please try again shortly.\n";

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, lets requests in
/// flight finish (idle connections close at once) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let turning_away = Arc::new(Semaphore::new(64));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_warned = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            if last_warned.is_none_or(|t: std::time::Instant| t.elapsed() > Duration::from_secs(10))
            {
                last_warned = Some(std::time::Instant::now());
                tracing::warn!(
                    limit = limits.max_connections,
                    "turning connections away: too many open connections"
                );
            }
            // Answering takes a descriptor for up to a second: a flood beyond this is dropped.
            if let Ok(slot) = turning_away.clone().try_acquire_owned() {
                tokio::spawn(turn_away(stream, slot));
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(Body::new)
            });
        let conn = graceful
            .watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Accept errors: a connection that failed before it was accepted is skipped; running out of
/// file descriptors (or another resource) is logged and retried after a pause, not a busy loop.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Answers 503 on a connection over the cap and closes it. What the client sent is read and
/// dropped for up to a second, so that closing does not reset the connection before the
/// client has read the answer.
async fn turn_away(mut stream: TcpStream, _slot: tokio::sync::OwnedSemaphorePermit) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}
