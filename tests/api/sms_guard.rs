//! The SMS pumping guard: only a person's phone (no premium-rate or other service number, no
//! number of no country unless listed), allowed countries, budgets per country and prefix (held under bursts),
//! conversion tracking that pauses a country (once, whatever the number of instances judging),
//! Verify v2's signed callbacks, and `pollstr sms-report` / `sms-resume`.

use pollstr::limits::Limit;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::both_backends;
use crate::helpers::{pollstr_command, spawn_app_with, spawn_on, Backend, Browser, TestApp, SEED};

/// A GB mobile number (the test suite's usual one, +44 7911, is Guernsey's to libphonenumber).
const PHONE: &str = "+44 7400 123456";

both_backends!(
    only_a_persons_phone_is_sent_codes,
    numbers_of_no_country_only_when_listed,
    call_me_instead_and_a_proven_number_are_held_to_the_rule,
    sends_only_to_allowed_countries,
    a_country_budget_holds_under_a_burst,
    a_prefix_budget_spares_other_ranges,
    low_conversion_pauses_a_country_once,
    confirmed_codes_keep_a_country_open,
    after_a_pause_only_new_sends_are_judged,
    callbacks_must_be_signed_and_fresh,
    failed_deliveries_reported_by_callbacks_count,
    sms_report_and_resume,
    a_send_that_fails_does_not_spend_the_budget,
);

const SIGNATURE_SECRET: &str = "a-signature-secret-of-32-characters!";

async fn app_with(backend: Backend, tweak: impl FnOnce(&mut pollstr::config::Config)) -> TestApp {
    let app = spawn_app_with(backend, tweak, None).await;
    app.load(SEED).await;
    app
}

/// A logged-in browser of a new account.
async fn user(app: &TestApp, name: &str) -> Browser {
    let b = app.browser();
    b.register(name).await;
    b
}

async fn send(b: &Browser, number: &str) -> crate::helpers::Page {
    b.submit("/2fa/", "/2fa/create/", &[("number", number)])
        .await
}

/// `n` sends to GB that went out two hours ago, `confirmed` of them confirmed.
async fn history(app: &TestApp, n: usize, confirmed: usize) {
    let at = pollstr::db::now() - 7200;
    for i in 0..n {
        let confirmed_at = if i < confirmed {
            (at + 30).to_string()
        } else {
            "NULL".into()
        };
        app.execute(&format!(
            "INSERT INTO sms_sends (request_id, country, prefix, sent_at, confirmed_at) \
             VALUES ('old-{i}', 'GB', '+44740000', {at}, {confirmed_at})"
        ))
        .await;
    }
}

fn guard(min_sends: u32) -> impl FnOnce(&mut pollstr::config::Config) {
    move |c| {
        c.sms_guard.min_conversion = 0.5;
        c.sms_guard.conversion_min_sends = min_sends;
    }
}

/// Nothing went to the provider and nothing was counted: no code, no verification started, no
/// send recorded, no limit spent.
async fn nothing_sent(app: &TestApp) {
    assert!(app.no_code_sent());
    for table in ["console_verify_requests", "sms_sends", "limit_events"] {
        let rows = app.scalar(&format!("SELECT COUNT(*) FROM {table}")).await;
        assert_eq!(rows, 0, "{table}");
    }
}

/// Premium-rate and shared-cost numbers (revenue-share fraud's numbers) and numbers of no
/// country are refused in allowed countries too; a mobile and a US number are not.
async fn only_a_persons_phone_is_sent_codes(backend: Backend) {
    let app = app_with(backend, |c| {
        c.sms_guard.allowed_countries = vec!["GB".into(), "US".into()];
    })
    .await;
    let b = app.browser();
    b.login("test", "test1234").await;
    for (number, kind) in [
        ("+44 909 879 0000", "premium-rate"),
        ("+44 871 234 5678", "premium-rate"),
        ("+1 900 234 5678", "premium-rate"),
        ("+881 612 345 678", "satellite and other non-country"),
        ("+870 301 234 567", "satellite and other non-country"),
    ] {
        let page = send(&b, number).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{number}");
        let message = format!("This number cannot receive codes: {kind} numbers are not accepted. Please use a mobile number.");
        assert!(page.has(&message), "{number}: {}", page.text());
        nothing_sent(&app).await;
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM security_events WHERE kind = 'code_refused' AND detail LIKE '%numbers take no codes'")
            .await,
        5
    );
    let page = send(&b, PHONE).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
    app.code_for("+447400123456").await;
    let page = send(&b, "+1 201 555 0123").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
    app.code_for("+12015550123").await;
}

/// With the default empty list every country is allowed, but not the ranges of no country;
/// `001` in the list lets them through.
async fn numbers_of_no_country_only_when_listed(backend: Backend) {
    let app = app_with(backend, |_| {}).await;
    let b = app.browser();
    b.login("test", "test1234").await;
    for number in ["+881 612 345 678", "+870 301 234 567"] {
        let page = send(&b, number).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{number}");
        assert!(page.has("satellite and other non-country numbers are not accepted"));
        nothing_sent(&app).await;
    }

    let listed = app_with(backend, |c| {
        c.sms_guard.allowed_countries = vec!["GB".into(), "001".into()];
    })
    .await;
    let b = listed.browser();
    b.login("test", "test1234").await;
    let page = send(&b, "+881 612 345 678").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
    listed.code_for("+881612345678").await;
    assert_eq!(
        listed
            .scalar("SELECT COUNT(*) FROM sms_sends WHERE country = '001'")
            .await,
        1
    );
}

/// A code running to a number the rule now refuses (the settings changed since it was sent)
/// is not moved to a call, and a proven number the rule refuses is not sent to: the same
/// message, nothing sent.
async fn call_me_instead_and_a_proven_number_are_held_to_the_rule(backend: Backend) {
    let before = app_with(backend, |c| {
        c.sms_guard.allowed_countries = vec!["001".into()];
    })
    .await;
    let b = before.browser();
    b.login("test", "test1234").await;
    let page = send(&b, "+881 612 345 678").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
    // The same database served with the default settings, which refuse numbers of no country.
    let after = Browser {
        base: spawn_on(backend, &before.database_url).await,
        ..b.clone()
    };
    let page = after.submit("/2fa/verify/", "/2fa/next/", &[]).await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.text()
    );
    assert!(page.has("This number cannot receive codes: satellite and other non-country numbers are not accepted."));
    assert_eq!(
        before.scalar("SELECT channels FROM sms_sends").await,
        1,
        "no call was made"
    );

    // Proven while the rule allowed it.
    let code = before.code_for("+881612345678").await;
    let done = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    let fresh = Browser {
        base: after.base.clone(),
        ..before.browser()
    };
    fresh.login("test", "test1234").await;
    let page = send(&fresh, "").await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.text()
    );
    assert!(page.has("This number cannot receive codes"));
    assert_eq!(before.scalar("SELECT COUNT(*) FROM sms_sends").await, 1);
    assert_eq!(
        before
            .scalar("SELECT COUNT(*) FROM console_verify_requests")
            .await,
        1
    );
}

async fn sends_only_to_allowed_countries(backend: Backend) {
    let app = app_with(backend, |c| {
        c.sms_guard.allowed_countries = vec!["US".parse().unwrap(), "IE".parse().unwrap()];
    })
    .await;
    let b = app.browser();
    b.login("test", "test1234").await;
    let page = send(&b, PHONE).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.has("This site does not send codes to phone numbers in that country."));
    assert!(app.no_code_sent());
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM security_events WHERE kind = 'code_refused' AND detail LIKE '%not an allowed country'")
            .await,
        1
    );
    let page = send(&b, "+353 85 123 4567").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
}

/// Eight accounts send at the same moment to eight GB numbers with a budget of three a day:
/// exactly three codes go out.
async fn a_country_budget_holds_under_a_burst(backend: Backend) {
    let app = app_with(backend, |c| {
        c.limits.sms_per_country = Limit::parse_list("3/1d").unwrap();
    })
    .await;
    let mut browsers = Vec::new();
    for i in 0..8 {
        browsers.push(user(&app, &format!("voter{i}")).await);
    }
    let mut forms = Vec::new();
    for b in &browsers {
        forms.push(b.get("/2fa/").await.csrf().unwrap());
    }
    let mut sends = Vec::new();
    for (i, (b, csrf)) in browsers.iter().zip(forms).enumerate() {
        let number = format!("+44 7400 90000{i}");
        let request = b
            .client
            .post(b.url("/2fa/create/"))
            .form(&[("number", number.as_str()), ("csrf_token", csrf.as_str())]);
        sends.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    let mut statuses = Vec::new();
    for s in sends {
        statuses.push(s.await.unwrap());
    }
    let sent = statuses
        .iter()
        .filter(|s| **s == StatusCode::SEE_OTHER)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((sent, refused), (3, 5), "{statuses:?}");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM sms_sends").await, 3);
    // Another country is not this budget's business.
    let page = send(&browsers[0], "+1 201 555 0123").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
}

async fn a_prefix_budget_spares_other_ranges(backend: Backend) {
    let app = app_with(backend, |c| {
        c.limits.sms_per_prefix = Limit::parse_list("2/1d").unwrap();
    })
    .await;
    let (a, b, c) = (
        user(&app, "alice").await,
        user(&app, "bob").await,
        user(&app, "carol").await,
    );
    // +44 7400 90xxxx: one block of 10,000 numbers.
    assert_eq!(
        send(&a, "+44 7400 900001").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        send(&b, "+44 7400 900002").await.status,
        StatusCode::SEE_OTHER
    );
    let page = send(&c, "+44 7400 900003").await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        page.text()
    );
    assert!(page.has("Too many codes were sent."));
    // The next block is open.
    assert_eq!(
        send(&c, "+44 7400 910003").await.status,
        StatusCode::SEE_OTHER
    );
}

/// Twenty unconfirmed sends to GB in the window, a minimum of 50%: the next sends are refused
/// before the provider, and of a burst of them, one records the pause.
async fn low_conversion_pauses_a_country_once(backend: Backend) {
    let app = app_with(backend, guard(20)).await;
    history(&app, 20, 2).await;
    let mut browsers = Vec::new();
    for i in 0..6 {
        browsers.push(user(&app, &format!("voter{i}")).await);
    }
    let mut pages = Vec::new();
    for (i, b) in browsers.iter().enumerate() {
        let b = b.clone();
        pages.push(tokio::spawn(async move {
            send(&b, &format!("+44 7400 80000{i}")).await
        }));
    }
    for p in pages {
        let page = p.await.unwrap();
        assert_eq!(
            page.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            page.text()
        );
        assert!(page
            .has("Codes to phone numbers in this country are paused for a while to stop abuse."));
        // `SMS_PAUSE`: an hour from the moment the pause began.
        let wait = page.retry_after().expect("Retry-After");
        assert!((3570..=3600).contains(&wait), "Retry-After: {wait}");
        assert!(
            page.has("Please try again in 60 minutes."),
            "{}",
            page.text()
        );
    }
    assert!(app.no_code_sent());
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM security_events WHERE kind = 'sms_country_paused'")
            .await,
        1
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM sms_pauses").await, 1);
    // Other countries go on.
    let page = send(&browsers[0], "+1 201 555 0123").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
}

async fn confirmed_codes_keep_a_country_open(backend: Backend) {
    let app = app_with(backend, guard(20)).await;
    history(&app, 20, 10).await;
    let b = app.browser();
    b.login("test", "test1234").await;
    assert_eq!(send(&b, PHONE).await.status, StatusCode::SEE_OTHER);
    // Too few settled sends to judge: open as well.
    let app = app_with(backend, guard(21)).await;
    history(&app, 20, 0).await;
    let b = app.browser();
    b.login("test", "test1234").await;
    assert_eq!(send(&b, PHONE).await.status, StatusCode::SEE_OTHER);
    // Sends too recent to have been confirmed yet are not judged.
    let app = app_with(backend, guard(5)).await;
    for i in 0..10 {
        app.execute(&format!(
            "INSERT INTO sms_sends (request_id, country, prefix, sent_at) VALUES ('new-{i}', 'GB', '+44740000', {})",
            pollstr::db::now() - 10
        ))
        .await;
    }
    let b = app.browser();
    b.login("test", "test1234").await;
    assert_eq!(send(&b, PHONE).await.status, StatusCode::SEE_OTHER);
}

async fn after_a_pause_only_new_sends_are_judged(backend: Backend) {
    let app = app_with(backend, guard(20)).await;
    history(&app, 20, 0).await;
    let b = app.browser();
    b.login("test", "test1234").await;
    assert_eq!(
        send(&b, PHONE).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // The pause ends (an hour later): the sends before it are not judged again.
    app.execute(&format!(
        "UPDATE sms_pauses SET paused_until = {}",
        pollstr::db::now() - 1
    ))
    .await;
    let page = send(&b, PHONE).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
}

fn signed(secret: &str, iat: i64, body: &str) -> String {
    let hash: String = Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let claims = serde_json::json!({
        "iat": iat, "jti": pollstr::crypto::random_hex(8), "iss": "Vonage",
        "payload_hash": hash, "api_key": "key", "application_id": "app",
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn callback(app: &TestApp, auth: Option<String>, body: &str) -> StatusCode {
    let mut req = reqwest::Client::new()
        .post(format!("{}/2fa/vonage/events", app.addr))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    req.send().await.unwrap().status()
}

/// A request's summary callback, as Verify v2 sends it.
fn event(request_id: &str, status: &str) -> String {
    serde_json::json!({
        "request_id": request_id, "submitted_at": "2026-12-01T10:00:00Z", "status": status,
        "type": "summary", "channel_timeout": 300, "client_ref": "u1",
        "workflow": [{"channel": "sms", "initiated_at": "2026-12-01T10:00:00Z", "status": status}],
    })
    .to_string()
}

/// One channel's event callback.
fn channel_event(request_id: &str, status: &str) -> String {
    serde_json::json!({
        "request_id": request_id, "triggered_at": "2026-12-01T10:00:00Z", "type": "event",
        "channel": "sms", "status": status, "finalized_at": "2026-12-01T10:00:05Z", "client_ref": "u1",
    })
    .to_string()
}

async fn callbacks_must_be_signed_and_fresh(backend: Backend) {
    // Without a signature secret, there is no callback endpoint.
    let app = app_with(backend, |_| {}).await;
    assert_eq!(
        callback(&app, None, &event("r", "failed")).await,
        StatusCode::NOT_FOUND
    );

    let app = app_with(backend, |c| {
        c.vonage_signature_secret = Some(SIGNATURE_SECRET.into());
    })
    .await;
    history(&app, 1, 0).await;
    let body = event("old-0", "failed");
    let now = pollstr::db::now();
    let bearer = |t: String| Some(format!("Bearer {t}"));
    for (auth, what) in [
        (None, "unsigned"),
        (
            bearer(signed("another-secret-of-32-characters-long!", now, &body)),
            "another key",
        ),
        (bearer(signed(SIGNATURE_SECRET, now - 3600, &body)), "stale"),
        (
            bearer(signed(SIGNATURE_SECRET, now, &event("old-0", "completed"))),
            "another body",
        ),
        (Some("Basic a2V5OnNlY3JldA==".into()), "not a bearer"),
    ] {
        assert_eq!(
            callback(&app, auth, &body).await,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM sms_sends WHERE outcome IS NOT NULL")
            .await,
        0
    );
    // One channel failing does not settle a request: the workflow goes on to the next.
    let channel = channel_event("old-0", "failed");
    let status = callback(
        &app,
        bearer(signed(SIGNATURE_SECRET, now, &channel)),
        &channel,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM sms_sends WHERE outcome IS NOT NULL")
            .await,
        0
    );
    let ok = callback(&app, bearer(signed(SIGNATURE_SECRET, now, &body)), &body).await;
    assert_eq!(ok, StatusCode::NO_CONTENT);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM sms_sends WHERE outcome = 'failed'")
            .await,
        1
    );
    // Signed, but not a callback: 400; an unknown request: accepted and ignored.
    let junk = "[1,2,3]";
    assert_eq!(
        callback(&app, bearer(signed(SIGNATURE_SECRET, now, junk)), junk).await,
        StatusCode::BAD_REQUEST
    );
    let unknown = event("not-ours", "failed");
    assert_eq!(
        callback(
            &app,
            bearer(signed(SIGNATURE_SECRET, now, &unknown)),
            &unknown
        )
        .await,
        StatusCode::NO_CONTENT
    );
}

/// Callbacks settle sends before their codes' time is up: failed deliveries count at once.
async fn failed_deliveries_reported_by_callbacks_count(backend: Backend) {
    let app = app_with(backend, |c| {
        c.vonage_signature_secret = Some(SIGNATURE_SECRET.into());
        c.sms_guard.min_conversion = 0.5;
        c.sms_guard.conversion_min_sends = 4;
    })
    .await;
    for i in 0..4 {
        app.execute(&format!(
            "INSERT INTO sms_sends (request_id, country, prefix, sent_at) VALUES ('fresh-{i}', 'GB', '+44740000', {})",
            pollstr::db::now() - 5
        ))
        .await;
    }
    let b = app.browser();
    b.login("test", "test1234").await;
    assert_eq!(
        send(&b, "+44 7400 000001").await.status,
        StatusCode::SEE_OTHER
    );
    let now = pollstr::db::now();
    for i in 0..4 {
        let body = event(&format!("fresh-{i}"), "failed");
        let status = callback(
            &app,
            Some(format!("Bearer {}", signed(SIGNATURE_SECRET, now, &body))),
            &body,
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM sms_pauses").await, 1);
    let other = user(&app, "mallory").await;
    assert_eq!(
        send(&other, "+44 7400 000002").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

async fn sms_report_and_resume(backend: Backend) {
    let app = app_with(backend, guard(20)).await;
    history(&app, 20, 3).await;
    let b = app.browser();
    b.login("test", "test1234").await;
    assert_eq!(
        send(&b, PHONE).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        pollstr_command(dir.path(), &[("DATABASE_URL", &app.database_url)])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["sms-report", "--since", "1d"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("GB"), "{text}");
    assert!(text.contains("+44740000"), "{text}");
    let gb: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("GB "))
        .expect("a GB line")
        .split_whitespace()
        .collect();
    // Country, sends, confirmed, conversion, undelivered, calls.
    assert_eq!(gb, ["GB", "20", "3", "15%", "0", "0"], "{text}");
    assert!(text.contains("Paused: GB until"), "{text}");
    // A shorter window leaves the old sends out.
    let recent = run(&["sms-report", "--since", "1h"]);
    let recent = String::from_utf8_lossy(&recent.stdout).to_string();
    assert!(!recent.contains("+44740000"), "{recent}");

    let bad = run(&["sms-resume", "Mars"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a two-letter country code"));
    let bad = run(&["sms-report", "--since", "soon"]);
    assert!(!bad.status.success());
    let ok = run(&["sms-resume", "gb"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stderr).contains("sends to GB resume now"));
    assert_eq!(send(&b, PHONE).await.status, StatusCode::SEE_OTHER);
}

/// The provider fails once: that send did not happen, so it does not use the country's budget
/// (of one a day here) and the next one goes out.
async fn a_send_that_fails_does_not_spend_the_budget(backend: Backend) {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(202).set_body_json(
            serde_json::json!({ "request_id": "c11236f4-00bf-4b89-84ba-88b25df97315" }),
        ))
        .mount(&server)
        .await;
    let verifier = pollstr::two_factor::sms::vonage_v2::VonageV2Verifier::new(
        pollstr::config::VonageConfig {
            api_key: "k".into(),
            api_secret: "s".into(),
            brand: "Pollstr".into(),
            base_url: server.uri(),
            timeout: std::time::Duration::from_secs(5),
        },
        None,
        Default::default(),
    )
    .unwrap();
    let app = spawn_app_with(
        backend,
        |c| c.limits.sms_per_country = Limit::parse_list("1/1d").unwrap(),
        Some(std::sync::Arc::new(verifier)),
    )
    .await;
    app.load(SEED).await;
    let b = app.browser();
    b.login("test", "test1234").await;
    let failed = send(&b, PHONE).await;
    assert_eq!(
        failed.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        failed.text()
    );
    let sent = send(&b, PHONE).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    let over = send(&user(&app, "mallory").await, "+44 7400 123457").await;
    assert_eq!(
        over.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        over.text()
    );
}
