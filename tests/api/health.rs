//! Liveness and readiness (`pollstr::health`), and the drain on shutdown: `/livez` never asks
//! the database, `/readyz` does and turns 503 the moment the server is told to stop, and a vote
//! in flight when the listener closes is still committed and answered.

use std::time::Duration;

use pollstr::db::Db;
use pollstr::polls::vote_queue::VoteQueue;
use reqwest::StatusCode;

use crate::helpers::*;

crate::both_backends!(
    livez_needs_no_database_readyz_does,
    draining_is_not_ready_and_a_vote_in_flight_commits,
);

async fn status(client: &reqwest::Client, url: String) -> StatusCode {
    client.get(url).send().await.expect("answer").status()
}

async fn livez_needs_no_database_readyz_does(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let client = reqwest::Client::new();
    for path in ["/livez", "/readyz", "/healthz"] {
        assert_eq!(
            status(&client, format!("{}{path}", app.addr)).await,
            StatusCode::OK,
            "{path}"
        );
    }
    // The database goes away (its pool is closed under the app).
    match &app.db {
        Db::Sqlite(p) => p.close().await,
        Db::Postgres(p) => p.close().await,
    }
    let live = client
        .get(format!("{}/livez", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!(
        live.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    let ready = client
        .get(format!("{}/readyz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.text().await.unwrap(), "database unavailable");
    // /healthz is /readyz.
    assert_eq!(
        status(&client, format!("{}/healthz", app.addr)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// Another connection holding the votes table, so that a vote waits in the writer.
enum Hold {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

async fn hold_votes(database_url: &str) -> Hold {
    match Db::connect(database_url, &Default::default())
        .await
        .unwrap()
    {
        Db::Sqlite(p) => {
            let mut c = p.acquire().await.unwrap();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut *c)
                .await
                .unwrap();
            Hold::Sqlite(c)
        }
        Db::Postgres(p) => {
            let mut c = p.acquire().await.unwrap();
            sqlx::query("BEGIN").execute(&mut *c).await.unwrap();
            sqlx::query("LOCK TABLE votes IN EXCLUSIVE MODE")
                .execute(&mut *c)
                .await
                .unwrap();
            Hold::Postgres(c)
        }
    }
}

async fn release(hold: Hold) {
    match hold {
        Hold::Sqlite(mut c) => sqlx::query("ROLLBACK").execute(&mut *c).await.map(|_| ()),
        Hold::Postgres(mut c) => sqlx::query("ROLLBACK").execute(&mut *c).await.map(|_| ()),
    }
    .unwrap();
}

async fn draining_is_not_ready_and_a_vote_in_flight_commits(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.shutdown_drain = Duration::from_secs(2), None).await;
    app.load(SEED).await;
    let b = app.verified_browser().await;
    let csrf = b.get("/polls/1/").await.csrf().unwrap();
    let probe = reqwest::Client::new();
    let readyz = format!("{}/readyz", app.addr);
    assert_eq!(status(&probe, readyz.clone()).await, StatusCode::OK);

    // A vote waits in the writer, behind another connection's hold on the votes table.
    let hold = hold_votes(&app.database_url).await;
    let voter = b.clone();
    let vote = tokio::spawn(async move {
        voter
            .post_raw("/polls/1/vote/", &[("choice", "2"), ("csrf_token", &csrf)])
            .await
            .status
    });
    while app.state.part::<VoteQueue>().depth() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // SIGTERM: not ready from then on, while still answering (the drain).
    app.stop.lock().unwrap().take().unwrap().send(()).unwrap();
    loop {
        let res = probe
            .get(&readyz)
            .send()
            .await
            .expect("served while draining");
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(res.text().await.unwrap(), "shutting down");
            break;
        }
        assert_eq!(res.status(), StatusCode::OK);
    }
    // The drain ends: the listener closes. The vote is still waiting.
    let addr = app.addr.trim_start_matches("http://").to_string();
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!vote.is_finished());

    release(hold).await;
    assert_eq!(vote.await.unwrap(), StatusCode::SEE_OTHER);
    // The server finishes once the vote is written.
    let serving = app.serving.lock().await.take().unwrap();
    serving.await.unwrap();
    assert_eq!(app.state.part::<VoteQueue>().depth(), 0);
    let user = app
        .scalar("SELECT id FROM users WHERE username = 'test'")
        .await;
    let sql = format!("SELECT choice_id FROM votes WHERE user_id = {user} AND question_id = 1");
    assert_eq!(app.scalar(&sql).await, 2);
}
