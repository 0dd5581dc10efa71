//! Email addresses (`/account/email/`, `/register/`): an address counts only once the link
//! mailed to it is followed; the mail is read back from a real SMTP server on loopback
//! (`smtp_sink`) and its link followed. Changing a confirmed address keeps the old one until
//! the new one is confirmed, then tells the old one. An address from a Django fixture stays
//! unconfirmed and is never mailed. With email off, the pages say so and nothing is sent.

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{spawn_app_with, Backend, TestApp, SEED};
use crate::smtp_sink::{self, Behaviour, Security, Sink};

both_backends!(
    an_address_counts_once_its_mailed_link_is_followed,
    a_new_address_replaces_the_old_only_once_confirmed_and_the_old_is_told,
    an_address_given_at_registration_is_kept_unconfirmed_and_mailed_a_link,
    a_fixtures_address_is_kept_unconfirmed_and_never_mailed,
    with_email_off_the_pages_say_so_and_nothing_is_sent,
    two_uses_of_one_confirmation_link_at_once_confirm_once,
    dumps_and_loads_keep_the_address_and_whether_it_is_confirmed,
    a_password_changed_or_reset_is_told_once_to_a_confirmed_address_only,
    confirmation_mails_are_limited_per_account_and_per_address,
);

/// An app mailing through a plain-SMTP sink on loopback, with the seed data.
pub async fn app_with_sink(backend: Backend) -> (TestApp, Sink) {
    let sink = smtp_sink::start(Security::Plain, Behaviour::Accept).await;
    let url = format!("smtp://127.0.0.1:{}?tls=none", sink.port);
    let app = spawn_app_with(
        backend,
        |c| c.mail.smtp = Some(pollstr::config::parse_smtp_url(&url).unwrap()),
        None,
    )
    .await;
    app.load(SEED).await;
    (app, sink)
}

/// The body of a message as sent (quoted-printable soft line breaks undone).
pub fn body(m: &smtp_sink::Received) -> String {
    m.data.replace("=\r\n", "").replace("=3D", "=")
}

/// The path of the first link to this site in a message.
pub fn link_in(m: &smtp_sink::Received, prefix: &str) -> String {
    let body = body(m);
    let start = body
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in {body}"));
    let end = body[start..]
        .find(|c: char| c.is_whitespace())
        .map_or(body.len(), |e| start + e);
    body[start..end].to_string()
}

async fn email_row(app: &TestApp, user: &str) -> (String, i64) {
    let email: Vec<(String, bool)> = match &app.db {
        pollstr::db::Db::Sqlite(p) => sqlx::query_as(&format!(
            "SELECT email, email_confirmed FROM users WHERE username = '{user}'"
        ))
        .fetch_all(p)
        .await
        .unwrap(),
        pollstr::db::Db::Postgres(p) => sqlx::query_as(&format!(
            "SELECT email, email_confirmed FROM users WHERE username = '{user}'"
        ))
        .fetch_all(p)
        .await
        .unwrap(),
    };
    let (e, c) = email.into_iter().next().expect("the user");
    (e, c as i64)
}

async fn an_address_counts_once_its_mailed_link_is_followed(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let b = app.verified_browser().await;
    let account = b.get("/account/").await;
    assert!(account.has("Email address"), "{}", account.text());
    assert!(account.has("not confirmed: no mail goes to it"));
    assert!(!account.has("Email is off"));
    let sent = b
        .submit(
            "/account/",
            "/account/email/",
            &[("email", " ada@example.com ")],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    let m = sink.next().await;
    assert!(m.to[0].starts_with("<ada@example.com>"), "{:?}", m.to);
    assert!(m.data.contains("Subject: Confirm your email address"));
    // Not counted yet: the seed's imported address stays, unconfirmed, until the new one is.
    assert_eq!(
        email_row(&app, "test").await,
        ("test@example.com".to_string(), 0)
    );
    let link = link_in(&m, "/account/email/confirm/");
    // Only the keyed hash is stored.
    let token = link.trim_end_matches('/').rsplit('/').next().unwrap();
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM email_confirmations WHERE token_hash = '{token}'"
        ))
        .await,
        0
    );
    // Opening the link changes nothing (a mail scanner's fetch); the button does.
    let page = b.get(&link).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.has("ada@example.com"));
    assert_eq!(email_row(&app, "test").await.1, 0);
    let done = b.submit(&link, &link, &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(done.location.as_deref(), Some("/account/"));
    assert_eq!(
        email_row(&app, "test").await,
        ("ada@example.com".to_string(), 1)
    );
    assert!(b.get("/account/").await.has("(confirmed)"));
    // Used once.
    assert_eq!(b.get(&link).await.status, StatusCode::GONE);
    let other = app.browser();
    assert_eq!(other.get(&link).await.status, StatusCode::GONE);
    for bad in [
        "/account/email/confirm/nope/",
        "/account/email/confirm/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/",
    ] {
        assert_eq!(other.get(bad).await.status, StatusCode::GONE, "{bad}");
    }
    // A malformed address is refused with a message, and nothing is sent.
    let bad = b
        .submit(
            "/account/",
            "/account/email/",
            &[("email", "ada@example.com\r\nBcc: eve@example.com")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::SEE_OTHER);
    assert!(b.get("/account/").await.has("Enter a valid email address"));
    // Removed at once.
    let removed = b
        .submit("/account/", "/account/email/", &[("remove", "1")])
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert_eq!(email_row(&app, "test").await, (String::new(), 0));
    app_settled(&app).await;
    assert!(
        sink.received.lock().await.try_recv().is_err(),
        "one mail only"
    );
}

async fn app_settled(_app: &TestApp) {
    // The outbox sends after the page answers; a short yield lets a stray message arrive.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

async fn a_new_address_replaces_the_old_only_once_confirmed_and_the_old_is_told(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let b = app.verified_browser().await;
    b.submit(
        "/account/",
        "/account/email/",
        &[("email", "ada@example.com")],
    )
    .await;
    let link = link_in(&sink.next().await, "/account/email/confirm/");
    b.submit(&link, &link, &[]).await;
    b.submit(
        "/account/",
        "/account/email/",
        &[("email", "bob@example.org")],
    )
    .await;
    let m = sink.next().await;
    assert!(m.to[0].starts_with("<bob@example.org>"));
    // Until confirmed, the old address is the one that counts.
    assert_eq!(
        email_row(&app, "test").await,
        ("ada@example.com".to_string(), 1)
    );
    let link = link_in(&m, "/account/email/confirm/");
    // Confirmed by a browser that is not logged in (the mail opened on a phone): it goes to login.
    let phone = app.browser();
    let done = phone.submit(&link, &link, &[]).await;
    assert_eq!(done.location.as_deref(), Some("/login/"));
    assert_eq!(
        email_row(&app, "test").await,
        ("bob@example.org".to_string(), 1)
    );
    let told = sink.next().await;
    assert!(told.to[0].starts_with("<ada@example.com>"), "{:?}", told.to);
    let text = body(&told);
    assert!(told
        .data
        .contains("Subject: Your Pollstr email address was changed"));
    assert!(text.contains("b***@example.org"), "{text}");
    assert!(
        !text.contains("bob@example.org"),
        "not the whole new address"
    );
    assert!(text.contains("If this was not you"));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM security_events WHERE kind = 'email_changed'")
            .await,
        4
    );
}

async fn an_address_given_at_registration_is_kept_unconfirmed_and_mailed_a_link(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let b = app.browser();
    assert!(b.get("/register/").await.has("Email address (optional)"));
    // A bad address: the form again, no account.
    let bad = b
        .submit(
            "/register/",
            "/register/",
            &[
                ("username", "ada"),
                ("password1", crate::helpers::STRONG),
                ("password2", crate::helpers::STRONG),
                ("email", "not an address"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::OK);
    assert!(bad.has("Enter a valid email address"));
    assert!(
        bad.body.contains("value=\"not an address\""),
        "kept as typed"
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE username = 'ada'")
            .await,
        0
    );
    let ok = b
        .submit(
            "/register/",
            "/register/",
            &[
                ("username", "ada"),
                ("password1", crate::helpers::STRONG),
                ("password2", crate::helpers::STRONG),
                ("email", "ada@example.com"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text());
    assert_eq!(
        email_row(&app, "ada").await,
        ("ada@example.com".to_string(), 0)
    );
    let m = sink.next().await;
    assert!(m.to[0].starts_with("<ada@example.com>"));
    let link = link_in(&m, "/account/email/confirm/");
    b.submit(&link, &link, &[]).await;
    assert_eq!(
        email_row(&app, "ada").await,
        ("ada@example.com".to_string(), 1)
    );
}

async fn a_fixtures_address_is_kept_unconfirmed_and_never_mailed(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    app.load(r#"[{"model":"auth.user","pk":7,"fields":{"password":"pbkdf2_sha256$24000$rk8toKlZt2vr$dsOOeY/jjjwYLqkmaT5gcRYSrtFabI+eZVgbPylP9EA=","username":"grace","email":"grace@example.com","is_active":true}}]"#).await;
    assert_eq!(
        email_row(&app, "grace").await,
        ("grace@example.com".to_string(), 0)
    );
    assert_eq!(
        pollstr::users::email::confirmed(&app.db, 7).await.unwrap(),
        None,
        "never mailed until confirmed"
    );
    app_settled(&app).await;
    assert_eq!(sink.connections(), 0);
}

async fn with_email_off_the_pages_say_so_and_nothing_is_sent(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |c| c.environment = Some(pollstr::config::Environment::Production),
        None,
    )
    .await;
    app.load(SEED).await;
    let reg = app.browser().get("/register/").await;
    assert!(reg.has("Email is off on this site"), "{}", reg.text());
    let b = app.verified_browser().await;
    let account = b.get("/account/").await;
    assert!(account.has("Email is off on this site"));
    assert!(
        !account.body.contains("name=\"email\""),
        "no field to send a link"
    );
    assert!(!account.has("Send a confirmation link"));
    let sent = b
        .post_raw(
            "/account/email/",
            &[
                ("email", "ada@example.com"),
                ("csrf_token", &account.csrf().unwrap()),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    assert!(b.get("/account/").await.has("no address can be confirmed"));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM email_confirmations").await,
        0
    );
}

async fn two_uses_of_one_confirmation_link_at_once_confirm_once(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let b = app.verified_browser().await;
    b.submit(
        "/account/",
        "/account/email/",
        &[("email", "ada@example.com")],
    )
    .await;
    let link = link_in(&sink.next().await, "/account/email/confirm/");
    let pages = b.burst(&link, &link, 6, |_| vec![]).await;
    let ok = pages
        .iter()
        .filter(|p| p.status == StatusCode::SEE_OTHER)
        .count();
    let gone = pages
        .iter()
        .filter(|p| p.status == StatusCode::GONE)
        .count();
    assert_eq!((ok, gone), (1, 5));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM security_events WHERE kind = 'email_changed' AND detail LIKE '%confirmed'")
            .await,
        1
    );
}

async fn dumps_and_loads_keep_the_address_and_whether_it_is_confirmed(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let b = app.verified_browser().await;
    b.submit(
        "/account/",
        "/account/email/",
        &[("email", "ada@example.com")],
    )
    .await;
    let link = link_in(&sink.next().await, "/account/email/confirm/");
    b.submit(&link, &link, &[]).await;
    let dump = pollstr::fixtures::dump(&app.db).await.unwrap();
    let entries: Vec<serde_json::Value> = serde_json::from_str(&dump).unwrap();
    // auth.user stays Django's own (the address in its "email"); whether it is confirmed is
    // django-allauth's account.emailaddress.
    let user = entries.iter().find(|e| e["model"] == "auth.user").unwrap();
    assert_eq!(user["fields"]["email"], "ada@example.com");
    let mut fields: Vec<&str> = user["fields"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "date_joined",
            "email",
            "first_name",
            "groups",
            "is_active",
            "is_staff",
            "is_superuser",
            "last_login",
            "last_name",
            "password",
            "user_permissions",
            "username"
        ]
    );
    let confirmed: Vec<_> = entries
        .iter()
        .filter(|e| e["model"] == "account.emailaddress")
        .collect();
    assert_eq!(confirmed.len(), 1);
    assert_eq!(confirmed[0]["fields"]["email"], "ada@example.com");
    assert_eq!(confirmed[0]["fields"]["verified"], true);
    assert_eq!(confirmed[0]["fields"]["user"], user["pk"]);

    // Loaded into a new database: the address, confirmed.
    let other = spawn_app_with(backend, |_| {}, None).await;
    other.load(&dump).await;
    assert_eq!(
        email_row(&other, "test").await,
        ("ada@example.com".to_string(), 1)
    );
    // Without the entry (a Django fixture), a new database keeps the address unconfirmed.
    let third = spawn_app_with(backend, |_| {}, None).await;
    let django: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["model"] != "account.emailaddress")
        .collect();
    third.load(&serde_json::to_string(&django).unwrap()).await;
    assert_eq!(
        email_row(&third, "test").await,
        ("ada@example.com".to_string(), 0)
    );
    // An entry for an address the user does not have is refused, naming it.
    let wrong = r#"[{"model":"account.emailaddress","pk":1,"fields":{"user":1,"email":"eve@example.com","verified":true,"primary":true}}]"#;
    let err = pollstr::fixtures::load(&third.db, &[("f.json".into(), wrong.into())])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not the email of user 1"), "{err}");
    assert_eq!(email_row(&third, "test").await.1, 0);
    // The admin's upload confirms nothing: not for an existing account, nor a new one.
    let right = r#"[{"model":"account.emailaddress","pk":1,"fields":{"user":1,"email":"ada@example.com","verified":true,"primary":true}}]"#;
    let err = pollstr::fixtures::load_with(
        &third.db,
        &[("f.json".into(), right.into())],
        pollstr::fixtures::Accounts::AddOnly,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("confirmed only by a link"), "{err}");
    assert_eq!(email_row(&third, "test").await.1, 0);
    // pollstr loaddata (on the server) may.
    pollstr::fixtures::load(&third.db, &[("f.json".into(), right.into())])
        .await
        .unwrap();
    assert_eq!(email_row(&third, "test").await.1, 1);
}

async fn change_password(b: &crate::helpers::Browser, old: &str, new: &str) {
    let page = b
        .submit(
            "/account/password/",
            "/account/password/",
            &[
                ("old_password", old),
                ("new_password1", new),
                ("new_password2", new),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
}

async fn a_password_changed_or_reset_is_told_once_to_a_confirmed_address_only(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let b = app.verified_browser().await;
    // The seed's address is not confirmed: a change tells nobody (the next mail is the link).
    change_password(&b, "test1234", "Qv8#mZ2!rTp").await;
    b.submit(
        "/account/",
        "/account/email/",
        &[("email", "ada@example.com")],
    )
    .await;
    let m = sink.next().await;
    assert!(
        m.data.contains("Subject: Confirm your email address"),
        "{}",
        m.data
    );
    let link = link_in(&m, "/account/email/confirm/");
    b.submit(&link, &link, &[]).await;
    change_password(&b, "Qv8#mZ2!rTp", "Zt5%kW9@pLm").await;
    let told = sink.next().await;
    assert!(told.to[0].starts_with("<ada@example.com>"));
    assert!(told
        .data
        .contains("Subject: Your Pollstr password was changed"));
    let text = body(&told);
    assert!(text.contains("Address: 127.0.0.1"), "{text}");
    assert!(text.contains("Browser: "), "{text}");
    assert!(text.contains("If it was not you"), "{text}");
    for secret in ["Zt5%kW9@pLm", "Qv8#mZ2!rTp", "test1234", "7911"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    // A reset with a link: told too.
    let key = pollstr::crypto::SecretKey::parse(&"5e".repeat(32)).unwrap();
    let token = pollstr::users::reset::issue(&app.db, &key, 1, std::time::Duration::from_secs(600))
        .await
        .unwrap();
    let path = pollstr::users::reset::path(&token);
    let other = app.browser();
    let done = other
        .submit(
            &path,
            &path,
            &[
                ("new_password1", "Hy7&nB3$wQe"),
                ("new_password2", "Hy7&nB3$wQe"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    let told = sink.next().await;
    assert!(
        told.data
            .contains("Subject: Your Pollstr password was reset"),
        "{}",
        told.data
    );
    assert!(!body(&told).contains("Hy7&nB3$wQe") && !body(&told).contains(&token));
    // Once each: the next message is the next thing that mails.
    let b = app.browser();
    b.login("test", "Hy7&nB3$wQe").await;
    b.verify_phone(&app, crate::helpers::PHONE).await;
    b.submit(
        "/account/",
        "/account/email/",
        &[("email", "marker@example.com")],
    )
    .await;
    let next = sink.next().await;
    assert!(
        next.to[0].starts_with("<marker@example.com>"),
        "{:?} {}",
        next.to,
        next.data
    );
}

async fn confirmation_mails_are_limited_per_account_and_per_address(backend: Backend) {
    let sink = smtp_sink::start(Security::Plain, Behaviour::Accept).await;
    let url = format!("smtp://127.0.0.1:{}?tls=none", sink.port);
    let app = spawn_app_with(
        backend,
        |c| {
            c.mail.smtp = Some(pollstr::config::parse_smtp_url(&url).unwrap());
            c.limits.confirm_per_user = pollstr::limits::Limit::parse_list("2/1h").unwrap();
        },
        None,
    )
    .await;
    app.load(SEED).await;
    let send = |b: crate::helpers::Browser, to: &'static str| async move {
        let done = b
            .submit("/account/", "/account/email/", &[("email", to)])
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
        b.get("/account/").await
    };
    let b = app.verified_browser().await;
    for to in ["ada@example.com", "ada@example.com"] {
        assert!(send(b.clone(), to)
            .await
            .has("A confirmation link was sent"));
    }
    // The account's two are used: a third address is refused, and says when to try again.
    let refused = send(b.clone(), "bob@example.org").await;
    assert!(
        refused.has("Too many confirmation mails. Please try again in"),
        "{}",
        refused.text()
    );
    // Another account may not mail the same address a third time either, but its own is fine.
    let other = app.browser();
    other.register("carol").await;
    other.verify_phone(&app, "+44 7400 111222").await;
    assert!(send(other.clone(), "ADA@example.com")
        .await
        .has("Too many confirmation mails"));
    assert!(send(other.clone(), "carol@example.com")
        .await
        .has("A confirmation link was sent"));
    app.state.part::<pollstr::mail::Outbox>().settled().await;
    let mut mails = Vec::new();
    while let Ok(m) = sink.received.lock().await.try_recv() {
        mails.push(m.to[0].clone());
    }
    assert_eq!(
        mails,
        [
            "<ada@example.com>",
            "<ada@example.com>",
            "<carol@example.com>"
        ]
    );
}
