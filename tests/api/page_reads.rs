//! A verified poll page reads its session and its poll together (one statement on PostgreSQL,
//! `polls::prefetch`): it must stay exactly as fresh as two separate reads. A logout, a
//! session ended elsewhere or a vote shows on the very next page, and a page never shows
//! another user's vote.

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{Backend, Browser, TestApp};

both_backends!(
    a_logout_racing_page_reads_ends_the_session_for_all_later_reads,
    each_vote_shows_on_the_next_read,
    a_session_row_naming_another_user_shows_only_its_own_vote,
    unknown_unpublished_and_malformed_polls_are_404,
    a_burst_of_page_reads_from_many_voters_each_gets_its_own,
);

/// The session table of the backend (`db::session_store::table`).
fn sessions(app: &TestApp) -> &'static str {
    pollstr::db::session_store::table(&app.db)
}

async fn a_logout_racing_page_reads_ends_the_session_for_all_later_reads(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser().await;
    let cookie = b.session_cookie().expect("a session cookie");
    let copy = b.with_cookie(&cookie);
    // 32 page reads with the session's cookie race its logout.
    let mut reads = Vec::new();
    for i in 0..32 {
        let client = copy.clone();
        let url = b.url(if i % 2 == 0 {
            "/polls/1/"
        } else {
            "/polls/1/results/"
        });
        reads.push(tokio::spawn(async move {
            client.get(url).send().await.expect("GET").status()
        }));
    }
    let out = b.submit("/polls/", "/logout/", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    for r in reads {
        let status = r.await.unwrap();
        // Before the logout: the page; after: to the login page. Never an error.
        assert!(
            status == StatusCode::OK || status == StatusCode::SEE_OTHER,
            "{status}"
        );
    }
    // Every read from now on is anonymous, and no read put the session back.
    for path in ["/polls/1/", "/polls/1/results/", "/polls/2/"] {
        let res = copy.get(b.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        let to = res.headers()["location"].to_str().unwrap().to_string();
        assert_eq!(to, format!("/login/?next={path}"));
    }
    let id = cookie.split('.').next().unwrap_or(&cookie).to_string();
    let left = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM {} WHERE id = '{id}'",
            sessions(&app)
        ))
        .await;
    assert_eq!(left, 0, "the ended session was written back");
}

/// Votes for `choice` on poll 1, which must count.
async fn vote(b: &Browser, csrf: &str, choice: usize) {
    let voted = b
        .post_raw(
            "/polls/1/vote/",
            &[("choice", &choice.to_string()), ("csrf_token", csrf)],
        )
        .await;
    assert_eq!(voted.status, StatusCode::SEE_OTHER);
}

/// The choice marked as this user's on the poll page and on the results.
async fn my_choice(b: &Browser) -> (Option<String>, String) {
    let page = b.get("/polls/1/").await;
    assert_eq!(page.status, StatusCode::OK);
    let checked = page.body.split("<input").find_map(|input| {
        input
            .contains(" checked")
            .then(|| input.split("value=\"").nth(1)?.split('"').next())
            .flatten()
            .map(str::to_string)
    });
    (checked, results_of(b).await.0)
}

async fn each_vote_shows_on_the_next_read(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser().await;
    assert_eq!(my_choice(&b).await.0, None);
    let csrf = b.get("/polls/1/").await.csrf().expect("token");
    // Vote, change, change back, change again.
    let names = [
        (1, "A beagle"),
        (3, "A cat"),
        (1, "A beagle"),
        (2, "A golden retriever"),
    ];
    for (choice, name) in names {
        vote(&b, &csrf, choice).await;
        let (checked, mine) = my_choice(&b).await;
        assert_eq!(checked, Some(choice.to_string()));
        assert_eq!(mine, name);
    }
}

async fn a_session_row_naming_another_user_shows_only_its_own_vote(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let a = app.verified_browser().await;
    let csrf = a.get("/polls/1/").await.csrf().unwrap();
    vote(&a, &csrf, 1).await;
    let b = app.browser();
    b.register("second").await;
    b.verify_phone(&app, "+44 7400 123457").await;
    let csrf = b.get("/polls/1/").await.csrf().unwrap();
    vote(&b, &csrf, 3).await;
    // B's session row names A (as no code path writes it, but a stale or edited row could):
    // the page is B's, with B's vote, never A's.
    let test_id = app
        .scalar("SELECT id FROM users WHERE username = 'test'")
        .await;
    let cookie = b.session_cookie().unwrap();
    let id = cookie.split('.').next().unwrap_or(&cookie).to_string();
    app.execute(&format!(
        "UPDATE {} SET user_id = {test_id} WHERE id = '{id}'",
        sessions(&app)
    ))
    .await;
    let (checked, mine) = my_choice(&b).await;
    assert_eq!(checked.as_deref(), Some("3"));
    assert_eq!(mine, "A cat");
    assert!(b.get("/polls/1/").await.has("second"));
    let (checked, _) = my_choice(&a).await;
    assert_eq!(checked.as_deref(), Some("1"));
}

async fn unknown_unpublished_and_malformed_polls_are_404(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    app.load(
        r#"[{"model":"polls.question","pk":70,"fields":{"question_text":"Later?","pub_date":"2999-01-01T00:00:00Z"}}]"#,
    )
    .await;
    let b = app.verified_browser().await;
    for path in [
        "/polls/70/",
        "/polls/70/results/",
        "/polls/999/",
        "/polls/999/results/",
        "/polls/0/",
        "/polls/1x/",
        "/polls/99999999999999999999/",
    ] {
        assert_eq!(b.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    // A cookie naming no session: the login page, as without one.
    let stranger = b.with_cookie("not-a-session");
    let res = stranger.get(b.url("/polls/1/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(b.get("/polls/1/").await.status, StatusCode::OK);
}

/// The results as a voter sees them: the choice marked theirs, and each choice's count.
async fn results_of(b: &Browser) -> (String, Vec<i64>) {
    let page = b.get("/polls/1/results/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let mine = page
        .body
        .split("<li class=\"result mine\">")
        .nth(1)
        .and_then(|s| s.split("<span class=\"result-choice\">").nth(1))
        .and_then(|s| s.split(" <em>").next())
        .unwrap_or("")
        .to_string();
    let counts = page
        .body
        .split("<span class=\"count\">")
        .skip(1)
        .map(|s| s.split(" vote").next().unwrap().trim().parse().unwrap())
        .collect();
    (mine, counts)
}

/// Instance B keeps poll 1 in memory; each vote, taken by instance A, shows in B's very next
/// page, counted: B's kept counts are used for a voter only if their snapshot saw that voter's
/// vote as it is now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pollstr_postgres),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn a_vote_taken_by_one_instance_shows_counted_on_the_next_page_of_another() {
    let app = TestApp::seeded(Backend::Postgres).await;
    let other = crate::helpers::spawn_on(Backend::Postgres, &app.database_url).await;
    let on_a = app.verified_browser().await;
    let on_b = Browser {
        base: other,
        ..on_a.clone()
    };
    let csrf = on_a.get("/polls/1/").await.csrf().unwrap();
    // B reads (and keeps) the poll before each vote.
    assert_eq!(results_of(&on_b).await, (String::new(), vec![0, 0, 0, 0]));
    let names = ["A beagle", "A golden retriever", "A cat"];
    for (round, choice) in [1usize, 3, 1, 2, 2].into_iter().enumerate() {
        let before = results_of(&on_b).await;
        assert_eq!(before.1.iter().sum::<i64>(), i64::from(round > 0));
        vote(&on_a, &csrf, choice).await;
        let (mine, counts) = results_of(&on_b).await;
        assert_eq!(mine, names[choice - 1], "round {round}");
        let mut expected = vec![0; 4];
        expected[choice - 1] = 1;
        assert_eq!(counts, expected, "round {round}");
        let page = on_b.get("/polls/1/").await;
        assert!(
            page.body.contains(&format!("value=\"{choice}\" checked")),
            "round {round}"
        );
    }
    // Another user's vote shows on B within a second (B keeps a poll for that long at most).
    let c = app.browser();
    c.register("third").await;
    c.verify_phone(&app, "+44 7400 123458").await;
    let csrf_c = c.get("/polls/1/").await.csrf().unwrap();
    c.post_raw(
        "/polls/1/vote/",
        &[("choice", "4"), ("csrf_token", &csrf_c)],
    )
    .await;
    tokio::time::sleep(pollstr::polls::cache::TTL + std::time::Duration::from_millis(100)).await;
    assert_eq!(results_of(&on_b).await.1, vec![0, 1, 0, 1]);
}

/// Many voters read at once (on PostgreSQL their reads are answered together, several per
/// statement: `polls::read_batch`): each page is its reader's, with its reader's vote.
async fn a_burst_of_page_reads_from_many_voters_each_gets_its_own(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let names = ["A beagle", "A golden retriever", "A cat"];
    let mut voters = Vec::new();
    for i in 0..6usize {
        let b = app.browser();
        b.register(&format!("voter{i}")).await;
        b.verify_phone(&app, &format!("+44 7400 12350{i}")).await;
        let csrf = b.get("/polls/1/").await.csrf().unwrap();
        let choice = i % 3 + 1;
        vote(&b, &csrf, choice).await;
        voters.push((b, choice));
    }
    // Once, so that the poll is kept; then everyone at once, eight pages each.
    results_of(&voters[0].0).await;
    let mut reads = Vec::new();
    for round in 0..8 {
        for (b, choice) in &voters {
            let (b, choice) = (b.clone(), *choice);
            reads.push(tokio::spawn(async move {
                if round % 2 == 0 {
                    (results_of(&b).await, choice)
                } else {
                    let (checked, mine) = my_choice(&b).await;
                    assert_eq!(checked, Some(choice.to_string()));
                    ((mine, vec![2, 2, 2, 0]), choice)
                }
            }));
        }
    }
    for r in reads {
        let ((mine, counts), choice) = r.await.unwrap();
        assert_eq!(mine, names[choice - 1]);
        assert_eq!(counts, vec![2, 2, 2, 0]);
    }
}
