//! The Vonage Verify API v2 client: JSON bodies, HTTP Basic auth with the key and secret (or a
//! JWT signed with a Vonage application's private key), real HTTP statuses, and RFC 7807
//! `application/problem+json` errors whose `title`, `detail` and `instance` are logged.
//!
//! `POST /` starts a request with a workflow of channels, `POST /{id}` checks a code,
//! `DELETE /{id}` cancels, `POST /{id}/next_workflow` moves to the next channel.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::phone::PhoneNumber;
use super::verifier::{
    CheckOutcome, NextOutcome, StartOutcome, Verifier, VerifyChannel, VerifyError,
};
use crate::config::{VerifySettings, VonageApplication, VonageConfig};

/// Codes are 6 digits (v2's default of 4 is too weak: ~13 bits).
pub const CODE_LENGTH: u8 = 6;
/// How long an application JWT is valid: one is made for each call.
const JWT_LIFETIME: Duration = Duration::from_secs(300);
/// Bounds on a `Retry-After` we honour.
const MAX_RETRY_AFTER: u64 = 3600;

enum Auth {
    Basic {
        key: String,
        secret: String,
    },
    Application {
        id: String,
        key: jsonwebtoken::EncodingKey,
    },
}

pub struct VonageV2Verifier {
    http: reqwest::Client,
    base_url: String,
    brand: String,
    auth: Auth,
    settings: VerifySettings,
}

#[derive(Serialize)]
struct Step<'a> {
    channel: &'static str,
    to: &'a str,
}

#[derive(Serialize)]
struct NewRequest<'a> {
    brand: &'a str,
    code_length: u8,
    channel_timeout: u64,
    client_ref: &'a str,
    locale: &'a str,
    workflow: Vec<Step<'a>>,
}

#[derive(Serialize)]
struct AppClaims<'a> {
    application_id: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

/// An RFC 7807 problem, as Verify v2 describes its errors (every field optional here: a body
/// that is not one still has a defined outcome).
#[derive(Default, Deserialize)]
struct Problem {
    #[serde(default)]
    r#type: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    instance: String,
    /// Present on 409 for a new request when Vonage names the running one.
    request_id: Option<String>,
    #[serde(default)]
    invalid_parameters: Vec<InvalidParameter>,
}

#[derive(Deserialize)]
struct InvalidParameter {
    #[serde(default)]
    name: String,
    #[serde(default)]
    reason: String,
}

impl Problem {
    /// What the log says: status, title, detail, instance, and the fields of a 422.
    fn describe(&self, status: StatusCode) -> String {
        let mut text = format!(
            "HTTP {}: {}: {} (instance {}, type {})",
            status.as_u16(),
            or_dash(&self.title),
            or_dash(&self.detail),
            or_dash(&self.instance),
            or_dash(&self.r#type)
        );
        if !self.invalid_parameters.is_empty() {
            let fields: Vec<String> = self
                .invalid_parameters
                .iter()
                .map(|p| format!("{} ({})", p.name, p.reason))
                .collect();
            text.push_str(&format!("; invalid parameters: {}", fields.join(", ")));
        }
        text
    }

    /// A 422 about the number itself: the user must pick another, it is not our setup.
    fn is_about_the_number(&self) -> bool {
        !self.invalid_parameters.is_empty()
            && self
                .invalid_parameters
                .iter()
                .all(|p| p.name == "to" || p.name.ends_with(".to"))
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// An answer: its status, `Retry-After` and body.
struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    body: Vec<u8>,
}

impl Answer {
    fn problem(&self) -> Problem {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// The outcome of an answer no call expects: the provider's fault, ours, or a busy one.
    fn error(&self, what: &str) -> VerifyError {
        let text = format!("{what}: {}", self.problem().describe(self.status));
        match self.status.as_u16() {
            429 => VerifyError::Busy {
                status: "429".into(),
                text,
                retry_after: self.retry_after,
            },
            500..=599 => VerifyError::Transport(text),
            _ => VerifyError::Misconfigured {
                status: self.status.as_u16().to_string(),
                text,
            },
        }
    }
}

impl VonageV2Verifier {
    pub fn new(
        mut config: VonageConfig,
        application: Option<VonageApplication>,
        settings: VerifySettings,
    ) -> anyhow::Result<Self> {
        config.base_url = config.base_url.trim_end_matches('/').to_string();
        let auth = match application {
            Some(app) => Auth::Application {
                key: jsonwebtoken::EncodingKey::from_rsa_pem(&app.private_key_pem)?,
                id: app.id,
            },
            None => Auth::Basic {
                key: config.api_key.clone(),
                secret: config.api_secret.clone(),
            },
        };
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("pollstr/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(VonageV2Verifier {
            http,
            base_url: config.base_url,
            brand: config.brand,
            auth,
            settings,
        })
    }

    fn authorize(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, VerifyError> {
        Ok(match &self.auth {
            Auth::Basic { key, secret } => req.basic_auth(key, Some(secret)),
            Auth::Application { id, key } => {
                let now = crate::db::now();
                let claims = AppClaims {
                    application_id: id,
                    iat: now,
                    exp: now + JWT_LIFETIME.as_secs() as i64,
                    jti: crate::crypto::random_hex(16),
                };
                let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                let token = jsonwebtoken::encode(&header, &claims, key).map_err(|e| {
                    VerifyError::Misconfigured {
                        status: "jwt".into(),
                        text: format!("could not sign the application JWT: {e}"),
                    }
                })?;
                req.bearer_auth(token)
            }
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Answer, VerifyError> {
        let url = format!("{}{path}", self.base_url);
        let mut req = self.http.request(method, &url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        // reqwest's error text names the URL, never the credentials.
        let res = self
            .authorize(req)?
            .send()
            .await
            .map_err(|e| VerifyError::Transport(e.without_url().to_string()))?;
        let status = res.status();
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s.clamp(1, MAX_RETRY_AFTER));
        let body = res
            .bytes()
            .await
            .map_err(|e| VerifyError::Transport(e.without_url().to_string()))?
            .to_vec();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

/// A request id as a path segment: Vonage's are UUIDs; anything else never reaches a URL.
fn request_path(request_id: &str) -> Result<String, VerifyError> {
    if request_id.is_empty()
        || request_id.len() > 64
        || !request_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(VerifyError::Misconfigured {
            status: "request_id".into(),
            text: "a request id that is not Vonage's".into(),
        });
    }
    Ok(format!("/{request_id}"))
}

#[derive(Deserialize)]
struct Started {
    request_id: String,
}

#[derive(Deserialize)]
struct Checked {
    #[serde(default)]
    status: String,
}

#[async_trait]
impl Verifier for VonageV2Verifier {
    async fn start(
        &self,
        number: &PhoneNumber,
        client_ref: &str,
    ) -> Result<StartOutcome, VerifyError> {
        let body = NewRequest {
            brand: &self.brand,
            code_length: CODE_LENGTH,
            channel_timeout: self.settings.channel_timeout.as_secs(),
            client_ref,
            locale: &self.settings.locale,
            workflow: self
                .settings
                .workflow
                .iter()
                .map(|c| Step {
                    channel: c.as_str(),
                    to: number.digits(),
                })
                .collect(),
        };
        let body = serde_json::to_value(&body).expect("a plain struct");
        let a = self.call(Method::POST, "/", Some(body)).await?;
        match a.status.as_u16() {
            202 => serde_json::from_slice::<Started>(&a.body)
                .ok()
                .filter(|s| !s.request_id.is_empty())
                .map(|s| StartOutcome::Started {
                    request_id: s.request_id,
                })
                .ok_or_else(|| {
                    VerifyError::Transport("POST / answered 202 without a request_id".into())
                }),
            409 => {
                let p = a.problem();
                tracing::info!(problem = %p.describe(a.status), "a verification to this number is already running");
                Ok(StartOutcome::InProgress {
                    request_id: p.request_id.filter(|r| !r.is_empty()),
                })
            }
            422 if a.problem().is_about_the_number() => {
                tracing::info!(problem = %a.problem().describe(a.status), "Verify refused the number");
                Ok(StartOutcome::Rejected)
            }
            _ => Err(a.error("POST /")),
        }
    }

    async fn check(&self, request_id: &str, code: &str) -> Result<CheckOutcome, VerifyError> {
        let path = request_path(request_id)?;
        let a = self
            .call(
                Method::POST,
                &path,
                Some(serde_json::json!({ "code": code })),
            )
            .await?;
        match a.status.as_u16() {
            200 => match serde_json::from_slice::<Checked>(&a.body) {
                Ok(c) if c.status == "completed" => Ok(CheckOutcome::Verified),
                // Any other state is not a verified one.
                Ok(c) => {
                    tracing::warn!(status = %c.status, "Verify answered a check with a status that is not completed");
                    Ok(CheckOutcome::Expired)
                }
                Err(e) => Err(VerifyError::Transport(format!(
                    "POST /{{request_id}} answered an unexpected body: {e}"
                ))),
            },
            400 => Ok(CheckOutcome::WrongCode),
            404 => Ok(CheckOutcome::Expired),
            410 => Ok(CheckOutcome::TooManyWrong),
            // The current step takes no code yet (a channel is changing): try again shortly.
            409 => Err(VerifyError::Busy {
                status: "409".into(),
                text: a.problem().describe(a.status),
                retry_after: a.retry_after,
            }),
            _ => Err(a.error("POST /{request_id}")),
        }
    }

    async fn cancel(&self, request_id: &str) -> Result<(), VerifyError> {
        let path = request_path(request_id)?;
        let a = self.call(Method::DELETE, &path, None).await?;
        match a.status.as_u16() {
            204 | 200 => Ok(()),
            // Already over, or too early or late to cancel: nothing to do now.
            404 | 409 => Err(VerifyError::Busy {
                status: a.status.as_u16().to_string(),
                text: a.problem().describe(a.status),
                retry_after: None,
            }),
            _ => Err(a.error("DELETE /{request_id}")),
        }
    }

    fn workflow(&self) -> &[VerifyChannel] {
        &self.settings.workflow
    }

    async fn next_channel(&self, request_id: &str) -> Result<NextOutcome, VerifyError> {
        let path = format!("{}/next_workflow", request_path(request_id)?);
        let a = self.call(Method::POST, &path, None).await?;
        match a.status.as_u16() {
            200 => Ok(NextOutcome::Moved),
            404 => Ok(NextOutcome::Expired),
            // Another change is still being applied: try again in a moment.
            409 => Err(VerifyError::Busy {
                status: "409".into(),
                text: a.problem().describe(a.status),
                retry_after: a.retry_after,
            }),
            _ => Err(a.error("POST /{request_id}/next_workflow")),
        }
    }
}
