//! Slow and idle clients: the server's header timeouts, body timeout, write timeout and its
//! fair connection cap (`pollstr::server`). Without them, connections that never finish (or
//! never start) a request, or never read the answer, stay open for ever, and one client fills
//! the cap so that everyone else is refused (issue 23).
//!
//! The outer `tokio::time::timeout`s below are not speed checks: they turn "the server never
//! closed the connection" (the bug) into a failure instead of a hung test.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::both_backends;
use crate::helpers::{spawn_app_with, Backend, TestApp};

both_backends!(
    idle_keep_alive_connections_are_closed,
    headers_sent_slowly_are_cut_off,
    a_slow_body_is_answered_408,
    connections_over_the_cap_are_told_503_and_the_site_recovers,
    clients_that_never_read_are_closed_and_new_clients_served,
    a_slowloris_from_one_address_is_refused_past_its_share,
    a_full_instance_sheds_half_open_connections_for_a_new_client,
    the_first_head_has_a_shorter_limit,
    hyper_buffers_are_bounded_to_64_kib,
);

const GIVE_UP: Duration = Duration::from_secs(20);

async fn app_with_limits(backend: Backend, header: u64, body: u64, max: usize) -> TestApp {
    spawn_app_with(
        backend,
        |c| {
            c.http.header_timeout = Duration::from_secs(header);
            c.http.body_timeout = Duration::from_secs(body);
            c.http.max_connections = max;
        },
        None,
    )
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.addr.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// A connection from another loopback address (`127.0.0.x`): another client, to the server.
async fn connect_from(app: &TestApp, from: [u8; 4]) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from((from, 0)))
        .expect("bind a loopback address");
    socket
        .connect(
            app.addr
                .trim_start_matches("http://")
                .parse()
                .expect("addr"),
        )
        .await
        .expect("connect")
}

/// Half a request head, the rest never sent (slowloris).
const HALF_HEAD: &[u8] = b"GET /polls/ HTTP/1.1\r\nhost: x\r\nx-padding: a";

/// `None` when the connection failed (a 503 sent before the request counts as one).
async fn healthz_status(app: &TestApp) -> Option<reqwest::StatusCode> {
    reqwest::Client::new()
        .get(format!("{}/healthz", app.addr))
        .send()
        .await
        .ok()
        .map(|r| r.status())
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(GIVE_UP, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&got).into_owned()
}

async fn idle_keep_alive_connections_are_closed(backend: Backend) {
    let app = app_with_limits(backend, 1, 30, 100).await;
    // A connection that never sends a byte.
    let mut silent = connect(&app).await;
    // A keep-alive connection that made one request and then went quiet.
    let mut idle = connect(&app).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(read_to_close(&mut silent).await, "");
}

async fn headers_sent_slowly_are_cut_off(backend: Backend) {
    let app = app_with_limits(backend, 1, 30, 100).await;
    let mut slow = connect(&app).await;
    let request = b"GET /polls/ HTTP/1.1\r\nhost: x\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    // One byte every 100 ms: the whole head would take about 10 s, ten times the limit.
    let mut sent = 0;
    for byte in request {
        if slow.write_all(&[*byte]).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = read_to_close(&mut slow).await;
    assert!(
        sent < request.len(),
        "the server waited for the whole slow head"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
}

async fn a_slow_body_is_answered_408(backend: Backend) {
    let app = app_with_limits(backend, 10, 1, 100).await;
    let mut slow = connect(&app).await;
    slow.write_all(
        b"POST /login/ HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\nusername=te",
    )
    .await
    .unwrap();
    // The rest never comes.
    let answer = read_to_close(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("The form took too long to arrive."),
        "{answer}"
    );
}

async fn connections_over_the_cap_are_told_503_and_the_site_recovers(backend: Backend) {
    let app = app_with_limits(backend, 2, 2, 4).await;
    // Four connections busy in a request: a form whose body never comes (connections waiting
    // for a request would be shed instead, see below).
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = connect(&app).await;
        c.write_all(
            b"POST /login/ HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\nusername=te",
        )
        .await
        .unwrap();
        held.push(c);
    }
    // Give the server a moment to read all four heads.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = connect(&app).await;
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let answer = read_to_close(&mut extra).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 5"),
        "{answer}"
    );

    // The body timeout answers the held connections and frees their places.
    for mut c in held {
        let answer = read_to_close(&mut c).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert_eq!(healthz_status(&app).await, Some(reqwest::StatusCode::OK));
}

/// Sockets that pipeline requests for a static file and never read their answers, as many as
/// the cap: the write timeout closes them, and new clients are served again.
async fn clients_that_never_read_are_closed_and_new_clients_served(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |c| {
            c.http.write_timeout = Duration::from_secs(1);
            c.http.max_connections = 4;
        },
        None,
    )
    .await;
    let request = b"GET /static/pollstr.css HTTP/1.1\r\nhost: x\r\n\r\n";
    // 12.7 KB answered 4,000 times: 50 MB, far more than the sockets' buffers hold (on
    // loopback they grow to several MB).
    let pipelined = request.repeat(4000);
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut c = connect(&app).await;
        c.write_all(&pipelined).await.unwrap();
        stalled.push(c);
    }
    // Reading nothing for three times the write timeout.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // New clients are served again: tried for at most 20 s.
    let mut served = false;
    for _ in 0..80 {
        if healthz_status(&app).await == Some(reqwest::StatusCode::OK) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(served, "no new client was served while the sockets stalled");
    for mut c in stalled {
        // The server closed it before it had sent every answer.
        let got = read_to_close(&mut c).await;
        let answers = got.matches("HTTP/1.1 200").count();
        assert!(
            answers < 4000,
            "all {answers} answers were written ({} bytes)",
            got.len()
        );
    }
}

/// One address that opens more half-sent heads than its share is refused at once, while
/// another client is served.
async fn a_slowloris_from_one_address_is_refused_past_its_share(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |c| {
            c.http.first_header_timeout = Duration::from_secs(15);
            c.http.header_timeout = Duration::from_secs(15);
            c.http.max_connections = 100;
            c.http.max_connections_per_ip = 3;
        },
        None,
    )
    .await;
    let mut within = Vec::new();
    for _ in 0..3 {
        let mut c = connect_from(&app, [127, 0, 0, 2]).await;
        c.write_all(HALF_HEAD).await.unwrap();
        within.push(c);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let mut c = connect_from(&app, [127, 0, 0, 2]).await;
        let _ = c.write_all(HALF_HEAD).await;
        let answer = read_to_close(&mut c).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    }
    // Another address is served meanwhile.
    assert_eq!(healthz_status(&app).await, Some(reqwest::StatusCode::OK));
    drop(within);
}

/// An instance full of half-sent heads (from several addresses, each within its share) closes
/// the oldest to serve a new client.
async fn a_full_instance_sheds_half_open_connections_for_a_new_client(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |c| {
            c.http.first_header_timeout = Duration::from_secs(30);
            c.http.header_timeout = Duration::from_secs(30);
            c.http.max_connections = 4;
        },
        None,
    )
    .await;
    let mut half_open = Vec::new();
    for i in 0..4u8 {
        let mut c = connect_from(&app, [127, 0, 0, 2 + i]).await;
        c.write_all(HALF_HEAD).await.unwrap();
        half_open.push(c);
        // Accepted in this order: the first is the oldest.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(healthz_status(&app).await, Some(reqwest::StatusCode::OK));
    // The oldest was closed for it, well before the 30 s header timeout.
    let mut oldest = half_open.remove(0);
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 64];
        matches!(oldest.read(&mut buf).await, Ok(0) | Err(_))
    })
    .await;
    assert_eq!(closed, Ok(true), "the oldest half-open connection is open");
}

/// A connection's first head must come sooner than later ones.
async fn the_first_head_has_a_shorter_limit(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |c| {
            c.http.first_header_timeout = Duration::from_secs(1);
            c.http.header_timeout = Duration::from_secs(30);
        },
        None,
    )
    .await;
    let mut slow = connect(&app).await;
    slow.write_all(HALF_HEAD).await.unwrap();
    // Closed long before the 30 s header timeout (read_to_close gives up after 20 s).
    assert_eq!(read_to_close(&mut slow).await, "");

    // After a first request, the connection may wait longer than the first limit.
    let mut kept = connect(&app).await;
    let mut buf = vec![0u8; 65536];
    for _ in 0..2 {
        kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let n = tokio::time::timeout(GIVE_UP, kept.read(&mut buf))
            .await
            .expect("an answer")
            .expect("read");
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

/// Hyper's buffers are bounded (what a client that pipelines and never reads can make the
/// server hold): a 300 KiB request head, which hyper's default 400 KiB would take, is refused.
async fn hyper_buffers_are_bounded_to_64_kib(backend: Backend) {
    let app = app_with_limits(backend, 10, 30, 100).await;
    let mut big = connect(&app).await;
    let head = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-padding: {}\r\n\r\n",
        "a".repeat(300 * 1024)
    );
    let _ = big.write_all(head.as_bytes()).await;
    let answer = read_to_close(&mut big).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}
