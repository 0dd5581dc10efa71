//! `/account/password/`: the current password is required, and a change ends every other
//! session of the user at once, including sessions still being created (a login racing the
//! change) and sessions with a slow request in flight.

use std::sync::Arc;

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{Backend, Browser, TestApp, STRONG};

both_backends!(
    the_page_needs_both_factors,
    each_mistake_has_its_message_and_changes_nothing,
    a_change_ends_every_other_session_and_keeps_this_one,
    a_login_racing_the_change_never_survives_it,
    a_session_begun_before_the_change_is_not_written_after_it,
    wrong_current_passwords_count_as_failed_logins,
);

const PAGE: &str = "/account/password/";

async fn change(b: &Browser, old: &str, new1: &str, new2: &str) -> crate::helpers::Page {
    b.submit(
        PAGE,
        PAGE,
        &[
            ("old_password", old),
            ("new_password1", new1),
            ("new_password2", new2),
        ],
    )
    .await
}

fn logged_out(page: &crate::helpers::Page) -> bool {
    page.location
        .as_deref()
        .is_some_and(|l| l.starts_with("/login/"))
}

async fn the_page_needs_both_factors(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let anonymous = app.browser();
    assert!(logged_out(&anonymous.get(PAGE).await));
    let password_only = app.browser();
    password_only.login("test", "test1234").await;
    let page = password_only.get(PAGE).await;
    assert!(
        page.location
            .as_deref()
            .is_some_and(|l| l.starts_with("/2fa/")),
        "{:?}",
        page.location
    );
    // A POST without the phone step is sent to /2fa/ too, and changes nothing.
    let page = password_only
        .post_raw(PAGE, &[("old_password", "test1234")])
        .await;
    assert_ne!(page.status, StatusCode::OK);
    let verified = app.verified_browser_with_seed_user().await;
    let page = verified.get(PAGE).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.has("Change your password"));
}

async fn each_mistake_has_its_message_and_changes_nothing(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser_with_seed_user().await;
    for (old, new1, new2, message) in [
        (
            "wrong-password",
            STRONG,
            STRONG,
            "Your old password was entered incorrectly.",
        ),
        ("test1234", STRONG, "Xk3!pq9z#Lx", "didn't match"),
        ("test1234", "password", "password", "too common"),
        ("test1234", "short", "short", "too short"),
    ] {
        let page = change(&b, old, new1, new2).await;
        assert_eq!(page.status, StatusCode::OK, "{message}");
        assert!(page.has(message), "{message}: {}", page.text());
    }
    // Nothing changed: the old password still logs in, and this session is still verified.
    app.browser().login("test", "test1234").await;
    assert_eq!(b.get("/polls/1/").await.status, StatusCode::OK);
}

async fn a_change_ends_every_other_session_and_keeps_this_one(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let me = app.verified_browser_with_seed_user().await;
    let other_verified = app.verified_browser_with_seed_user().await;
    let other_half = app.browser();
    other_half.login("test", "test1234").await;
    let before = me.session_cookie();

    let page = change(&me, "test1234", STRONG, STRONG).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
    let page = me.get("/polls/").await;
    assert!(page.has("Every other session of your account has been logged out."));
    // This session goes on, verified, under a new id.
    assert_ne!(me.session_cookie(), before);
    assert_eq!(me.get("/polls/1/").await.status, StatusCode::OK);
    // Every other one is over, verified or not.
    assert!(logged_out(&other_verified.get("/polls/1/").await));
    assert!(!other_half.get("/polls/").await.has("Signed in as"));
    // Only this session's row is left for the user.
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM {} WHERE user_id = 1",
            pollstr::db::session_store::table(&app.db)
        ))
        .await,
        1
    );
    // The old password is refused, the new one works.
    let page = app
        .browser()
        .submit(
            "/login/",
            "/login/",
            &[("username", "test"), ("password", "test1234")],
        )
        .await;
    assert!(page.has("didn't match"));
    app.browser().login("test", STRONG).await;
}

/// A login with the password of the moment, sent together with a change of that password, in
/// rounds: whichever finishes first, the login's session must not outlive the change (either
/// its password was already wrong, or the change ended its session, including one still being
/// created when the change committed).
async fn a_login_racing_the_change_never_survives_it(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let me = Arc::new(app.verified_browser_with_seed_user().await);
    let passwords = ["test1234", STRONG, "Qv8#mZ2!rTp", "Lw5$hN9@cXe"];
    for round in 0..passwords.len() - 1 {
        let (old, new) = (passwords[round], passwords[round + 1]);
        let racer = Arc::new(app.browser());
        // The login form first, so that both requests go out at once.
        let form = racer.get("/login/").await.csrf().unwrap();
        let login = tokio::spawn({
            let racer = racer.clone();
            async move {
                racer
                    .post_raw(
                        "/login/",
                        &[
                            ("username", "test"),
                            ("password", old),
                            ("csrf_token", &form),
                        ],
                    )
                    .await
            }
        });
        let changed = tokio::spawn({
            let me = me.clone();
            async move { change(&me, old, new, new).await }
        });
        let changed = changed.await.unwrap();
        assert_eq!(changed.status, StatusCode::SEE_OTHER, "round {round}");
        login.await.unwrap();
        let page = racer.get("/polls/").await;
        assert!(
            !page.has("Signed in as"),
            "round {round}: a login with the old password outlived the change"
        );
        assert_eq!(me.get("/polls/1/").await.status, StatusCode::OK);
    }
}

async fn wrong_current_passwords_count_as_failed_logins(backend: Backend) {
    let app = crate::helpers::spawn_app_with(
        backend,
        |c| {
            c.limits.login_per_username = pollstr::limits::Limit::parse_list("2/1h").unwrap();
        },
        None,
    )
    .await;
    app.load(crate::helpers::SEED).await;
    let b = app.verified_browser_with_seed_user().await;
    let pages = b
        .burst(PAGE, PAGE, 6, |i| {
            vec![
                ("old_password", format!("guess-{i}")),
                ("new_password1", STRONG.to_string()),
                ("new_password2", STRONG.to_string()),
            ]
        })
        .await;
    let checked = pages
        .iter()
        .filter(|p| p.has("Your old password was entered incorrectly."))
        .count();
    let refused = pages
        .iter()
        .filter(|p| p.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, refused), (2, 4));
    let page = change(&b, "test1234", STRONG, STRONG).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
}

/// The narrow end of the race above, made certain: a login that read the user before the change
/// and writes its session after it. The store writes nothing, on both backends and through the
/// server's cached store.
async fn a_session_begun_before_the_change_is_not_written_after_it(backend: Backend) {
    use tower_sessions::session::{Id, Record};
    use tower_sessions::SessionStore;
    let app = TestApp::seeded(backend).await;
    let user = pollstr::users::find(&app.db, 1).await.unwrap().unwrap();
    let record = |epoch: i64| Record {
        id: Id::default(),
        data: [(
            "user".to_string(),
            serde_json::json!({"id": 1, "username": "test", "epoch": epoch}),
        )]
        .into_iter()
        .collect(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    let epoch = pollstr::users::end_sessions(&app.db, 1, None)
        .await
        .unwrap();
    assert_eq!(epoch, user.session_epoch + 1);
    for store in [
        pollstr::db::AppSessionStore::new(&app.db),
        pollstr::db::AppSessionStore::for_server(&app.db),
    ] {
        let mut late = record(user.session_epoch);
        store.create(&mut late).await.unwrap();
        assert!(
            store.load(&late.id).await.unwrap().is_none(),
            "a session of the old epoch was written"
        );
        let mut current = record(epoch);
        store.create(&mut current).await.unwrap();
        assert!(store.load(&current.id).await.unwrap().is_some());
    }
}
