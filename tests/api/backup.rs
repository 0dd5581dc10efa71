//! `pollstr backup`: on SQLite a copy taken during a burst of votes passes `integrity_check`,
//! `pollstr recount` on it finds nothing to fix, and a server starts from it; it never
//! overwrites; on PostgreSQL it points to `pg_dump` and fails.

use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::StatusCode;

use crate::helpers::*;

fn pollstr(dir: &std::path::Path, url: &str, args: &[&str]) -> Output {
    pollstr_command(dir, &[("DATABASE_URL", url)])
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Users test2… with the seed user's password (test1234).
fn users(n: usize) -> String {
    let hash = "pbkdf2_sha256$24000$rk8toKlZt2vr$dsOOeY/jjjwYLqkmaT5gcRYSrtFabI+eZVgbPylP9EA=";
    let entries: Vec<String> = (2..2 + n)
        .map(|i| {
            format!(
                r#"{{"model":"auth.user","pk":{i},"fields":{{"password":"{hash}","username":"test{i}","is_active":true}}}}"#
            )
        })
        .collect();
    format!("[{}]", entries.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_votes_is_whole_and_its_counts_match() {
    let app = TestApp::seeded(Backend::Sqlite).await;
    app.load(&users(4)).await;
    let mut voters = Vec::new();
    for i in 2..6 {
        let b = app.browser();
        b.login(&format!("test{i}"), "test1234").await;
        b.verify_phone(&app, &format!("+44 7911 12345{i}")).await;
        let csrf = b.get("/polls/1/").await.csrf().unwrap();
        voters.push((b, csrf));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let cast = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (n, (b, csrf)) in voters.into_iter().enumerate() {
        let (stop, cast) = (stop.clone(), cast.clone());
        tasks.push(tokio::spawn(async move {
            let mut choice = n;
            while !stop.load(Ordering::Acquire) {
                choice = choice % 3 + 1;
                let c = choice.to_string();
                let page = b
                    .post_raw("/polls/1/vote/", &[("choice", &c), ("csrf_token", &csrf)])
                    .await;
                assert_eq!(page.status, StatusCode::SEE_OTHER);
                cast.fetch_add(1, Ordering::AcqRel);
            }
        }));
    }
    while cast.load(Ordering::Acquire) < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let (url, args_copy) = (app.database_url.clone(), copy.clone());
    let (dir_path, before) = (dir.path().to_path_buf(), cast.load(Ordering::Acquire));
    let out = tokio::task::spawn_blocking(move || {
        pollstr(
            &dir_path,
            &url,
            &["backup", "--output", args_copy.to_str().unwrap()],
        )
    })
    .await
    .unwrap();
    let during = cast.load(Ordering::Acquire) - before;
    stop.store(true, Ordering::Release);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("integrity ok"), "{}", stderr(&out));
    println!("votes cast while the backup ran: {during}");

    pollstr::db::backup::integrity(&copy).await.unwrap();
    let copy_url = format!("sqlite://{}", copy.display());
    let recount = pollstr(dir.path(), &copy_url, &["recount"]);
    assert!(recount.status.success(), "{}", stderr(&recount));
    assert!(
        stderr(&recount).contains("every vote count matches the vote rows"),
        "{}",
        stderr(&recount)
    );
    // A server starts from the copy: its four voters' votes are there.
    let base = spawn_on(Backend::Sqlite, &copy_url).await;
    let res = reqwest::get(format!("{base}/polls/1/results/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let votes: i64 = {
        let db = pollstr::db::Db::connect(&copy_url, &Default::default())
            .await
            .unwrap();
        let pollstr::db::Db::Sqlite(p) = db else {
            unreachable!()
        };
        sqlx::query_scalar("SELECT COUNT(*) FROM votes WHERE question_id = 1")
            .fetch_one(&p)
            .await
            .unwrap()
    };
    assert_eq!(votes, 4);

    // Never over an existing file.
    let again = pollstr(
        dir.path(),
        &app.database_url,
        &["backup", "--output", copy.to_str().unwrap()],
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pollstr_postgres),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn on_postgres_backup_points_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Postgres, &dir).await;
    let out = pollstr(
        dir.path(),
        &url,
        &[
            "backup",
            "--output",
            dir.path().join("x.db").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pg_dump"), "{}", stderr(&out));
    assert!(!dir.path().join("x.db").exists());
}
