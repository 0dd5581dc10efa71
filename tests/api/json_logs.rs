//! `LOG_FORMAT=json`: the real binary serves a whole journey (sign-up, a code sent and typed, a
//! vote, a 404, a 500 from a database fault) against the fake Verify v2 server, and every line
//! it logs is one JSON object, names its request, and holds no code, password or whole number.

use std::process::Stdio;
use std::sync::Arc;

use reqwest::{redirect, StatusCode};

use crate::helpers::*;

crate::both_backends!(every_line_of_a_journey_is_json_and_keeps_secrets);

async fn every_line_of_a_journey_is_json_and_keeps_secrets(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    let (tx, mut codes) = tokio::sync::mpsc::unbounded_channel();
    let verify = crate::fake_verify_v2::start(tx).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let log_path = dir.path().join("log.jsonl");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = pollstr_command(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("POLLSTR_ADDR", &addr),
            ("LOG_FORMAT", "json"),
            ("RUST_LOG", "pollstr=debug"),
            ("SHUTDOWN_DRAIN", "0s"),
            ("NEXMO_API_KEY", crate::fake_verify_v2::KEY),
            ("NEXMO_API_SECRET", crate::fake_verify_v2::SECRET),
            ("NEXMO_VERIFY_URL", &verify),
        ],
    )
    .arg("serve")
    .stdout(Stdio::null())
    .stderr(Stdio::from(log))
    .spawn()
    .unwrap();
    let base = format!("http://{addr}");
    let probe = reqwest::Client::new();
    while probe.get(format!("{base}/livez")).send().await.is_err() {
        if let Some(status) = server.try_wait().unwrap() {
            let log = std::fs::read_to_string(&log_path).unwrap();
            panic!("the server stopped ({status}): {log}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let b = Browser {
        base: base.clone(),
        client: reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(redirect::Policy::none())
            .build()
            .unwrap(),
        jar,
    };

    // Sign up, a code sent and typed, a vote.
    assert_eq!(b.register("journey").await.status, StatusCode::SEE_OTHER);
    let sent = b
        .submit("/2fa/", "/2fa/create/", &[("number", PHONE)])
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    let (to, code) = codes.recv().await.unwrap();
    assert_eq!(to, PHONE_E164);
    let done = b
        .submit(
            sent.location.as_deref().unwrap(),
            "/2fa/confirm/",
            &[("code", &code)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    let csrf = b.get("/polls/1/").await.csrf().unwrap();
    let vote = b
        .post_raw("/polls/1/vote/", &[("choice", "1"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(vote.status, StatusCode::SEE_OTHER);
    // A 404.
    assert_eq!(b.get("/polls/424242/").await.status, StatusCode::NOT_FOUND);
    // A 500: the votes table is gone from under the server.
    let db = pollstr::db::Db::connect(&url, &Default::default())
        .await
        .unwrap();
    pollstr::with_db!(&db, p => sqlx::query("ALTER TABLE votes RENAME TO votes_away").execute(p).await.map(|_| ()).unwrap());
    let broken = b
        .post_raw("/polls/1/vote/", &[("choice", "2"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(broken.status, StatusCode::INTERNAL_SERVER_ERROR);
    pollstr::with_db!(&db, p => sqlx::query("ALTER TABLE votes_away RENAME TO votes").execute(p).await.map(|_| ()).unwrap());

    // SIGTERM, and the server's last lines.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exited = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exited.success());

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 5, "{text}");
    let (mut with_user, mut with_route, mut errors) = (0, 0, 0);
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let o = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        for key in ["time", "level", "target", "message"] {
            assert!(o.contains_key(key), "no {key}: {line}");
        }
        if o.contains_key("method") {
            assert!(o.contains_key("request_id"), "{line}");
        }
        with_user += usize::from(o.contains_key("user_id"));
        with_route += usize::from(o.contains_key("route"));
        errors += usize::from(o["level"] == "ERROR");
        assert!(!has_word(line, &code), "the code in the log: {line}");
        for secret in [STRONG, "7911123456", "7911 123456"] {
            assert!(!line.contains(secret), "{secret:?} in the log: {line}");
        }
    }
    assert!(with_route > 0, "{text}");
    assert!(with_user > 0, "{text}");
    assert!(errors > 0, "the 500 was logged: {text}");
    assert!(
        text.contains("shut down: every request and vote finished"),
        "{text}"
    );
}

/// `word` in `line`, not inside a longer run of letters and digits (a timestamp's digits).
fn has_word(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}
