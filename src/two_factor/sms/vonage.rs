//! The Vonage (Nexmo) Verify API v1 client: form-encoded POSTs with `api_key`/`api_secret` in
//! the body, answers on HTTP 200 with a string `status` (see the Verify API reference).

use async_trait::async_trait;
use serde::Deserialize;

use super::phone::PhoneNumber;
use super::verifier::{
    busy, check_outcome, start_outcome, CheckOutcome, StartOutcome, Verifier, VerifyError,
};
use crate::config::VonageConfig;

/// Codes are 6 digits (the API's default of 4 is too weak: ~13 bits).
pub const CODE_LENGTH: &str = "6";

pub struct VonageVerifier {
    http: reqwest::Client,
    config: VonageConfig,
}

#[derive(Deserialize)]
struct Reply {
    status: String,
    request_id: Option<String>,
    #[serde(default)]
    error_text: String,
}

impl VonageVerifier {
    pub fn new(mut config: VonageConfig) -> anyhow::Result<Self> {
        config.base_url = config.base_url.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("pollstr/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(VonageVerifier { http, config })
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Result<Reply, VerifyError> {
        let mut form: Vec<(&str, &str)> = vec![
            ("api_key", self.config.api_key.as_str()),
            ("api_secret", self.config.api_secret.as_str()),
        ];
        form.extend_from_slice(fields);
        let url = format!("{}{}", self.config.base_url, path);
        // reqwest's error text names the URL, never the form body: the secret stays out of logs.
        let res = self
            .http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(|e| VerifyError::Transport(e.without_url().to_string()))?;
        let status = res.status();
        if !status.is_success() {
            return Err(VerifyError::Transport(format!(
                "{path} answered HTTP {status}"
            )));
        }
        let body = res
            .bytes()
            .await
            .map_err(|e| VerifyError::Transport(e.without_url().to_string()))?;
        serde_json::from_slice::<Reply>(&body)
            .map_err(|e| VerifyError::Transport(format!("{path} answered an unexpected body: {e}")))
    }
}

#[async_trait]
impl Verifier for VonageVerifier {
    async fn start(
        &self,
        number: &PhoneNumber,
        _client_ref: &str,
    ) -> Result<StartOutcome, VerifyError> {
        let r = self
            .post(
                "/json",
                &[
                    ("number", number.digits()),
                    ("brand", self.config.brand.as_str()),
                    ("code_length", CODE_LENGTH),
                ],
            )
            .await?;
        start_outcome(&r.status, r.request_id, r.error_text)
    }

    async fn check(&self, request_id: &str, code: &str) -> Result<CheckOutcome, VerifyError> {
        let r = self
            .post("/check/json", &[("request_id", request_id), ("code", code)])
            .await?;
        check_outcome(&r.status, r.error_text)
    }

    async fn cancel(&self, request_id: &str) -> Result<(), VerifyError> {
        let r = self
            .post(
                "/control/json",
                &[("request_id", request_id), ("cmd", "cancel")],
            )
            .await?;
        match r.status.as_str() {
            "0" => Ok(()),
            // Our account or request is wrong: the same as on start and check.
            "2" | "3" | "4" | "8" => Err(VerifyError::Misconfigured {
                status: r.status,
                text: r.error_text,
            }),
            // 6 (no longer active) and 19 (too early or too late to cancel): nothing to do now.
            _ => Err(busy(r.status, r.error_text)),
        }
    }
}
