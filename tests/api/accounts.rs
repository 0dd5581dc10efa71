//! Login, logout, registration, password hashes and sessions.

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

both_backends!(
    wrong_password_and_unknown_user_get_the_same_answer,
    seed_user_logs_in_and_hash_is_upgraded,
    usernames_are_case_insensitive,
    login_renews_the_session_id,
    anonymous_forms_check_the_cookie_token,
    logout_destroys_the_session_server_side,
    logout_needs_a_post,
    registration_rules_each_have_a_message,
    registration_logs_in_and_keeps_next,
    inactive_users_cannot_log_in,
    sessions_survive_a_restart,
    failed_logins_are_limited,
    a_session_in_use_outlives_its_ttl,
    unknown_user_wrong_password_and_inactive_account_get_the_same_page,
);

const FAIL: &str = "Your username and password didn't match. Please try again.";

async fn wrong_password_and_unknown_user_get_the_same_answer(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    for (u, p) in [
        ("test", "wrong-password"),
        ("nobody", "test1234"),
        ("test", ""),
        ("", ""),
    ] {
        let page = b
            .submit("/login/", "/login/", &[("username", u), ("password", p)])
            .await;
        assert_eq!(page.status, StatusCode::OK, "{u}/{p}");
        assert!(
            page.has(FAIL) || page.has("Enter your username and password."),
            "{u}/{p}"
        );
        assert!(!page.has("Signed in as"));
    }
    let page = b.get("/polls/1/").await;
    assert!(page.location.unwrap().starts_with("/login/"));
}

async fn seed_user_logs_in_and_hash_is_upgraded(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    let page = b.login("test", "test1234").await;
    assert_eq!(page.location.as_deref(), Some("/polls/"));
    assert!(b.get("/polls/").await.has("Signed in as test"));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE password LIKE '$argon2id$%'")
            .await,
        1
    );
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM users WHERE last_login IS NOT NULL AND last_login > 1600000000"
        )
        .await,
        1
    );
    // The upgraded hash still takes the same password.
    let again = app.browser();
    again.login("test", "test1234").await;
}

async fn usernames_are_case_insensitive(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    app.browser().login("TEST", "test1234").await;
    let b = app.browser();
    let page = b.register("Test").await;
    assert!(page.has("A user with that username already exists."));
}

async fn login_renews_the_session_id(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let count_sessions = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM tower_sessions",
        Backend::Postgres => "SELECT COUNT(*) FROM tower_sessions.session",
    };
    // Showing the login form starts no session: its CSRF token is in a cookie of its own.
    for _ in 0..5 {
        app.browser().get("/login/").await;
    }
    assert_eq!(app.scalar(count_sessions).await, 0);
    // A visitor who already has a session (here: the one holding "You have been logged out")
    // gets a new session id at login.
    let b = app.browser();
    b.login("test", "test1234").await;
    b.submit("/polls/", "/logout/", &[]).await;
    let before = b
        .session_cookie()
        .expect("the logout message is kept in a session");
    let page = b.login("test", "test1234").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let after = b.session_cookie().unwrap();
    assert_ne!(before, after);
    // The pre-login id is gone server-side: a fixated cookie gives nothing.
    let planted = b.with_cookie(&before);
    let res = planted.get(b.url("/2fa/")).send().await.unwrap();
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login/"));
}

/// The anonymous forms' CSRF token: a login needs the token of the cookie it came with, a
/// failed login shows the form again with a working token, and a forged or missing token is
/// refused.
async fn anonymous_forms_check_the_cookie_token(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    let form = b.get("/login/").await;
    let token = form.csrf().expect("the login form has a token");
    assert!(form.headers.get_all("set-cookie").iter().any(|c| {
        let c = c.to_str().unwrap();
        c.starts_with("pollstr_csrf=") && c.contains("HttpOnly") && c.contains("SameSite=Strict")
    }));
    let login = |password: &'static str| {
        [
            ("username", "test"),
            ("password", password),
            ("csrf_token", token.as_str()),
        ]
    };
    // Another visitor's token (or none) does not do.
    let other = app.browser();
    let stolen = other.post_raw("/login/", &login("test1234")).await;
    assert_eq!(stolen.status, StatusCode::FORBIDDEN);
    let missing = b
        .post_raw("/login/", &[("username", "test"), ("password", "test1234")])
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    // A failed login keeps the same token in the form it shows again, and it works.
    let failed = b.post_raw("/login/", &login("wrong")).await;
    assert_eq!(failed.status, StatusCode::OK);
    assert_eq!(failed.csrf().as_deref(), Some(token.as_str()));
    let ok = b.post_raw("/login/", &login("test1234")).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    // Logged in, forms use the session's own token, not the cookie's.
    let twofa = b.get("/2fa/").await;
    assert_ne!(twofa.csrf().as_deref(), Some(token.as_str()));
}

async fn logout_destroys_the_session_server_side(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser().await;
    assert_eq!(b.get("/polls/1/").await.status, StatusCode::OK);
    let cookie = b.session_cookie().unwrap();
    let out = b.submit("/polls/", "/logout/", &[]).await;
    assert_eq!(out.location.as_deref(), Some("/polls/"));
    let page = b.get("/polls/").await;
    assert!(page.has("You have been logged out.") && page.has("Log in"));
    // A copy of the old cookie is worthless now.
    let copy = b.with_cookie(&cookie);
    let res = copy.get(b.url("/polls/1/")).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/login/?next=/polls/1/");
    // Logging in again needs the phone again.
    b.login("test", "test1234").await;
    assert_eq!(
        b.get("/polls/1/").await.location.as_deref(),
        Some("/2fa/?next=/polls/1/")
    );
}

async fn logout_needs_a_post(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    b.login("test", "test1234").await;
    let page = b.get("/logout/").await;
    assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(b.get("/polls/").await.has("Signed in as test"));
}

async fn registration_rules_each_have_a_message(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    let cases: [(&str, &str, &str, &str); 7] = [
        (
            "alice",
            "short",
            "short",
            "This password is too short. It must contain at least 8 characters.",
        ),
        (
            "alice",
            "48291736450",
            "48291736450",
            "This password is entirely numeric.",
        ),
        (
            "alice",
            "password123",
            "password123",
            "This password is too common.",
        ),
        (
            "alicewonder",
            "alicewonder1",
            "alicewonder1",
            "The password is too similar to the username.",
        ),
        (
            "alice",
            "Xk3!pq9z#Lm",
            "Xk3!pq9z#Lm-other",
            "The two password fields didn't match.",
        ),
        (
            "al ice",
            "Xk3!pq9z#Lm",
            "Xk3!pq9z#Lm",
            "Enter a valid username.",
        ),
        ("", "Xk3!pq9z#Lm", "Xk3!pq9z#Lm", "Enter a username."),
    ];
    for (u, p1, p2, msg) in cases {
        let page = b
            .submit(
                "/register/",
                "/register/",
                &[("username", u), ("password1", p1), ("password2", p2)],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{u}");
        assert!(page.has(msg), "{msg}: {}", page.text());
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM users").await, 1);
}

async fn registration_logs_in_and_keeps_next(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    let page = b
        .submit(
            "/register/?next=/polls/2/",
            "/register/",
            &[
                ("username", "newbie"),
                ("password1", "Xk3!pq9z#Lm"),
                ("password2", "Xk3!pq9z#Lm"),
            ],
        )
        .await;
    assert_eq!(page.location.as_deref(), Some("/polls/2/"));
    let page = b.get("/polls/").await;
    assert!(page.has("Welcome to Pollstr, newbie!") && page.has("Signed in as newbie"));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE password LIKE '$argon2id$%'")
            .await,
        1
    );
    let fresh = app.browser();
    fresh.login("newbie", "Xk3!pq9z#Lm").await;
}

async fn inactive_users_cannot_log_in(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    app.load(r#"[{"model":"auth.user","pk":1,"fields":{"password":"pbkdf2_sha256$24000$rk8toKlZt2vr$dsOOeY/jjjwYLqkmaT5gcRYSrtFabI+eZVgbPylP9EA=","username":"test","is_active":false}}]"#).await;
    let page = app
        .browser()
        .submit(
            "/login/",
            "/login/",
            &[("username", "test"), ("password", "test1234")],
        )
        .await;
    assert!(page.has(FAIL));
}

async fn sessions_survive_a_restart(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser().await;
    let cookie = b.session_cookie().unwrap();
    // A second app process on the same database serves the same session.
    let url = app.database_url.clone();
    let second = crate::helpers::spawn_on(backend, &url).await;
    let client = b.with_cookie(&cookie);
    let res = client
        .get(format!("{}/polls/1/", second))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

async fn failed_logins_are_limited(backend: Backend) {
    use pollstr::limits::Limit;
    let app = crate::helpers::spawn_app_with(
        backend,
        |c| {
            c.limits.login_per_username = Limit::parse_list("3/15m").unwrap();
            c.limits.login_per_ip = Limit::parse_list("5/15m").unwrap();
        },
        None,
    )
    .await;
    app.load(crate::helpers::SEED).await;
    let b = app.browser();
    for _ in 0..3 {
        let page = b
            .submit(
                "/login/",
                "/login/",
                &[("username", "test"), ("password", "guess")],
            )
            .await;
        assert!(page.has(FAIL));
    }
    // The username is locked for a while, even with the right password (and any casing).
    for name in ["test", "TEST"] {
        let page = b
            .submit(
                "/login/",
                "/login/",
                &[("username", name), ("password", "test1234")],
            )
            .await;
        assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            page.has("Too many failed logins. Please try again in 15 minutes."),
            "{}",
            page.text()
        );
        let wait = page.retry_after().expect("Retry-After");
        assert!((870..=900).contains(&wait), "Retry-After: {wait}");
    }
    // Two more failures on other names reach the per-address limit: nobody logs in from here.
    for name in ["alice", "bob"] {
        b.submit(
            "/login/",
            "/login/",
            &[("username", name), ("password", "guess")],
        )
        .await;
    }
    let page = b
        .submit(
            "/login/",
            "/login/",
            &[("username", "carol"), ("password", "x")],
        )
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
}

/// `SESSION_TTL` counts from the last visit: a voter who keeps reading stays logged in past
/// it (the session is saved again once in a while, not on every view), and one who leaves is
/// logged out after it.
async fn a_session_in_use_outlives_its_ttl(backend: Backend) {
    let ttl = std::time::Duration::from_secs(4);
    let app = crate::helpers::spawn_app_with(backend, |c| c.session_ttl = ttl, None).await;
    app.load(crate::helpers::SEED).await;
    let b = app.browser();
    b.login("test", "test1234").await;
    b.verify_phone(&app, crate::helpers::PHONE).await;
    // Reading for twice the TTL, a view every second.
    for second in 0..8 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let page = b.get("/polls/1/").await;
        assert_eq!(page.status, StatusCode::OK, "after {} s", second + 1);
    }
    // Away for longer than the TTL.
    tokio::time::sleep(ttl + std::time::Duration::from_secs(1)).await;
    let page = b.get("/polls/1/").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location.unwrap().starts_with("/login/"));
}

/// An unknown user, a wrong password and an inactive account get the same page, byte for byte
/// once the form's token is set aside: the answer tells nothing about the account. The same
/// name is typed each time (the form shows it again); the account changes in between.
async fn unknown_user_wrong_password_and_inactive_account_get_the_same_page(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    let attempt = |password: &'static str| {
        let b = b.clone();
        async move {
            b.submit(
                "/login/",
                "/login/",
                &[("username", "test"), ("password", password)],
            )
            .await
        }
    };
    // The page as a user sees it, less the form's token.
    let seen = |page: &crate::helpers::Page| {
        let token = page.csrf().expect("the form again, with its token");
        (page.status, page.body.replace(&token, "TOKEN"))
    };
    let wrong = attempt("wrong-password").await;
    assert_eq!(wrong.status, StatusCode::OK);
    assert!(wrong.has(FAIL), "{}", wrong.text());
    let wrong = seen(&wrong);
    app.execute("UPDATE users SET is_active = FALSE WHERE username = 'test'")
        .await;
    let inactive = seen(&attempt("test1234").await);
    app.execute("DELETE FROM users WHERE username = 'test'")
        .await;
    let unknown = seen(&attempt("test1234").await);
    assert_eq!(inactive, wrong, "inactive account");
    assert_eq!(unknown, wrong, "unknown user");
}
