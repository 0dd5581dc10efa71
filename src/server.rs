//! The HTTP/1.1 server: hyper's connection builder with the limits a public site needs, in
//! place of `axum::serve`, which has none of them. Every connection must make progress or be
//! closed, and no one client can fill the instance.
//!
//! - **Header timeouts** (`HTTP_FIRST_HEADER_TIMEOUT`, `HTTP_HEADER_TIMEOUT`): a connection must
//!   deliver its first request head within the first (shorter) limit of opening, and each later
//!   one within the second, counted from when its previous response was sent. Hyper starts its
//!   timer whenever it waits for a head, so the same setting closes idle keep-alive connections
//!   and connections that trickle their headers (slowloris). A browser sends its first head at
//!   once, so a short first limit costs it nothing and halves what a slowloris socket lives.
//! - **Body timeout** (`HTTP_BODY_TIMEOUT`): the whole form body must arrive within this time
//!   (enforced where it is read, in [`crate::web::csrf::check`]), or the answer is 408.
//! - **Write timeout** (`HTTP_WRITE_TIMEOUT`): a response write that makes no progress for this
//!   long (the client reads nothing, its TCP window stays shut) closes the connection. Without
//!   it, sockets that pipeline requests and never read held their places for ever (issue 23).
//!   Hyper reads a pipelined request only once the previous response is written into its
//!   buffer, and that buffer is bounded (`MAX_BUF`), so a client that does not read stops being
//!   read from too: what it costs is bounded, and for at most this long.
//! - **Connection cap** (`HTTP_MAX_CONNECTIONS`), made fair: one client address may hold at most
//!   `HTTP_MAX_CONNECTIONS_PER_IP` (the TCP peer is counted: an IPv4-mapped IPv6 peer as its
//!   IPv4 address, an IPv6 peer by its network of `IPV6_LIMIT_PREFIX` bits, /64 by default;
//!   peers in `TRUSTED_PROXIES` are not limited, their clients are many). When the instance is full, a connection that has not yet sent a
//!   complete request, or sits idle between requests, is shed to make room (one that never
//!   sent a request first, then the longest idle); only when every connection is busy in a
//!   request is a new one answered `503` with `Retry-After` and closed, so the process never
//!   runs out of file descriptors and every client gets an answer.
//!
//! HTTP/2 is not offered: browsers speak it only over TLS, which the proxy in front terminates,
//! and cleartext HTTP/2 would need its own idle limits.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

/// The server's limits (see the module documentation).
#[derive(Clone, Debug)]
pub struct HttpLimits {
    pub first_header_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub write_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Peers whose connections are not counted per address: the trusted proxies.
    pub per_ip_exempt: Vec<ipnet::IpNet>,
    /// The network an IPv6 peer is counted by (`IPV6_LIMIT_PREFIX`, as every per-address limit).
    pub ipv6_prefix: u8,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            first_header_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(15),
            max_connections: 768,
            max_connections_per_ip: 64,
            per_ip_exempt: Vec::new(),
            ipv6_prefix: 64,
        }
    }
}

/// Hyper's read and write buffer limit per connection (its default is 400 KiB). It bounds what
/// a client that pipelines requests and never reads costs in memory (a 12 KiB stylesheet
/// answered again and again fills the write buffer to this), and the size of a request head:
/// 64 KiB is twice nginx's largest default.
const MAX_BUF: usize = 64 * 1024;

/// Connections shed but not yet closed (each closes at once unless its last answer is still
/// being written): past this, a new connection is refused rather than shedding more.
const MAX_CLOSING: usize = 64;

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
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_BUF);
    let registry = Arc::new(Registry::new(limits));
    let turning_away = Arc::new(Semaphore::new(64));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    // Every connection's task holds a sender: when the last one ends, `recv` answers `None`.
    let (alive, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
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
        let place = match registry.admit(peer.ip()) {
            Ok(place) => place,
            Err(refusal) => {
                if last_warned
                    .is_none_or(|t: std::time::Instant| t.elapsed() > Duration::from_secs(10))
                {
                    last_warned = Some(std::time::Instant::now());
                    match refusal {
                        Refusal::Full => tracing::warn!(
                            limit = limits.max_connections,
                            "turning connections away: too many open connections, all busy"
                        ),
                        Refusal::PerAddress => tracing::warn!(
                            limit = limits.max_connections_per_ip,
                            peer = %peer.ip(),
                            "turning connections away: too many open connections from one address"
                        ),
                    }
                }
                // Answering takes a descriptor for up to a second: a flood beyond this is dropped.
                if let Ok(slot) = turning_away.clone().try_acquire_owned() {
                    tokio::spawn(turn_away(stream, slot));
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let io = WriteWatch::new(stream, place.state.clone(), limits.write_timeout);
        let service = AppService {
            app: app.clone(),
            state: place.state.clone(),
            peer,
        };
        let conn = http.serve_connection(TokioIo::new(io), service);
        tokio::spawn(run_connection(
            conn,
            place,
            limits.first_header_timeout,
            stopping.clone(),
            alive.clone(),
            peer,
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    drop(alive);
    let _ = all_closed.recv().await;
}

/// The app, as one connection's service: each request marks the connection busy until its
/// response body has been handed to hyper whole (or dropped).
struct AppService {
    app: Router,
    state: Arc<ConnState>,
    peer: SocketAddr,
}

type Answer = Pin<
    Box<dyn Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send>,
>;

impl hyper::service::Service<hyper::Request<Incoming>> for AppService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Answer;

    fn call(&self, req: hyper::Request<Incoming>) -> Answer {
        let busy = Busy::start(&self.state);
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let app = self.app.clone();
        Box::pin(async move {
            let res = app.oneshot(req).await?;
            Ok(res.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _busy = &busy;
                    frame
                }))
            }))
        })
    }
}

/// One connection, until it ends, is shed, outlives its first-head limit without a request, or
/// the server stops. Dropping hyper's connection closes the socket.
async fn run_connection(
    conn: hyper::server::conn::http1::Connection<TokioIo<WriteWatch>, AppService>,
    place: Place,
    first_header_timeout: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    _alive: tokio::sync::mpsc::Sender<()>,
    peer: SocketAddr,
) {
    let mut conn = std::pin::pin!(conn);
    let first_head = tokio::time::sleep(first_header_timeout);
    let mut first_head = std::pin::pin!(first_head);
    let mut waiting_first = true;
    let mut closing = false;
    let state = place.state.clone();
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                break;
            }
            () = &mut first_head, if waiting_first => {
                waiting_first = false;
                if state.never_asked() {
                    break;
                }
            }
            () = state.shed.notified(), if !closing => {
                closing = true;
                if state.never_asked() {
                    break;
                }
                // Closes an idle connection at once; a busy one after its response.
                conn.as_mut().graceful_shutdown();
            }
            _ = stopping.changed(), if !closing => {
                closing = true;
                if state.never_asked() {
                    break;
                }
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    drop(place);
}

/// What the server knows of one open connection, shared by its task, its service and its
/// socket.
struct ConnState {
    /// Requests whose response is not yet wholly handed to hyper.
    in_request: AtomicUsize,
    /// Requests received so far (a complete head each).
    requests: AtomicUsize,
    /// A write is waiting on the client to read.
    write_stalled: AtomicBool,
    /// When the connection last became idle (milliseconds since the registry's epoch).
    idle_since: AtomicU64,
    epoch: Instant,
    shed: Notify,
}

impl ConnState {
    fn never_asked(&self) -> bool {
        self.requests.load(Ordering::Acquire) == 0
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Waiting for a request head (its first, or the next), with nothing left to write.
    fn waiting(&self) -> bool {
        self.in_request.load(Ordering::Acquire) == 0 && !self.write_stalled.load(Ordering::Acquire)
    }
}

/// A request in progress on a connection.
struct Busy(Arc<ConnState>);

impl Busy {
    fn start(state: &Arc<ConnState>) -> Busy {
        state.in_request.fetch_add(1, Ordering::AcqRel);
        state.requests.fetch_add(1, Ordering::AcqRel);
        Busy(state.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle_since.store(self.0.now(), Ordering::Release);
        self.0.in_request.fetch_sub(1, Ordering::AcqRel);
    }
}

enum Refusal {
    Full,
    PerAddress,
}

/// The open connections: how many in all and per client address, and which can be shed.
struct Registry {
    max: usize,
    max_per_ip: usize,
    exempt: Vec<ipnet::IpNet>,
    ipv6_prefix: u8,
    epoch: Instant,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    conns: HashMap<u64, Entry>,
    per_address: HashMap<IpAddr, usize>,
    /// Connections not shed.
    counted: usize,
    /// Connections shed, not yet closed.
    closing: usize,
}

struct Entry {
    address: Option<IpAddr>,
    state: Arc<ConnState>,
    shed: bool,
}

/// A connection's place in the registry, given back when dropped.
struct Place {
    id: u64,
    state: Arc<ConnState>,
    registry: Arc<Registry>,
}

impl Registry {
    fn new(limits: &HttpLimits) -> Registry {
        Registry {
            max: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
            exempt: limits.per_ip_exempt.clone(),
            ipv6_prefix: limits.ipv6_prefix,
            epoch: Instant::now(),
            open: Mutex::new(Open::default()),
        }
    }

    fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Place, Refusal> {
        let address = counted_as(peer, &self.exempt, self.ipv6_prefix);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = address {
            if open.per_address.get(&a).copied().unwrap_or(0) >= self.max_per_ip {
                return Err(Refusal::PerAddress);
            }
        }
        if open.counted >= self.max {
            if open.closing >= MAX_CLOSING {
                return Err(Refusal::Full);
            }
            // One that never sent a request first, then the longest idle.
            let victim = open
                .conns
                .iter()
                .filter(|(_, e)| !e.shed && e.state.waiting())
                .min_by_key(|(_, e)| {
                    (
                        !e.state.never_asked(),
                        e.state.idle_since.load(Ordering::Acquire),
                    )
                })
                .map(|(id, _)| *id);
            let Some(victim) = victim else {
                return Err(Refusal::Full);
            };
            if let Some(e) = open.conns.get_mut(&victim) {
                e.shed = true;
                e.state.shed.notify_one();
            }
            open.counted -= 1;
            open.closing += 1;
        }
        let state = Arc::new(ConnState {
            in_request: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            write_stalled: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            epoch: self.epoch,
            shed: Notify::new(),
        });
        state.idle_since.store(state.now(), Ordering::Release);
        let id = open.next_id;
        open.next_id += 1;
        open.conns.insert(
            id,
            Entry {
                address,
                state: state.clone(),
                shed: false,
            },
        );
        open.counted += 1;
        if let Some(a) = address {
            *open.per_address.entry(a).or_insert(0) += 1;
        }
        Ok(Place {
            id,
            state,
            registry: self.clone(),
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.registry.open.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = open.conns.remove(&self.id) else {
            return;
        };
        if entry.shed {
            open.closing -= 1;
        } else {
            open.counted -= 1;
        }
        if let Some(a) = entry.address {
            if let Some(n) = open.per_address.get_mut(&a) {
                *n -= 1;
                if *n == 0 {
                    open.per_address.remove(&a);
                }
            }
        }
    }
}

/// The address a peer's connections are counted under, or `None` for a trusted proxy. An
/// IPv4-mapped IPv6 peer is the IPv4 address it is; an IPv6 peer counts by its network of
/// `ipv6_prefix` bits (a subscriber is given a whole /64), as in every per-address limit.
fn counted_as(peer: IpAddr, exempt: &[ipnet::IpNet], ipv6_prefix: u8) -> Option<IpAddr> {
    let ip = peer.to_canonical();
    if exempt.iter().any(|n| n.contains(&ip) || n.contains(&peer)) {
        return None;
    }
    Some(match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, ipv6_prefix.min(128))
            .map_or(ip, |net| IpAddr::V6(net.network())),
    })
}

/// The socket, with a deadline on writes that make no progress: a write (or flush) that stays
/// pending for `timeout` fails with `TimedOut`, which ends the connection.
struct WriteWatch {
    stream: TcpStream,
    state: Arc<ConnState>,
    timeout: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WriteWatch {
    fn new(stream: TcpStream, state: Arc<ConnState>, timeout: Duration) -> WriteWatch {
        WriteWatch {
            stream,
            state,
            timeout,
            stalled: None,
        }
    }

    fn progress<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                if self.stalled.take().is_some() {
                    self.state.write_stalled.store(false, Ordering::Release);
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let stalled = self.stalled.get_or_insert_with(|| {
                    self.state.write_stalled.store(true, Ordering::Release);
                    Box::pin(tokio::time::sleep(timeout))
                });
                match stalled.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client read nothing for HTTP_WRITE_TIMEOUT",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncRead for WriteWatch {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteWatch {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.progress(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.progress(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.stream).poll_flush(cx);
        self.progress(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.progress(cx, r)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_peer_counts_as_its_address_its_ipv4_or_its_network() {
        let proxies = ["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            counted_as(ip("192.0.2.7"), &proxies, 64),
            Some(ip("192.0.2.7"))
        );
        assert_eq!(
            counted_as(ip("::ffff:192.0.2.7"), &proxies, 64),
            Some(ip("192.0.2.7"))
        );
        assert_eq!(
            counted_as(ip("2001:db8:1:2:aaaa::1"), &proxies, 64),
            counted_as(ip("2001:db8:1:2:bbbb::2"), &proxies, 64)
        );
        assert_ne!(
            counted_as(ip("2001:db8:1:2::1"), &proxies, 64),
            counted_as(ip("2001:db8:1:3::1"), &proxies, 64)
        );
        // IPV6_LIMIT_PREFIX=128: each address on its own.
        assert_ne!(
            counted_as(ip("2001:db8:1:2::1"), &proxies, 128),
            counted_as(ip("2001:db8:1:2::2"), &proxies, 128)
        );
        // A trusted proxy's connections are not counted, whichever form its address takes.
        assert_eq!(counted_as(ip("10.1.2.3"), &proxies, 64), None);
        assert_eq!(counted_as(ip("::ffff:10.1.2.3"), &proxies, 64), None);
    }
}
