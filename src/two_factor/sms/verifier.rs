//! The one interface to a Verify provider. A provider sends a code to a number and checks the
//! code the user typed; its answers are mapped here onto outcomes the pages know how to explain.

use async_trait::async_trait;

use super::phone::PhoneNumber;

/// The answer to "send a code to this number".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartOutcome {
    /// A code is on its way (status 0).
    Started { request_id: String },
    /// A request to this number is still running: its code is still valid (status 10).
    InProgress { request_id: String },
    /// The provider will not verify this number (3, 6, 7, 15, 29): the user must pick another.
    Rejected,
}

/// The answer to "is this the code?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    Verified,
    /// Wrong code, the request goes on (16).
    WrongCode,
    /// Too many wrong codes: the request is over (17).
    TooManyWrong,
    /// The request expired, was already used or is unknown (6).
    Expired,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The provider is busy or short of quota (1, 5, 9): try again shortly.
    #[error("provider busy (status {status}): {text}")]
    Busy { status: String, text: String },
    /// Our account or request is wrong (2, 4, 8, 20, unknown statuses): an admin must act.
    #[error("provider misconfigured (status {status}): {text}")]
    Misconfigured { status: String, text: String },
    /// Timeout, refused connection, HTTP 5xx, or a body that is not the expected JSON.
    #[error("provider unreachable: {0}")]
    Transport(String),
}

#[async_trait]
pub trait Verifier: Send + Sync {
    /// Sends a code to `number`.
    async fn start(&self, number: &PhoneNumber) -> Result<StartOutcome, VerifyError>;
    /// Checks `code` against the request `request_id`.
    async fn check(&self, request_id: &str, code: &str) -> Result<CheckOutcome, VerifyError>;
    /// Cancels a running request (best effort: the provider may refuse, e.g. in the first 30 s).
    async fn cancel(&self, request_id: &str) -> Result<(), VerifyError>;
}

/// Maps a Verify v1 status on a *request* to an outcome.
pub fn start_outcome(
    status: &str,
    request_id: Option<String>,
    text: String,
) -> Result<StartOutcome, VerifyError> {
    let rid = request_id.filter(|r| !r.is_empty());
    match (status, rid) {
        ("0", Some(request_id)) => Ok(StartOutcome::Started { request_id }),
        ("10", Some(request_id)) => Ok(StartOutcome::InProgress { request_id }),
        // A concurrent request whose id we were not told: nothing to check against yet.
        ("10", None) => Err(VerifyError::Busy {
            status: status.into(),
            text,
        }),
        ("3" | "6" | "7" | "15" | "29", _) => Ok(StartOutcome::Rejected),
        ("1" | "5" | "9", _) => Err(VerifyError::Busy {
            status: status.into(),
            text,
        }),
        ("0", None) => Err(VerifyError::Transport(
            "status 0 without a request_id".into(),
        )),
        _ => Err(VerifyError::Misconfigured {
            status: status.into(),
            text,
        }),
    }
}

/// Maps a Verify v1 status on a *check* to an outcome.
pub fn check_outcome(status: &str, text: String) -> Result<CheckOutcome, VerifyError> {
    match status {
        "0" => Ok(CheckOutcome::Verified),
        "16" => Ok(CheckOutcome::WrongCode),
        "17" => Ok(CheckOutcome::TooManyWrong),
        "6" => Ok(CheckOutcome::Expired),
        "1" | "5" | "9" => Err(VerifyError::Busy {
            status: status.into(),
            text,
        }),
        _ => Err(VerifyError::Misconfigured {
            status: status.into(),
            text,
        }),
    }
}
