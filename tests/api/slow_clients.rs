//! Slow and idle clients: the server's header timeout, body timeout and connection cap
//! (`pollstr::server`). Without them, connections that never finish (or never start) a request
//! stay open for ever and exhaust the process's file descriptors.
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
    let app = app_with_limits(backend, 2, 30, 4).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&app).await);
    }
    // Give the server a moment to accept all four.
    tokio::time::sleep(Duration::from_millis(200)).await;
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

    // The held connections send nothing: the header timeout frees their places.
    for mut c in held {
        assert_eq!(read_to_close(&mut c).await, "");
    }
    let client = reqwest::Client::new();
    let res = client
        .get(format!("{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::OK);
}
