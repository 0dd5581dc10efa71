//! `POST /2fa/vonage/events`: Verify v2's status callbacks, for the SMS pumping guard. Served
//! only when `VONAGE_SIGNATURE_SECRET` is set. Each callback must carry a JWT signed with that
//! secret (HS256) in `Authorization: Bearer`, issued within the last five minutes, whose
//! `payload_hash` is the SHA-256 of the body; anything else is answered 401 and not read.
//! A request's summary callback records its outcome on the request it names
//! ([`guard::record_outcome`]); one that did not complete makes the guard judge that country
//! again. Per-channel events are logged only (a channel failing is how a workflow moves on).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::guard;
use crate::state::AppState;
use crate::web::closing;
use crate::web::routes::{post, Routes};

pub const PATH: &str = "/2fa/vonage/events";
/// A callback signed longer ago than this is refused (a replay, or a clock far off).
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// Clock skew allowed the other way.
const MAX_AHEAD: i64 = 60;
/// Callbacks are a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// Outside the session and CSRF layers: a callback comes from Vonage, signed, not from a form.
pub fn router() -> Routes {
    Routes::new().route(PATH, post(receive))
}

#[derive(Deserialize)]
struct Claims {
    iat: i64,
    payload_hash: String,
}

/// The parts of a Verify v2 callback the guard uses: an event (`type` "event": one channel's
/// status) or a summary (`type` "summary": the request's).
#[derive(Deserialize)]
struct Callback {
    request_id: String,
    status: String,
    #[serde(default)]
    r#type: String,
    #[serde(default)]
    channel: String,
}

/// Why a callback is refused (logged; the caller only sees 401).
fn verify_signature(
    secret: &str,
    authorization: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), &'static str> {
    let token = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("no bearer token")?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let key = jsonwebtoken::DecodingKey::from_secret(secret.as_bytes())
        .map_err(|_| "no usable secret")?;
    let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map_err(|_| "bad signature or claims")?
        .claims;
    if claims.iat < now - MAX_AGE.as_secs() as i64 || claims.iat > now + MAX_AHEAD {
        return Err("stale or future iat");
    }
    let hash = hex::encode(Sha256::digest(body));
    if !claims.payload_hash.eq_ignore_ascii_case(&hash) {
        return Err("payload_hash does not match the body");
    }
    Ok(())
}

async fn receive(State(state): State<AppState>, req: Request) -> Response {
    let Some(secret) = state.config.vonage_signature_secret.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let read = axum::body::to_bytes(req.into_body(), MAX_BODY);
    let body = match tokio::time::timeout(state.config.http.body_timeout, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return closing(StatusCode::PAYLOAD_TOO_LARGE.into_response()),
        Err(_) => return closing(StatusCode::REQUEST_TIMEOUT.into_response()),
    };
    if let Err(why) = verify_signature(&secret, authorization.as_deref(), &body, crate::db::now()) {
        tracing::warn!(why, "refused a Verify callback");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Body::empty(),
        )
            .into_response();
    }
    let Ok(callback) = serde_json::from_slice::<Callback>(&body) else {
        return (StatusCode::BAD_REQUEST, "not a Verify callback").into_response();
    };
    tracing::info!(
        request_id = %callback.request_id,
        status = %callback.status,
        kind = %callback.r#type,
        channel = %callback.channel,
        "Verify callback"
    );
    match record(&state, &callback).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not record a Verify callback");
            // Vonage retries a callback that was not accepted.
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

async fn record(state: &AppState, callback: &Callback) -> sqlx::Result<()> {
    let status = callback.status.as_str();
    // Only a request's final state settles it: one channel failing or timing out is how a
    // workflow moves on to the next (the code may still come by voice).
    let outcome = match (callback.r#type.as_str(), status) {
        ("summary", "completed" | "failed" | "expired" | "rejected" | "user_rejected") => status,
        _ => return Ok(()),
    };
    let Some(country) = guard::record_outcome(&state.db, &callback.request_id, outcome).await?
    else {
        return Ok(());
    };
    if outcome != "completed" {
        guard::review(state, &country).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a-signature-secret-of-32-characters!";

    fn token(secret: &str, iat: i64, body: &[u8]) -> String {
        let hash = hex::encode(Sha256::digest(body));
        let claims =
            serde_json::json!({ "iat": iat, "jti": "x", "iss": "Vonage", "payload_hash": hash });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn signatures_are_checked() {
        let now = 1_800_000_000;
        let body = br#"{"request_id":"r","status":"failed","type":"event"}"#;
        let good = format!("Bearer {}", token(SECRET, now - 10, body));
        assert_eq!(verify_signature(SECRET, Some(&good), body, now), Ok(()));
        assert!(verify_signature(SECRET, None, body, now).is_err());
        assert!(verify_signature(SECRET, Some(&good), b"{}", now).is_err());
        let other = format!(
            "Bearer {}",
            token("another-secret-of-32-characters!!!!", now, body)
        );
        assert!(verify_signature(SECRET, Some(&other), body, now).is_err());
        let stale = format!("Bearer {}", token(SECRET, now - 301, body));
        assert!(verify_signature(SECRET, Some(&stale), body, now).is_err());
        let ahead = format!("Bearer {}", token(SECRET, now + 120, body));
        assert!(verify_signature(SECRET, Some(&ahead), body, now).is_err());
    }
}
