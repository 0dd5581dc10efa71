//! Limits under bursts: requests sent together must not all pass a limit before any of them is
//! counted (each attempt is reserved, atomically, before the work it guards).

use pollstr::limits::Limit;
use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{spawn_app_with, Backend, Browser, Page, TestApp, PHONE, PHONE_E164, SEED};

both_backends!(
    a_burst_of_wrong_passwords_is_held_to_the_limit,
    a_burst_of_sends_is_held_to_the_limit,
    a_burst_of_wrong_codes_is_held_to_the_limit,
    a_burst_of_sends_to_one_number_starts_one_request,
    a_login_burst_past_the_hash_queue_is_turned_away_at_once,
    a_burst_of_wrong_passwords_to_replace_the_phone_is_held_to_the_limit,
);

/// Replacing a proven number asks for the password: its guesses count as failed logins.
async fn a_burst_of_wrong_passwords_to_replace_the_phone_is_held_to_the_limit(backend: Backend) {
    let app = app_with(backend, |c| {
        c.limits.login_per_ip = Limit::parse_list("3/15m").unwrap();
    })
    .await;
    app.verified_browser().await;
    app.execute("DELETE FROM limit_events").await;
    let b = app.browser();
    b.login("test", "test1234").await;
    let pages = b
        .burst("/2fa/?change=1", "/2fa/create/", 10, |i| {
            vec![
                ("number", "+44 7400 654321".to_string()),
                ("password", format!("guess-{i}")),
            ]
        })
        .await;
    let checked = count(
        &pages,
        StatusCode::FORBIDDEN,
        "To change your phone number, enter your current password.",
    );
    let refused = count(
        &pages,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many wrong passwords.",
    );
    assert_eq!((checked, refused), (3, 7));
    assert!(app.no_code_sent());
}

async fn app_with(backend: Backend, tweak: impl FnOnce(&mut pollstr::config::Config)) -> TestApp {
    let app = spawn_app_with(backend, tweak, None).await;
    app.load(SEED).await;
    app
}

/// `n` wrong passwords for `test` at once: the answers, and how many were checked (told the
/// password did not match).
async fn wrong_passwords(b: &Browser, n: usize) -> (Vec<Page>, usize) {
    let pages = b
        .burst("/login/", "/login/", n, |i| {
            vec![
                ("username", "test".to_string()),
                ("password", format!("guess-{i}")),
            ]
        })
        .await;
    let checked = count(
        &pages,
        StatusCode::OK,
        "Your username and password didn't match.",
    );
    (pages, checked)
}

fn count(pages: &[Page], status: StatusCode, text: &str) -> usize {
    pages
        .iter()
        .filter(|p| p.status == status && p.has(text))
        .count()
}

async fn a_burst_of_wrong_passwords_is_held_to_the_limit(backend: Backend) {
    let app = app_with(backend, |c| {
        c.limits.login_per_ip = Limit::parse_list("3/15m").unwrap();
    })
    .await;
    let b = app.browser();
    let (pages, checked) = wrong_passwords(&b, 12).await;
    let refused = count(
        &pages,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many failed logins.",
    );
    assert_eq!((checked, refused), (3, 9), "3 guesses checked, 9 refused");
    // The right password, sent after the burst, is refused too.
    let page = b
        .submit(
            "/login/",
            "/login/",
            &[("username", "test"), ("password", "test1234")],
        )
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    // A right password does not count as a failure.
    let app = app_with(backend, |c| {
        c.limits.login_per_ip = Limit::parse_list("1/15m").unwrap();
    })
    .await;
    let b = app.browser();
    for _ in 0..3 {
        b.login("test", "test1234").await;
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM limit_events WHERE scope = 'login_ip'")
            .await,
        0
    );
}

async fn a_burst_of_sends_is_held_to_the_limit(backend: Backend) {
    let app = app_with(backend, |c| {
        c.limits.sms_per_user = Limit::parse_list("3/10m").unwrap();
    })
    .await;
    let b = app.browser();
    b.login("test", "test1234").await;
    let pages = b
        .burst("/2fa/", "/2fa/create/", 10, |i| {
            vec![("number", format!("+44 7400 6000{i:02}"))]
        })
        .await;
    let sent = pages
        .iter()
        .filter(|p| p.status == StatusCode::SEE_OTHER)
        .count();
    let refused = count(
        &pages,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many codes were sent.",
    );
    assert_eq!((sent, refused), (3, 7), "3 sends, 7 refused");
    let mut codes = 0;
    while app.codes.lock().await.try_recv().is_ok() {
        codes += 1;
    }
    assert_eq!(codes, 3, "three codes went out");
}

async fn a_burst_of_wrong_codes_is_held_to_the_limit(backend: Backend) {
    let app = app_with(backend, |c| {
        c.limits.code_per_user = Limit::parse_list("2/15m").unwrap();
    })
    .await;
    let b = app.browser();
    b.login("test", "test1234").await;
    b.submit("/2fa/", "/2fa/create/", &[("number", PHONE)])
        .await;
    let code = app.code_for(PHONE_E164).await;
    let wrong: String = code
        .chars()
        .map(|c| char::from(b'0' + (c as u8 - b'0' + 1) % 10))
        .collect();
    let pages = b
        .burst("/2fa/verify/", "/2fa/confirm/", 8, |_| {
            vec![("code", wrong.clone())]
        })
        .await;
    let wrong_answers = count(&pages, StatusCode::BAD_REQUEST, "That code is not right.");
    let refused = count(
        &pages,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many wrong codes.",
    );
    assert_eq!(
        (wrong_answers, refused),
        (2, 6),
        "2 codes checked, 6 refused"
    );
    assert_eq!(
        app.scalar("SELECT CAST(SUM(wrong_codes) AS BIGINT) FROM console_verify_requests")
            .await,
        2,
        "the provider saw two codes"
    );
}

/// The console provider's "one running request per number" (Verify's status 10), when the
/// requests arrive together (straight to the provider: the limits' locks would space out those
/// that come through the pages).
async fn a_burst_of_sends_to_one_number_starts_one_request(backend: Backend) {
    use pollstr::two_factor::sms::console::ConsoleVerifier;
    use pollstr::two_factor::sms::phone::PhoneNumber;
    use pollstr::two_factor::sms::{StartOutcome, Verifier};
    let app = app_with(backend, |_| {}).await;
    let verifier = std::sync::Arc::new(ConsoleVerifier::new(app.db.clone()));
    let number = PhoneNumber::parse(PHONE, None).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (verifier, number) = (verifier.clone(), number.clone());
        tasks.push(tokio::spawn(
            async move { verifier.start(&number, "u1").await },
        ));
    }
    let mut started = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(StartOutcome::Started { .. }) => started += 1,
            Ok(StartOutcome::InProgress { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(started, 1, "one request started, the others joined it");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM console_verify_requests WHERE state = 'pending'")
            .await,
        1
    );
}

/// More logins at once than the server's hash queue holds: those past it are answered at once
/// with "try again in a moment" (429, `Retry-After: 2`), the others are checked, and a login after
/// the burst goes through.
async fn a_login_burst_past_the_hash_queue_is_turned_away_at_once(backend: Backend) {
    let app = app_with(backend, |c| {
        c.limits.login_per_ip = Limit::parse_list("100000/1h").unwrap();
        c.limits.login_per_username = Limit::parse_list("100000/1h").unwrap();
        // The burst comes from one address, on as many connections as logins.
        c.http.max_connections_per_ip = 1000;
    })
    .await;
    let burst = 3 * pollstr::users::password::HashQueue::default().capacity();
    let b = app.browser();
    let (pages, checked) = wrong_passwords(&b, burst).await;
    let busy: Vec<&Page> = pages
        .iter()
        .filter(|p| {
            p.status == StatusCode::TOO_MANY_REQUESTS
                && p.has("Many people are signing in right now.")
        })
        .collect();
    assert!(!busy.is_empty(), "some of {burst} logins were turned away");
    assert!(busy.iter().all(|p| p.retry_after() == Some(2)));
    assert_eq!(
        checked + busy.len(),
        burst,
        "every answer is one or the other"
    );
    let page = b.login("test", "test1234").await;
    assert_eq!(page.location.as_deref(), Some("/polls/"));
}
