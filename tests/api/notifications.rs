//! Security notifications to a confirmed address, read back from the SMTP sink: a second
//! factor added or removed (authenticator, recovery codes, passkey, a phone replaced), a
//! recovery code used, and a login whose second factor then failed five times. Each is sent
//! exactly once, and holds no code, no password and no whole phone number.

use reqwest::StatusCode;

use crate::both_backends;
use crate::email::{app_with_sink, body};
use crate::helpers::{Backend, Browser, TestApp, PHONE_E164};
use crate::smtp_sink::{Received, Sink};

both_backends!(
    each_second_factor_change_is_told_once_without_secrets,
    five_failed_second_factors_after_the_password_are_told_once,
    an_unconfirmed_address_is_told_nothing,
);

const OTHER: &str = "+44 7400 123456";

async fn confirmed(app: &TestApp) {
    app.execute(
        "UPDATE users SET email = 'ada@example.com', email_confirmed = TRUE WHERE username = 'test'",
    )
    .await;
}

/// The next message, already sent (a missing one fails here rather than waiting): to the
/// confirmed address, with `subject`, and nothing secret in it.
async fn told(app: &TestApp, sink: &Sink, subject: &str, secrets: &[&str]) -> Received {
    app.state.part::<pollstr::mail::Outbox>().settled().await;
    let m = sink
        .received
        .lock()
        .await
        .try_recv()
        .unwrap_or_else(|_| panic!("no mail {subject:?}"));
    assert!(m.to[0].starts_with("<ada@example.com>"), "{:?}", m.to);
    assert!(
        m.data.contains(&format!("Subject: {subject}")),
        "wanted {subject:?}: {}",
        m.data
    );
    let text = body(&m);
    assert!(text.contains("If it was not you"), "{text}");
    assert!(
        text.contains("Address: 127.0.0.1") && text.contains("When: "),
        "{text}"
    );
    for s in [
        "test1234",
        PHONE_E164,
        "7911 123456",
        "+447400123456",
        "7400 123456",
    ]
    .iter()
    .chain(secrets)
    {
        assert!(!text.contains(s), "{s} in {text}");
    }
    m
}

/// Nothing more was mailed.
async fn nothing_more(app: &TestApp, sink: &Sink) {
    app.state.part::<pollstr::mail::Outbox>().settled().await;
    let extra = sink.received.lock().await.try_recv();
    assert!(extra.is_err(), "one mail each: {:?}", extra.map(|m| m.data));
}

fn recovery_codes(page: &crate::helpers::Page) -> Vec<String> {
    let doc = scraper::Html::parse_document(&page.body);
    let sel = scraper::Selector::parse("#recovery-codes code").unwrap();
    doc.select(&sel).map(|c| c.text().collect()).collect()
}

async fn each_second_factor_change_is_told_once_without_secrets(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let b = app.verified_browser().await;
    confirmed(&app).await;

    let (_, first) = crate::totp::set_up_with_codes(&b).await;
    let m = told(&app, &sink, "An authenticator app was added", &[]).await;
    for c in &first {
        assert!(!body(&m).contains(c.as_str()));
    }

    let page = b
        .submit(
            "/account/recovery/",
            "/account/recovery/",
            &[("password", "test1234")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let codes = recovery_codes(&page);
    assert_eq!(codes.len(), 10);
    let secrets: Vec<&str> = codes.iter().map(String::as_str).collect();
    told(
        &app,
        &sink,
        "New recovery codes for your Pollstr account",
        &secrets,
    )
    .await;

    let other = app.browser();
    other.login("test", "test1234").await;
    let done = other
        .submit("/2fa/recovery/", "/2fa/recovery/", &[("code", &codes[0])])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    let m = told(&app, &sink, "A recovery code was used", &secrets).await;
    assert!(body(&m).contains("9 left"), "{}", body(&m));

    let removed = b
        .submit(
            "/account/totp/",
            "/account/totp/remove/",
            &[("password", "test1234")],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.text());
    told(&app, &sink, "The authenticator app was removed", &[]).await;

    let sent = b
        .submit(
            "/2fa/?change=1",
            "/2fa/create/",
            &[("number", OTHER), ("password", "test1234")],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    let code = app.code_for("+447400123456").await;
    let done = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    let m = told(
        &app,
        &sink,
        "Your Pollstr phone number was replaced",
        &[code.as_str()],
    )
    .await;
    assert!(
        body(&m).contains("3456"),
        "the masked numbers: {}",
        body(&m)
    );

    let mut key = crate::passkeys::SoftKey::new(7);
    let added = crate::passkeys::enrol(&b, &mut key, "Laptop").await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.text());
    told(&app, &sink, "A passkey was added", &[]).await;
    let id = app.scalar("SELECT id FROM passkeys").await.to_string();
    let gone = b
        .submit(
            "/account/passkeys/",
            "/account/passkeys/remove/",
            &[("id", &id), ("password", "test1234")],
        )
        .await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER, "{}", gone.text());
    told(&app, &sink, "A passkey was removed", &[]).await;
    nothing_more(&app, &sink).await;
}

/// Logs in with the right password and gives `n` wrong recovery codes.
async fn wrong_answers(app: &TestApp, n: usize) -> Browser {
    let b = app.browser();
    b.login("test", "test1234").await;
    for _ in 0..n {
        let wrong = b
            .submit(
                "/2fa/recovery/",
                "/2fa/recovery/",
                &[("code", "aaaaa-bbbbb")],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.text());
    }
    b
}

async fn five_failed_second_factors_after_the_password_are_told_once(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    let b = app.verified_browser().await;
    confirmed(&app).await;
    crate::totp::set_up_with_codes(&b).await;
    told(&app, &sink, "An authenticator app was added", &[]).await;

    // Four wrong: nothing yet.
    let four = wrong_answers(&app, 4).await;
    nothing_more(&app, &sink).await;
    // The fifth: told, once; a sixth (refused by the wrong-code limit) tells nothing more.
    let fifth = four
        .submit(
            "/2fa/recovery/",
            "/2fa/recovery/",
            &[("code", "ccccc-ddddd")],
        )
        .await;
    assert_eq!(fifth.status, StatusCode::BAD_REQUEST);
    let m = told(
        &app,
        &sink,
        "Failed second-factor checks",
        &["aaaaa-bbbbb", "ccccc-ddddd"],
    )
    .await;
    assert!(body(&m).contains("right password"), "{}", body(&m));
    let sixth = four
        .submit(
            "/2fa/recovery/",
            "/2fa/recovery/",
            &[("code", "eeeee-fffff")],
        )
        .await;
    assert_eq!(sixth.status, StatusCode::TOO_MANY_REQUESTS);
    nothing_more(&app, &sink).await;
    // Past the limit's window, more wrong answers in the same login tell nothing more.
    app.execute("DELETE FROM limit_events WHERE scope = 'code_user'")
        .await;
    for _ in 0..2 {
        let wrong = four
            .submit(
                "/2fa/recovery/",
                "/2fa/recovery/",
                &[("code", "eeeee-fffff")],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    }
    nothing_more(&app, &sink).await;

    // A burst of wrong answers in a new login, past the limit's reset: one mail.
    app.execute("DELETE FROM limit_events WHERE scope = 'code_user'")
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = app.browser();
    again.login("test", "test1234").await;
    let pages = again
        .burst("/2fa/recovery/", "/2fa/recovery/", 8, |_| {
            vec![("code", "ggggg-hhhhh".to_string())]
        })
        .await;
    assert!(pages.iter().all(|p| p.status != StatusCode::SEE_OTHER));
    told(&app, &sink, "Failed second-factor checks", &[]).await;
    nothing_more(&app, &sink).await;
}

async fn an_unconfirmed_address_is_told_nothing(backend: Backend) {
    let (app, sink) = app_with_sink(backend).await;
    // The seed's address is imported, unconfirmed.
    let b = app.verified_browser().await;
    crate::totp::set_up_with_codes(&b).await;
    wrong_answers(&app, 5).await;
    app.state.part::<pollstr::mail::Outbox>().settled().await;
    assert_eq!(sink.connections(), 0);
}
