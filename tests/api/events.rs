//! The audit trail: every security event with its user, time and client address, phone numbers
//! masked; none lost in a burst; `pollstr events`; pruning after the retention.

use pollstr::events::{self, Event};
use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{pollstr_command, spawn_app_with, Backend, TestApp, PHONE, SEED, STRONG};

both_backends!(
    each_security_event_is_recorded_with_user_time_and_address,
    a_burst_of_failed_logins_loses_no_event,
    old_events_are_pruned,
);

async fn trail(app: &TestApp) -> Vec<Event> {
    events::list(&app.db, None, 0, 10_000).await.unwrap()
}

fn kinds(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

async fn each_security_event_is_recorded_with_user_time_and_address(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |c| {
            c.limits.login_per_ip = pollstr::limits::Limit::parse_list("2/15m").unwrap();
        },
        None,
    )
    .await;
    app.load(SEED).await;
    let started = pollstr::db::now();
    let login = |name: &'static str, password: &'static str| {
        let b = app.browser();
        async move {
            b.submit(
                "/login/",
                "/login/",
                &[("username", name), ("password", password)],
            )
            .await
        }
    };
    login("nobody", "whatever-1").await;
    login("test", "wrong-password").await;
    // The limit (2 failures) is reached: the next attempt is refused before any check.
    assert_eq!(
        login("test", "test1234").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    app.execute("DELETE FROM limit_events").await;

    let b = app.browser();
    b.login("test", "test1234").await;
    b.submit("/2fa/", "/2fa/create/", &[("number", PHONE)])
        .await;
    b.submit("/2fa/verify/", "/2fa/confirm/", &[("code", "000000")])
        .await;
    let code = app.code_for(crate::helpers::PHONE_E164).await;
    b.submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    // Replacing the proven number, with the password.
    b.submit(
        "/2fa/?change=1",
        "/2fa/create/",
        &[("number", "+44 7400 123456"), ("password", "test1234")],
    )
    .await;
    let code = app.code_for("+447400123456").await;
    b.submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    b.submit(
        "/account/password/",
        "/account/password/",
        &[
            ("old_password", "test1234"),
            ("new_password1", STRONG),
            ("new_password2", STRONG),
        ],
    )
    .await;
    b.submit("/polls/", "/logout/", &[]).await;
    app.browser().register("newcomer").await;

    let events = trail(&app).await;
    assert_eq!(
        kinds(&events),
        [
            "login_failed",
            "login_failed",
            "login_refused",
            "login_ok",
            "code_sent",
            "code_wrong",
            "code_ok",
            "number_bound",
            "code_sent",
            "code_ok",
            "number_replaced",
            "password_changed",
            "logout",
            "signed_up",
        ]
    );
    assert_eq!(events[0].user_id, None, "an unknown name has no user");
    assert_eq!(events[0].detail, "unknown username");
    assert_eq!(events[1].username.as_deref(), Some("test"));
    assert_eq!(events[1].detail, "wrong password");
    for e in &events {
        assert_eq!(e.ip, "127.0.0.1", "{e:?}");
        assert!(e.at >= started && e.at <= pollstr::db::now(), "{e:?}");
        // Phone numbers masked; no password ever.
        for secret in ["7911123456", "7400123456", "test1234", STRONG, "whatever-1"] {
            assert!(!e.detail.contains(secret), "{e:?}");
        }
    }
    assert_eq!(
        events[10].detail,
        "+44 •••• ••3456 replaced by +44 •••• ••3456"
    );

    // `pollstr events`: one user's, as lines.
    let dir = tempfile::tempdir().unwrap();
    let out = pollstr_command(dir.path(), &[("DATABASE_URL", &app.database_url)])
        .args(["events", "--user", "TEST", "--since", "1h"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 12, "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" test ") && l.contains("127.0.0.1")),
        "{text}"
    );
    assert!(lines[10].contains("password_changed"), "{text}");
    let out = pollstr_command(dir.path(), &[("DATABASE_URL", &app.database_url)])
        .args(["events", "--user", "nobody"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user is named \"nobody\""));
    let out = pollstr_command(dir.path(), &[("DATABASE_URL", &app.database_url)])
        .args(["events", "--since", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("use e.g. 30m"));
}

async fn a_burst_of_failed_logins_loses_no_event(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |c| {
            c.limits.login_per_ip = pollstr::limits::Limit::parse_list("4/15m").unwrap();
        },
        None,
    )
    .await;
    app.load(SEED).await;
    let pages = app
        .browser()
        .burst("/login/", "/login/", 16, |i| {
            vec![
                ("username", "test".to_string()),
                ("password", format!("guess-{i}")),
            ]
        })
        .await;
    assert!(pages
        .iter()
        .all(|p| p.status != StatusCode::INTERNAL_SERVER_ERROR));
    let events = trail(&app).await;
    let count = |k: &str| events.iter().filter(|e| e.kind == k).count();
    assert_eq!((count("login_failed"), count("login_refused")), (4, 12));
}

async fn old_events_are_pruned(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let now = pollstr::db::now();
    for (age, kind) in [(100 * 86400, "login_ok"), (10, "logout")] {
        app.execute(&format!(
            "INSERT INTO security_events (at, kind, user_id, ip, detail) VALUES ({}, '{kind}', 1, '127.0.0.1', '')",
            now - age
        ))
        .await;
    }
    let gone = events::prune(&app.db, std::time::Duration::from_secs(90 * 86400))
        .await
        .unwrap();
    assert_eq!(gone, 1);
    assert_eq!(kinds(&trail(&app).await), ["logout"]);
}
