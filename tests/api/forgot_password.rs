//! Self-service password reset (`/password-reset/`): the link mailed to a confirmed address is
//! read back from a real SMTP server on loopback (`smtp_sink`) and followed; the next login
//! still asks for the second factor. Whatever is typed, the answer is the same and only an
//! active account with a confirmed address is mailed; the limits hold under a burst; with email
//! off the page says to ask the operator.

use reqwest::StatusCode;

use crate::both_backends;
use crate::email::{body, link_in};
use crate::helpers::{spawn_app_with, Backend, Browser, Page, TestApp, PHONE, SEED};
use crate::smtp_sink::{self, Behaviour, Security, Sink};

both_backends!(
    a_mailed_link_resets_the_password_and_the_second_factor_is_still_asked,
    whatever_is_typed_the_answer_is_the_same_and_only_a_confirmed_active_account_is_mailed,
    a_burst_of_requests_mails_no_more_than_the_limits,
    the_address_limit_refuses_with_retry_after,
    with_email_off_the_page_says_to_ask_the_operator,
);

const NEW: &str = "Qv8#mZ2!rTp";
const RESET: &str = "/password-reset/";

/// An app mailing through a plain-SMTP sink, with the seed data, `tweak` applied.
async fn app_with(
    backend: Backend,
    tweak: impl FnOnce(&mut pollstr::config::Config),
) -> (TestApp, Sink) {
    let sink = smtp_sink::start(Security::Plain, Behaviour::Accept).await;
    let url = format!("smtp://127.0.0.1:{}?tls=none", sink.port);
    let app = spawn_app_with(
        backend,
        |c| {
            c.mail.smtp = Some(pollstr::config::parse_smtp_url(&url).unwrap());
            tweak(c);
        },
        None,
    )
    .await;
    app.load(SEED).await;
    (app, sink)
}

/// Gives `name` the confirmed address `email` (as a followed link would).
async fn confirmed(app: &TestApp, name: &str, email: &str) {
    app.execute(&format!(
        "UPDATE users SET email = '{email}', email_confirmed = TRUE WHERE username = '{name}'"
    ))
    .await;
}

/// Waits until every request handed over and every mail it made is done with.
async fn settled(app: &TestApp) {
    app.state
        .part::<pollstr::accounts::forgot::Requests>()
        .settled()
        .await;
    app.state.part::<pollstr::mail::Outbox>().settled().await;
}

/// The messages the sink has, without waiting.
async fn drained(sink: &Sink) -> Vec<smtp_sink::Received> {
    let mut got = Vec::new();
    let mut rx = sink.received.lock().await;
    while let Ok(m) = rx.try_recv() {
        got.push(m);
    }
    got
}

/// The next message, once everything handed over is done with (a missing one fails here).
async fn next_mail(app: &TestApp, sink: &Sink) -> smtp_sink::Received {
    settled(app).await;
    let m = sink.received.lock().await.try_recv();
    m.unwrap_or_else(|_| panic!("no mail"))
}

async fn ask(b: &Browser, typed: &str) -> Page {
    b.submit(RESET, RESET, &[("login", typed)]).await
}

async fn a_mailed_link_resets_the_password_and_the_second_factor_is_still_asked(backend: Backend) {
    let (app, sink) = app_with(backend, |_| {}).await;
    // `test` has proven a phone; its address is confirmed.
    let old = app.verified_browser().await;
    confirmed(&app, "test", "ada@example.com").await;

    let b = app.browser();
    let login = b.get("/login/").await;
    assert!(
        login.body.contains("href=\"/password-reset/\""),
        "linked from /login/"
    );
    let form = b.get(RESET).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.has("Username or email address"), "{}", form.text());
    let asked = ask(&b, "test").await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.text());
    assert_eq!(asked.location.as_deref(), Some("/password-reset/sent/"));
    let (_, sent) = b.follow(asked).await;
    assert!(sent.has("Check your mail"), "{}", sent.text());

    let m = next_mail(&app, &sink).await;
    assert!(m.to[0].starts_with("<ada@example.com>"), "{:?}", m.to);
    assert!(m.data.contains("Subject: Reset your Pollstr password"));
    let text = body(&m);
    for secret in ["test1234", crate::helpers::PHONE_E164, "7911 123456"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(text.contains("Address: 127.0.0.1"), "{text}");
    let link = link_in(&m, "/account/reset/");
    // Only the keyed hash is stored.
    let token = link
        .trim_start_matches("/account/reset/")
        .trim_end_matches('/');
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM password_reset_tokens WHERE token_hash = '{token}'"
        ))
        .await,
        0
    );
    // The link's host is the configured origin, not the request's Host header.
    let origin = app
        .state
        .config
        .webauthn
        .origin
        .as_str()
        .trim_end_matches('/')
        .to_string();
    assert!(text.contains(&format!("{origin}/account/reset/")), "{text}");

    let done = b
        .submit(
            &link,
            &link,
            &[("new_password1", NEW), ("new_password2", NEW)],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/login/"), "{}", done.text());
    // Told of the reset, at the same address, without the password.
    let told = next_mail(&app, &sink).await;
    assert!(told
        .data
        .contains("Subject: Your Pollstr password was reset"));
    assert!(!body(&told).contains(NEW));
    // The old session ended; the new password logs in and the second factor is still asked.
    assert!(old
        .get("/polls/1/")
        .await
        .location
        .unwrap()
        .starts_with("/login/"));
    b.login("test", NEW).await;
    let poll = b.get("/polls/1/").await;
    assert!(
        poll.location
            .as_deref()
            .is_some_and(|l| l.starts_with("/2fa/")),
        "{:?}",
        poll.location
    );
    b.verify_phone(&app, PHONE).await;
    assert_eq!(b.get("/polls/1/").await.status, StatusCode::OK);
    // Used once.
    assert_eq!(app.browser().get(&link).await.status, StatusCode::GONE);

    // By address too, in any case of its letters.
    let again = ask(&app.browser(), " ADA@Example.com ").await;
    assert_eq!(again.location.as_deref(), Some("/password-reset/sent/"));
    let m = next_mail(&app, &sink).await;
    assert!(m.data.contains("Subject: Reset your Pollstr password"));
    // A forged Host header does not put a stranger's site in the link.
    let forger = app.browser();
    let token = forger.get(RESET).await.csrf().expect("a CSRF token");
    let forged = forger
        .post_with_headers(
            RESET,
            &[("login", "test"), ("csrf_token", &token)],
            &[("Host", "evil.example")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::SEE_OTHER, "{}", forged.text());
    let text = body(&next_mail(&app, &sink).await);
    assert!(!text.contains("evil.example"), "{text}");
    assert!(text.contains(&format!("{origin}/account/reset/")), "{text}");
    let events = pollstr::events::list(&app.db, Some(1), 0, 100)
        .await
        .unwrap();
    let mailed = events
        .iter()
        .filter(|e| e.kind == "reset_link_mailed" && e.detail == "mailed to a***@example.com")
        .count();
    assert_eq!(mailed, 3);
}

async fn whatever_is_typed_the_answer_is_the_same_and_only_a_confirmed_active_account_is_mailed(
    backend: Backend,
) {
    let (app, sink) = app_with(backend, |_| {}).await;
    // test: confirmed. carol: an address, not confirmed. dave: confirmed, deactivated.
    confirmed(&app, "test", "ada@example.com").await;
    for name in ["carol", "dave"] {
        app.browser().register(name).await;
    }
    app.execute("UPDATE users SET email = 'carol@example.com' WHERE username = 'carol'")
        .await;
    confirmed(&app, "dave", "dave@example.com").await;
    app.execute("UPDATE users SET is_active = FALSE WHERE username = 'dave'")
        .await;

    let mut answers = Vec::new();
    for typed in [
        "test",
        "ada@example.com",
        "nobody",
        "nobody@example.com",
        "carol",
        "carol@example.com",
        "dave",
        "dave@example.com",
        &"x".repeat(3000),
    ] {
        let b = app.browser();
        let asked = ask(&b, typed).await;
        let (status, location) = (asked.status, asked.location.clone());
        let (_, page) = b.follow(asked).await;
        answers.push((status, location, page.status, page.text()));
    }
    assert_eq!(answers[0].0, StatusCode::SEE_OTHER);
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(*a, answers[0], "answer {i} differs");
    }
    settled(&app).await;
    let mails = drained(&sink).await;
    assert_eq!(
        mails.len(),
        2,
        "test, by name and by address: {:?}",
        mails.iter().map(|m| &m.to).collect::<Vec<_>>()
    );
    assert!(mails
        .iter()
        .all(|m| m.to[0].starts_with("<ada@example.com>")));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM password_reset_tokens WHERE user_id <> 1")
            .await,
        0
    );
    // An empty form is shown again with a message (the same for everyone).
    let empty = ask(&app.browser(), "  ").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(empty.has("Enter your username or email address."));
}

async fn a_burst_of_requests_mails_no_more_than_the_limits(backend: Backend) {
    use pollstr::limits::Limit;
    let (app, sink) = app_with(backend, |c| {
        c.limits.reset_per_ip = Limit::parse_list("1000/1h").unwrap();
        c.limits.reset_per_user = Limit::parse_list("2/1h").unwrap();
    })
    .await;
    confirmed(&app, "test", "ada@example.com").await;
    let b = app.browser();
    let pages = b
        .burst(RESET, RESET, 12, |_| vec![("login", "test".to_string())])
        .await;
    assert!(pages.iter().all(|p| p.status == StatusCode::SEE_OTHER));
    settled(&app).await;
    assert_eq!(drained(&sink).await.len(), 2, "the per-account limit");
    // Only the newest link works.
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM password_reset_tokens")
            .await,
        1
    );

    // Per address: two accounts sharing one address get two mails between them, not four.
    let (app, sink) = app_with(backend, |c| {
        c.limits.reset_per_ip = Limit::parse_list("1000/1h").unwrap();
        c.limits.reset_per_user = Limit::parse_list("2/1h").unwrap();
    })
    .await;
    app.browser().register("bob").await;
    confirmed(&app, "test", "shared@example.com").await;
    confirmed(&app, "bob", "shared@example.com").await;
    let pages = b_burst(&app, &["test", "bob", "test", "bob", "shared@example.com"]).await;
    assert!(pages.iter().all(|p| p.status == StatusCode::SEE_OTHER));
    settled(&app).await;
    assert_eq!(drained(&sink).await.len(), 2, "the per-address limit");
    let refused = app
        .scalar("SELECT COUNT(*) FROM security_events WHERE kind = 'reset_link_mailed' AND detail LIKE 'not mailed%'")
        .await;
    assert_eq!(
        refused, 4,
        "six tries (the address names both accounts), two mailed"
    );
}

/// One request per name in `names`, all at once, each from its own browser.
async fn b_burst(app: &TestApp, names: &[&str]) -> Vec<Page> {
    let mut tasks = Vec::new();
    for name in names {
        let b = app.browser();
        let name = name.to_string();
        tasks.push(tokio::spawn(async move { ask(&b, &name).await }));
    }
    let mut pages = Vec::new();
    for t in tasks {
        pages.push(t.await.unwrap());
    }
    pages
}

async fn the_address_limit_refuses_with_retry_after(backend: Backend) {
    use pollstr::limits::Limit;
    let (app, sink) = app_with(backend, |c| {
        c.limits.reset_per_ip = Limit::parse_list("3/1h").unwrap();
    })
    .await;
    confirmed(&app, "test", "ada@example.com").await;
    let b = app.browser();
    let pages = b
        .burst(RESET, RESET, 10, |i| {
            vec![(
                "login",
                if i % 2 == 0 { "test" } else { "nobody" }.to_string(),
            )]
        })
        .await;
    let through = pages
        .iter()
        .filter(|p| p.status == StatusCode::SEE_OTHER)
        .count();
    let refused: Vec<&Page> = pages
        .iter()
        .filter(|p| p.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!((through, refused.len()), (3, 7));
    assert!(refused[0].has("Too many password-reset requests from your network"));
    assert!(refused[0].retry_after().is_some_and(|s| s > 0));
    settled(&app).await;
    assert!(drained(&sink).await.len() <= 3);
}

async fn with_email_off_the_page_says_to_ask_the_operator(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |c| c.environment = Some(pollstr::config::Environment::Production),
        None,
    )
    .await;
    app.load(SEED).await;
    confirmed(&app, "test", "ada@example.com").await;
    let b = app.browser();
    let page = b.get(RESET).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.has("Resetting a password by email is not available"),
        "{}",
        page.text()
    );
    assert!(page.has("Ask the site's operator"));
    assert!(!page.body.contains("name=\"login\""), "no form");
    let token = b.get("/login/").await.csrf().expect("a CSRF token");
    let posted = b
        .post_raw(RESET, &[("login", "test"), ("csrf_token", &token)])
        .await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.text());
    assert!(posted.has("not available"));
    settled(&app).await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM password_reset_tokens")
            .await,
        0
    );
}
