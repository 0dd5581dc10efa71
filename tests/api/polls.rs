//! The poll list, a poll's page, voting and results.

use std::time::Duration;

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

both_backends!(
    list_is_public_and_latest_first,
    root_redirects_to_the_list,
    empty_list_says_so,
    future_polls_are_hidden_and_pages_hold_ten,
    poll_pages_need_login_then_phone,
    vote_then_change_vote,
    empty_or_foreign_vote_is_a_message,
    unknown_and_malformed_ids_are_404,
    concurrent_votes_count_exactly,
    changes_made_elsewhere_show_within_a_second,
);

fn poll(pk: i64, text: &str, date: &str) -> String {
    format!(
        r#"{{"model":"polls.question","pk":{pk},"fields":{{"question_text":"{text}","pub_date":"{date}"}}}},
           {{"model":"polls.choice","pk":{c1},"fields":{{"question":{pk},"choice_text":"Yes {pk}","votes":0}}}},
           {{"model":"polls.choice","pk":{c2},"fields":{{"question":{pk},"choice_text":"No {pk}","votes":0}}}}"#,
        c1 = pk * 10 + 1,
        c2 = pk * 10 + 2
    )
}

async fn list_is_public_and_latest_first(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    app.load(&format!(
        "[{}]",
        poll(7, "Newest poll?", "2020-01-01T00:00:00Z")
    ))
    .await;
    let page = app.browser().get("/polls/").await;
    assert_eq!(page.status, StatusCode::OK);
    for q in [
        "What is your favorite kind of dog?",
        "Who let the dogs out?",
        "What's up dog?",
        "A golden retriever",
        "The Baha Men",
    ] {
        assert!(page.has(q), "missing {q}");
    }
    let text = page.text();
    assert!(text.find("Newest poll?").unwrap() < text.find("What's up dog?").unwrap());
    // Same pub_date: the higher id first.
    assert!(text.find("What's up dog?").unwrap() < text.find("Who let the dogs out?").unwrap());
    assert!(page.body.contains("href=\"/polls/1/\""));
    assert!(
        page.headers.get("set-cookie").is_none(),
        "an anonymous list view needs no session"
    );
}

async fn root_redirects_to_the_list(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let page = app.browser().get("/").await;
    assert!(page.status.is_redirection());
    assert_eq!(page.location.as_deref(), Some("/polls/"));
}

async fn empty_list_says_so(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    assert!(app
        .browser()
        .get("/polls/")
        .await
        .has("No polls are available."));
}

async fn future_polls_are_hidden_and_pages_hold_ten(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let mut entries: Vec<String> = (1..=12)
        .map(|i| {
            poll(
                i,
                &format!("Poll number {i}?"),
                &format!("2020-01-{i:02}T00:00:00Z"),
            )
        })
        .collect();
    entries.push(poll(99, "From the future?", "2999-01-01T00:00:00Z"));
    app.load(&format!("[{}]", entries.join(","))).await;
    let b = app.browser();
    let first = b.get("/polls/").await;
    assert!(first.has("Poll number 12?") && first.has("Poll number 3?"));
    assert!(!first.has("Poll number 2?") && !first.has("From the future?"));
    assert!(first.has("Page 1 of 2"));
    let second = b.get("/polls/?page=2").await;
    assert!(
        second.has("Poll number 2?")
            && second.has("Poll number 1?")
            && !second.has("Poll number 3?")
    );
    for bad in [
        "/polls/?page=3",
        "/polls/?page=0",
        "/polls/?page=abc",
        "/polls/?page=-1",
    ] {
        assert_eq!(b.get(bad).await.status, StatusCode::NOT_FOUND, "{bad}");
    }
    let v = app.verified_browser_with_seed_user().await;
    assert_eq!(v.get("/polls/99/").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        v.get("/polls/99/results/").await.status,
        StatusCode::NOT_FOUND
    );
    // Nor can it take a vote, even for one of its own choices.
    let csrf = v.get("/polls/1/").await.csrf().unwrap();
    let vote = v
        .post_raw(
            "/polls/99/vote/",
            &[("choice", "991"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(vote.status, StatusCode::NOT_FOUND);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM votes").await, 0);
}

async fn poll_pages_need_login_then_phone(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    for path in ["/polls/1/", "/polls/1/results/"] {
        let page = b.get(path).await;
        assert_eq!(
            page.location.as_deref(),
            Some(format!("/login/?next={path}").as_str())
        );
    }
    let vote = b.post_raw("/polls/1/vote/", &[("choice", "1")]).await;
    assert_eq!(vote.status, StatusCode::FORBIDDEN, "no CSRF token, no vote");
    // Log in from the redirect: `next` is carried to the 2FA step, then back to the poll.
    let login = b
        .submit(
            "/login/?next=/polls/1/",
            "/login/",
            &[("username", "test"), ("password", "test1234")],
        )
        .await;
    assert_eq!(login.location.as_deref(), Some("/polls/1/"));
    let gate = b.get("/polls/1/").await;
    assert_eq!(gate.location.as_deref(), Some("/2fa/?next=/polls/1/"));
    let page = b.get("/2fa/?next=/polls/1/").await;
    assert!(page.has("To continue we need to verify your phone number."));
    let sent = b
        .submit(
            "/2fa/?next=/polls/1/",
            "/2fa/create/",
            &[("number", crate::helpers::PHONE)],
        )
        .await;
    assert_eq!(
        sent.location.as_deref(),
        Some("/2fa/verify/?next=/polls/1/")
    );
    let code = app.code_for(crate::helpers::PHONE_E164).await;
    let done = b
        .submit(
            "/2fa/verify/?next=/polls/1/",
            "/2fa/confirm/",
            &[("code", &code)],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/polls/1/"));
    let detail = b.get("/polls/1/").await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(
        detail.has("What is your favorite kind of dog?")
            && detail.has("Your phone number is verified.")
    );
    assert!(detail.body.contains("name=\"choice\" id=\"choice1\""));
}

async fn vote_then_change_vote(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser().await;
    let voted = b
        .submit("/polls/1/", "/polls/1/vote/", &[("choice", "2")])
        .await;
    assert_eq!(voted.location.as_deref(), Some("/polls/1/results/"));
    let results = b.get("/polls/1/results/").await;
    assert!(
        results.has("A golden retriever (your vote) 1 vote · 100%"),
        "{}",
        results.text()
    );
    assert!(results.has("A beagle 0 votes · 0%"));
    assert!(results.has("1 vote in total."));
    assert!(results.body.contains("Vote again"));
    // Voting again replaces the vote: the total stays 1.
    b.submit("/polls/1/", "/polls/1/vote/", &[("choice", "3")])
        .await;
    let results = b.get("/polls/1/results/").await;
    assert!(results.has("A golden retriever 0 votes"));
    assert!(results.has("A cat (your vote) 1 vote · 100%"));
    assert_eq!(app.scalar("SELECT COUNT(*) FROM votes").await, 1);
    // The poll page remembers the choice.
    assert!(b
        .get("/polls/1/")
        .await
        .body
        .contains("value=\"3\" checked"));
}

async fn empty_or_foreign_vote_is_a_message(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser().await;
    for choice in [
        None,
        Some("5"),
        Some("abc"),
        Some(""),
        Some("99999999999999999999999"),
    ] {
        let mut fields = vec![];
        if let Some(c) = choice {
            fields.push(("choice", c));
        }
        let page = b.submit("/polls/1/", "/polls/1/vote/", &fields).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{choice:?}");
        assert!(page.has("You didn't select a choice."), "{choice:?}");
        assert!(page.has("What is your favorite kind of dog?"));
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM votes").await, 0);
}

async fn unknown_and_malformed_ids_are_404(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser().await;
    for path in [
        "/polls/999/",
        "/polls/abc/",
        "/polls/-1/",
        "/polls/1.5/results/",
        "/polls/99999999999999999999999/",
        "/nope",
    ] {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.has("Page not found"), "{path}");
        assert!(
            page.has("Signed in as test"),
            "the error page keeps the navbar: {path}"
        );
    }
    let page = b
        .submit("/polls/1/", "/polls/1/vote/", &[("choice", "1")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let csrf = b.get("/polls/1/").await.csrf().unwrap();
    let missing = b
        .post_raw(
            "/polls/999/vote/",
            &[("choice", "1"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

async fn concurrent_votes_count_exactly(backend: Backend) {
    let app = TestApp::seeded_for_many_voters(backend).await;
    let voters = 12;
    let browsers = app.phone_voters("voter", 2, voters).await;
    // Each voter votes five times at once with everyone else; the last vote counts.
    let mut tasks = Vec::new();
    for (i, b) in browsers.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let csrf = b.get("/polls/1/").await.csrf().unwrap();
            let mut last = 0;
            for round in 0..5 {
                let choice = 1 + ((i + round) % 4);
                let page = b
                    .post_raw(
                        "/polls/1/vote/",
                        &[("choice", &choice.to_string()), ("csrf_token", &csrf)],
                    )
                    .await;
                assert_eq!(page.status, StatusCode::SEE_OTHER);
                last = choice;
            }
            last
        }));
    }
    last_votes_stand(&app, tasks).await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM votes").await,
        voters as i64
    );
}

/// Each voter's last vote (on poll 1, the choice each task returns) is the row that stands, and
/// the counts the pages read were kept right through the votes (the vote writer's batches).
async fn last_votes_stand(app: &TestApp, voters: Vec<tokio::task::JoinHandle<usize>>) {
    let mut expected = [0i64; 5];
    for t in voters {
        expected[t.await.unwrap()] += 1;
    }
    for (choice, want) in expected.iter().enumerate().skip(1) {
        let sql = format!("SELECT COUNT(*) FROM votes WHERE choice_id = {choice}");
        assert_eq!(app.scalar(&sql).await, *want, "choice {choice}");
    }
    assert_eq!(
        pollstr::polls::counts::recount(&app.db).await.unwrap(),
        Vec::new()
    );
}

/// Another process writing the database (`pollstr loaddata` while the site runs): the pages the
/// app keeps in memory catch up within the cache's lifetime. (This process's own votes show at
/// once: `vote_then_change_vote`.)
async fn changes_made_elsewhere_show_within_a_second(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser().await;
    assert!(!b.get("/polls/").await.has("Newest poll?"));
    assert!(b.get("/polls/1/results/").await.has("0 votes in total."));
    assert!(!b.get("/polls/1/").await.body.contains("checked"));
    let fixture = format!(
        r#"[{}, {{"model":"polls.vote","fields":{{"user":1,"question":1,"choice":2}}}}]"#,
        poll(7, "Newest poll?", "2020-01-01T00:00:00Z")
    );
    // Straight into the database, as another process would: the app's cache is not told.
    pollstr::fixtures::load(&app.db, &[("elsewhere.json".into(), fixture)])
        .await
        .expect("load");
    tokio::time::sleep(pollstr::polls::cache::TTL + Duration::from_millis(200)).await;
    assert!(b.get("/polls/").await.has("Newest poll?"));
    let results = b.get("/polls/1/results/").await;
    assert!(
        results.has("A golden retriever (your vote) 1 vote"),
        "{}",
        results.text()
    );
    assert!(b
        .get("/polls/1/")
        .await
        .body
        .contains("value=\"2\" checked"));
}

/// The vote queue's tests run on a current-thread runtime: the writer runs only once every
/// vote of a `join!` is queued, so they make one batch.
mod vote_queue {
    use crate::helpers::Backend;

    #[tokio::test]
    async fn sqlite_a_failing_vote_does_not_fail_its_batch() {
        super::a_failing_vote_does_not_fail_its_batch(Backend::Sqlite).await
    }

    #[tokio::test]
    #[cfg_attr(
        not(pollstr_postgres),
        ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
    )]
    async fn postgres_a_failing_vote_does_not_fail_its_batch() {
        super::a_failing_vote_does_not_fail_its_batch(Backend::Postgres).await
    }

    #[tokio::test]
    async fn sqlite_a_batch_of_votes_counts_like_votes_one_by_one() {
        super::a_batch_of_votes_counts_like_votes_one_by_one(Backend::Sqlite).await
    }

    #[tokio::test]
    #[cfg_attr(
        not(pollstr_postgres),
        ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
    )]
    async fn postgres_a_batch_of_votes_counts_like_votes_one_by_one() {
        super::a_batch_of_votes_counts_like_votes_one_by_one(Backend::Postgres).await
    }
}

/// The vote queue commits waiting votes together; a vote that fails (here: a user that does
/// not exist, refused by the foreign key) fails alone, and the others of its batch count.
async fn a_failing_vote_does_not_fail_its_batch(backend: Backend) {
    use pollstr::polls::{cache::PollCache, vote_queue::VoteQueue};
    let app = TestApp::seeded(backend).await;
    let queue = VoteQueue::start(
        app.db.clone(),
        std::sync::Arc::new(PollCache::new(true)),
        pollstr::telemetry::Telemetry::off(),
    );
    let (good, unknown_user, foreign_choice) = tokio::join!(
        queue.cast(1, 1, 2),
        queue.cast(999_999, 1, 2),
        queue.cast(1, 2, 1),
    );
    assert!(good.unwrap());
    assert!(unknown_user.is_err());
    assert!(!foreign_choice.unwrap());
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM votes WHERE user_id = 1 AND choice_id = 2")
            .await,
        1
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM votes").await, 1);
    assert_eq!(
        pollstr::polls::counts::recount(&app.db).await.unwrap(),
        Vec::new()
    );
}

/// A batch answers each vote as a vote on its own would: a foreign choice is not counted while
/// the others are, and a user voting twice on one poll in a batch ends with the later vote.
async fn a_batch_of_votes_counts_like_votes_one_by_one(backend: Backend) {
    use pollstr::polls::{cache::PollCache, vote_queue::VoteQueue};
    let app = TestApp::seeded(backend).await;
    let hash = pollstr::users::password::hash("s3cret-pass!".into())
        .await
        .unwrap();
    let other = pollstr::users::create(&app.db, "other", &hash)
        .await
        .unwrap();
    let queue = VoteQueue::start(
        app.db.clone(),
        std::sync::Arc::new(PollCache::new(true)),
        pollstr::telemetry::Telemetry::off(),
    );
    // One statement: a vote, and a choice of another poll, which writes nothing.
    let (a, foreign) = tokio::join!(queue.cast(1, 1, 2), queue.cast(other, 2, 1));
    assert!(a.unwrap());
    assert!(!foreign.unwrap());
    let others = format!("SELECT COUNT(*) FROM votes WHERE user_id = {other}");
    assert_eq!(app.scalar(&others).await, 0);
    let (b, foreign) = tokio::join!(queue.cast(other, 1, 3), queue.cast(other, 2, 1));
    assert!(b.unwrap());
    assert!(!foreign.unwrap());
    // The same voter twice in one batch: both count, the later one stands.
    let (first, second) = tokio::join!(queue.cast(1, 1, 4), queue.cast(1, 1, 1));
    assert!(first.unwrap() && second.unwrap());
    // A changed vote and a new one in one statement.
    let (changed, new) = tokio::join!(queue.cast(other, 1, 4), queue.cast(other, 3, 9));
    assert!(changed.unwrap() && new.unwrap());
    assert_eq!(
        app.scalar("SELECT choice_id FROM votes WHERE user_id = 1 AND question_id = 1")
            .await,
        1
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT choice_id FROM votes WHERE user_id = {other} AND question_id = 1"
        ))
        .await,
        4
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM votes").await, 3);
    assert_eq!(
        pollstr::polls::counts::recount(&app.db).await.unwrap(),
        Vec::new()
    );
}

/// Two instances over one PostgreSQL database, each with its vote writer: voters vote at once,
/// each alternating between the instances and changing their vote, so the two writers' batches
/// update the same counter rows (and may deadlock, then are written again one by one). Every
/// vote is acknowledged, each voter's last vote stands, and the kept counts equal the rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pollstr_postgres),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn votes_through_two_instances_at_once_count_exactly() {
    let app = TestApp::seeded(Backend::Postgres).await;
    let other = crate::helpers::spawn_on(Backend::Postgres, &app.database_url).await;
    let mut voters = Vec::new();
    for i in 0..8usize {
        let b = app.browser();
        b.register(&format!("voter{i}")).await;
        b.verify_phone(&app, &format!("+44 7400 3{i:05}")).await;
        let csrf = b.get("/polls/1/").await.csrf().unwrap();
        voters.push((b, csrf));
    }
    let mut tasks = Vec::new();
    for (i, (b, csrf)) in voters.into_iter().enumerate() {
        let on_b = crate::helpers::Browser {
            base: other.clone(),
            ..b.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for round in 0..6 {
                let choice = 1 + (i + round) % 4;
                let via = if round % 2 == 0 { &b } else { &on_b };
                let page = via
                    .post_raw(
                        "/polls/1/vote/",
                        &[("choice", &choice.to_string()), ("csrf_token", &csrf)],
                    )
                    .await;
                assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
                last = choice;
            }
            last
        }));
    }
    last_votes_stand(&app, tasks).await;
}
