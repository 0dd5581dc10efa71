//! The Vonage Verify v1 client against a wiremock fake of the API.
//!
//! Every test starts its own `MockServer`. Each mock accepts only the exact form the Verify API
//! expects (Vonage's Verify v1 reference; `tests/specs/verify.yml`) and must be hit exactly
//! once, so a test that checks an outcome also checks the request that led to it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pollstr::config::VonageConfig;
use pollstr::two_factor::sms::phone::PhoneNumber;
use pollstr::two_factor::sms::vonage::VonageVerifier;
use pollstr::two_factor::sms::{CheckOutcome, StartOutcome, Verifier, VerifyError};
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

const API_KEY: &str = "key-abc123";
const API_SECRET: &str = "s3cr3t-VeryPrivate-42";
const BRAND: &str = "Pollstr";
const REQUEST_ID: &str = "abcdef0123456789abcdef0123456789";
const CODE: &str = "123456";
const FORM: &str = "application/x-www-form-urlencoded";

const START: &str = "/json";
const CHECK: &str = "/check/json";
const CONTROL: &str = "/control/json";

// ---------------------------------------------------------------------------------------------
// Helpers

fn config(base_url: &str, timeout: Duration) -> VonageConfig {
    VonageConfig {
        api_key: API_KEY.into(),
        api_secret: API_SECRET.into(),
        brand: BRAND.into(),
        base_url: base_url.into(),
        timeout,
    }
}

fn verifier_for(base_url: &str, timeout: Duration) -> VonageVerifier {
    VonageVerifier::new(config(base_url, timeout)).expect("build the Vonage client")
}

fn number() -> PhoneNumber {
    PhoneNumber::parse("+44 7911 123456", None).expect("a valid UK mobile number")
}

/// Matches a form-encoded body holding exactly these fields, each once, and nothing else.
struct FormIs(HashMap<String, String>);

impl FormIs {
    fn new(fields: &[(&str, &str)]) -> FormIs {
        FormIs(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl Match for FormIs {
    fn matches(&self, request: &Request) -> bool {
        let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&request.body) else {
            return false;
        };
        let n = pairs.len();
        let got: HashMap<String, String> = pairs.into_iter().collect();
        got.len() == n && got == self.0
    }
}

fn start_form() -> FormIs {
    FormIs::new(&[
        ("api_key", API_KEY),
        ("api_secret", API_SECRET),
        ("number", "447911123456"),
        ("brand", BRAND),
        ("code_length", "6"),
    ])
}

fn check_form() -> FormIs {
    FormIs::new(&[
        ("api_key", API_KEY),
        ("api_secret", API_SECRET),
        ("request_id", REQUEST_ID),
        ("code", CODE),
    ])
}

fn cancel_form() -> FormIs {
    FormIs::new(&[
        ("api_key", API_KEY),
        ("api_secret", API_SECRET),
        ("request_id", REQUEST_ID),
        ("cmd", "cancel"),
    ])
}

/// A fresh server that answers `reply` to one exact POST of `form` to `endpoint`, and fails
/// its verification unless it got exactly one such request.
async fn server(label: &str, endpoint: &str, form: FormIs, reply: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(endpoint))
        .and(header("content-type", FORM))
        .and(form)
        .respond_with(reply)
        .expect(1)
        .named(label.to_string())
        .mount(&server)
        .await;
    server
}

fn json_reply(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// A Verify error reply: HTTP 200 with a non-zero status.
fn error_reply(status: &str, request_id: Option<&str>) -> Value {
    let mut body = json!({ "status": status, "error_text": text_for(status) });
    if let Some(rid) = request_id {
        body["request_id"] = json!(rid);
    }
    body
}

fn text_for(status: &str) -> String {
    format!("error text for status {status}")
}

async fn start_answering(
    label: &str,
    reply: ResponseTemplate,
) -> Result<StartOutcome, VerifyError> {
    let server = server(label, START, start_form(), reply).await;
    let res = verifier_for(&server.uri(), Duration::from_secs(5))
        .start(&number(), "u1")
        .await;
    server.verify().await;
    res
}

async fn check_answering(
    label: &str,
    reply: ResponseTemplate,
) -> Result<CheckOutcome, VerifyError> {
    let server = server(label, CHECK, check_form(), reply).await;
    let res = verifier_for(&server.uri(), Duration::from_secs(5))
        .check(REQUEST_ID, CODE)
        .await;
    server.verify().await;
    res
}

async fn cancel_answering(label: &str, reply: ResponseTemplate) -> Result<(), VerifyError> {
    let server = server(label, CONTROL, cancel_form(), reply).await;
    let res = verifier_for(&server.uri(), Duration::from_secs(5))
        .cancel(REQUEST_ID)
        .await;
    server.verify().await;
    res
}

/// A comparable view of a client result: the error variants with what they carry.
#[derive(Debug, PartialEq, Eq)]
enum Got<T> {
    Ok(T),
    Busy { status: String, text: String },
    Misconfigured { status: String, text: String },
    Transport,
}

fn got<T>(res: Result<T, VerifyError>) -> Got<T> {
    match res {
        Ok(v) => Got::Ok(v),
        Err(VerifyError::Busy { status, text, .. }) => Got::Busy { status, text },
        Err(VerifyError::Misconfigured { status, text }) => Got::Misconfigured { status, text },
        Err(VerifyError::Transport(_)) => Got::Transport,
    }
}

fn busy<T>(status: &str) -> Got<T> {
    Got::Busy {
        status: status.into(),
        text: text_for(status),
    }
}

fn misconfigured<T>(status: &str) -> Got<T> {
    Got::Misconfigured {
        status: status.into(),
        text: text_for(status),
    }
}

/// Fails unless `err` is a transport error whose texts leave out the API secret.
fn assert_transport_without_secret<T: std::fmt::Debug>(case: &str, res: Result<T, VerifyError>) {
    match res {
        Err(e @ VerifyError::Transport(_)) => assert_no_secret(case, &e),
        other => panic!("{case}: expected Err(Transport), got {other:?}"),
    }
}

fn assert_no_secret(case: &str, e: &VerifyError) {
    let shown = format!("{e}");
    let debug = format!("{e:?}");
    assert!(
        !shown.contains(API_SECRET),
        "{case}: the secret is in the error's Display text: {shown}"
    );
    assert!(
        !debug.contains(API_SECRET),
        "{case}: the secret is in the error's Debug text: {debug}"
    );
}

/// A base URL where nothing listens: a port the OS just handed out and took back.
fn refused_base_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

// ---------------------------------------------------------------------------------------------
// The requests on the wire

#[tokio::test]
async fn start_posts_the_exact_form() {
    let res = start_answering(
        "start: exact form",
        json_reply(json!({ "request_id": REQUEST_ID, "status": "0" })),
    )
    .await;
    assert_eq!(
        got(res),
        Got::Ok(StartOutcome::Started {
            request_id: REQUEST_ID.into()
        })
    );
}

#[tokio::test]
async fn check_posts_the_exact_form() {
    let res = check_answering(
        "check: exact form",
        json_reply(json!({ "request_id": REQUEST_ID, "status": "0" })),
    )
    .await;
    assert_eq!(got(res), Got::Ok(CheckOutcome::Verified));
}

#[tokio::test]
async fn cancel_posts_the_exact_form() {
    let res = cancel_answering(
        "cancel: exact form",
        json_reply(json!({ "status": "0", "command": "cancel" })),
    )
    .await;
    assert_eq!(got(res), Got::Ok(()));
}

#[tokio::test]
async fn the_form_matcher_is_exact() {
    let parse = |body: &str| Request {
        url: "http://localhost/json".parse().unwrap(),
        method: wiremock::http::Method::POST,
        headers: Default::default(),
        body: body.as_bytes().to_vec(),
    };
    let m = FormIs::new(&[("a", "1"), ("b", "x y")]);
    assert!(m.matches(&parse("a=1&b=x+y")));
    assert!(m.matches(&parse("b=x%20y&a=1")));
    assert!(!m.matches(&parse("a=1")), "a field missing");
    assert!(!m.matches(&parse("a=1&b=x+y&c=2")), "an extra field");
    assert!(!m.matches(&parse("a=1&a=1&b=x+y")), "a field twice");
    assert!(!m.matches(&parse("a=2&b=x+y")), "a wrong value");
}

// ---------------------------------------------------------------------------------------------
// Every status, mapped

#[tokio::test]
async fn start_maps_every_status() {
    let started = || {
        Got::Ok(StartOutcome::Started {
            request_id: REQUEST_ID.into(),
        })
    };
    let in_progress = || {
        Got::Ok(StartOutcome::InProgress {
            request_id: Some(REQUEST_ID.into()),
        })
    };
    let rejected = || Got::Ok(StartOutcome::Rejected);
    let cases: Vec<(&str, Option<&str>, Got<StartOutcome>)> = vec![
        ("0", Some(REQUEST_ID), started()),
        ("0", None, Got::Transport),
        ("0", Some(""), Got::Transport),
        ("10", Some(REQUEST_ID), in_progress()),
        // Running, without its id: the app looks for the account's own request.
        (
            "10",
            None,
            Got::Ok(StartOutcome::InProgress { request_id: None }),
        ),
        (
            "10",
            Some(""),
            Got::Ok(StartOutcome::InProgress { request_id: None }),
        ),
        ("3", None, rejected()),
        ("6", Some(""), rejected()),
        ("7", None, rejected()),
        ("15", None, rejected()),
        ("29", None, rejected()),
        ("1", None, busy("1")),
        ("5", None, busy("5")),
        ("9", None, busy("9")),
        ("2", None, misconfigured("2")),
        ("4", None, misconfigured("4")),
        ("8", None, misconfigured("8")),
        ("20", None, misconfigured("20")),
        ("99", None, misconfigured("99")),
    ];
    for (status, request_id, want) in cases {
        let label = format!("start: status {status:?}, request_id {request_id:?}");
        let body = if status == "0" {
            // The success shape has no error_text.
            let mut b = json!({ "status": "0" });
            if let Some(rid) = request_id {
                b["request_id"] = json!(rid);
            }
            b
        } else {
            error_reply(status, request_id)
        };
        let res = start_answering(&label, json_reply(body)).await;
        assert_eq!(got(res), want, "{label}");
    }
}

#[tokio::test]
async fn check_maps_every_status() {
    let cases: Vec<(&str, Got<CheckOutcome>)> = vec![
        ("0", Got::Ok(CheckOutcome::Verified)),
        ("16", Got::Ok(CheckOutcome::WrongCode)),
        ("17", Got::Ok(CheckOutcome::TooManyWrong)),
        ("6", Got::Ok(CheckOutcome::Expired)),
        ("1", busy("1")),
        ("5", busy("5")),
        ("9", busy("9")),
        ("2", misconfigured("2")),
        ("3", misconfigured("3")),
        ("4", misconfigured("4")),
        ("8", misconfigured("8")),
    ];
    for (status, want) in cases {
        let label = format!("check: status {status:?}");
        let body = if status == "0" {
            json!({ "request_id": REQUEST_ID, "status": "0" })
        } else {
            error_reply(status, None)
        };
        let res = check_answering(&label, json_reply(body)).await;
        assert_eq!(got(res), want, "{label}");
    }
}

#[tokio::test]
async fn check_status_0_with_the_full_success_body_is_verified() {
    // The spec's success example, with its price fields the client ignores.
    let body = json!({
        "request_id": REQUEST_ID,
        "event_id": "0A00000012345678",
        "status": "0",
        "price": "0.10000000",
        "currency": "EUR",
        "estimated_price_messages_sent": "0.03330000"
    });
    let res = check_answering("check: status \"0\", spec example", json_reply(body)).await;
    assert_eq!(got(res), Got::Ok(CheckOutcome::Verified));
}

#[tokio::test]
async fn cancel_status_0_is_ok() {
    let res = cancel_answering(
        "cancel: status \"0\"",
        json_reply(json!({ "status": "0", "command": "cancel" })),
    )
    .await;
    assert!(res.is_ok(), "cancel with status 0: {res:?}");
}

#[tokio::test]
async fn cancel_status_19_is_an_error() {
    let reply = json_reply(json!({
        "status": "19",
        "error_text": "Verification request ['abcdef0123456789abcdef0123456789'] can't be cancelled within the first 30 seconds."
    }));
    let res = cancel_answering("cancel: status \"19\"", reply).await;
    let e = res.expect_err("cancel with status 19 must fail");
    assert!(
        e.to_string().contains("19"),
        "the error names the status: {e}"
    );
    assert!(!matches!(e, VerifyError::Transport(_)), "{e:?}");
}

#[tokio::test]
async fn cancel_with_bad_credentials_is_misconfigured() {
    let reply = json_reply(json!({"status": "4", "error_text": "Bad credentials"}));
    let res = cancel_answering("cancel: status \"4\"", reply).await;
    assert!(
        matches!(res, Err(VerifyError::Misconfigured { .. })),
        "{res:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Transport faults

#[tokio::test]
async fn a_reply_slower_than_the_timeout_is_a_transport_error() {
    let server = server(
        "start: too slow",
        START,
        start_form(),
        json_reply(json!({ "request_id": REQUEST_ID, "status": "0" }))
            .set_delay(Duration::from_secs(2)),
    )
    .await;
    let verifier = verifier_for(&server.uri(), Duration::from_millis(200));
    let began = Instant::now();
    let res = verifier.start(&number(), "u1").await;
    let took = began.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "the client waited {took:?}, past its 200 ms timeout"
    );
    assert_transport_without_secret("timeout", res);
    server.verify().await;
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error() {
    let verifier = verifier_for(&refused_base_url(), Duration::from_secs(5));
    assert_transport_without_secret("refused start", verifier.start(&number(), "u1").await);
    assert_transport_without_secret("refused check", verifier.check(REQUEST_ID, CODE).await);
    assert_transport_without_secret("refused cancel", verifier.cancel(REQUEST_ID).await);
}

#[tokio::test]
async fn http_500_is_a_transport_error_and_keeps_the_secret_out() {
    // A server that echoes the form it got: the error must still not carry the secret.
    let echo = format!("internal error handling api_secret={API_SECRET}");
    let res = start_answering(
        "start: HTTP 500",
        ResponseTemplate::new(500).set_body_string(echo.clone()),
    )
    .await;
    assert_transport_without_secret("start HTTP 500", res);
    let res = check_answering(
        "check: HTTP 500",
        ResponseTemplate::new(500).set_body_string(echo),
    )
    .await;
    assert_transport_without_secret("check HTTP 500", res);
}

#[tokio::test]
async fn http_401_is_a_transport_error() {
    let res = start_answering(
        "start: HTTP 401",
        ResponseTemplate::new(401).set_body_json(json!({ "status": "4" })),
    )
    .await;
    assert_transport_without_secret("start HTTP 401", res);
    let res = check_answering(
        "check: HTTP 401",
        ResponseTemplate::new(401).set_body_json(json!({ "status": "4" })),
    )
    .await;
    assert_transport_without_secret("check HTTP 401", res);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_transport_error() {
    let html = || {
        ResponseTemplate::new(200)
            .set_body_raw("<html><body>Bad gateway</body></html>", "text/html")
    };
    assert_transport_without_secret(
        "start <html>",
        start_answering("start: <html>", html()).await,
    );
    assert_transport_without_secret(
        "check <html>",
        check_answering("check: <html>", html()).await,
    );
    assert_transport_without_secret(
        "cancel <html>",
        cancel_answering("cancel: <html>", html()).await,
    );
}

#[tokio::test]
async fn json_without_a_status_is_a_transport_error() {
    let no_status = || json_reply(json!({ "request_id": REQUEST_ID, "error_text": "?" }));
    assert_transport_without_secret(
        "start without status",
        start_answering("start: no status", no_status()).await,
    );
    assert_transport_without_secret(
        "check without status",
        check_answering("check: no status", no_status()).await,
    );
    assert_transport_without_secret(
        "cancel without status",
        cancel_answering("cancel: no status", no_status()).await,
    );
}

// ---------------------------------------------------------------------------------------------
// The secret stays out of logs

#[tokio::test]
async fn provider_errors_keep_the_secret_out() {
    for status in ["1", "4", "99"] {
        let label = format!("start: status {status:?}");
        let e = start_answering(&label, json_reply(error_reply(status, None)))
            .await
            .expect_err("an error status");
        assert_no_secret(&label, &e);
    }
}

#[test]
fn config_debug_hides_the_secret() {
    let shown = format!("{:?}", config("http://127.0.0.1:1", Duration::from_secs(1)));
    assert!(!shown.contains(API_SECRET), "{shown}");
    assert!(shown.contains(API_KEY), "the key is not secret: {shown}");
}
