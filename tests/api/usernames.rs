//! Usernames: one Unicode rule on both backends (NFKC, case-folded), look-alikes refused, the
//! same in `loaddata`, and a SQLite database with Unicode names moves to PostgreSQL.

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{spawn_app, Backend, TestApp, STRONG};

both_backends!(
    unicode_case_and_width_variants_are_one_name,
    look_alike_and_mixed_script_names_are_refused,
    a_burst_of_variant_sign_ups_creates_one_user,
    fixtures_follow_the_same_rule,
    rows_from_before_the_keys_are_filled_in_at_start,
    the_failed_login_limit_counts_variants_as_one_name,
);

const TAKEN: &str = "A user with that username already exists.";
const LOOKS_LIKE: &str = "That username looks too much like an existing one.";

async fn unicode_case_and_width_variants_are_one_name(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    // Full-width letters are the same name as their ASCII forms, at login and at sign-up.
    app.browser().login("ＴＥＳＴ", "test1234").await;
    assert!(app.browser().register("ｔｅｓｔ").await.has(TAKEN));

    let b = app.browser();
    let page = b.register("Émile").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
    for variant in ["émile", "ÉMILE", "E\u{301}mile", "e\u{301}MILE"] {
        let page = app.browser().register(variant).await;
        assert!(page.has(TAKEN), "{variant}: {}", page.text());
    }
    // Any variant logs in as the one user, shown as registered.
    let other = app.browser();
    other.login("E\u{301}MILE", STRONG).await;
    assert!(other.get("/polls/").await.has("Signed in as Émile"));
    // German sharp s folds to ss.
    assert_eq!(
        app.browser().register("Straße").await.status,
        StatusCode::SEE_OTHER
    );
    assert!(app.browser().register("STRASSE").await.has(TAKEN));
    assert_eq!(app.scalar("SELECT COUNT(*) FROM users").await, 3);
}

async fn look_alike_and_mixed_script_names_are_refused(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    assert_eq!(
        app.browser().register("bob").await.status,
        StatusCode::SEE_OTHER
    );
    for look_alike in ["b0b", "B0B", "ｂ０ｂ"] {
        let page = app.browser().register(look_alike).await;
        assert!(page.has(LOOKS_LIKE), "{look_alike}: {}", page.text());
    }
    // A Cyrillic "е" inside Latin letters: refused before any comparison.
    let page = app.browser().register("t\u{435}st").await;
    assert!(
        page.has("Use the letters of one alphabet"),
        "{}",
        page.text()
    );
    // A whole name in another script is fine.
    assert_eq!(
        app.browser().register("Ирина").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM users").await, 3);
}

async fn a_burst_of_variant_sign_ups_creates_one_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let b = app.browser();
    let variants = [
        "Zoë",
        "ZOË",
        "zoë",
        "Zoe\u{308}",
        "ＺＯË",
        "zoË",
        "Z0ë",
        "ZOe\u{308}",
    ];
    let pages = b
        .burst("/register/", "/register/", variants.len(), |i| {
            vec![
                ("username", variants[i].to_string()),
                ("password1", STRONG.to_string()),
                ("password2", STRONG.to_string()),
            ]
        })
        .await;
    let created = pages
        .iter()
        .filter(|p| p.status == StatusCode::SEE_OTHER)
        .count();
    let refused = pages
        .iter()
        .filter(|p| p.has(TAKEN) || p.has(LOOKS_LIKE))
        .count();
    assert_eq!((created, refused), (1, variants.len() - 1));
    assert_eq!(app.scalar("SELECT COUNT(*) FROM users").await, 1);
}

fn user(pk: i64, name: &str) -> String {
    format!(
        r#"{{"model":"auth.user","pk":{pk},"fields":{{"username":"{name}","password":"pbkdf2_sha256$1$x$y"}}}}"#
    )
}

async fn fixtures_follow_the_same_rule(backend: Backend) {
    let app = spawn_app(backend).await;
    for (file, entry, problem) in [
        (
            format!("[{},{}]", user(1, "Émile"), user(2, "émile")),
            "entry 2",
            "is taken by another user",
        ),
        (
            format!("[{},{}]", user(1, "bob"), user(2, "b0b")),
            "entry 2",
            "looks too much like another user's",
        ),
        (
            format!("[{}]", user(1, "t\u{435}st")),
            "entry 1",
            "one alphabet",
        ),
    ] {
        let err = pollstr::fixtures::load(&app.db, &[("users.json".into(), file)])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(entry) && err.contains(problem), "{err}");
        assert_eq!(app.scalar("SELECT COUNT(*) FROM users").await, 0);
    }
    // Stored NFKC, as a sign-up stores it; a name already there is found by any variant.
    app.load(&format!("[{}]", user(1, "ＥＭＩＬ"))).await;
    let err = pollstr::fixtures::load(
        &app.db,
        &[("more.json".into(), format!("[{}]", user(2, "emil")))],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("\"EMIL\""), "{err}");
    assert!(app.browser().register("Emil").await.has(TAKEN));
    let dump = pollstr::fixtures::dump(&app.db).await.unwrap();
    assert!(dump.contains("\"username\": \"EMIL\""), "{dump}");
}

/// A database from before the keys existed (or written by an older binary): its rows are
/// filled in at start; two old rows that are now one name keep both accounts, the later one
/// set aside.
async fn rows_from_before_the_keys_are_filled_in_at_start(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    app.execute("UPDATE users SET username_key = NULL, username_skeleton = NULL")
        .await;
    app.execute(
        "INSERT INTO users (id, username, password, date_joined) VALUES (50, 'TEST', 'x', 0)",
    )
    .await;
    pollstr::users::fill_username_keys(&app.db).await.unwrap();
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM users WHERE username_key IS NULL OR username_skeleton IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE id = 50 AND username_key = 'test#50'")
            .await,
        1
    );
    // The older account keeps its name.
    let b = app.browser();
    b.login("Test", "test1234").await;
    assert!(b.get("/polls/").await.has("Signed in as test"));
}

async fn the_failed_login_limit_counts_variants_as_one_name(backend: Backend) {
    let app = crate::helpers::spawn_app_with(
        backend,
        |c| {
            c.limits.login_per_username = pollstr::limits::Limit::parse_list("2/1h").unwrap();
        },
        None,
    )
    .await;
    app.load(crate::helpers::SEED).await;
    for name in ["test", "TEST", "ｔｅｓｔ"] {
        let b = app.browser();
        b.submit(
            "/login/",
            "/login/",
            &[("username", name), ("password", "wrong-guess")],
        )
        .await;
    }
    let page = app
        .browser()
        .submit(
            "/login/",
            "/login/",
            &[("username", "Test"), ("password", "test1234")],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        page.text()
    );
}
