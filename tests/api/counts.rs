//! Vote counts kept by the database (`choice_counts`, maintained by triggers on `votes`) equal
//! the vote rows after everything that writes votes, and `pollstr recount` finds and repairs any
//! difference.

use std::sync::Arc;

use pollstr::polls::counts::{recount, Fix};
use pollstr::polls::queries;

use crate::both_backends;
use crate::helpers::{pollstr_command, spawn_app, Backend, TestApp, SEED};

both_backends!(
    kept_counts_match_the_votes_after_concurrent_votes_imports_and_deletions,
    recount_reports_and_repairs_wrong_counts,
);

/// `n` users who cannot log in (only their votes matter here); their ids.
async fn voters(app: &TestApp, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let name = format!("voter{i}");
        ids.push(pollstr::users::create(&app.db, &name, "!").await.unwrap());
    }
    ids
}

/// Each choice of the poll as its page shows it, against what the vote rows and the imported
/// counts say.
async fn assert_pages_count_the_rows(app: &TestApp, question: i64) {
    let Some(view) = queries::poll_view(&app.db, question, 0).await.unwrap() else {
        return;
    };
    for c in view.choices {
        let rows = app
            .scalar(&format!(
                "SELECT COUNT(*) FROM votes WHERE choice_id = {}",
                c.id
            ))
            .await;
        let base = app
            .scalar(&format!(
                "SELECT base_votes FROM choices WHERE id = {}",
                c.id
            ))
            .await;
        assert_eq!(c.votes, base + rows, "choice {} of poll {question}", c.id);
    }
}

async fn kept_counts_match_the_votes_after_concurrent_votes_imports_and_deletions(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.load(SEED).await;
    // 120 voters, each voting four times at once with all the others on polls 1 and 3 (new
    // votes, changed votes, the same vote again), straight through the vote query.
    let users = voters(&app, 120).await;
    let db = Arc::new(app.db.clone());
    let mut tasks = Vec::new();
    for (i, &user) in users.iter().enumerate() {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..4 {
                let (question, first) = if (i + round) % 2 == 0 { (1, 1) } else { (3, 9) };
                let choice = first + ((i * 7 + round) % 4) as i64;
                let counted = queries::cast_vote(&db, user, question, choice)
                    .await
                    .unwrap();
                assert!(counted, "voter {user}: choice {choice} of poll {question}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(recount(&app.db).await.unwrap(), Vec::<Fix>::new());
    assert_pages_count_the_rows(&app, 1).await;
    assert_pages_count_the_rows(&app, 3).await;

    // An import that moves some of those votes, adds new ones and sets imported counts.
    let mut entries = vec![
        serde_json::json!({"model": "polls.choice", "pk": 2, "fields": {
        "question": 1, "choice_text": "Not much", "votes": 500}}),
    ];
    for &user in &users[..30] {
        entries.push(serde_json::json!({"model": "polls.vote", "fields": {
            "user": user, "question": 1, "choice": 2}}));
        entries.push(serde_json::json!({"model": "polls.vote", "fields": {
            "user": user, "question": 2, "choice": 5 + user % 4}}));
    }
    app.load(&serde_json::Value::Array(entries).to_string())
        .await;
    assert_eq!(recount(&app.db).await.unwrap(), Vec::<Fix>::new());
    for question in 1..=3 {
        assert_pages_count_the_rows(&app, question).await;
    }

    // A large import (more votes than one statement of the loader writes), in which a user's
    // later vote on a poll replaces their earlier one.
    let mut entries = Vec::new();
    for i in 0..5_200i64 {
        let user = 10_000 + i;
        entries.push(
            serde_json::json!({"model": "auth.user", "pk": user, "fields": {
            "username": format!("imported{i}"), "password": "!"}}),
        );
        entries.push(serde_json::json!({"model": "polls.vote", "fields": {
            "user": user, "question": 3, "choice": 9 + i % 4}}));
    }
    entries.push(serde_json::json!({"model": "polls.vote", "fields": {
        "user": 10_000, "question": 3, "choice": 12}}));
    app.load(&serde_json::Value::Array(entries).to_string())
        .await;
    assert_eq!(
        app.scalar("SELECT choice_id FROM votes WHERE user_id = 10000 AND question_id = 3")
            .await,
        12,
        "the later vote of the file wins"
    );
    assert_eq!(recount(&app.db).await.unwrap(), Vec::<Fix>::new());
    assert_pages_count_the_rows(&app, 3).await;

    // Deletions: a user (their votes go), a voted choice, a whole poll.
    for sql in [
        format!("DELETE FROM users WHERE id = {}", users[0]),
        "DELETE FROM choices WHERE id = 3".to_string(),
        "DELETE FROM questions WHERE id = 2".to_string(),
    ] {
        app.execute(&sql).await;
        assert_eq!(recount(&app.db).await.unwrap(), Vec::<Fix>::new(), "{sql}");
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM choice_counts WHERE choice_id IN (3, 5, 6, 7, 8)")
            .await,
        0,
        "the counts of deleted choices go with them"
    );
    assert_pages_count_the_rows(&app, 1).await;
    assert_pages_count_the_rows(&app, 3).await;
}

async fn recount_reports_and_repairs_wrong_counts(backend: Backend) {
    let app = spawn_app(backend).await;
    app.load(SEED).await;
    let users = voters(&app, 3).await;
    for &id in &users {
        assert!(queries::cast_vote(&app.db, id, 1, 1).await.unwrap());
    }
    assert!(queries::cast_vote(&app.db, users[0], 3, 10).await.unwrap());
    // Counts broken behind the triggers' back (as a bad manual edit would).
    for sql in [
        "UPDATE choice_counts SET votes = votes + 5 WHERE choice_id = 1 \
         AND shard = (SELECT MIN(shard) FROM choice_counts WHERE choice_id = 1)",
        "DELETE FROM choice_counts WHERE choice_id = 10",
    ] {
        app.execute(sql).await;
    }
    // `pollstr recount` reports and repairs them; a second run finds nothing.
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let out = pollstr_command(dir.path(), &[("DATABASE_URL", &app.database_url)])
            .arg("recount")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let first = run();
    assert!(
        first.contains("choice 1 (poll 1): the kept count said 8, the vote rows say 3: fixed"),
        "{first}"
    );
    assert!(
        first.contains("choice 10 (poll 3): the kept count said 0, the vote rows say 1: fixed"),
        "{first}"
    );
    assert!(
        first.contains("fixed the vote counts of 2 choice(s)"),
        "{first}"
    );
    let second = run();
    assert!(
        second.contains("every vote count matches the vote rows"),
        "{second}"
    );
    assert_pages_count_the_rows(&app, 1).await;
    assert_pages_count_the_rows(&app, 3).await;
    // The repaired counts go on being kept.
    assert!(queries::cast_vote(&app.db, users[1], 3, 10).await.unwrap());
    assert_eq!(recount(&app.db).await.unwrap(), Vec::<Fix>::new());
}
