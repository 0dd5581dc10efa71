//! The second factor: the flow, session renewal, number binding, limits, provider answers.

use std::sync::Arc;
use std::time::Duration;

use pollstr::config::{VerifySettings, VonageConfig};
use pollstr::limits::Limit;
use pollstr::two_factor::sms::vonage::VonageVerifier;
use pollstr::two_factor::sms::vonage_v2::VonageV2Verifier;
use reqwest::StatusCode;
use serde_json::json;
use wiremock::matchers::{body_string_contains, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    spawn_app_with, Backend, Browser, Provider, TestApp, PHONE, PHONE_E164, SEED,
};
use crate::vonage_v2::problem_with;
use crate::{both_backends, each_provider};

// The flow, with the console provider and with the Verify v2 client against a fake v2 server.
each_provider!(
    wrong_code_then_right_code,
    verification_renews_the_session_id,
    a_second_browser_must_verify_again,
    number_is_bound_only_once_proven,
    proven_number_is_masked_and_reused,
    changing_a_proven_number_needs_the_password,
    switching_number_before_it_is_proven,
    a_number_belongs_to_one_account,
    sms_limit_per_user,
    sms_limit_per_number_across_accounts,
    sms_limit_per_ip,
    wrong_code_limit_per_user,
    three_wrong_codes_end_the_request,
    second_send_continues_the_running_request,
    bad_numbers_and_codes_are_messages,
    verify_pages_need_login,
);

// Verify v1's answers, through wiremock.
mod v1 {
    use super::*;
    both_backends!(
        vonage_statuses_have_messages,
        vonage_transport_faults_have_messages,
        switching_numbers_cancels_the_running_request,
        faults_while_checking_a_code_keep_the_user_signed_in,
    );
}

// The console provider's own rules, kept in the app's database.
mod console {
    use super::*;
    both_backends!(a_code_past_its_time_is_refused_though_the_browser_still_has_it);
}

// Verify v2's answers as the user sees them, through wiremock.
mod v2 {
    use super::*;
    both_backends!(
        v2_refusals_of_a_send_have_their_messages,
        v2_refusals_of_a_check_have_their_messages,
        v2_switching_numbers_cancels_the_running_request,
    );
}

async fn logged_in(app: &TestApp) -> Browser {
    let b = app.browser();
    b.login("test", "test1234").await;
    b
}

async fn send(b: &Browser, number: &str) -> crate::helpers::Page {
    b.submit("/2fa/", "/2fa/create/", &[("number", number)])
        .await
}

async fn wrong_code_then_right_code(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = logged_in(&app).await;
    let sent = send(&b, PHONE).await;
    assert_eq!(sent.location.as_deref(), Some("/2fa/verify/?next=/polls/"));
    let page = b.get("/2fa/verify/").await;
    assert!(page.has("Type in the code from the text message."));
    // Said once (the message), not twice (the message and the card).
    assert_eq!(page.body.matches("We have sent a code").count(), 1);
    assert!(page.has("We have sent a code to +44 •••• ••3456."));
    assert!(page.has("Send a new code") && page.has("Use a different number"));
    let code = app.code_for(PHONE_E164).await;
    assert_eq!(code.len(), 6);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let page = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", wrong)])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.has("That code is not right. Please try again."));
    assert_eq!(
        b.get("/polls/1/").await.location.as_deref(),
        Some("/2fa/?next=/polls/1/")
    );
    let page = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    assert_eq!(page.location.as_deref(), Some("/polls/"));
    assert_eq!(b.get("/polls/1/").await.status, StatusCode::OK);
    // The code is single use: the request is over.
    let again = b
        .post_raw(
            "/2fa/confirm/",
            &[
                ("code", &code),
                ("csrf_token", &b.get("/polls/").await.csrf().unwrap()),
            ],
        )
        .await;
    assert!(again.location.unwrap().starts_with("/2fa/"));
}

async fn verification_renews_the_session_id(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = logged_in(&app).await;
    let before = b.session_cookie().unwrap();
    send(&b, PHONE).await;
    let code = app.code_for(PHONE_E164).await;
    let token_before = b.get("/2fa/verify/").await.csrf().unwrap();
    b.submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    let after = b.session_cookie().unwrap();
    assert_ne!(before, after);
    // A new CSRF token too: one read before verification does not work after it.
    let token_after = b.get("/polls/1/").await.csrf().unwrap();
    assert_ne!(token_before, token_after);
    let stale = b
        .post_raw(
            "/polls/1/vote/",
            &[("choice", "1"), ("csrf_token", &token_before)],
        )
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM votes").await, 0);
    let old = b.with_cookie(&before);
    let res = old.get(b.url("/polls/1/")).send().await.unwrap();
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login/"));
}

async fn a_second_browser_must_verify_again(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let first = app.verified_browser().await;
    assert_eq!(first.get("/polls/1/").await.status, StatusCode::OK);
    let second = logged_in(&app).await;
    assert_eq!(
        second.get("/polls/1/").await.location.as_deref(),
        Some("/2fa/?next=/polls/1/")
    );
}

async fn number_is_bound_only_once_proven(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = logged_in(&app).await;
    send(&b, PHONE).await;
    assert_eq!(app.scalar("SELECT COUNT(*) FROM phone_numbers").await, 0);
    let code = app.code_for(PHONE_E164).await;
    b.submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM phone_numbers WHERE number = '{PHONE_E164}' AND user_id = 1"
        ))
        .await,
        1
    );
}

async fn proven_number_is_masked_and_reused(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    app.verified_browser().await;
    let b = logged_in(&app).await;
    let page = b.get("/2fa/").await;
    assert!(page.has("+44 •••• ••3456"));
    assert!(!page.body.contains("123456"));
    // "Send code" with no number field uses the proven number, no password needed.
    let sent = b.submit("/2fa/", "/2fa/create/", &[]).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    let code = app.code_for(PHONE_E164).await;
    let done = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    assert_eq!(done.location.as_deref(), Some("/polls/"));
}

async fn changing_a_proven_number_needs_the_password(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    app.verified_browser().await;
    let b = logged_in(&app).await;
    let page = b.get("/2fa/?change=1").await;
    assert!(page.body.contains("name=\"password\""));
    assert!(
        page.body
            .contains("autocomplete=\"current-password\" required"),
        "the browser asks for it too"
    );
    let other = "+44 7400 654321";
    for pw in ["", "wrong-password"] {
        let page = b
            .submit(
                "/2fa/?change=1",
                "/2fa/create/",
                &[("number", other), ("password", pw)],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{pw:?}");
        assert!(page.has("To change your phone number, enter your current password."));
    }
    assert!(app.no_code_sent());
    let page = b
        .submit(
            "/2fa/?change=1",
            "/2fa/create/",
            &[("number", other), ("password", "test1234")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let code = app.code_for("+447400654321").await;
    b.submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM phone_numbers WHERE number = '+447400654321'")
            .await,
        1
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM phone_numbers").await, 1);
}

async fn switching_number_before_it_is_proven(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = logged_in(&app).await;
    send(&b, PHONE).await;
    let _first = app.code_for(PHONE_E164).await;
    let page = b.get("/2fa/?change=1").await;
    assert!(
        page.body.contains("value=\"+447911123456\""),
        "the pending number is offered for editing"
    );
    assert!(
        !page.body.contains("name=\"password\""),
        "no proven number: no password asked"
    );
    let sent = send(&b, "+44 7400 654321").await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    let code = app.code_for("+447400654321").await;
    assert!(b.get("/2fa/verify/").await.has("+44 •••• ••4321"));
    b.submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM phone_numbers WHERE number = '+447400654321'")
            .await,
        1
    );
}

async fn a_number_belongs_to_one_account(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    app.verified_browser().await;
    let b = app.browser();
    b.register("mallory").await;
    let page = send(&b, PHONE).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.has("This number is already verified by another account."));
    assert!(app.no_code_sent());
}

fn limits(
    user: &str,
    number: &str,
    ip: &str,
    code: &str,
) -> impl FnOnce(&mut pollstr::config::Config) {
    let (user, number, ip, code) = (
        user.to_string(),
        number.to_string(),
        ip.to_string(),
        code.to_string(),
    );
    move |c| {
        c.limits.sms_per_user = Limit::parse_list(&user).unwrap();
        c.limits.sms_per_number = Limit::parse_list(&number).unwrap();
        c.limits.sms_per_ip = Limit::parse_list(&ip).unwrap();
        c.limits.code_per_user = Limit::parse_list(&code).unwrap();
    }
}

async fn seeded_with(
    backend: Backend,
    tweak: impl FnOnce(&mut pollstr::config::Config),
) -> TestApp {
    let app = spawn_app_with(backend, tweak, None).await;
    app.load(SEED).await;
    app
}

async fn sms_limit_per_user(backend: Backend) {
    // Defaults: 3 per 10 minutes per user.
    let app = TestApp::seeded(backend).await;
    let b = logged_in(&app).await;
    for i in 0..3 {
        let page = send(&b, &format!("+44 7400 30000{i}")).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "send {i}");
        app.code_for(&format!("+44740030000{i}")).await;
    }
    let page = send(&b, "+44 7400 300009").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        page.has("Too many codes were sent.") && page.has("please try again in 10 minutes"),
        "{}",
        page.text()
    );
    // The oldest of the three sends leaves the 10-minute window in a little under 600 s.
    let wait = page.retry_after().expect("Retry-After");
    assert!((570..=600).contains(&wait), "Retry-After: {wait}");
    assert!(app.no_code_sent(), "a refused send reaches no API");
}

async fn sms_limit_per_number_across_accounts(backend: Backend) {
    let app = seeded_with(backend, limits("100/1h", "2/10m", "100/1h", "5/15m")).await;
    let a = logged_in(&app).await;
    for _ in 0..2 {
        // The second send hits the running request (status 10): still counted.
        assert_eq!(send(&a, PHONE).await.status, StatusCode::SEE_OTHER);
    }
    let b = app.browser();
    b.register("other").await;
    let page = send(&b, PHONE).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
}

async fn sms_limit_per_ip(backend: Backend) {
    let app = seeded_with(backend, limits("100/1h", "100/1h", "2/1h", "5/15m")).await;
    let b = logged_in(&app).await;
    send(&b, "+44 7400 400001").await;
    send(&b, "+44 7400 400002").await;
    let c = app.browser();
    c.register("other").await;
    let page = send(&c, "+44 7400 400003").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.has("try again in 60 minutes"), "{}", page.text());
}

async fn wrong_code_limit_per_user(backend: Backend) {
    let app = seeded_with(backend, limits("100/1h", "100/1h", "100/1h", "4/15m")).await;
    let b = logged_in(&app).await;
    // Two requests, two wrong codes each (Vonage's own limit is 3 per request).
    for n in ["+44 7400 500001", "+44 7400 500002"] {
        send(&b, n).await;
        for _ in 0..2 {
            let page = b
                .submit("/2fa/verify/", "/2fa/confirm/", &[("code", "000001")])
                .await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST);
        }
    }
    let before = app
        .scalar("SELECT CAST(COALESCE(SUM(wrong_codes), 0) AS BIGINT) FROM console_verify_requests")
        .await;
    let page = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", "000001")])
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        page.has("Too many wrong codes. Please wait 15 minutes before trying again."),
        "{}",
        page.text()
    );
    let wait = page.retry_after().expect("Retry-After");
    assert!((870..=900).contains(&wait), "Retry-After: {wait}");
    // Refused before reaching the provider: its attempt count did not move.
    if app.provider == Provider::Console {
        assert_eq!(
            app.scalar(
                "SELECT CAST(COALESCE(SUM(wrong_codes), 0) AS BIGINT) FROM console_verify_requests"
            )
            .await,
            before
        );
    }
}

async fn three_wrong_codes_end_the_request(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = logged_in(&app).await;
    send(&b, PHONE).await;
    let code = app.code_for(PHONE_E164).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..2 {
        b.submit("/2fa/verify/", "/2fa/confirm/", &[("code", wrong)])
            .await;
    }
    let page = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", wrong)])
        .await;
    assert_eq!(page.location.as_deref(), Some("/2fa/?next=/polls/"));
    let page = b.get("/2fa/").await;
    assert!(page.has("That code was wrong too many times, so it no longer works. Send a new code."));
    // The right code no longer works on that request.
    let csrf = page.csrf().unwrap();
    let late = b
        .post_raw("/2fa/confirm/", &[("code", &code), ("csrf_token", &csrf)])
        .await;
    assert!(late.location.unwrap().starts_with("/2fa/"));
    assert_eq!(
        b.get("/polls/1/").await.location.as_deref(),
        Some("/2fa/?next=/polls/1/")
    );
    // A new code works.
    send(&b, PHONE).await;
    let code = app.code_for(PHONE_E164).await;
    let done = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    assert_eq!(done.location.as_deref(), Some("/polls/"));
}

async fn second_send_continues_the_running_request(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = logged_in(&app).await;
    send(&b, PHONE).await;
    let code = app.code_for(PHONE_E164).await;
    let again = b.submit("/2fa/verify/", "/2fa/create/", &[]).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let page = b.get("/2fa/verify/").await;
    assert!(
        page.has("A code was already sent to +44 •••• ••3456 a moment ago and is still valid."),
        "{}",
        page.text()
    );
    assert!(app.no_code_sent());
    let done = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    assert_eq!(done.location.as_deref(), Some("/polls/"));
}

async fn bad_numbers_and_codes_are_messages(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = logged_in(&app).await;
    for (n, msg) in [
        ("", "Enter your phone number."),
        ("hello", "Enter a phone number using digits"),
        ("07911 123456", "Enter the number in international format"),
        ("+44 12", "not a valid phone number"),
        (&"9".repeat(100), "Enter a phone number using digits"),
    ] {
        let page = b.submit("/2fa/", "/2fa/create/", &[("number", n)]).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{n}");
        assert!(page.has(msg), "{n}: {}", page.text());
    }
    assert!(app.no_code_sent());
    send(&b, PHONE).await;
    for code in ["", "12345", "1234567", "abcdef", "12 34 5x"] {
        let page = b
            .submit("/2fa/verify/", "/2fa/confirm/", &[("code", code)])
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{code}");
        assert!(page.has("Enter the 6-digit code from the text message."));
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM limit_events WHERE scope = 'code_user'")
            .await,
        0
    );
    // Spaces inside a code are forgiven.
    let code = app.code_for(PHONE_E164).await;
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    let done = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &spaced)])
        .await;
    assert_eq!(done.location.as_deref(), Some("/polls/"));
}

async fn verify_pages_need_login(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    let page = b.get("/2fa/?next=/polls/1/").await;
    assert_eq!(
        page.location.as_deref(),
        Some("/login/?next=/2fa/%3Fnext%3D/polls/1/")
    );
    let (_, login) = b.follow(page).await;
    assert!(login
        .body
        .contains("name=\"next\" value=\"/2fa/?next=/polls/1/\""));
    assert!(b
        .get("/2fa/verify/")
        .await
        .location
        .unwrap()
        .starts_with("/login/"));
    // Logged in without a pending request: the code page sends you to the number page.
    let b = logged_in(&app).await;
    assert_eq!(
        b.get("/2fa/verify/?next=/polls/2/")
            .await
            .location
            .as_deref(),
        Some("/2fa/?next=/polls/2/")
    );
}

async fn vonage_app(backend: Backend, server: &MockServer, timeout: Duration) -> TestApp {
    let verifier = VonageVerifier::new(VonageConfig {
        api_key: "key".into(),
        api_secret: "very-secret".into(),
        brand: "Pollstr".into(),
        base_url: server.uri(),
        timeout,
    })
    .unwrap();
    // Room for the sends these tests make in a row (the limits have their own tests).
    let app = spawn_app_with(
        backend,
        |c| {
            c.limits.sms_per_user = Limit::parse_list("10/10m").unwrap();
            c.limits.sms_per_number = Limit::parse_list("10/10m").unwrap();
        },
        Some(Arc::new(verifier)),
    )
    .await;
    app.load(SEED).await;
    app
}

fn reply(body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

async fn vonage_statuses_have_messages(backend: Backend) {
    let start_cases = [
        (
            "3",
            StatusCode::UNPROCESSABLE_ENTITY,
            "This number cannot be verified.",
        ),
        (
            "7",
            StatusCode::UNPROCESSABLE_ENTITY,
            "This number cannot be verified.",
        ),
        (
            "15",
            StatusCode::UNPROCESSABLE_ENTITY,
            "This number cannot be verified.",
        ),
        (
            "29",
            StatusCode::UNPROCESSABLE_ENTITY,
            "This number cannot be verified.",
        ),
        (
            "1",
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again in a minute.",
        ),
        (
            "5",
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again in a minute.",
        ),
        (
            "9",
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again in a minute.",
        ),
        (
            "2",
            StatusCode::SERVICE_UNAVAILABLE,
            "We cannot send verification codes right now.",
        ),
        (
            "4",
            StatusCode::SERVICE_UNAVAILABLE,
            "We cannot send verification codes right now.",
        ),
        (
            "8",
            StatusCode::SERVICE_UNAVAILABLE,
            "We cannot send verification codes right now.",
        ),
    ];
    for (status, http, msg) in start_cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/json"))
            .respond_with(reply(
                serde_json::json!({"status": status, "error_text": "x"}),
            ))
            .mount(&server)
            .await;
        let app = vonage_app(backend, &server, Duration::from_secs(5)).await;
        let b = logged_in(&app).await;
        let page = send(&b, PHONE).await;
        assert_eq!(page.status, http, "status {status}");
        assert!(page.has(msg), "status {status}: {}", page.text());
        // Never logged out by a provider answer.
        assert!(
            b.get("/polls/").await.has("Signed in as test"),
            "status {status}"
        );
    }

    // Status 10 continues with the running request this account started; then 16, 17 and 6
    // on check.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/json"))
        .respond_with(reply(
            serde_json::json!({"status": "0", "request_id": "abc123"}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/json"))
        .respond_with(reply(
            serde_json::json!({"status": "10", "request_id": "abc123", "error_text": "Concurrent"}),
        ))
        .mount(&server)
        .await;
    let app = vonage_app(backend, &server, Duration::from_secs(5)).await;
    let b = logged_in(&app).await;
    assert_eq!(send(&b, PHONE).await.status, StatusCode::SEE_OTHER);
    assert_eq!(send(&b, PHONE).await.status, StatusCode::SEE_OTHER);
    assert!(b.get("/2fa/verify/").await.has("A code was already sent"));
    let check = |status: &'static str| {
        Mock::given(method("POST"))
            .and(path("/check/json"))
            .respond_with(reply(
                serde_json::json!({"status": status, "request_id": "abc123", "error_text": "x"}),
            ))
            .up_to_n_times(1)
    };
    // Each answer, then the page the user lands on.
    for (status, msg) in [
        ("16", "That code is not right."),
        ("17", "That code was wrong too many times"),
        (
            "6",
            "That code has expired or was already used. Send a new code.",
        ),
    ] {
        if status == "6" {
            // 17 ended the request: a new one.
            send(&b, PHONE).await;
        }
        check(status).mount(&server).await;
        let page = b
            .submit("/2fa/verify/", "/2fa/confirm/", &[("code", "123456")])
            .await;
        assert!(b.follow(page).await.1.has(msg), "status {status}");
    }
    let again = send(&b, PHONE).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.text());
    check("0").mount(&server).await;
    let page = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", "123456")])
        .await;
    assert_eq!(page.location.as_deref(), Some("/polls/"));
    assert_eq!(b.get("/polls/1/").await.status, StatusCode::OK);
}

async fn vonage_transport_faults_have_messages(backend: Backend) {
    let faults = [
        ResponseTemplate::new(500),
        ResponseTemplate::new(200).set_body_string("<html>not json</html>"),
        ResponseTemplate::new(200).set_delay(Duration::from_secs(3)),
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(fault)
            .mount(&server)
            .await;
        let app = vonage_app(backend, &server, Duration::from_millis(500)).await;
        let b = logged_in(&app).await;
        let page = send(&b, PHONE).await;
        assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "fault {i}");
        assert!(
            page.has("We could not reach the SMS service. Please try again in a minute."),
            "fault {i}"
        );
        assert!(b.get("/polls/").await.has("Signed in as test"));
    }
    // Nothing listening at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let server = MockServer::start().await;
    let verifier = VonageVerifier::new(VonageConfig {
        api_key: "key".into(),
        api_secret: "very-secret".into(),
        brand: "Pollstr".into(),
        base_url: format!("http://127.0.0.1:{port}"),
        timeout: Duration::from_secs(2),
    })
    .unwrap();
    drop(server);
    let app = spawn_app_with(backend, |_| {}, Some(Arc::new(verifier))).await;
    app.load(SEED).await;
    let b = logged_in(&app).await;
    let page = send(&b, PHONE).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.has("We could not reach the SMS service."));
}

async fn switching_numbers_cancels_the_running_request(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/json"))
        .respond_with(reply(
            serde_json::json!({"status": "0", "request_id": "first-request"}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/control/json"))
        .and(body_string_contains("request_id=first-request"))
        .and(body_string_contains("cmd=cancel"))
        .respond_with(reply(
            serde_json::json!({"status": "0", "command": "cancel"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let app = vonage_app(backend, &server, Duration::from_secs(5)).await;
    let b = logged_in(&app).await;
    send(&b, PHONE).await;
    // Resending to the same number cancels nothing.
    b.submit("/2fa/verify/", "/2fa/create/", &[]).await;
    let page = b
        .submit(
            "/2fa/?change=1",
            "/2fa/create/",
            &[("number", "+44 7400 654321")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    server.verify().await;
}

/// The original logged the user out on any error; a fault of the Verify API while a code is
/// checked is a message, and the user stays signed in with the code form and the same request.
async fn faults_while_checking_a_code_keep_the_user_signed_in(backend: Backend) {
    let faults = [
        ResponseTemplate::new(500),
        ResponseTemplate::new(200).set_body_string("<html>not json</html>"),
        ResponseTemplate::new(200).set_delay(Duration::from_secs(3)),
        reply(serde_json::json!({"status": "5", "error_text": "Internal Error"})),
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/json"))
            .respond_with(reply(
                serde_json::json!({"status": "0", "request_id": "the-request"}),
            ))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/check/json"))
            .respond_with(fault)
            .mount(&server)
            .await;
        let app = vonage_app(backend, &server, Duration::from_millis(500)).await;
        let b = logged_in(&app).await;
        assert_eq!(send(&b, PHONE).await.status, StatusCode::SEE_OTHER);
        let page = b
            .submit("/2fa/verify/", "/2fa/confirm/", &[("code", "123456")])
            .await;
        assert!(
            page.status.is_server_error() || page.status == StatusCode::OK,
            "fault {i}: {}",
            page.status
        );
        assert!(page.has("Signed in as test"), "fault {i}: {}", page.text());
        let form = b.get("/2fa/verify/").await;
        assert_eq!(
            form.status,
            StatusCode::OK,
            "fault {i}: still on the code form"
        );
        assert!(form.form("/2fa/confirm/").is_some(), "fault {i}");
    }
}

/// `VERIFY_CHANNEL_TIMEOUT` is the server's to enforce: a code typed after it is refused though
/// the browser's session still names the request. The request's times are moved back in the
/// database instead of waiting.
async fn a_code_past_its_time_is_refused_though_the_browser_still_has_it(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = logged_in(&app).await;
    assert_eq!(send(&b, PHONE).await.status, StatusCode::SEE_OTHER);
    let code = app.code_for(PHONE_E164).await;
    let lived = VerifySettings::default().channel_timeout.as_secs() + 1;
    app.execute(&format!(
        "UPDATE console_verify_requests SET created_at = created_at - {lived}, \
         expires_at = expires_at - {lived}"
    ))
    .await;
    // The code form is still there: the browser does not know.
    let page = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    assert_eq!(
        page.location.as_deref(),
        Some("/2fa/?next=/polls/"),
        "{}",
        page.text()
    );
    let (_, landed) = b.follow(page).await;
    assert!(
        landed.has("That code has expired or was already used. Send a new code."),
        "{}",
        landed.text()
    );
    assert!(b
        .get("/polls/1/")
        .await
        .location
        .is_some_and(|l| l.starts_with("/2fa/")));
    assert_eq!(app.scalar("SELECT COUNT(*) FROM phone_numbers").await, 0);
}

const V2_KEY: &str = "key-v2";
const V2_REQUEST: &str = "c11236f4-00bf-4b89-84ba-88b25df97315";

/// The app with the Verify v2 client talking to `server`.
async fn v2_app(backend: Backend, server: &MockServer) -> TestApp {
    let verifier = VonageV2Verifier::new(
        VonageConfig {
            api_key: V2_KEY.into(),
            api_secret: "very-secret".into(),
            brand: "Pollstr".into(),
            base_url: server.uri(),
            timeout: Duration::from_secs(5),
        },
        None,
        VerifySettings::default(),
    )
    .unwrap();
    let app = spawn_app_with(
        backend,
        |c| {
            c.limits.sms_per_user = Limit::parse_list("10/10m").unwrap();
            c.limits.sms_per_number = Limit::parse_list("10/10m").unwrap();
        },
        Some(Arc::new(verifier)),
    )
    .await;
    app.load(SEED).await;
    app
}

/// `POST /` answered 202 with [`V2_REQUEST`].
fn v2_started() -> Mock {
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({ "request_id": V2_REQUEST })))
}

/// A 422 whose `invalid_parameters` name `field`.
fn invalid(field: &str) -> ResponseTemplate {
    problem_with(
        422,
        json!({ "invalid_parameters": [{ "name": field, "reason": "Invalid value" }] }),
        "Invalid params",
        "The value of one or more parameters is invalid.",
    )
}

/// The README's "Verify v2 answer" table for a send: each refusal, the page the user gets.
async fn v2_refusals_of_a_send_have_their_messages(backend: Backend) {
    let cases = [
        (
            problem_with(429, json!({}), "Rate Limit Hit", "wait")
                .insert_header("retry-after", "42"),
            StatusCode::SERVICE_UNAVAILABLE,
            "The SMS service is busy right now. Please try again in 42 seconds.",
            Some(42),
        ),
        (
            invalid("workflow[0].to"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "This number cannot be verified. Please use a different number.",
            None,
        ),
        // Not the number: our request, so the generic message (and an error in the log).
        (
            invalid("brand"),
            StatusCode::SERVICE_UNAVAILABLE,
            "We cannot send verification codes right now.",
            None,
        ),
        (
            problem_with(401, json!({}), "Unauthorized", "Invalid credentials"),
            StatusCode::SERVICE_UNAVAILABLE,
            "We cannot send verification codes right now.",
            None,
        ),
    ];
    for (i, (reply, status, message, wait)) in cases.into_iter().enumerate() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/"))
            .respond_with(reply)
            .expect(1)
            .mount(&server)
            .await;
        let app = v2_app(backend, &server).await;
        let b = logged_in(&app).await;
        let page = send(&b, PHONE).await;
        assert_eq!(page.status, status, "case {i}: {}", page.text());
        assert!(page.has(message), "case {i}: {}", page.text());
        assert_eq!(page.retry_after(), wait, "case {i}");
        assert!(page.has("Signed in as test"), "case {i}");
        server.verify().await;
    }
}

/// The README's "Verify v2 answer" table for a check: 404 and 410 end the request, with their
/// messages; the user is sent back to ask for a new code.
async fn v2_refusals_of_a_check_have_their_messages(backend: Backend) {
    for (status, message) in [
        (
            404,
            "That code has expired or was already used. Send a new code.",
        ),
        (
            410,
            "That code was wrong too many times, so it no longer works. Send a new code.",
        ),
    ] {
        let server = MockServer::start().await;
        v2_started().mount(&server).await;
        Mock::given(method("POST"))
            .and(path(format!("/{V2_REQUEST}")))
            .respond_with(problem_with(status, json!({}), "Refused", "x"))
            .expect(1)
            .mount(&server)
            .await;
        let app = v2_app(backend, &server).await;
        let b = logged_in(&app).await;
        assert_eq!(send(&b, PHONE).await.status, StatusCode::SEE_OTHER);
        let page = b
            .submit("/2fa/verify/", "/2fa/confirm/", &[("code", "123456")])
            .await;
        assert_eq!(
            page.location.as_deref(),
            Some("/2fa/?next=/polls/"),
            "{status}"
        );
        let (_, landed) = b.follow(page).await;
        assert!(landed.has(message), "{status}: {}", landed.text());
        // The request is over: no code form to type into.
        assert!(b.get("/2fa/verify/").await.location.is_some(), "{status}");
        server.verify().await;
    }
}

/// Switching to another number before the first is proven cancels the running request
/// (`DELETE /{request_id}`), once; a resend to the same number cancels nothing.
async fn v2_switching_numbers_cancels_the_running_request(backend: Backend) {
    let server = MockServer::start().await;
    v2_started().mount(&server).await;
    Mock::given(method("DELETE"))
        .and(path(format!("/{V2_REQUEST}")))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex("^/.+"))
        .respond_with(ResponseTemplate::new(404))
        .expect(0)
        .mount(&server)
        .await;
    let app = v2_app(backend, &server).await;
    let b = logged_in(&app).await;
    assert_eq!(send(&b, PHONE).await.status, StatusCode::SEE_OTHER);
    b.submit("/2fa/verify/", "/2fa/create/", &[]).await;
    let page = b
        .submit(
            "/2fa/?change=1",
            "/2fa/create/",
            &[("number", "+44 7400 654321")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
    server.verify().await;
}
