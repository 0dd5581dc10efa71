//! A stateful fake of the Vonage Verify v2 API, for running the 2FA tests through the real v2
//! client. It behaves as the API reference says: Basic auth checked (401 problem otherwise), the
//! request body checked (422 with `invalid_parameters`), one running verification per number
//! (409, without the running request's id, as the spec's example), a 6-digit code per channel
//! ("sent" to the test's phone: the same outbox the console provider uses), 400 for a wrong code,
//! 410 once three wrong codes ended the request, 404 for an unknown or finished one,
//! `next_workflow` to the next channel, `DELETE` to cancel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

pub const KEY: &str = "fakekey1";
pub const SECRET: &str = "FakeSecret123!";
/// How long a channel's code lives (the app is configured with the same).
pub const CHANNEL_TIMEOUT: Duration = Duration::from_secs(300);

struct Verification {
    to: String,
    code: String,
    channels: usize,
    channel: usize,
    wrong: u32,
    done: bool,
    deadline: Instant,
}

impl Verification {
    fn running(&self) -> bool {
        !self.done && Instant::now() < self.deadline
    }
}

#[derive(Clone)]
struct Fake {
    requests: Arc<Mutex<HashMap<String, Verification>>>,
    outbox: UnboundedSender<(String, String)>,
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({
        "type": format!("https://developer.vonage.com/en/api-errors/verify-v2#{}", title.to_lowercase().replace(' ', "-")),
        "title": title,
        "detail": detail,
        "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
    });
    (
        status,
        [("content-type", "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:{SECRET}"))
    );
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected)
}

fn code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// Starts the fake on a random port; every code it "sends" goes to `outbox` as (E.164, code).
pub async fn start(outbox: UnboundedSender<(String, String)>) -> String {
    let fake = Fake {
        requests: Arc::default(),
        outbox,
    };
    let app = Router::new()
        .route("/", post(new_request))
        .route("/{id}", post(check).delete(cancel))
        .route("/{id}/next_workflow", post(next_workflow))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn new_request(State(f): State<Fake>, headers: HeaderMap, body: String) -> Response {
    if !authorized(&headers) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Invalid credentials",
        );
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid params",
            "not JSON",
        );
    };
    let workflow = v["workflow"].as_array().cloned().unwrap_or_default();
    let to = workflow
        .first()
        .and_then(|s| s["to"].as_str())
        .unwrap_or_default()
        .to_string();
    let valid = v["brand"]
        .as_str()
        .is_some_and(|b| !b.is_empty() && b.len() <= 18)
        && v["code_length"] == 6
        && v["client_ref"].as_str().is_some()
        && v["locale"].as_str().is_some()
        && v["channel_timeout"]
            .as_u64()
            .is_some_and(|t| (15..=900).contains(&t))
        && (1..=3).contains(&workflow.len())
        && !to.is_empty()
        && to.bytes().all(|b| b.is_ascii_digit())
        && workflow.iter().all(|s| {
            s["to"] == to.as_str() && matches!(s["channel"].as_str(), Some("sms" | "voice"))
        });
    if !valid {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid params",
            &format!("the request body does not follow the spec: {body}"),
        );
    }
    let mut requests = f.requests.lock().unwrap();
    if requests.values().any(|r| r.to == to && r.running()) {
        return problem(
            StatusCode::CONFLICT,
            "Conflict",
            "Concurrent verifications to the same number are not allowed.",
        );
    }
    let id = format!(
        "{}-{}",
        pollstr::crypto::random_hex(4),
        pollstr::crypto::random_hex(12)
    );
    let code = code();
    let _ = f.outbox.send((format!("+{to}"), code.clone()));
    requests.insert(
        id.clone(),
        Verification {
            to,
            code,
            channels: workflow.len(),
            channel: 0,
            wrong: 0,
            done: false,
            deadline: Instant::now() + CHANNEL_TIMEOUT,
        },
    );
    (StatusCode::ACCEPTED, Json(json!({ "request_id": id }))).into_response()
}

async fn check(
    State(f): State<Fake>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&headers) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Invalid credentials",
        );
    }
    let mut requests = f.requests.lock().unwrap();
    let Some(r) = requests.get_mut(&id).filter(|r| r.running()) else {
        return problem(StatusCode::NOT_FOUND, "Not Found", "Request not found");
    };
    if body["code"].as_str() == Some(r.code.as_str()) {
        r.done = true;
        return (
            StatusCode::OK,
            Json(json!({ "request_id": id, "status": "completed" })),
        )
            .into_response();
    }
    r.wrong += 1;
    if r.wrong >= 3 {
        r.done = true;
        return problem(
            StatusCode::GONE,
            "Gone",
            "An incorrect code has been provided too many times. Workflow terminated.",
        );
    }
    problem(
        StatusCode::BAD_REQUEST,
        "Invalid Code",
        "The code you provided does not match the expected value.",
    )
}

async fn cancel(State(f): State<Fake>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Invalid credentials",
        );
    }
    let mut requests = f.requests.lock().unwrap();
    match requests.get_mut(&id).filter(|r| r.running()) {
        Some(r) => {
            r.done = true;
            StatusCode::NO_CONTENT.into_response()
        }
        None => problem(StatusCode::NOT_FOUND, "Not Found", "Request not found"),
    }
}

async fn next_workflow(
    State(f): State<Fake>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Invalid credentials",
        );
    }
    let mut requests = f.requests.lock().unwrap();
    let Some(r) = requests.get_mut(&id).filter(|r| r.running()) else {
        return problem(StatusCode::NOT_FOUND, "Not Found", "Request not found");
    };
    if r.channel + 1 >= r.channels {
        return problem(
            StatusCode::CONFLICT,
            "Conflict",
            "There are no more workflows to move to.",
        );
    }
    r.channel += 1;
    r.code = code();
    r.deadline = Instant::now() + CHANNEL_TIMEOUT;
    let _ = f.outbox.send((format!("+{}", r.to), r.code.clone()));
    StatusCode::OK.into_response()
}
