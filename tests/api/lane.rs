//! The PostgreSQL lane (`db::lane`): connections lent without sqlx's ping on return must still
//! never be lent broken or mid-query, and must leave the pool room for everything else.

use std::time::Duration;

use pollstr::db::lane::Lane;
use pollstr::db::{Db, PoolSettings};
use sqlx::Connection;

use crate::helpers::{fresh_database, Backend};

async fn pool(size: u32) -> (sqlx::PgPool, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Postgres, &dir).await;
    let settings = PoolSettings {
        max_connections: size,
        ..Default::default()
    };
    match Db::connect(&url, &settings).await.expect("connect") {
        Db::Postgres(p) => (p, dir),
        Db::Sqlite(_) => unreachable!(),
    }
}

async fn one(lane: &Lane) -> i64 {
    let mut conn = lane.acquire().await.expect("acquire");
    let n: i64 = sqlx::query_scalar("SELECT CAST(41 + 1 AS BIGINT)")
        .fetch_one(&mut *conn)
        .await
        .expect("query");
    conn.done();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pollstr_postgres),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn a_cancelled_or_failed_query_never_returns_its_connection_to_the_lane() {
    let (pool, _dir) = pool(4).await;
    let lane = Lane::new(pool.clone(), 4).expect("a lane");
    assert_eq!(one(&lane).await, 42);
    assert_eq!(lane.idle(), 1);

    // Cancelled mid-query (the client went away): the connection is not the lane's any more.
    let mut conn = lane.acquire().await.unwrap();
    let slow = sqlx::query("SELECT pg_sleep(5)").execute(&mut *conn);
    assert!(tokio::time::timeout(Duration::from_millis(200), slow)
        .await
        .is_err());
    drop(conn);
    assert_eq!(lane.idle(), 0);
    // The next query gets a connection that answers its own question, not the sleep's.
    assert_eq!(one(&lane).await, 42);

    // A failed query: the same.
    let mut conn = lane.acquire().await.unwrap();
    assert!(sqlx::query("SELECT 1 / 0")
        .execute(&mut *conn)
        .await
        .is_err());
    drop(conn);
    assert_eq!(lane.idle(), 0);
    assert_eq!(one(&lane).await, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pollstr_postgres),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn the_lane_holds_half_the_pool_and_a_burst_still_gets_through() {
    let (pool, _dir) = pool(6).await;
    let lane = std::sync::Arc::new(Lane::new(pool.clone(), 6).expect("a lane"));
    let mut burst = Vec::new();
    for _ in 0..64 {
        let lane = lane.clone();
        burst.push(tokio::spawn(async move { one(&lane).await }));
    }
    for b in burst {
        assert_eq!(b.await.unwrap(), 42);
    }
    let idle = lane.idle();
    assert!((1..=3).contains(&idle), "the lane holds {idle}");
    // The rest of the pool is free for everything else: three more at once.
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(pool.acquire().await.expect("the pool's other half"));
    }
    drop(others);
    // A pool too small to share has no lane.
    assert!(Lane::new(pool.clone(), 1).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pollstr_postgres),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn a_connection_that_died_while_idle_is_not_lent() {
    let (pool, _dir) = pool(4).await;
    let lane = Lane::new(pool.clone(), 4).expect("a lane");
    let mut conn = lane.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    conn.done();
    // The server ends that connection (a restart, an idle timeout) while it sits in the lane.
    let mut admin = sqlx::PgConnection::connect(&crate::helpers::postgres_url())
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut admin)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Idle for over a second: pinged, found dead, replaced.
    assert_eq!(one(&lane).await, 42);
    assert_eq!(lane.idle(), 1);
}
