//! Password reset without mail: `pollstr set-password` and the admin's reset link
//! (`/account/reset/{token}/`). A link works once, for `RESET_LINK_TTL`, for an active user,
//! and is stored only as a keyed hash; using it ends every session and trusted browser of the
//! user, and the next login still asks for the second factor.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{pollstr_command, spawn_on, Backend, Browser, Page, TestApp, STRONG};

both_backends!(
    an_admin_link_resets_the_password_once_and_the_second_factor_stays,
    used_expired_unknown_and_deactivated_links_answer_410,
    a_link_resets_its_own_users_password_only,
    mistakes_are_shown_again_and_keep_the_link,
    two_uses_of_one_link_at_once_set_one_password,
    a_reset_during_a_slow_second_factor_check_ends_that_session_too,
    set_password_ends_every_session_and_keeps_the_second_factor,
    making_a_link_needs_sudo_mode_and_an_active_user,
);

const NEW: &str = "Qv8#mZ2!rTp";
const OTHER_PHONE: &str = "+44 7400 654321";

fn key() -> pollstr::crypto::SecretKey {
    // As helpers::test_config gives every instance.
    pollstr::crypto::SecretKey::parse(&"5e".repeat(32)).unwrap()
}

/// A user other than `test`, signed up with [`STRONG`], phone proven in a browser they trust.
async fn trusting_user(app: &TestApp, name: &str) -> (Browser, i64) {
    let b = app.browser();
    b.register(name).await;
    let sent = b
        .submit("/2fa/", "/2fa/create/", &[("number", OTHER_PHONE)])
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    let e164 = pollstr::two_factor::sms::phone::PhoneNumber::parse(OTHER_PHONE, None).unwrap();
    let code = app.code_for(e164.e164()).await;
    let done = b
        .submit(
            sent.location.as_deref().unwrap(),
            "/2fa/confirm/",
            &[("code", &code), ("remember", "1")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    let id = app
        .scalar(&format!("SELECT id FROM users WHERE username = '{name}'"))
        .await;
    (b, id)
}

/// The path of a link made by staff browser `staff` for user `id`, read off the page that
/// shows it once.
async fn admin_link(staff: &Browser, id: i64) -> String {
    let path = format!("/admin/users/{id}/reset-link/");
    let confirm = staff.get(&path).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.text());
    assert!(confirm.has("Make a password-reset link for"));
    let shown = staff.submit(&path, &path, &[]).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text());
    assert_eq!(
        shown.headers.get("cache-control").unwrap(),
        "no-store",
        "shown once, not cached"
    );
    let doc = scraper::Html::parse_document(&shown.body);
    let sel = scraper::Selector::parse("#reset_link").unwrap();
    let link = doc
        .select(&sel)
        .next()
        .and_then(|i| i.value().attr("value"))
        .expect("the link on the page")
        .to_string();
    let at = link.find("/account/reset/").expect("a reset path");
    link[at..].to_string()
}

async fn reset(b: &Browser, link: &str, new1: &str, new2: &str) -> Page {
    b.submit(
        link,
        link,
        &[("new_password1", new1), ("new_password2", new2)],
    )
    .await
}

fn to_login(p: &Page) -> bool {
    p.location
        .as_deref()
        .is_some_and(|l| l.starts_with("/login/"))
}

fn to_second_factor(p: &Page) -> bool {
    p.location
        .as_deref()
        .is_some_and(|l| l.starts_with("/2fa/"))
}

async fn login_page(b: &Browser, name: &str, password: &str) -> Page {
    b.submit(
        "/login/",
        "/login/",
        &[("username", name), ("password", password)],
    )
    .await
}

async fn events_of(app: &TestApp, id: i64) -> Vec<String> {
    pollstr::events::list(&app.db, Some(id), 0, 1000)
        .await
        .unwrap()
        .iter()
        .map(pollstr::events::line)
        .collect()
}

async fn an_admin_link_resets_the_password_once_and_the_second_factor_stays(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let (victim, id) = trusting_user(&app, "victim").await;
    let elsewhere = app.browser();
    elsewhere.login("victim", STRONG).await;
    let staff = app.staff_browser().await;
    let link = admin_link(&staff, id).await;
    // Only the keyed hash is kept.
    let token = link
        .trim_start_matches("/account/reset/")
        .trim_end_matches('/');
    assert_eq!(token.len(), 43);
    let stored = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM password_reset_tokens WHERE user_id = {id} AND token_hash <> '{token}'"
        ))
        .await;
    assert_eq!(stored, 1);

    let someone = app.browser();
    let form = someone.get(&link).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.has("Choose a new password") && form.has("victim"));
    let done = reset(&someone, &link, NEW, NEW).await;
    assert!(to_login(&done), "{:?} {}", done.location, done.text());
    let (_, login) = someone.follow(done).await;
    assert!(login.has("Your password was reset"), "{}", login.text());

    // Every session ended, the trusted browser too; the old password is refused.
    for b in [&victim, &elsewhere] {
        assert!(to_login(&b.get("/polls/1/").await));
    }
    assert!(login_page(&app.browser(), "victim", STRONG)
        .await
        .has("didn't match"));
    // The new password logs in, and the second factor is still asked for, even in the browser
    // that was trusted.
    for b in [&victim, &someone] {
        b.login("victim", NEW).await;
        assert!(to_second_factor(&b.get("/polls/1/").await));
    }
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM trusted_browsers WHERE user_id = {id}"
        ))
        .await,
        0
    );
    // Used up: a second use is refused and changes nothing.
    let again = app.browser().get(&link).await;
    assert_eq!(again.status, StatusCode::GONE);
    let again = app
        .browser()
        .post_raw(
            &link,
            &[("new_password1", STRONG), ("new_password2", STRONG)],
        )
        .await;
    assert!(again.status == StatusCode::GONE || again.status == StatusCode::FORBIDDEN);
    app.browser().login("victim", NEW).await;
    let events = events_of(&app, id).await;
    assert!(
        events.iter().any(|e| e.contains("password_reset")
            && e.contains(
                "with a reset link: every session ended, 1 trusted browser(s) forgotten"
            )),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("made a password-reset link for victim")),
        "{events:?}"
    );
    // The admin's page offers it.
    assert!(staff
        .get(&format!("/admin/users/{id}/"))
        .await
        .has("Make a password-reset link"));
}

async fn used_expired_unknown_and_deactivated_links_answer_410(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let (_victim, id) = trusting_user(&app, "victim").await;
    let ttl = Duration::from_secs(3600);
    let gone = |p: &Page| p.status == StatusCode::GONE && p.has("This link no longer works");
    let b = app.browser();
    // Unknown, or not even the shape of a token.
    for path in [
        format!("/account/reset/{}/", "A".repeat(43)),
        "/account/reset/short/".to_string(),
        format!("/account/reset/{}/", "é".repeat(20)),
    ] {
        assert!(gone(&b.get(&path).await), "{path}");
    }
    // Expired.
    let token = pollstr::users::reset::issue(&app.db, &key(), id, ttl)
        .await
        .unwrap();
    let link = pollstr::users::reset::path(&token);
    assert_eq!(b.get(&link).await.status, StatusCode::OK);
    app.execute("UPDATE password_reset_tokens SET expires_at = 1")
        .await;
    assert!(gone(&b.get(&link).await));
    // Made under another key (a copied database, another site): unknown here.
    let token =
        pollstr::users::reset::issue(&app.db, &pollstr::crypto::SecretKey::generate(), id, ttl)
            .await
            .unwrap();
    assert!(gone(&b.get(&pollstr::users::reset::path(&token)).await));
    // Never dumped: neither the link nor its hash is in a dumpdata file.
    let sql = "SELECT token_hash FROM password_reset_tokens";
    let hash: String = match &app.db {
        pollstr::db::Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        pollstr::db::Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
    };
    let dump = pollstr::fixtures::dump(&app.db).await.unwrap();
    assert!(dump.contains("\"victim\""), "the dump has the user");
    assert!(!dump.contains(&hash) && !dump.contains(&token), "{dump}");
    // A newer link replaces the older one.
    let older = pollstr::users::reset::issue(&app.db, &key(), id, ttl)
        .await
        .unwrap();
    let newer = pollstr::users::reset::issue(&app.db, &key(), id, ttl)
        .await
        .unwrap();
    assert!(gone(&b.get(&pollstr::users::reset::path(&older)).await));
    // A deactivated user's link opens nothing, before or after the form is shown.
    let link = pollstr::users::reset::path(&newer);
    let form = b.get(&link).await;
    assert_eq!(form.status, StatusCode::OK);
    app.execute(&format!(
        "UPDATE users SET is_active = FALSE WHERE id = {id}"
    ))
    .await;
    assert!(gone(&b.get(&link).await));
    let csrf = form.csrf().unwrap();
    let posted = b
        .post_raw(
            &link,
            &[
                ("csrf_token", &csrf),
                ("new_password1", NEW),
                ("new_password2", NEW),
            ],
        )
        .await;
    assert!(gone(&posted), "{}", posted.text());
    app.execute(&format!(
        "UPDATE users SET is_active = TRUE WHERE id = {id}"
    ))
    .await;
    app.browser().login("victim", STRONG).await;
}

async fn a_link_resets_its_own_users_password_only(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let (_a, a) = trusting_user(&app, "alice").await;
    let bob = app.browser();
    bob.register("bobby").await;
    let b_id = app
        .scalar("SELECT id FROM users WHERE username = 'bobby'")
        .await;
    let token = pollstr::users::reset::issue(&app.db, &key(), a, Duration::from_secs(600))
        .await
        .unwrap();
    let link = pollstr::users::reset::path(&token);
    // Bob, signed in, opens Alice's link: it names Alice and resets Alice, not Bob.
    assert!(bob.get(&link).await.has("alice"));
    let done = reset(&bob, &link, NEW, NEW).await;
    assert!(to_login(&done));
    app.browser().login("alice", NEW).await;
    app.browser().login("bobby", STRONG).await;
    assert!(login_page(&app.browser(), "bobby", NEW)
        .await
        .has("didn't match"));
    // Bob's link, once made, does not open Alice's either: each hash names its own row.
    let bobs = pollstr::users::reset::issue(&app.db, &key(), b_id, Duration::from_secs(600))
        .await
        .unwrap();
    assert!(app
        .browser()
        .get(&pollstr::users::reset::path(&bobs))
        .await
        .has("bobby"));
}

async fn mistakes_are_shown_again_and_keep_the_link(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let (_v, id) = trusting_user(&app, "victim").await;
    let token = pollstr::users::reset::issue(&app.db, &key(), id, Duration::from_secs(600))
        .await
        .unwrap();
    let link = pollstr::users::reset::path(&token);
    let b = app.browser();
    for (n1, n2, message) in [
        (NEW, "Qv8#mZ2!rTq", "didn't match"),
        ("password", "password", "too common"),
        ("short", "short", "too short"),
        ("victim12", "victim12", "too similar"),
    ] {
        let page = reset(&b, &link, n1, n2).await;
        assert_eq!(page.status, StatusCode::OK, "{message}");
        assert!(page.has(message), "{message}: {}", page.text());
    }
    app.browser().login("victim", STRONG).await;
    assert!(to_login(&reset(&b, &link, NEW, NEW).await));
    app.browser().login("victim", NEW).await;
}

async fn two_uses_of_one_link_at_once_set_one_password(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let (_v, id) = trusting_user(&app, "victim").await;
    let token = pollstr::users::reset::issue(&app.db, &key(), id, Duration::from_secs(600))
        .await
        .unwrap();
    let link = pollstr::users::reset::path(&token);
    let passwords: Vec<String> = (0..6).map(|i| format!("Qv8#mZ2!rT{i}")).collect();
    let b = app.browser();
    let pages = b
        .burst(&link, &link, passwords.len(), |i| {
            vec![
                ("new_password1", passwords[i].clone()),
                ("new_password2", passwords[i].clone()),
            ]
        })
        .await;
    let won: Vec<usize> = (0..pages.len()).filter(|&i| to_login(&pages[i])).collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        pages.iter().map(|p| p.status).collect::<Vec<_>>()
    );
    for (i, p) in pages.iter().enumerate() {
        if i != won[0] {
            assert_eq!(p.status, StatusCode::GONE, "{}", p.text());
        }
    }
    // The winner's password is the one set; every other is refused.
    for (i, pw) in passwords.iter().enumerate() {
        let page = login_page(&app.browser(), "victim", pw).await;
        assert_eq!(page.status == StatusCode::SEE_OTHER, i == won[0], "{i}");
    }
    let resets = events_of(&app, id)
        .await
        .iter()
        .filter(|e| e.contains("password_reset"))
        .count();
    assert_eq!(resets, 1);
}

/// A second session of the account waits on a code check when the link is used: the reset
/// ends it, and the right code that comes back afterwards must not revive it.
async fn a_reset_during_a_slow_second_factor_check_ends_that_session_too(backend: Backend) {
    use crate::races::{app as held_app, through_held};
    let (app, entered, gate) = held_app(backend).await;
    let held = (&*entered, &*gate);
    let other = Arc::new(app.browser());
    other.login("test", "test1234").await;
    through_held(
        &other,
        held,
        "/2fa/",
        "/2fa/create/",
        &[("number", crate::helpers::PHONE)],
    )
    .await;
    let slow = tokio::spawn({
        let other = other.clone();
        async move {
            other
                .submit("/2fa/verify/", "/2fa/confirm/", &[("code", "123456")])
                .await
        }
    });
    entered.acquire().await.unwrap().forget();
    let token = pollstr::users::reset::issue(&app.db, &key(), 1, Duration::from_secs(600))
        .await
        .unwrap();
    let link = pollstr::users::reset::path(&token);
    let done = reset(&app.browser(), &link, NEW, NEW).await;
    assert!(to_login(&done), "{}", done.text());
    gate.add_permits(1);
    slow.await.unwrap();
    assert!(to_login(&other.get("/polls/1/").await));
    assert!(!other.get("/polls/").await.has("Signed in as"));
    // The new password, then the second factor still.
    let b = app.browser();
    b.login("test", NEW).await;
    assert!(to_second_factor(&b.get("/polls/1/").await));
}

fn set_password_cli(app: &TestApp, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let mut child = pollstr_command(
        dir.path(),
        &[
            ("DATABASE_URL", app.database_url.as_str()),
            ("POLLSTR_SEED_DEMO", "false"),
        ],
    )
    .args(args)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

async fn set_password_ends_every_session_and_keeps_the_second_factor(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let (victim, id) = trusting_user(&app, "victim").await;
    let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).to_string();
    // Registration's rules, and a user that exists.
    for (args, stdin, says) in [
        (
            vec!["set-password", "victim", "--password-stdin"],
            "password\n",
            "too common",
        ),
        (
            vec!["set-password", "victim", "--password-stdin"],
            "victim12\n",
            "too similar",
        ),
        (
            vec!["set-password", "nobody", "--password-stdin"],
            "Qv8#mZ2!rTp\n",
            "no user is named \"nobody\"",
        ),
    ] {
        let o = tokio::task::block_in_place(|| set_password_cli(&app, &args, stdin));
        assert!(!o.status.success());
        assert!(err(&o).contains(says), "{says}: {}", err(&o));
    }
    app.browser().login("victim", STRONG).await;
    let o = tokio::task::block_in_place(|| {
        set_password_cli(
            &app,
            &["set-password", "victim", "--password-stdin"],
            &format!("{NEW}\n"),
        )
    });
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("every session of theirs ended"),
        "{}",
        err(&o)
    );
    // Every session row is gone and the epoch moved on. A server that keeps no sessions in
    // memory (every PostgreSQL instance, a SQLite server started now) logs the browser out.
    let sessions = pollstr::db::session_store::table(&app.db);
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM {sessions} WHERE user_id = {id}"
        ))
        .await,
        0
    );
    let fresh = spawn_on(backend, &app.database_url).await;
    let cookie = victim.session_cookie().unwrap();
    let client = victim.with_cookie(&cookie);
    let page = client
        .get(format!("{fresh}/polls/1/"))
        .send()
        .await
        .unwrap();
    assert!(page.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login/"));
    if backend == Backend::Postgres {
        assert!(to_login(&victim.get("/polls/1/").await));
    } else {
        // The running SQLite server still holds the session in memory (docs/password-reset.md):
        // the user logs out there, keeping their trusted-browser cookie.
        victim.submit("/polls/", "/logout/", &[]).await;
    }
    assert!(login_page(&app.browser(), "victim", STRONG)
        .await
        .has("didn't match"));
    // The new password, and still the second factor (the trusted browser was forgotten).
    victim.login("victim", NEW).await;
    assert!(to_second_factor(&victim.get("/polls/1/").await));
    let events = events_of(&app, id).await;
    assert!(
        events.iter().any(|e| e.contains("password_reset")
            && e.contains("set with pollstr set-password: every session ended, 1 trusted browser(s) forgotten")),
        "{events:?}"
    );
}

async fn making_a_link_needs_sudo_mode_and_an_active_user(backend: Backend) {
    let app =
        crate::helpers::spawn_app_with(backend, |c| c.sudo_window = Duration::from_secs(1), None)
            .await;
    app.load(crate::helpers::SEED).await;
    let (_v, id) = trusting_user(&app, "victim").await;
    let staff = app.staff_browser().await;
    let path = format!("/admin/users/{id}/reset-link/");
    let csrf = staff.get("/admin/").await.csrf().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Out of sudo mode: the password again first, and no link is made.
    for page in [
        staff.get(&path).await,
        staff.post_raw(&path, &[("csrf_token", &csrf)]).await,
    ] {
        assert!(
            page.location
                .as_deref()
                .is_some_and(|l| l.starts_with("/account/confirm/")),
            "{:?}",
            page.location
        );
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM password_reset_tokens")
            .await,
        0
    );
    let again = staff
        .submit(
            "/account/confirm/",
            "/account/confirm/",
            &[("password", "test1234")],
        )
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.text());
    let csrf = staff.get("/admin/").await.csrf().unwrap();
    // A deactivated user is offered no link and refused one.
    app.execute(&format!(
        "UPDATE users SET is_active = FALSE WHERE id = {id}"
    ))
    .await;
    assert!(!staff
        .get(&format!("/admin/users/{id}/"))
        .await
        .has("Make a password-reset link"));
    let refused = staff.post_raw(&path, &[("csrf_token", &csrf)]).await;
    assert_eq!(refused.location, Some(format!("/admin/users/{id}/")));
    // Nor for the admin's own account here.
    let refused = staff
        .post_raw("/admin/users/1/reset-link/", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(refused.location, Some("/admin/users/1/".to_string()));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM password_reset_tokens")
            .await,
        0
    );
}
