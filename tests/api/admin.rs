//! The staff admin (`/admin/`): who may open it, sudo mode for what destroys, polls with their
//! choices (saved whole or not at all, votes asked about again, counts kept right), the lists'
//! search, filters and pages, fixtures uploaded and downloaded, what an admin does to users,
//! CSRF, and the events naming the admin.

use std::time::Duration;

use pollstr::polls::counts::{recount, Fix};
use pollstr::polls::queries;
use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{
    pollstr_command, spawn_app, spawn_app_with, Backend, Browser, Page, TestApp, PHONE, SEED,
    STRONG,
};

both_backends!(
    only_verified_staff_may_open_the_admin,
    a_poll_is_created_edited_reordered_and_its_choices_deleted,
    invalid_input_is_answered_on_the_form_and_saves_nothing,
    deleting_votes_asks_again_and_the_counts_stay_right,
    destructive_actions_need_the_password_again,
    the_poll_list_searches_filters_and_pages,
    a_fixture_is_uploaded_all_or_nothing_and_the_database_downloaded,
    an_upload_never_grants_staff_nor_rewrites_an_account,
    an_admin_resets_factors_ends_sessions_deactivates_and_sets_staff,
    ending_sessions_or_deactivating_forgets_trusted_browsers,
    resetting_the_second_factor_removes_every_factor_and_session,
    the_user_sees_an_admin_action_without_the_admin_address,
    admin_forms_need_the_csrf_token,
);

const OTHER_PHONE: &str = "+44 7400 654321";

/// The fields of the form posting to `action` on `path`, with `changes` over them.
async fn form(
    b: &Browser,
    path: &str,
    action: &str,
    changes: &[(&str, &str)],
) -> Vec<(String, String)> {
    let page = b.get(path).await;
    let mut fields = page
        .form(action)
        .unwrap_or_else(|| panic!("no form posting to {action} on {path}: {}", page.text()));
    set(&mut fields, changes);
    fields
}

fn set(fields: &mut Vec<(String, String)>, changes: &[(&str, &str)]) {
    for (k, v) in changes {
        match fields.iter_mut().find(|(name, _)| name == k) {
            Some(f) => f.1 = v.to_string(),
            None => fields.push((k.to_string(), v.to_string())),
        }
    }
}

async fn post(b: &Browser, action: &str, fields: &[(String, String)]) -> Page {
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    b.post_raw(action, &pairs).await
}

/// A user other than `test`, signed up, with a proven phone; their id.
async fn other_user(app: &TestApp, name: &str, phone: &str) -> (Browser, i64) {
    let b = app.browser();
    b.register(name).await;
    b.verify_phone(app, phone).await;
    let id = app
        .scalar(&format!("SELECT id FROM users WHERE username = '{name}'"))
        .await;
    (b, id)
}

async fn admin_events(app: &TestApp) -> Vec<String> {
    let events = pollstr::events::list(&app.db, None, 0, 1000).await.unwrap();
    events
        .into_iter()
        .filter(|e| e.kind == "admin_action")
        .map(|e| e.detail)
        .collect()
}

async fn only_verified_staff_may_open_the_admin(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    // Anonymous: to login, and back here after.
    let anon = app.browser();
    let page = anon.get("/admin/polls/?q=dog").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location.as_deref(),
        Some("/login/?next=/admin/polls/%3Fq%3Ddog")
    );
    // Signed in with both factors, not staff: the site's 404, on every admin address.
    let (alice, _) = other_user(&app, "alice", OTHER_PHONE).await;
    for path in [
        "/admin/",
        "/admin/polls/",
        "/admin/polls/1/",
        "/admin/users/1/",
        "/admin/fixtures/",
        "/admin/nothing/",
    ] {
        let page = alice.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.has("Page not found"), "{path}");
    }
    let csrf = alice.get("/account/").await.csrf().unwrap();
    let page = alice
        .post_raw("/admin/users/1/deactivate/", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    // Staff, the second factor not passed yet: where the rest of the site sends them.
    app.make_staff("test").await;
    let b = app.browser();
    b.login("test", "test1234").await;
    let page = b.get("/admin/").await;
    assert_eq!(page.location.as_deref(), Some("/2fa/?next=/admin/"));
    b.verify_phone(&app, PHONE).await;
    let page = b.get("/admin/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.has("Dashboard"));
    assert!(page.has("3 polls"));
    // The flag is read on every request: removed, the next page is a 404.
    app.execute("UPDATE users SET is_staff = FALSE WHERE username = 'test'")
        .await;
    assert_eq!(b.get("/admin/").await.status, StatusCode::NOT_FOUND);
    app.make_staff("test").await;
    assert_eq!(b.get("/admin/").await.status, StatusCode::OK);
    app.execute("UPDATE users SET is_active = FALSE WHERE username = 'test'")
        .await;
    assert_eq!(b.get("/admin/").await.status, StatusCode::NOT_FOUND);
}

async fn a_poll_is_created_edited_reordered_and_its_choices_deleted(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.staff_browser().await;
    let new = b.get("/admin/polls/new/").await;
    assert_eq!(new.status, StatusCode::OK);
    let mut fields = new.form("/admin/polls/new/").unwrap();
    set(
        &mut fields,
        &[
            ("question_text", "Which season?"),
            ("pub_date", "2020-03-01"),
            ("pub_time", "09:30"),
            ("choice-0-text", "Spring"),
            ("choice-1-text", "Summer"),
            ("choice-2-text", "Autumn"),
        ],
    );
    let saved = post(&b, "/admin/polls/new/", &fields).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text());
    let path = saved.location.clone().unwrap();
    let id: i64 = path
        .trim_start_matches("/admin/polls/")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let page = b.get(&path).await;
    assert!(page.has("The poll “Which season?” was added."));
    assert_eq!(
        app.scalar(&format!("SELECT pub_date FROM questions WHERE id = {id}"))
            .await,
        1_583_055_000
    );
    // The same form sent again (a double click) saves nothing more.
    let again = post(&b, "/admin/polls/new/", &fields).await;
    assert_eq!(again.location.as_deref(), Some(path.as_str()));
    assert_eq!(app.scalar("SELECT COUNT(*) FROM questions").await, 4);
    assert!(b.get(&path).await.has("This form was already saved"));
    // On the public list at once, in the order given.
    let public = app.browser().get("/polls/").await;
    assert!(public.has("Which season?"));
    let view = queries::poll_view(&app.db, id, 0).await.unwrap().unwrap();
    let texts: Vec<&str> = view
        .choices
        .iter()
        .map(|c| c.choice_text.as_str())
        .collect();
    assert_eq!(texts, ["Spring", "Summer", "Autumn"]);

    // Edit: rename one, reorder, delete one (no votes), add one in an empty row.
    let fields = form(
        &b,
        &path,
        &path,
        &[
            ("question_text", "Which season is best?"),
            ("choice-0-order", "3"),
            ("choice-1-text", "High summer"),
            ("choice-1-order", "1"),
            ("choice-2-delete", "on"),
            ("choice-3-text", "Winter"),
            ("choice-3-order", "2"),
        ],
    )
    .await;
    let saved = post(&b, &path, &fields).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text());
    let view = queries::poll_view(&app.db, id, 0).await.unwrap().unwrap();
    assert_eq!(view.question.question_text, "Which season is best?");
    let texts: Vec<&str> = view
        .choices
        .iter()
        .map(|c| c.choice_text.as_str())
        .collect();
    assert_eq!(texts, ["High summer", "Winter", "Spring"]);
    let page = b.get(&path).await;
    assert_eq!(
        page.form(&path)
            .unwrap()
            .iter()
            .find(|(k, _)| k == "choice-0-text")
            .unwrap()
            .1,
        "High summer"
    );
    // Scheduled: a date in the future takes it off the public list.
    let fields = form(&b, &path, &path, &[("pub_date", "2999-01-01")]).await;
    let saved = post(&b, &path, &fields).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    assert!(b.get(&path).await.has("It is scheduled"));
    assert!(!app
        .browser()
        .get("/polls/")
        .await
        .has("Which season is best?"));
    let voter = app.verified_browser().await;
    assert_eq!(
        voter.get(&format!("/polls/{id}/")).await.status,
        StatusCode::NOT_FOUND
    );
    let scheduled = b.get("/admin/polls/?date=scheduled").await;
    assert!(scheduled.has("Which season is best?"));
    assert!(scheduled.has("1 poll."));
    let events = admin_events(&app).await;
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("by test (#1): created poll")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("by test (#1): changed poll")),
        "{events:?}"
    );
}

async fn invalid_input_is_answered_on_the_form_and_saves_nothing(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.staff_browser().await;
    let long = "x".repeat(201);
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[("question_text", "  ")], "Enter the question."),
        (
            &[("question_text", &long)],
            "at most 200 characters (it has 201)",
        ),
        (&[("pub_date", "2026-13-45")], "Enter a valid date"),
        (&[("pub_time", "25:99")], "Enter a valid time"),
        (
            &[("choice-0-text", &long)],
            "Ensure the choice has at most 200",
        ),
        (
            &[("choice-0-text", "Same"), ("choice-1-text", "same")],
            "Another choice has the same text.",
        ),
    ];
    for (changes, message) in cases {
        let mut fields = form(
            &b,
            "/admin/polls/new/",
            "/admin/polls/new/",
            &[("question_text", "A question")],
        )
        .await;
        set(&mut fields, changes);
        let page = post(&b, "/admin/polls/new/", &fields).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{message}");
        assert!(page.has(message), "{message}: {}", page.text());
        assert!(page.has("Nothing was saved."));
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM questions").await, 3);
    // An edit with one bad choice changes nothing, not even the question.
    let fields = form(
        &b,
        "/admin/polls/1/",
        "/admin/polls/1/",
        &[
            ("question_text", "Changed?"),
            ("choice-1-text", ""),
            ("choice-2-order", "two"),
        ],
    )
    .await;
    let page = post(&b, "/admin/polls/1/", &fields).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.has("Enter the choice, or tick Delete."));
    assert!(page.has("Enter a whole number for the order."));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM questions WHERE question_text = 'Changed?'")
            .await,
        0
    );
    // Ids that are not polls, or not numbers: 404.
    for path in [
        "/admin/polls/999/",
        "/admin/polls/abc/",
        "/admin/polls/0/",
        "/admin/polls/999/delete/",
        "/admin/users/999/",
        "/admin/users/x/",
    ] {
        assert_eq!(b.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    // A form that names another poll's choice saves nothing (a choice never moves).
    let mut fields = form(&b, "/admin/polls/1/", "/admin/polls/1/", &[]).await;
    set(
        &mut fields,
        &[("choice-0-id", "9"), ("choice-0-text", "Moved?")],
    );
    let page = post(&b, "/admin/polls/1/", &fields).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert_eq!(
        app.scalar("SELECT question_id FROM choices WHERE id = 9")
            .await,
        3
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM choices WHERE choice_text = 'Moved?'")
            .await,
        0
    );
    // A list page that is not a number, or past the end.
    assert_eq!(
        b.get("/admin/polls/?page=x").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.get("/admin/polls/?page=2").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.get("/admin/polls/?date=yesterday").await.status,
        StatusCode::BAD_REQUEST
    );
}

async fn deleting_votes_asks_again_and_the_counts_stay_right(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.staff_browser().await;
    // Votes: `test` and two others on poll 1 (choices 1, 1, 2) and one on poll 3.
    let others: Vec<i64> = futures_ids(&app).await;
    for (user, q, c) in [
        (1, 1, 1),
        (others[0], 1, 1),
        (others[1], 1, 2),
        (others[0], 3, 9),
    ] {
        assert!(queries::cast_vote(&app.db, user, q, c).await.unwrap());
    }
    app.polls.clear();
    // Choice 1 (2 votes) ticked: the form comes back saying so, and nothing is deleted.
    let fields = form(
        &b,
        "/admin/polls/1/",
        "/admin/polls/1/",
        &[("choice-0-delete", "on"), ("question_text", "Dogs?")],
    )
    .await;
    let page = post(&b, "/admin/polls/1/", &fields).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(
        page.has("has 2 votes, which will be deleted with it"),
        "{}",
        page.text()
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM choices WHERE id = 1")
            .await,
        1
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM questions WHERE question_text = 'Dogs?'")
            .await,
        0
    );
    // Saved again from that page: deleted with its votes.
    let confirm = page.form("/admin/polls/1/").unwrap();
    assert!(confirm.contains(&("confirm_votes".to_string(), "2".to_string())));
    let page = post(&b, "/admin/polls/1/", &confirm).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM choices WHERE id = 1")
            .await,
        0
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM votes WHERE question_id = 1")
            .await,
        1
    );
    assert_eq!(recount(&app.db).await.unwrap(), Vec::<Fix>::new());
    let view = queries::poll_view(&app.db, 1, 0).await.unwrap().unwrap();
    assert_eq!(view.choices.iter().map(|c| c.votes).sum::<i64>(), 1);

    // A poll with votes: its page says how many go; a stale confirmation asks again.
    let page = b.get("/admin/polls/3/delete/").await;
    assert!(page.has("and its 1 vote"), "{}", page.text());
    let fields = page.form("/admin/polls/3/delete/").unwrap();
    assert!(queries::cast_vote(&app.db, others[1], 3, 10).await.unwrap());
    let page = post(&b, "/admin/polls/3/delete/", &fields).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.has("and its 2 votes"));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM questions WHERE id = 3")
            .await,
        1
    );
    let fields = page.form("/admin/polls/3/delete/").unwrap();
    let page = post(&b, "/admin/polls/3/delete/", &fields).await;
    assert_eq!(page.location.as_deref(), Some("/admin/polls/"));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM questions WHERE id = 3")
            .await,
        0
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM votes WHERE question_id = 3")
            .await,
        0
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM choice_counts WHERE choice_id IN (9, 10, 11, 12)")
            .await,
        0
    );
    assert_eq!(recount(&app.db).await.unwrap(), Vec::<Fix>::new());
    assert_eq!(b.get("/admin/polls/3/").await.status, StatusCode::NOT_FOUND);
    assert!(!app.browser().get("/polls/").await.has("What's up dog?"));
    let events = admin_events(&app).await;
    assert!(
        events
            .iter()
            .any(|e| e.contains("deleted poll #3") && e.contains("2 vote(s)")),
        "{events:?}"
    );
}

/// Two users who only vote; their ids.
async fn futures_ids(app: &TestApp) -> Vec<i64> {
    let mut ids = Vec::new();
    for name in ["voter1", "voter2"] {
        ids.push(pollstr::users::create(&app.db, name, "!").await.unwrap());
    }
    ids
}

async fn destructive_actions_need_the_password_again(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.sudo_window = Duration::from_secs(1), None).await;
    app.load(SEED).await;
    let (_, victim) = other_user(&app, "victim", OTHER_PHONE).await;
    assert!(queries::cast_vote(&app.db, victim, 1, 1).await.unwrap());
    let b = app.staff_browser().await;
    let stale_form = form(
        &b,
        "/admin/polls/1/",
        "/admin/polls/1/",
        &[("choice-0-delete", "on")],
    )
    .await;
    let csrf = b.get("/admin/").await.csrf().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Pages that only read or edit need no password.
    assert_eq!(b.get("/admin/").await.status, StatusCode::OK);
    let rename = form(
        &b,
        "/admin/polls/2/",
        "/admin/polls/2/",
        &[("question_text", "Renamed")],
    )
    .await;
    assert_eq!(
        post(&b, "/admin/polls/2/", &rename).await.status,
        StatusCode::SEE_OTHER
    );
    // Each destructive one asks for it, and does nothing.
    for path in [
        "/admin/polls/1/delete/",
        &format!("/admin/users/{victim}/deactivate/"),
        "/admin/fixtures/",
    ] {
        let page = b.get(path).await;
        assert_eq!(
            page.location.as_deref(),
            Some(format!("/account/confirm/?next={path}").as_str()),
            "{path}"
        );
        let page = b
            .post_raw(path, &[("csrf_token", &csrf), ("confirm_votes", "1")])
            .await;
        assert!(
            page.location
                .unwrap()
                .starts_with("/account/confirm/?next="),
            "{path}"
        );
    }
    let page = b
        .post_multipart(
            "/admin/fixtures/",
            &[("csrf_token", &csrf)],
            Some(("file", "f.json", b"[]")),
        )
        .await;
    assert!(page.location.unwrap().starts_with("/account/confirm/"));
    let page = post(&b, "/admin/polls/1/", &stale_form).await;
    assert!(page
        .location
        .unwrap()
        .starts_with("/account/confirm/?next=/admin/polls/1/"));
    assert_eq!(app.scalar("SELECT COUNT(*) FROM questions").await, 3);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM choices WHERE id = 1")
            .await,
        1
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM users WHERE id = {victim} AND is_active"
        ))
        .await,
        1
    );
    // With the password given again: done.
    let right = b
        .submit(
            &format!("/account/confirm/?next=/admin/users/{victim}/deactivate/"),
            "/account/confirm/",
            &[("password", "test1234")],
        )
        .await;
    let back = right.location.unwrap();
    assert_eq!(back, format!("/admin/users/{victim}/deactivate/"));
    let page = b.submit(&back, &back, &[]).await;
    assert_eq!(page.location, Some(format!("/admin/users/{victim}/")));
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM users WHERE id = {victim} AND is_active"
        ))
        .await,
        0
    );
}

async fn the_poll_list_searches_filters_and_pages(backend: Backend) {
    let app = spawn_app(backend).await;
    app.load(crate::helpers::SEED_USER).await;
    let now = pollstr::db::now();
    let mut values = Vec::new();
    for i in 0..56 {
        // Published a year ago or more, so the date filters find only the ones below.
        values.push(format!(
            "('Old poll {i} about cats', {})",
            now - 400 * 86_400 - i * 60
        ));
    }
    values.push(format!("('Tomorrow''s poll about dogs', {})", now + 86_400));
    values.push(format!("('A 100% poll about DOGS', {now})"));
    values.push(format!("('Last week''s poll', {})", now - 3 * 86_400));
    app.execute(&format!(
        "INSERT INTO questions (question_text, pub_date) VALUES {}",
        values.join(", ")
    ))
    .await;
    let b = app.staff_browser().await;
    let page = b.get("/admin/polls/").await;
    assert!(page.has("59 polls."));
    assert!(page.has("Page 1 of 2"));
    assert_eq!(
        page.body.matches("<tr>").count(),
        51,
        "50 rows and the header"
    );
    // Newest first: the scheduled one, then today's.
    assert!(page.text().find("Tomorrow").unwrap() < page.text().find("A 100% poll").unwrap());
    let second = b.get("/admin/polls/?page=2").await;
    assert_eq!(second.body.matches("<tr>").count(), 10);
    assert!(second.has("Old poll 55 about cats"));
    assert_eq!(
        b.get("/admin/polls/?page=3").await.status,
        StatusCode::NOT_FOUND
    );
    // Search: the text, case aside, `%` taken literally.
    let dogs = b.get("/admin/polls/?q=dOgS").await;
    assert!(dogs.has("2 polls matching “dOgS”."));
    assert!(b.get("/admin/polls/?q=100%25").await.has("1 poll matching"));
    assert!(b
        .get("/admin/polls/?q=nothing+like+it")
        .await
        .has("0 polls"));
    // Filters.
    let count = |page: &Page| page.body.matches("<tr>").count() - 1;
    let scheduled = b.get("/admin/polls/?date=scheduled").await;
    assert_eq!(count(&scheduled), 1);
    assert!(scheduled.has("Tomorrow's poll about dogs") && scheduled.has("Scheduled"));
    let today = b.get("/admin/polls/?date=today").await;
    assert!(today.has("A 100% poll about DOGS"));
    assert!(!today.has("Tomorrow") && !today.has("Last week"));
    let week = b.get("/admin/polls/?date=week").await;
    assert_eq!(count(&week), 2);
    assert!(week.has("Last week's poll"));
    let month = b.get("/admin/polls/?date=month").await;
    assert!(month.has("A 100% poll about DOGS") && !month.has("Old poll"));
    assert_eq!(
        count(&b.get("/admin/polls/?date=any&q=cats&page=2").await),
        6
    );
    // The pages keep the search and filter.
    assert!(b
        .get("/admin/polls/?q=cats")
        .await
        .body
        .contains("/admin/polls/?q=cats&#38;page=2"));
    // The "published recently" column.
    assert!(today.has("Yes"));
    assert!(b.get("/admin/polls/?q=Old+poll+1+").await.has("No"));
}

/// The parts of a Django fixture: a poll with two choices.
const NEW_POLL: &str = r#"[
  {"model": "polls.question", "pk": 40, "fields": {"question_text": "Uploaded question?", "pub_date": "2020-01-01T00:00:00Z"}},
  {"model": "polls.choice", "pk": 400, "fields": {"question": 40, "choice_text": "Yes", "votes": 3}},
  {"model": "polls.choice", "pk": 401, "fields": {"question": 40, "choice_text": "No", "votes": 0}}
]"#;

async fn a_fixture_is_uploaded_all_or_nothing_and_the_database_downloaded(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.staff_browser().await;
    let page = b.get("/admin/fixtures/").await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page.csrf().unwrap();
    let upload = |name: &'static str, bytes: Vec<u8>| {
        let csrf = csrf.clone();
        let b = &b;
        async move {
            b.post_multipart(
                "/admin/fixtures/",
                &[("csrf_token", &csrf)],
                Some(("file", name, &bytes)),
            )
            .await
        }
    };
    // Bad files: a clear message on the form, 4xx, nothing loaded.
    let broken = NEW_POLL.replace(
        r#""question": 40, "choice_text": "No""#,
        r#""question": 41, "choice_text": "No""#,
    );
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        ("broken.json", broken.into_bytes(), StatusCode::BAD_REQUEST, "broken.json: entry 3 (polls.choice pk 401): question 41 does not exist. Nothing was loaded."),
        ("notes.txt", b"these are not polls".to_vec(), StatusCode::BAD_REQUEST, "notes.txt: not valid JSON"),
        ("cut.json", NEW_POLL.as_bytes()[..100].to_vec(), StatusCode::BAD_REQUEST, "the file ends too early"),
        ("binary.json", vec![0xff, 0xfe, 0x00, 0x5b], StatusCode::BAD_REQUEST, "not UTF-8"),
        ("empty.json", Vec::new(), StatusCode::BAD_REQUEST, "Choose a fixture file to upload."),
        ("huge.json", vec![b' '; pollstr::web::csrf::UPLOAD_LIMIT + 1], StatusCode::PAYLOAD_TOO_LARGE, "huge.json is larger than 5 MiB"),
    ];
    for (name, bytes, status, message) in cases {
        let page = upload(name, bytes).await;
        assert_eq!(page.status, status, "{name}: {}", page.text());
        assert!(page.has(message), "{name}: {}", page.text());
    }
    let page = b
        .post_multipart("/admin/fixtures/", &[("csrf_token", &csrf)], None)
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM questions").await, 3);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM choices WHERE id IN (400, 401)")
            .await,
        0
    );
    // A good one: loaded, summed up, on the public list at once.
    let page = upload("new.json", NEW_POLL.as_bytes().to_vec()).await;
    assert_eq!(
        page.location.as_deref(),
        Some("/admin/fixtures/"),
        "{}",
        page.text()
    );
    let page = b.get("/admin/fixtures/").await;
    assert!(
        page.has("new.json: Installed 3 object(s) from 1 fixture(s): 1 question(s), 2 choice(s)"),
        "{}",
        page.text()
    );
    assert!(app.browser().get("/polls/").await.has("Uploaded question?"));
    assert!(admin_events(&app)
        .await
        .iter()
        .any(|e| e.starts_with("by test (#1): loaded \"new.json\"")));
    // The download: the whole database, which loads back as it is.
    let res = b
        .client
        .get(b.url("/admin/fixtures/download/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"pollstr-"));
    let dump = res.text().await.unwrap();
    assert!(dump.contains("Uploaded question?") && dump.contains("\"auth.user\""));
    // Uploads are taken on the upload page only: elsewhere a signed-in user's body stays small.
    let elsewhere = b
        .post_multipart(
            "/account/password/",
            &[("csrf_token", &csrf)],
            Some(("file", "big.json", &vec![b' '; 100 * 1024])),
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::PAYLOAD_TOO_LARGE);
    // The dump loads back through the upload too: nothing in it changes an account.
    let page = upload("dump.json", dump.clone().into_bytes()).await;
    assert_eq!(
        page.location.as_deref(),
        Some("/admin/fixtures/"),
        "{}",
        page.text()
    );
    // A file that would change an account, or bind a factor to an existing one, is refused
    // whole: a browser upload must not take over accounts (pollstr loaddata may).
    let question = r#"{"model": "polls.question", "pk": 90, "fields": {"question_text": "Sneaky?", "pub_date": "2020-01-01T00:00:00Z"}}"#;
    for (name, entry) in [
        (
            "takeover.json",
            r#"{"model": "auth.user", "pk": 1, "fields": {"username": "test", "password": "pbkdf2_sha256$1$x$y", "is_staff": true, "is_active": true}}"#,
        ),
        (
            "phone.json",
            r#"{"model": "two_factor.twofactor", "pk": 7, "fields": {"user": 1, "number": "+447400123999"}}"#,
        ),
    ] {
        let file = format!("[{question}, {entry}]");
        let page = upload(name, file.into_bytes()).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            page.text()
        );
        assert!(
            page.has("an existing account or its second factors would change"),
            "{name}: {}",
            page.text()
        );
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM questions WHERE id = 90")
            .await,
        0
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM phone_numbers WHERE number = '+447400123999'")
            .await,
        0
    );
    let other = spawn_app(backend).await;
    let report = pollstr::fixtures::load(&other.db, &[("dump".into(), dump)])
        .await
        .unwrap();
    assert_eq!(report.questions, 4);
    assert_eq!(report.choices, 14);
    assert!(admin_events(&app)
        .await
        .iter()
        .any(|e| e.starts_with("by test (#1): downloaded the database")));
}

/// An entry of `dump` (a downloaded fixture): the `model` entry whose `key` field is `value`.
fn entry_of(
    dump: &serde_json::Value,
    model: &str,
    key: &str,
    value: serde_json::Value,
) -> serde_json::Value {
    dump.as_array()
        .unwrap()
        .iter()
        .find(|e| e["model"] == model && (e[key] == value || e["fields"][key] == value))
        .unwrap_or_else(|| panic!("no {model} with {key} {value} in the dump"))
        .clone()
}

async fn an_upload_never_grants_staff_nor_rewrites_an_account(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    // An account with what an upload must leave alone: its fields, a phone, a vote.
    let (victim, id) = other_user(&app, "victim", OTHER_PHONE).await;
    let voted = victim
        .submit("/polls/1/", "/polls/1/vote/", &[("choice", "2")])
        .await;
    assert_eq!(voted.status, StatusCode::SEE_OTHER, "{}", voted.text());
    let b = app.staff_browser().await;
    let csrf = b.get("/admin/fixtures/").await.csrf().unwrap();
    let upload = |name: String, file: String| {
        let csrf = csrf.clone();
        let b = &b;
        async move {
            b.post_multipart(
                "/admin/fixtures/",
                &[("csrf_token", &csrf)],
                Some(("file", &name, file.as_bytes())),
            )
            .await
        }
    };
    let dump = b.get("/admin/fixtures/download/").await.body;
    let parsed: serde_json::Value = serde_json::from_str(&dump).unwrap();
    let user = entry_of(&parsed, "auth.user", "pk", id.into());
    let vote = entry_of(&parsed, "polls.vote", "user", id.into());
    assert_eq!(vote["fields"]["choice"], 2, "{vote}");
    let with = |mut entry: serde_json::Value, field: &str, value: serde_json::Value| {
        entry["fields"][field] = value;
        entry.to_string()
    };
    let new_user = |pk: i64, name: &str, flags: &str| {
        format!(
            r#"{{"model": "auth.user", "pk": {pk}, "fields": {{"username": "{name}", "password": "pbkdf2_sha256$1$x$y"{flags}}}}}"#
        )
    };
    // Each file: a new poll first (it must not be written either), then the entry refused.
    let question = r#"{"model": "polls.question", "pk": 90, "fields": {"question_text": "Sneaky?", "pub_date": "2020-01-01T00:00:00Z"}}"#;
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        ("staff.json", vec![new_user(50, "backdoor", r#", "is_staff": true"#)], "entry 2 (auth.user pk 50): a new account would have is_staff or is_superuser set".into()),
        ("superuser.json", vec![new_user(51, "backdoor", r#", "is_superuser": true"#)], "entry 2 (auth.user pk 51): a new account would have is_staff or is_superuser set".into()),
        ("email.json", vec![with(user.clone(), "email", "eve@example.com".into())], format!("entry 2 (auth.user pk {id}): an existing account or its second factors would change (email)")),
        ("first.json", vec![with(user.clone(), "first_name", "Eve".into())], "(first_name)".into()),
        ("last.json", vec![with(user.clone(), "last_name", "Eve".into())], "(last_name)".into()),
        ("joined.json", vec![with(user.clone(), "date_joined", "2001-01-01T00:00:00Z".into())], "(date_joined)".into()),
        ("seen.json", vec![with(user.clone(), "last_login", "2001-01-01T00:00:00Z".into())], "(last_login)".into()),
        ("revote.json", vec![with(vote.clone(), "choice", 3.into())], format!("(polls.vote): the vote of user {id}, who exists already, on question 1 would change or be added")),
        ("addvote.json", vec![with(with(vote.clone(), "question", 2.into()).parse().unwrap(), "choice", 5.into())], "on question 2 would change or be added".into()),
        ("phone.json", vec![new_user(52, "newcomer", ""), r#"{"model": "two_factor.twofactor", "pk": 9, "fields": {"user": 52, "number": "+447400123999"}}"#.into()], "entry 3 (two_factor.twofactor): user 52 is created by this file, and nobody proved this number for them".into()),
    ];
    for (name, entries, message) in &cases {
        let file = format!("[{question}, {}]", entries.join(", "));
        let page = upload(name.to_string(), file).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            page.text()
        );
        for part in [
            message.as_str(),
            "the admin only adds accounts (load this file on the server with `pollstr loaddata`). Nothing was loaded.",
        ] {
            assert!(page.has(part), "{name}: {part}: {}", page.text());
        }
    }
    // Nothing was written, and the victim's account is as it was.
    for sql in [
        "SELECT COUNT(*) FROM questions WHERE id = 90".to_string(),
        "SELECT COUNT(*) FROM users WHERE id >= 50".into(),
        "SELECT COUNT(*) FROM phone_numbers WHERE number = '+447400123999'".into(),
        format!("SELECT COUNT(*) FROM votes WHERE user_id = {id} AND NOT (question_id = 1 AND choice_id = 2)"),
        format!("SELECT COUNT(*) FROM users WHERE id = {id} AND (email <> '' OR first_name <> '' OR last_name <> '' OR last_login IS NOT NULL OR date_joined < 1000000000)"),
    ] {
        assert_eq!(app.scalar(&sql).await, 0, "{sql}");
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE is_staff")
            .await,
        1
    );
    // Each refusal is on the trail, naming the admin.
    let events = admin_events(&app).await;
    for (name, _, _) in &cases {
        assert!(
            events
                .iter()
                .any(|e| e.starts_with(&format!("by test (#1): refused \"{name}\": "))),
            "{name}: {events:?}"
        );
    }
    // What the rule allows: the dump as it is, and a plain new account with its own vote,
    // named in the event and the message.
    let page = upload("dump.json".into(), dump.clone()).await;
    assert_eq!(
        page.location.as_deref(),
        Some("/admin/fixtures/"),
        "{}",
        page.text()
    );
    let file = format!(
        r#"[{}, {{"model": "polls.vote", "fields": {{"user": 53, "question": 1, "choice": 4}}}}]"#,
        new_user(53, "newcomer", "")
    );
    let page = upload("newcomer.json".into(), file).await;
    assert_eq!(
        page.location.as_deref(),
        Some("/admin/fixtures/"),
        "{}",
        page.text()
    );
    assert!(
        b.get("/admin/fixtures/").await.has("1 user(s), 0 phone number(s), 1 vote(s), 0 authenticator app(s) and recovery code(s), 0 passkey(s); new account(s): newcomer (#53)."),
    );
    assert!(admin_events(&app).await.iter().any(|e| e
        .starts_with("by test (#1): loaded \"newcomer.json\": ")
        && e.ends_with("; new account(s): newcomer (#53)")),);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE id = 53 AND NOT is_staff")
            .await,
        1
    );
    // `pollstr loaddata`, on the server, still loads all of it.
    let report = pollstr::fixtures::load(
        &app.db,
        &[(
            "server.json".into(),
            format!("[{}]", new_user(50, "operator", r#", "is_staff": true"#)),
        )],
    )
    .await
    .unwrap();
    assert_eq!(report.users, 1);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE id = 50 AND is_staff")
            .await,
        1
    );
}

async fn an_admin_resets_factors_ends_sessions_deactivates_and_sets_staff(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let (victim, id) = other_user(&app, "victim", OTHER_PHONE).await;
    let b = app.staff_browser().await;
    let list = b.get("/admin/users/?q=VICT").await;
    assert!(list.has("1 user matching"));
    assert!(list.body.contains(&format!("/admin/users/{id}/")));
    let page = b.get(&format!("/admin/users/{id}/")).await;
    assert!(page.has("Phone: +44 •••• ••4321"), "{}", page.text());
    assert!(!page.body.contains("654321"));
    // The victim's signed-in session is listed.
    let sessions = page
        .body
        .split(r#"id="sessions""#)
        .nth(1)
        .and_then(|rest| rest.split("</ul>").next())
        .unwrap_or_else(|| panic!("no session list: {}", page.text()));
    assert_eq!(sessions.matches("<li>").count(), 1, "{sessions}");
    let act = |action: &'static str| {
        let b = &b;
        async move {
            let path = format!("/admin/users/{id}/{action}/");
            let confirm = b.get(&path).await;
            assert_eq!(confirm.status, StatusCode::OK, "{action}");
            b.submit(&path, &path, &[]).await
        }
    };
    // Ending the sessions logs them out.
    assert_eq!(victim.get("/polls/1/").await.status, StatusCode::OK);
    let done = act("end-sessions").await;
    assert_eq!(done.location, Some(format!("/admin/users/{id}/")));
    assert!(victim
        .get("/polls/1/")
        .await
        .location
        .unwrap()
        .starts_with("/login/"));
    assert!(b
        .get(&format!("/admin/users/{id}/"))
        .await
        .has("No session."));
    // Resetting the second factor: they prove a phone again at the next login.
    victim.login("victim", STRONG).await;
    act("reset-factors").await;
    assert!(victim
        .get("/polls/1/")
        .await
        .location
        .unwrap()
        .starts_with("/login/"));
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM phone_numbers WHERE user_id = {id}"
        ))
        .await,
        0
    );
    victim.login("victim", STRONG).await;
    let (path, page) = victim.follow(victim.get("/polls/1/").await).await;
    assert!(path.starts_with("/2fa/"), "{path}");
    assert!(page.has("To continue we need to verify your phone number."));
    // Deactivated: no login; activated again: login.
    act("deactivate").await;
    assert!(victim.get("/polls/").await.status == StatusCode::OK);
    let login = victim
        .submit(
            "/login/",
            "/login/",
            &[("username", "victim"), ("password", STRONG)],
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.has("didn't match"));
    act("activate").await;
    victim.login("victim", STRONG).await;
    victim.verify_phone(&app, OTHER_PHONE).await;
    // The staff flag, both ways, effective at once.
    assert_eq!(victim.get("/admin/").await.status, StatusCode::NOT_FOUND);
    act("make-staff").await;
    assert_eq!(victim.get("/admin/").await.status, StatusCode::OK);
    act("remove-staff").await;
    assert_eq!(victim.get("/admin/").await.status, StatusCode::NOT_FOUND);
    // Not on oneself; an action already done changes nothing; unknown ones are 404s.
    let csrf = b.get("/admin/").await.csrf().unwrap();
    let page = b
        .post_raw("/admin/users/1/deactivate/", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(page.location.as_deref(), Some("/admin/users/1/"));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE id = 1 AND is_active")
            .await,
        1
    );
    assert!(b
        .get("/admin/users/1/")
        .await
        .has("cannot do that to your own account"));
    let page = b
        .post_raw(
            &format!("/admin/users/{id}/activate/"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(page.location, Some(format!("/admin/users/{id}/")));
    assert_eq!(
        b.get(&format!("/admin/users/{id}/promote/")).await.status,
        StatusCode::NOT_FOUND
    );
    // Each action is an event naming the admin, on the user's own account page too.
    let events = admin_events(&app).await;
    for what in [
        "ended every session of victim",
        "reset the second factor of victim",
        "deactivated victim",
        "activated victim",
        "made victim (#",
        "removed the staff flag of victim",
    ] {
        assert!(
            events
                .iter()
                .any(|e| e.starts_with("by test (#1): ") && e.contains(what)),
            "{what}: {events:?}"
        );
    }
    assert_eq!(
        events
            .iter()
            .filter(|e| e.contains("activated victim (#"))
            .count(),
        2,
        "{events:?}"
    );
    let account = victim.get("/account/").await;
    assert!(
        account.has("admin action: by test (#1): removed the staff flag of victim"),
        "{}",
        account.text()
    );
    let admin_view = b.get(&format!("/admin/users/{id}/")).await;
    assert!(admin_view.has(&format!("made victim (#{id}) staff")));
}

/// Sends a code to `phone` and types it in with "Trust this browser" ticked.
async fn prove_trusting(app: &TestApp, b: &Browser, phone: &str) {
    let sent = b
        .submit("/2fa/", "/2fa/create/", &[("number", phone)])
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    let e164 = pollstr::two_factor::sms::phone::PhoneNumber::parse(phone, None).unwrap();
    let code = app.code_for(e164.e164()).await;
    let done = b
        .submit(
            sent.location.as_deref().unwrap(),
            "/2fa/confirm/",
            &[("code", &code), ("remember", "1")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
}

/// A user other than `test`, signed up, with a proven phone, in a browser they trust; their id.
async fn trusting_user(app: &TestApp, name: &str, phone: &str) -> (Browser, i64) {
    let b = app.browser();
    b.register(name).await;
    prove_trusting(app, &b, phone).await;
    let id = app
        .scalar(&format!("SELECT id FROM users WHERE username = '{name}'"))
        .await;
    (b, id)
}

/// Where a poll page sends `b` (None: it opens).
async fn poll_page_sends(b: &Browser) -> Option<String> {
    b.get("/polls/1/").await.location
}

/// Logs `b` in as `name` with the password only: where a poll page then sends them.
async fn password_login_sends(b: &Browser, name: &str) -> Option<String> {
    b.login(name, STRONG).await;
    poll_page_sends(b).await
}

/// Posts the confirmed admin `action` on user `id` as staff browser `b`.
async fn admin_act(b: &Browser, id: i64, action: &str) {
    let path = format!("/admin/users/{id}/{action}/");
    let done = b.submit(&path, &path, &[]).await;
    assert_eq!(
        done.location,
        Some(format!("/admin/users/{id}/")),
        "{action}: {}",
        done.text()
    );
}

fn to_login(sent: Option<String>) -> bool {
    sent.is_some_and(|to| to.starts_with("/login/"))
}

fn to_second_factor(sent: Option<String>) -> bool {
    sent.is_some_and(|to| to.starts_with("/2fa/"))
}

async fn ending_sessions_or_deactivating_forgets_trusted_browsers(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let (victim, id) = trusting_user(&app, "victim", OTHER_PHONE).await;
    // Their trusted browser skips the second factor at login.
    victim.submit("/polls/", "/logout/", &[]).await;
    assert_eq!(password_login_sends(&victim, "victim").await, None);
    let b = app.staff_browser().await;
    admin_act(&b, id, "end-sessions").await;
    assert!(to_login(poll_page_sends(&victim).await));
    let sent = password_login_sends(&victim, "victim").await;
    assert!(to_second_factor(sent.clone()), "{sent:?}");
    // Trusted again, and signed in in another browser (half way: password only), then
    // deactivated: every session ends, the trust with them, and activating brings neither
    // back.
    prove_trusting(&app, &victim, OTHER_PHONE).await;
    let other = app.browser();
    let sent = password_login_sends(&other, "victim").await;
    assert!(to_second_factor(sent.clone()), "{sent:?}");
    admin_act(&b, id, "deactivate").await;
    for session in [&victim, &other] {
        assert!(to_login(poll_page_sends(session).await));
    }
    admin_act(&b, id, "activate").await;
    for session in [&victim, &other] {
        assert!(to_login(poll_page_sends(session).await));
    }
    let sent = password_login_sends(&victim, "victim").await;
    assert!(to_second_factor(sent.clone()), "{sent:?}");
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM trusted_browsers WHERE user_id = {id}"
        ))
        .await,
        0
    );
    let events = admin_events(&app).await;
    for what in ["ended every session of victim (#", "deactivated victim (#"] {
        assert!(
            events
                .iter()
                .any(|e| e.contains(what) && e.contains("forgot 1 trusted browser(s)")),
            "{what}: {events:?}"
        );
    }
}

async fn resetting_the_second_factor_removes_every_factor_and_session(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let (victim, id) = trusting_user(&app, "victim", OTHER_PHONE).await;
    // In again (the trusted browser skips the code; the password opens the setup page), for an
    // authenticator app and its recovery codes.
    victim.submit("/polls/", "/logout/", &[]).await;
    assert_eq!(password_login_sends(&victim, "victim").await, None);
    crate::totp::set_up_with_codes(&victim).await;
    let count = |table: &'static str| {
        let app = &app;
        async move {
            app.scalar(&format!(
                "SELECT COUNT(*) FROM {table} WHERE user_id = {id}"
            ))
            .await
        }
    };
    let sessions = || async {
        pollstr::db::session_store::of_user(&app.db, id)
            .await
            .unwrap()
            .len()
    };
    let tables = [
        "phone_numbers",
        "totp_factors",
        "recovery_codes",
        "trusted_browsers",
    ];
    for (table, before) in tables.iter().zip([1, 1, 10, 1]) {
        assert_eq!(count(table).await, before, "{table}");
    }
    assert_eq!(sessions().await, 1);
    let b = app.staff_browser().await;
    admin_act(&b, id, "reset-factors").await;
    for table in tables {
        assert_eq!(count(table).await, 0, "{table}");
    }
    assert_eq!(sessions().await, 0);
    // By behaviour: their session is over, and their trusted browser is asked to prove a
    // phone again (not the app they had).
    assert!(to_login(poll_page_sends(&victim).await));
    let sent = password_login_sends(&victim, "victim").await;
    assert_eq!(sent.as_deref(), Some("/2fa/?next=/polls/1/"));
    assert!(victim
        .get("/2fa/")
        .await
        .has("To continue we need to verify your phone number."));
}

/// A browser behind the app's trusted proxy, whose client address is `ip`.
fn browser_from(app: &TestApp, ip: &str) -> Browser {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", ip.parse().unwrap());
    Browser {
        base: app.addr.clone(),
        client: reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        jar,
    }
}

async fn the_user_sees_an_admin_action_without_the_admin_address(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()],
        None,
    )
    .await;
    app.load(SEED).await;
    let (victim, id) = other_user(&app, "victim", OTHER_PHONE).await;
    app.make_staff("test").await;
    let admin_address = "203.0.113.50";
    let b = browser_from(&app, admin_address);
    b.login("test", "test1234").await;
    b.verify_phone(&app, PHONE).await;
    admin_act(&b, id, "make-staff").await;
    let account = victim.get("/account/").await;
    assert!(
        account.has(&format!(
            "admin action: by test (#1): made victim (#{id}) staff"
        )),
        "{}",
        account.text()
    );
    assert!(!account.body.contains(admin_address), "{}", account.text());
    // Their own events keep their address.
    assert!(account.has("(from 127.0.0.1)"), "{}", account.text());
    // The admin's page and `pollstr events` keep the admin's.
    let admin_view = b.get(&format!("/admin/users/{id}/")).await;
    assert!(
        admin_view.body.contains(admin_address),
        "{}",
        admin_view.text()
    );
    let events = pollstr::events::list(&app.db, Some(id), 0, 100)
        .await
        .unwrap();
    assert!(events
        .iter()
        .any(|e| e.kind == "admin_action" && e.ip == admin_address));
}

async fn admin_forms_need_the_csrf_token(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let (_, victim) = other_user(&app, "victim", OTHER_PHONE).await;
    let b = app.staff_browser().await;
    let mut fields = form(
        &b,
        "/admin/polls/new/",
        "/admin/polls/new/",
        &[("question_text", "Forged?")],
    )
    .await;
    fields.retain(|(k, _)| k != "csrf_token");
    assert_eq!(
        post(&b, "/admin/polls/new/", &fields).await.status,
        StatusCode::FORBIDDEN
    );
    set(&mut fields, &[("csrf_token", "not-the-token")]);
    assert_eq!(
        post(&b, "/admin/polls/new/", &fields).await.status,
        StatusCode::FORBIDDEN
    );
    let page = b
        .post_raw(&format!("/admin/users/{victim}/deactivate/"), &[])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = b
        .post_raw("/admin/polls/1/delete/", &[("confirm_votes", "0")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = b
        .post_multipart(
            "/admin/fixtures/",
            &[],
            Some(("file", "new.json", NEW_POLL.as_bytes())),
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM questions").await, 3);
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM users WHERE id = {victim} AND is_active"
        ))
        .await,
        1
    );
    assert!(admin_events(&app).await.is_empty());
}

/// `pollstr createuser NAME --staff` makes a user who may open the admin.
#[tokio::test]
async fn createuser_staff_makes_a_staff_user() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cli.db").display());
    for (name, flag) in [("boss", Some("--staff")), ("plain", None)] {
        let mut cmd = pollstr_command(dir.path(), &[("DATABASE_URL", &url)]);
        cmd.args(["createuser", name, "--password-stdin"]);
        if let Some(flag) = flag {
            cmd.arg(flag);
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"purple-otter-42\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            said.contains("created staff user"),
            flag.is_some(),
            "{said}"
        );
    }
    let db = pollstr::db::Db::connect(&url, &Default::default())
        .await
        .unwrap();
    let boss = pollstr::users::find_by_username(&db, "boss")
        .await
        .unwrap()
        .unwrap();
    let plain = pollstr::users::find_by_username(&db, "plain")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        pollstr::admin::queries::staff_status(&db, boss.id)
            .await
            .unwrap(),
        Some((true, true))
    );
    assert_eq!(
        pollstr::admin::queries::staff_status(&db, plain.id)
            .await
            .unwrap(),
        Some((false, true))
    );
}
