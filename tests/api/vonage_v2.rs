//! The Vonage Verify v2 client against wiremock fakes of the API: the exact JSON bodies and
//! auth headers it sends, and an outcome for every status and fault the API reference lists
//! (RFC 7807 problem bodies), plus timeouts and bodies that are not JSON.

use std::time::Duration;

use base64::Engine;
use pollstr::config::{VerifyChannel, VerifySettings, VonageApplication, VonageConfig};
use pollstr::two_factor::sms::phone::PhoneNumber;
use pollstr::two_factor::sms::vonage_v2::VonageV2Verifier;
use pollstr::two_factor::sms::{CheckOutcome, NextOutcome, StartOutcome, Verifier, VerifyError};
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY: &str = "key-abc123";
const SECRET: &str = "s3cr3t-VeryPrivate-42";
const REQUEST_ID: &str = "c11236f4-00bf-4b89-84ba-88b25df97315";
const CODE: &str = "123456";
const APP_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";

fn config(base_url: &str) -> VonageConfig {
    VonageConfig {
        api_key: KEY.into(),
        api_secret: SECRET.into(),
        brand: "Pollstr".into(),
        base_url: base_url.into(),
        timeout: Duration::from_secs(2),
    }
}

fn settings() -> VerifySettings {
    VerifySettings {
        workflow: vec![VerifyChannel::Sms, VerifyChannel::Voice],
        channel_timeout: Duration::from_secs(300),
        locale: "en-gb".into(),
    }
}

fn client(server: &MockServer) -> VonageV2Verifier {
    VonageV2Verifier::new(config(&server.uri()), None, settings()).expect("client")
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:{SECRET}"))
    )
}

fn number() -> PhoneNumber {
    PhoneNumber::parse("+44 7911 123456", None).unwrap()
}

/// The body of `POST /` for [`number`] with [`settings`], exactly.
fn start_body() -> Value {
    json!({
        "brand": "Pollstr",
        "code_length": 6,
        "channel_timeout": 300,
        "client_ref": "u7",
        "locale": "en-gb",
        "workflow": [
            {"channel": "sms", "to": "447911123456"},
            {"channel": "voice", "to": "447911123456"}
        ]
    })
}

fn problem(status: u16, title: &str, detail: &str) -> ResponseTemplate {
    problem_with(status, json!({}), title, detail)
}

pub fn problem_with(status: u16, extra: Value, title: &str, detail: &str) -> ResponseTemplate {
    let mut body = json!({
        "type": "https://developer.vonage.com/en/api-errors/verify-v2#x",
        "title": title,
        "detail": detail,
        "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    ResponseTemplate::new(status).set_body_raw(body.to_string(), "application/problem+json")
}

/// One exact request (method, path, Basic auth, JSON body if any) answered once with `reply`.
async fn server_for(
    verb: &str,
    at: &str,
    body: Option<Value>,
    reply: ResponseTemplate,
) -> MockServer {
    let server = MockServer::start().await;
    let mut mock = Mock::given(method(verb))
        .and(path(at))
        .and(header("authorization", basic().as_str()));
    if let Some(body) = body {
        mock = mock
            .and(header("content-type", "application/json"))
            .and(body_json(body));
    }
    mock.respond_with(reply).expect(1).mount(&server).await;
    server
}

async fn start_with(reply: ResponseTemplate) -> Result<StartOutcome, VerifyError> {
    let server = server_for("POST", "/", Some(start_body()), reply).await;
    let res = client(&server).start(&number(), "u7").await;
    server.verify().await;
    res
}

async fn check_with(reply: ResponseTemplate) -> Result<CheckOutcome, VerifyError> {
    let at = format!("/{REQUEST_ID}");
    let server = server_for("POST", &at, Some(json!({ "code": CODE })), reply).await;
    let res = client(&server).check(REQUEST_ID, CODE).await;
    server.verify().await;
    res
}

async fn next_with(reply: ResponseTemplate) -> Result<NextOutcome, VerifyError> {
    let at = format!("/{REQUEST_ID}/next_workflow");
    let server = server_for("POST", &at, None, reply).await;
    let res = client(&server).next_channel(REQUEST_ID).await;
    server.verify().await;
    res
}

async fn cancel_with(reply: ResponseTemplate) -> Result<(), VerifyError> {
    let at = format!("/{REQUEST_ID}");
    let server = server_for("DELETE", &at, None, reply).await;
    let res = client(&server).cancel(REQUEST_ID).await;
    server.verify().await;
    res
}

fn is_misconfigured<T: std::fmt::Debug>(res: &Result<T, VerifyError>, status: &str) -> bool {
    matches!(res, Err(VerifyError::Misconfigured { status: s, .. }) if s == status)
}

fn is_transport<T>(res: &Result<T, VerifyError>) -> bool {
    matches!(res, Err(VerifyError::Transport(_)))
}

#[tokio::test]
async fn starting_a_verification() {
    let ok =
        start_with(ResponseTemplate::new(202).set_body_json(json!({ "request_id": REQUEST_ID })))
            .await;
    assert_eq!(
        ok.unwrap(),
        StartOutcome::Started {
            request_id: REQUEST_ID.into()
        }
    );
    // 409: one running to this number; the spec's body names no request, some answers do.
    let running = start_with(problem(
        409,
        "Conflict",
        "Concurrent verifications to the same number are not allowed.",
    ))
    .await;
    assert_eq!(
        running.unwrap(),
        StartOutcome::InProgress { request_id: None }
    );
    let named = start_with(problem_with(
        409,
        json!({ "request_id": REQUEST_ID }),
        "Conflict",
        "Concurrent verifications to the same number are not allowed.",
    ))
    .await;
    assert_eq!(
        named.unwrap(),
        StartOutcome::InProgress {
            request_id: Some(REQUEST_ID.into())
        }
    );
    // 422 about the number: the user picks another; about anything else: our setup.
    let bad_number = start_with(problem_with(
        422,
        json!({ "invalid_parameters": [{ "name": "workflow[0].to", "reason": "Invalid phone number" }] }),
        "Invalid params",
        "The value of one or more parameters is invalid",
    ))
    .await;
    assert_eq!(bad_number.unwrap(), StartOutcome::Rejected);
    let bad_brand = start_with(problem_with(
        422,
        json!({ "invalid_parameters": [{ "name": "brand", "reason": "Brand is required" }] }),
        "Invalid params",
        "The value of one or more parameters is invalid",
    ))
    .await;
    match &bad_brand {
        Err(VerifyError::Misconfigured { status, text }) => {
            assert_eq!(status, "422");
            // The log names the field, the title, the detail and the instance.
            for needle in [
                "brand (Brand is required)",
                "Invalid params",
                "The value of one or more parameters is invalid",
                "bf0ca0bf927b3b52e3cb03217e1a1ddf",
            ] {
                assert!(text.contains(needle), "{text}");
            }
        }
        other => panic!("{other:?}"),
    }
    for status in [401, 402, 403, 412] {
        let res = start_with(problem(status, "Unauthorized", "Invalid credentials")).await;
        assert!(
            is_misconfigured(&res, &status.to_string()),
            "{status}: {res:?}"
        );
    }
    // 429: busy, with the wait Vonage asked for.
    let limited = start_with(
        problem(
            429,
            "Rate Limit Hit",
            "Please wait, then retry your request",
        )
        .insert_header("retry-after", "42"),
    )
    .await;
    assert!(
        matches!(
            limited,
            Err(VerifyError::Busy {
                retry_after: Some(42),
                ..
            })
        ),
        "{limited:?}"
    );
    let limited = start_with(problem(429, "Rate Limit Hit", "later")).await;
    assert!(
        matches!(
            limited,
            Err(VerifyError::Busy {
                retry_after: None,
                ..
            })
        ),
        "{limited:?}"
    );
    for reply in [
        problem(500, "Internal Error", "Something went wrong"),
        ResponseTemplate::new(503).set_body_string("<html>down</html>"),
        ResponseTemplate::new(202).set_body_string("<html>not json</html>"),
        ResponseTemplate::new(202).set_body_json(json!({ "check_url": "x" })),
    ] {
        let res = start_with(reply).await;
        assert!(is_transport(&res), "{res:?}");
    }
}

#[tokio::test]
async fn checking_a_code() {
    let ok = check_with(
        ResponseTemplate::new(200)
            .set_body_json(json!({ "request_id": REQUEST_ID, "status": "completed" })),
    )
    .await;
    assert_eq!(ok.unwrap(), CheckOutcome::Verified);
    let odd = check_with(
        ResponseTemplate::new(200)
            .set_body_json(json!({ "request_id": REQUEST_ID, "status": "failed" })),
    )
    .await;
    assert_eq!(
        odd.unwrap(),
        CheckOutcome::Expired,
        "only completed verifies"
    );
    let cases = [
        (400, CheckOutcome::WrongCode),
        (404, CheckOutcome::Expired),
        (410, CheckOutcome::TooManyWrong),
    ];
    for (status, outcome) in cases {
        let res = check_with(problem(status, "t", "d")).await;
        assert_eq!(res.unwrap(), outcome, "{status}");
    }
    let busy = check_with(problem(
        409,
        "Conflict",
        "The current Verify workflow step does not support a code.",
    ))
    .await;
    assert!(matches!(busy, Err(VerifyError::Busy { .. })), "{busy:?}");
    let limited =
        check_with(problem(429, "Rate Limit Hit", "wait").insert_header("retry-after", "7")).await;
    assert!(
        matches!(
            limited,
            Err(VerifyError::Busy {
                retry_after: Some(7),
                ..
            })
        ),
        "{limited:?}"
    );
    for status in [401, 402, 403, 422] {
        let res = check_with(problem(status, "t", "d")).await;
        assert!(
            is_misconfigured(&res, &status.to_string()),
            "{status}: {res:?}"
        );
    }
    for reply in [
        problem(500, "Internal Error", "d"),
        ResponseTemplate::new(200).set_body_string("not json"),
    ] {
        let res = check_with(reply).await;
        assert!(is_transport(&res), "{res:?}");
    }
}

#[tokio::test]
async fn next_channel_and_cancel() {
    assert_eq!(
        next_with(ResponseTemplate::new(200)).await.unwrap(),
        NextOutcome::Moved
    );
    assert_eq!(
        next_with(problem(404, "Not Found", "Request not found"))
            .await
            .unwrap(),
        NextOutcome::Expired
    );
    let conflict = next_with(problem(409, "Conflict", "try later")).await;
    assert!(
        matches!(conflict, Err(VerifyError::Busy { .. })),
        "{conflict:?}"
    );
    assert!(is_misconfigured(
        &next_with(problem(401, "t", "d")).await,
        "401"
    ));
    assert!(is_transport(&next_with(problem(500, "t", "d")).await));

    assert!(cancel_with(ResponseTemplate::new(204)).await.is_ok());
    let gone = cancel_with(problem(404, "Not Found", "Request not found")).await;
    assert!(matches!(gone, Err(VerifyError::Busy { .. })), "{gone:?}");
    assert!(is_misconfigured(
        &cancel_with(problem(402, "t", "d")).await,
        "402"
    ));
    assert!(is_transport(&cancel_with(problem(500, "t", "d")).await));
}

#[tokio::test]
async fn timeouts_are_transport_faults_and_ids_stay_out_of_urls() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(json!({ "request_id": REQUEST_ID }))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let res = client(&server).start(&number(), "u7").await;
    assert!(is_transport(&res), "{res:?}");
    // A request id that is not one never becomes a path.
    let res = client(&server).check("../../admin", CODE).await;
    assert!(
        matches!(res, Err(VerifyError::Misconfigured { .. })),
        "{res:?}"
    );
    let received = server.received_requests().await.unwrap_or_default();
    assert_eq!(received.len(), 1, "only the start reached the server");
}

/// A throwaway RSA key for the application: its PEM (PKCS#8, as Vonage's dashboard gives) and
/// the public key to check signatures with.
fn application_key() -> (String, jsonwebtoken::DecodingKey) {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair as _;
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = pair.as_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let public = jsonwebtoken::DecodingKey::from_rsa_der(pair.public_key().as_ref());
    (pem, public)
}

#[tokio::test]
async fn an_application_signs_each_call_with_a_fresh_jwt() {
    let (pem, public) = application_key();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(body_json(start_body()))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({ "request_id": REQUEST_ID })))
        .expect(2)
        .mount(&server)
        .await;
    let verifier = VonageV2Verifier::new(
        config(&server.uri()),
        Some(VonageApplication {
            id: APP_ID.into(),
            private_key_pem: pem.into_bytes(),
        }),
        settings(),
    )
    .unwrap();
    for _ in 0..2 {
        verifier.start(&number(), "u7").await.unwrap();
    }
    server.verify().await;
    let requests: Vec<Request> = server.received_requests().await.unwrap();
    let mut ids = Vec::new();
    for r in &requests {
        let auth = r.headers.get("authorization").unwrap().to_str().unwrap();
        let token = auth
            .strip_prefix("Bearer ")
            .expect("a bearer token, not Basic");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.required_spec_claims = ["exp".to_string()].into();
        let claims = jsonwebtoken::decode::<Value>(token, &public, &validation)
            .expect("signed with the application's key")
            .claims;
        assert_eq!(claims["application_id"], APP_ID);
        let (iat, exp) = (
            claims["iat"].as_i64().unwrap(),
            claims["exp"].as_i64().unwrap(),
        );
        assert!(exp > iat && exp - iat <= 900, "{claims}");
        ids.push(claims["jti"].as_str().unwrap().to_string());
    }
    assert_ne!(ids[0], ids[1], "each token has its own jti");
}
