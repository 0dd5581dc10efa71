//! Polls that end (closing time, Close now, Reopen), who sees the results (always, after
//! voting, after closing; staff always) and the results as CSV (docs/polls.md).

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{pollstr_command, Browser, TestApp};

both_backends!(
    a_closed_poll_takes_no_vote_and_shows_final_results,
    a_burst_of_votes_racing_the_close_is_counted_before_it_or_refused,
    a_poll_past_its_closing_time_is_closed_and_recorded,
    the_admin_sets_a_closing_time_and_who_sees_the_results,
    the_list_shows_open_polls_first_with_their_end,
    results_after_voting_are_hidden_from_non_voters_but_staff,
    results_after_closing_are_hidden_until_the_poll_closes,
    the_csv_export_neutralises_formulas,
    export_results_writes_the_csv,
    a_receipt_is_shown_once_and_a_changed_vote_gets_a_new_one,
    a_receipt_goes_to_its_voters_next_page_in_a_sealed_cookie_not_the_session,
    the_vote_writer_stores_each_ballots_receipt,
    the_same_votes_seal_to_the_same_digest,
    a_database_edit_makes_verify_poll_fail_naming_it,
);

async fn app(backend: crate::helpers::Backend) -> TestApp {
    TestApp::seeded_for_many_voters(backend).await
}

async fn voters(app: &TestApp, n: usize) -> Vec<Browser> {
    app.phone_voters("voter", 3, n).await
}

async fn vote(b: &Browser, poll: i64, choice: i64) -> crate::helpers::Page {
    let csrf = b.get(&format!("/polls/{poll}/")).await.csrf().unwrap();
    b.post_raw(
        &format!("/polls/{poll}/vote/"),
        &[("choice", &choice.to_string()), ("csrf_token", &csrf)],
    )
    .await
}

/// Posts a staff action's form (Close now, Reopen) from the poll's admin page.
async fn staff_action(staff: &Browser, poll: i64, action: &str) -> crate::helpers::Page {
    let page = format!("/admin/polls/{poll}/");
    let to = format!("/admin/polls/{poll}/{action}/");
    staff.submit(&page, &to, &[]).await
}

/// The kept counts equal the vote rows (`pollstr recount` finds nothing).
async fn counts_match_rows(app: &TestApp) {
    assert_eq!(
        pollstr::polls::counts::recount(&app.db).await.unwrap(),
        Vec::new()
    );
}

async fn a_closed_poll_takes_no_vote_and_shows_final_results(backend: crate::helpers::Backend) {
    let app = app(backend).await;
    let staff = app.staff_browser().await;
    let voter = voters(&app, 1).await.remove(0);
    assert_eq!(vote(&voter, 1, 1).await.status, StatusCode::SEE_OTHER);
    let csrf = voter.get("/polls/1/").await.csrf().unwrap();

    let closed = staff_action(&staff, 1, "close").await;
    assert_eq!(closed.status, StatusCode::SEE_OTHER, "{}", closed.text());
    assert!(
        app.scalar("SELECT closed_at FROM questions WHERE id = 1")
            .await
            > 0
    );

    // A vote sent from the page opened before the close: 409, nothing written.
    let refused = voter
        .post_raw("/polls/1/vote/", &[("choice", "2"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.has("This poll closed on"), "{}", refused.text());
    assert_eq!(
        app.scalar("SELECT choice_id FROM votes WHERE question_id = 1")
            .await,
        1
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM votes").await, 1);
    // The poll's page is its final results, with no form.
    let page = voter.get("/polls/1/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.has("Final results") && page.has("These results are final"));
    assert!(page.form("/polls/1/vote/").is_none());
    counts_match_rows(&app).await;

    // Reopened, it takes votes again.
    let reopened = staff_action(&staff, 1, "reopen").await;
    assert_eq!(reopened.status, StatusCode::SEE_OTHER);
    assert_eq!(vote(&voter, 1, 2).await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.scalar("SELECT choice_id FROM votes WHERE question_id = 1")
            .await,
        2
    );
}

/// Many voters vote (and change their votes) while staff close the poll: each vote is either
/// counted (303) or refused (409); the counts read just after the close are the counts once
/// every vote has been answered; each voter's row is their last counted vote.
async fn a_burst_of_votes_racing_the_close_is_counted_before_it_or_refused(
    backend: crate::helpers::Backend,
) {
    let app = app(backend).await;
    let staff = app.staff_browser().await;
    let browsers = voters(&app, 12).await;
    let mut tasks = Vec::new();
    for (i, b) in browsers.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let csrf = b.get("/polls/1/").await.csrf().unwrap();
            let mut last_counted = None;
            let mut refused = false;
            for round in 0..8 {
                let choice = 1 + ((i + round) % 4) as i64;
                let page = b
                    .post_raw(
                        "/polls/1/vote/",
                        &[("choice", &choice.to_string()), ("csrf_token", &csrf)],
                    )
                    .await;
                match page.status {
                    StatusCode::SEE_OTHER => {
                        // Once refused, never counted again: the close is final.
                        assert!(!refused, "a vote counted after one was refused");
                        last_counted = Some(choice);
                    }
                    StatusCode::CONFLICT => refused = true,
                    other => panic!("vote answered {other}: {}", page.text()),
                }
            }
            last_counted
        }));
    }
    // Close while the votes are going on; read the counts at once.
    let closed = staff_action(&staff, 1, "close").await;
    assert_eq!(closed.status, StatusCode::SEE_OTHER);
    let at_close = staff.get("/polls/1/results.csv").await;
    assert_eq!(at_close.status, StatusCode::OK);
    let mut expected = [0i64; 5];
    for t in tasks {
        if let Some(choice) = t.await.unwrap() {
            expected[choice as usize] += 1;
        }
    }
    for (choice, want) in expected.iter().enumerate().skip(1) {
        let sql = format!("SELECT COUNT(*) FROM votes WHERE choice_id = {choice}");
        assert_eq!(app.scalar(&sql).await, *want, "choice {choice}");
    }
    counts_match_rows(&app).await;
    // The sealed audit file: one line per vote row, per choice as the rows and kept counts.
    let audit = staff.get("/polls/1/audit.csv").await;
    assert_eq!(audit.status, StatusCode::OK);
    let lines: Vec<&str> = audit.body.lines().skip(1).collect();
    assert_eq!(lines.len() as i64, expected.iter().sum::<i64>());
    assert_eq!(
        lines.len() as i64,
        app.scalar("SELECT COUNT(*) FROM votes").await
    );
    for (choice, want) in expected.iter().enumerate().skip(1) {
        let text = choice_text(&app, choice as i64).await;
        let filed = lines
            .iter()
            .filter(|l| l.ends_with(&format!(",{text}")))
            .count();
        assert_eq!(filed as i64, *want, "choice {choice} in the audit file");
    }
    let verdict = pollstr::polls::seal::verify(&app.db, 1, None)
        .await
        .unwrap()
        .unwrap();
    assert!(verdict.ok, "{:?}", verdict.lines);
    let after = staff.get("/polls/1/results.csv").await;
    assert_eq!(
        at_close.body, after.body,
        "the counts changed after the close"
    );
    // No vote row was written after the close was recorded.
    let closed_at = app
        .scalar("SELECT closed_at FROM questions WHERE id = 1")
        .await;
    let late = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM votes WHERE voted_at > {closed_at}"
        ))
        .await;
    assert_eq!(late, 0);
}

async fn a_poll_past_its_closing_time_is_closed_and_recorded(backend: crate::helpers::Backend) {
    let app = app(backend).await;
    let voter = voters(&app, 1).await.remove(0);
    assert_eq!(vote(&voter, 1, 3).await.status, StatusCode::SEE_OTHER);
    let past = pollstr::db::now() - 60;
    app.execute(&format!(
        "UPDATE questions SET closes_at = {past} WHERE id = 1"
    ))
    .await;
    app.polls.clear();
    let refused = vote(&voter, 1, 4).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.has("This poll closed on"));
    assert_eq!(
        app.scalar("SELECT choice_id FROM votes WHERE question_id = 1")
            .await,
        3
    );
    // Reading its results records the close.
    let results = voter.get("/polls/1/results/").await;
    assert!(results.has("These results are final"));
    assert!(
        app.scalar("SELECT closed_at FROM questions WHERE id = 1")
            .await
            >= past
    );
}

async fn the_admin_sets_a_closing_time_and_who_sees_the_results(backend: crate::helpers::Backend) {
    let app = app(backend).await;
    let staff = app.staff_browser().await;
    // Before the publication: refused.
    let page = staff
        .submit(
            "/admin/polls/1/",
            "/admin/polls/1/",
            &[("close_date", "1999-01-01"), ("close_time", "10:00")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.has("The poll must close after it is published."));
    let page = staff
        .submit(
            "/admin/polls/1/",
            "/admin/polls/1/",
            &[("results_visibility", "nobody")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.has("Choose who sees the results."));
    let saved = staff
        .submit(
            "/admin/polls/1/",
            "/admin/polls/1/",
            &[
                ("close_date", "2999-01-02"),
                ("close_time", "10:30"),
                ("results_visibility", "closed"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text());
    let closes = app
        .scalar("SELECT closes_at FROM questions WHERE id = 1")
        .await;
    assert_eq!(closes, 32_472_268_200);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM questions WHERE results_visibility = 'closed'")
            .await,
        1
    );
    let page = staff.get("/admin/polls/1/").await;
    let fields = page.form("/admin/polls/1/").unwrap();
    for (name, value) in [
        ("close_date", "2999-01-02"),
        ("close_time", "10:30"),
        ("results_visibility", "closed"),
    ] {
        assert!(
            fields.contains(&(name.into(), value.into())),
            "{name}: {fields:?}"
        );
    }
    assert!(page.has("Close now"));
}

async fn the_list_shows_open_polls_first_with_their_end(backend: crate::helpers::Backend) {
    let app = app(backend).await;
    let now = pollstr::db::now();
    // The newest poll closed; another closes in three days.
    let newest = app
        .scalar("SELECT id FROM questions ORDER BY pub_date DESC, id DESC LIMIT 1")
        .await;
    app.execute(&format!(
        "UPDATE questions SET closes_at = {} WHERE id = {newest}",
        now - 10
    ))
    .await;
    let other = if newest == 1 { 2 } else { 1 };
    app.execute(&format!(
        "UPDATE questions SET closes_at = {} WHERE id = {other}",
        now + 3 * 86_400 + 100
    ))
    .await;
    app.polls.clear();
    let page = app.browser().get("/polls/").await;
    let text = page.text();
    assert!(text.contains("Closes in 3 days"), "{text}");
    let closed_at = text.find("Closed").expect("closed poll shown");
    let closes_in = text.find("Closes in 3 days").unwrap();
    assert!(
        closes_in < closed_at,
        "an open poll is listed first: {text}"
    );
}

async fn results_after_voting_are_hidden_from_non_voters_but_staff(
    backend: crate::helpers::Backend,
) {
    let app = app(backend).await;
    app.execute("UPDATE questions SET results_visibility = 'voted' WHERE id = 1")
        .await;
    app.polls.clear();
    let staff = app.staff_browser().await;
    let mut v = voters(&app, 2).await;
    let (voter, other) = (v.remove(0), v.remove(0));
    // Non-voter: no link, the page and the export refused, no count shown.
    let page = other.get("/polls/1/").await;
    assert!(!page.has("See results"));
    let hidden = other.get("/polls/1/results/").await;
    assert_eq!(hidden.status, StatusCode::FORBIDDEN);
    assert!(hidden.has("shown once you have voted") && !hidden.has("in total"));
    assert_eq!(
        other.get("/polls/1/results.csv").await.status,
        StatusCode::FORBIDDEN
    );
    // The voter sees them after voting.
    let voted = vote(&voter, 1, 2).await;
    assert_eq!(voted.location.as_deref(), Some("/polls/1/results/"));
    let shown = voter.get("/polls/1/results/").await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.has("1 vote in total"));
    assert_eq!(
        voter.get("/polls/1/results.csv").await.status,
        StatusCode::OK
    );
    // Staff, who did not vote, always.
    assert_eq!(staff.get("/polls/1/results/").await.status, StatusCode::OK);
    let csv = staff.get("/polls/1/results.csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.body.starts_with("choice,votes,share\r\n"));
}

async fn results_after_closing_are_hidden_until_the_poll_closes(backend: crate::helpers::Backend) {
    let app = app(backend).await;
    app.execute("UPDATE questions SET results_visibility = 'closed' WHERE id = 1")
        .await;
    app.polls.clear();
    let staff = app.staff_browser().await;
    let mut v = voters(&app, 2).await;
    let (voter, other) = (v.remove(0), v.remove(0));
    // A vote leads back to the poll, which says when the results show.
    let voted = vote(&voter, 1, 2).await;
    assert_eq!(voted.location.as_deref(), Some("/polls/1/"));
    let page = voter.get("/polls/1/").await;
    assert!(page.has("The results of this poll are shown when it closes."));
    assert!(!page.has("See results"));
    for b in [&voter, &other] {
        assert_eq!(
            b.get("/polls/1/results/").await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            b.get("/polls/1/results.csv").await.status,
            StatusCode::FORBIDDEN
        );
    }
    let csv = staff.get("/polls/1/results.csv").await;
    assert!(csv.body.contains(",1,100.0"), "{}", csv.body);
    // Closed: everyone sees the final results.
    staff_action(&staff, 1, "close").await;
    for b in [&voter, &other] {
        let page = b.get("/polls/1/results/").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.has("1 vote in total"));
        assert_eq!(b.get("/polls/1/results.csv").await.status, StatusCode::OK);
    }
}

async fn the_csv_export_neutralises_formulas(backend: crate::helpers::Backend) {
    let app = app(backend).await;
    app.execute("UPDATE choices SET choice_text = '=HYPERLINK(\"http://x\",\"y\")' WHERE id = 1")
        .await;
    app.execute("UPDATE choices SET choice_text = '@SUM(1+1)' WHERE id = 2")
        .await;
    app.polls.clear();
    let b = app.verified_browser().await;
    let page = b.get("/polls/1/results/").await;
    assert!(page.has("Download the results (CSV)"));
    let csv = b.get("/polls/1/results.csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(
        csv.body
            .contains("\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",0,0.0\r\n"),
        "{}",
        csv.body
    );
    assert!(csv.body.contains("'@SUM(1+1),0,0.0\r\n"), "{}", csv.body);
    for line in csv.body.lines().skip(1) {
        assert!(
            !line
                .trim_start_matches('"')
                .starts_with(['=', '+', '-', '@']),
            "{line}"
        );
    }
}

async fn export_results_writes_the_csv(backend: crate::helpers::Backend) {
    let app = app(backend).await;
    let voter = voters(&app, 1).await.remove(0);
    assert_eq!(vote(&voter, 1, 1).await.status, StatusCode::SEE_OTHER);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.csv");
    let run = |args: Vec<String>| {
        pollstr_command(dir.path(), &[("DATABASE_URL", &app.database_url)])
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(vec![
        "export-results".into(),
        "1".into(),
        "--output".into(),
        out.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(&out).unwrap();
    assert!(
        csv.starts_with("choice,votes,share\r\nA beagle,1,100.0\r\n"),
        "{csv}"
    );
    let o = run(vec!["export-results".into(), "999".into()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("there is no published poll 999"));
}

/// PostgreSQL, where votes are written by many connections (and many instances) at once: a
/// close waits for a vote transaction in progress, so the counts read as soon as the close is
/// recorded include it and never change after. (On SQLite the one write lock orders them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pollstr_postgres),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn a_close_waits_for_the_votes_being_written() {
    use pollstr::db::Db;
    use pollstr::polls::store;
    let app = TestApp::seeded(crate::helpers::Backend::Postgres).await;
    let user = pollstr::users::create(&app.db, "held", "!").await.unwrap();
    let Db::Postgres(pool) = &app.db else {
        unreachable!()
    };
    // A vote written as the vote statement writes it, its transaction still open.
    let mut held = pool.begin().await.unwrap();
    let written = sqlx::query(
        "INSERT INTO votes (user_id, question_id, choice_id, voted_at) \
         SELECT $1, q.id, 2, $2 FROM questions q \
         WHERE q.id = 1 AND q.closed_at IS NULL AND (q.closes_at IS NULL OR q.closes_at > $2)",
    )
    .bind(user)
    .bind(pollstr::db::now())
    .execute(&mut *held)
    .await
    .unwrap();
    assert_eq!(written.rows_affected(), 1);
    let db = app.db.clone();
    let close = tokio::spawn(async move { store::record_close(&db, 1, true).await.unwrap() });
    let votes = |db: Db| async move {
        let view = store::poll_view(&db, 1, 0).await.unwrap().unwrap();
        view.choices.iter().map(|c| c.votes).collect::<Vec<_>>()
    };
    // Either the close waits on a lock (as it must), or it finished first (the bug).
    let at_close = loop {
        if close.is_finished() {
            break Some(votes(app.db.clone()).await);
        }
        let waiting = app
            .scalar(
                "SELECT COUNT(*) FROM pg_locks WHERE NOT granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .await;
        if waiting > 0 {
            break None;
        }
        tokio::task::yield_now().await;
    };
    held.commit().await.unwrap();
    assert!(close.await.unwrap());
    let at_close = match at_close {
        Some(v) => v,
        None => votes(app.db.clone()).await,
    };
    assert_eq!(
        at_close,
        vec![0, 1, 0, 0],
        "the close did not wait for the vote"
    );
    assert_eq!(votes(app.db.clone()).await, at_close);
}

async fn choice_text(app: &TestApp, choice: i64) -> String {
    let sql = "SELECT choice_text FROM choices WHERE id = $1";
    match &app.db {
        pollstr::db::Db::Sqlite(p) => sqlx::query_scalar(sql).bind(choice).fetch_one(p).await,
        pollstr::db::Db::Postgres(p) => sqlx::query_scalar(sql).bind(choice).fetch_one(p).await,
    }
    .unwrap()
}

/// Votes, follows the answer to the next page and reads the receipt shown there.
async fn vote_for_receipt(b: &Browser, poll: i64, choice: i64) -> String {
    let sent = vote(b, poll, choice).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    let (_, page) = b.follow(sent).await;
    let at = page
        .body
        .find("Your receipt: ")
        .expect("a receipt is shown")
        + "Your receipt: ".len();
    let code = page.body[at..at + 39].to_string();
    // Shown once.
    let again = b.get(&format!("/polls/{poll}/results/")).await;
    assert!(!again.has(&code) && !again.has("Your receipt"));
    code
}

fn hash(code: &str) -> String {
    pollstr::polls::receipt::hash_of(code).unwrap()
}

async fn rows_with(app: &TestApp, hash: &str) -> i64 {
    app.scalar(&format!(
        "SELECT COUNT(*) FROM votes WHERE receipt_hash = '{hash}'"
    ))
    .await
}

async fn a_receipt_is_shown_once_and_a_changed_vote_gets_a_new_one(
    backend: crate::helpers::Backend,
) {
    let app = app(backend).await;
    let staff = app.staff_browser().await;
    let voters = voters(&app, 2).await;
    let first = vote_for_receipt(&voters[0], 1, 1).await;
    assert_eq!(rows_with(&app, &hash(&first)).await, 1);
    // Changed (even to the same choice): a new receipt, and the old one stops counting.
    let second = vote_for_receipt(&voters[0], 1, 2).await;
    assert_ne!(first, second);
    assert_eq!(rows_with(&app, &hash(&first)).await, 0);
    assert_eq!(rows_with(&app, &hash(&second)).await, 1);
    let other = vote_for_receipt(&voters[1], 1, 2).await;
    assert_eq!(
        staff_action(&staff, 1, "close").await.status,
        StatusCode::SEE_OTHER
    );

    // The audit file: the current receipts' hashes, once each; the digest is its SHA-256.
    let audit = voters[0].get("/polls/1/audit.csv").await;
    assert_eq!(audit.status, StatusCode::OK);
    assert!(audit.body.starts_with("receipt_sha256,choice\n"));
    assert_eq!(audit.body.matches(&hash(&second)).count(), 1);
    assert_eq!(audit.body.matches(&hash(&other)).count(), 1);
    assert!(!audit.body.contains(&hash(&first)));
    assert_eq!(audit.body.lines().count(), 3);
    let digest = pollstr::polls::receipt::digest(&audit.body);
    let results = voters[0].get("/polls/1/results/").await;
    assert!(results.has(&digest), "{}", results.text());
    assert!(results.has("2 votes from 2 people who each proved a phone number"));

    // verify-poll: the current receipt is in it, the old one is not.
    let dir = tempfile::tempdir().unwrap();
    let run = |receipt: &str| {
        pollstr_command(dir.path(), &[("DATABASE_URL", &app.database_url)])
            .args(["verify-poll", "1", "--receipt", receipt])
            .output()
            .unwrap()
    };
    let o = run(&second.to_lowercase());
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("is in the published file") && out.contains("Everything matches"));
    let o = run(&first);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("is not in the published file"));
    // Reopened: no seal, no audit file, until it closes again.
    assert_eq!(
        staff_action(&staff, 1, "reopen").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        voters[0].get("/polls/1/audit.csv").await.status,
        StatusCode::NOT_FOUND
    );
    let reopened = voters[0].get("/polls/1/results/").await;
    assert!(!reopened.has(&digest) && !reopened.has("Sealed:"));
    // Closed again after one more vote: the new seal's line, not the first one kept.
    let third = vote_for_receipt(&voters[1], 1, 3).await;
    assert_eq!(
        staff_action(&staff, 1, "close").await.status,
        StatusCode::SEE_OTHER
    );
    let audit = voters[0].get("/polls/1/audit.csv").await;
    assert!(audit.body.contains(&hash(&third)) && !audit.body.contains(&hash(&other)));
    let resealed = pollstr::polls::receipt::digest(&audit.body);
    assert_ne!(resealed, digest);
    for _ in 0..2 {
        let results = voters[0].get("/polls/1/results/").await;
        assert!(
            results.has(&resealed) && !results.has(&digest),
            "{}",
            results.text()
        );
    }
}

/// The vote writer's batch (one statement) and its in-order path (a user twice in one batch)
/// each store their ballot's own receipt hash.
async fn the_vote_writer_stores_each_ballots_receipt(backend: crate::helpers::Backend) {
    use pollstr::polls::{cache::PollCache, vote_queue::VoteQueue};
    let app = TestApp::seeded(backend).await;
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(
            pollstr::users::create(&app.db, &format!("r{i}"), "!")
                .await
                .unwrap(),
        );
    }
    let queue = VoteQueue::start(
        app.db.clone(),
        std::sync::Arc::new(PollCache::new(true)),
        pollstr::telemetry::Telemetry::off(),
    );
    let h = |i: usize| format!("{i:064x}");
    let casts: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, &u)| {
            let queue = queue.clone();
            tokio::spawn(async move { queue.cast_with(u, 1, 1 + (i as i64 % 4), h(i)).await })
        })
        .collect();
    for counted in casts {
        assert!(counted.await.unwrap().unwrap());
    }
    for i in 0..6 {
        assert_eq!(rows_with(&app, &h(i)).await, 1, "ballot {i}");
    }
    // The same user twice at once: the last stands, with its receipt.
    let (a, b) = tokio::join!(
        queue.cast_with(users[0], 1, 2, h(100)),
        queue.cast_with(users[0], 1, 3, h(101))
    );
    assert!(a.unwrap() && b.unwrap());
    assert_eq!(rows_with(&app, &h(0)).await, 0);
    let kept = rows_with(&app, &h(100)).await + rows_with(&app, &h(101)).await;
    assert_eq!(kept, 1);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM votes").await, 6);
}

/// The same votes (receipts fixed through the store's seam) give the same audit file and
/// digest on either backend: the expected bytes are written out here.
async fn the_same_votes_seal_to_the_same_digest(backend: crate::helpers::Backend) {
    use pollstr::polls::{receipt, store};
    let app = TestApp::seeded(backend).await;
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(
            pollstr::users::create(&app.db, &format!("d{i}"), "!")
                .await
                .unwrap(),
        );
    }
    let votes = [(3, "c"), (1, "a"), (1, "b"), (2, "d")];
    for (&u, &(choice, h)) in users.iter().zip(&votes) {
        assert!(store::cast_vote_with(&app.db, u, 1, choice, &h.repeat(64))
            .await
            .unwrap());
    }
    assert!(store::record_close(&app.db, 1, true).await.unwrap());
    let seal = store::seal(&app.db, 1).await.unwrap().unwrap();
    let mut expected = String::from("receipt_sha256,choice\n");
    for (choice, h) in [(1, "a"), (1, "b"), (3, "c"), (2, "d")] {
        let text = pollstr::polls::csv::field(&choice_text(&app, choice).await);
        expected.push_str(&format!("{},{text}\n", h.repeat(64)));
    }
    assert_eq!(seal.body, expected);
    assert_eq!(seal.votes, 4);
    assert_eq!(seal.digest, receipt::digest(&expected));
    // Sealing again from the same rows (as another instance would) gives the same digest.
    let rows = store::audit_rows(&app.db, 1).await.unwrap();
    assert_eq!(receipt::digest(&receipt::audit_file(&rows)), seal.digest);
}

async fn a_database_edit_makes_verify_poll_fail_naming_it(backend: crate::helpers::Backend) {
    let app = app(backend).await;
    let staff = app.staff_browser().await;
    let voters = voters(&app, 2).await;
    let code = vote_for_receipt(&voters[0], 1, 1).await;
    vote_for_receipt(&voters[1], 1, 3).await;
    assert_eq!(
        staff_action(&staff, 1, "close").await.status,
        StatusCode::SEE_OTHER
    );
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        pollstr_command(dir.path(), &[("DATABASE_URL", &app.database_url)])
            .args(["verify-poll", "1"])
            .output()
            .unwrap()
    };
    let o = run();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    // One counted vote moved to another choice behind the app's back.
    app.execute(&format!(
        "UPDATE votes SET choice_id = 2 WHERE receipt_hash = '{}'",
        hash(&code)
    ))
    .await;
    let o = run();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!o.status.success(), "{out}");
    let from = choice_text(&app, 1).await;
    let to = choice_text(&app, 2).await;
    assert!(
        out.contains(&format!("vote {}: published {from}, now {to}", hash(&code))),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Choice {to}: 0 in the published file, kept count 1"
        )),
        "{out}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not match what was published"));
    let o = pollstr_command(dir.path(), &[("DATABASE_URL", &app.database_url)])
        .args(["verify-poll", "1", "--receipt", "nonsense"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a receipt"));
}

/// Every stored session's data, in id order.
async fn session_rows(app: &TestApp) -> Vec<Vec<u8>> {
    match &app.db {
        pollstr::db::Db::Sqlite(p) => {
            sqlx::query_scalar("SELECT data FROM tower_sessions ORDER BY id")
                .fetch_all(p)
                .await
        }
        pollstr::db::Db::Postgres(p) => {
            sqlx::query_scalar("SELECT data FROM tower_sessions.session ORDER BY id")
                .fetch_all(p)
                .await
        }
    }
    .unwrap()
}

/// The receipt goes to the page after the vote in a cookie sealed for its voter, poll and
/// session, on that poll's paths: neither the vote nor that page writes the session (the
/// flash message it replaced cost a session write per vote); the page clears the cookie and is
/// not stored; the same cookie sent by another voter shows nothing and is cleared.
async fn a_receipt_goes_to_its_voters_next_page_in_a_sealed_cookie_not_the_session(
    backend: crate::helpers::Backend,
) {
    let app = app(backend).await;
    let voters = voters(&app, 2).await;
    let csrf = voters[0].get("/polls/1/").await.csrf().unwrap();
    voters[1].get("/polls/1/").await; // its pending message (the phone proven) is taken
    let before = session_rows(&app).await;
    let sent = voters[0]
        .post_raw("/polls/1/vote/", &[("choice", "2"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    let cookie = sent
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("pollstr_receipt="))
        .expect("a receipt cookie")
        .to_string();
    assert!(cookie.contains("; Path=/polls/1/;") && cookie.contains("HttpOnly"));
    let sealed = cookie["pollstr_receipt=".len()..cookie.find(';').unwrap()].to_string();

    // Another voter sending that cookie: no receipt, and it is cleared.
    let url: reqwest::Url = format!("{}/polls/1/", voters[1].base).parse().unwrap();
    voters[1]
        .jar
        .add_cookie_str(&format!("pollstr_receipt={sealed}; Path=/polls/1/"), &url);
    let other = voters[1].get("/polls/1/results/").await;
    assert_eq!(other.status, StatusCode::OK);
    assert!(!other.has("Your receipt"), "{}", other.text());
    assert!(other.headers.get_all("set-cookie").iter().any(|v| v
        .to_str()
        .unwrap()
        .starts_with("pollstr_receipt=; Path=/polls/1/; Max-Age=0")));

    // A HEAD of the page (a link checker, say) leaves the receipt for the page itself.
    let head = voters[0]
        .client
        .head(format!("{}/polls/1/results/", voters[0].base))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head
        .headers()
        .get_all("set-cookie")
        .iter()
        .all(|v| !v.to_str().unwrap().starts_with("pollstr_receipt=")));

    // The voter's next page shows it once, clears it, and is not stored.
    let (_, page) = voters[0].follow(sent).await;
    let at = page.body.find("Your receipt: ").expect("a receipt") + "Your receipt: ".len();
    let code = page.body[at..at + 39].to_string();
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM votes WHERE receipt_hash = '{}'",
            hash(&code)
        ))
        .await,
        1
    );
    assert_eq!(
        page.headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    assert!(!voters[0].get("/polls/1/results/").await.has("Your receipt"));
    assert_eq!(session_rows(&app).await, before, "a session was written");
}
