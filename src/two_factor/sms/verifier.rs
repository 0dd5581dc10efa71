//! The one interface to a Verify provider. A provider sends a code to a number, moves a request
//! on to its next channel ("Call me instead"), checks the code the user typed and cancels; its
//! answers are mapped here onto outcomes the pages know how to explain.

use async_trait::async_trait;

use super::phone::PhoneNumber;
pub use crate::config::VerifyChannel;

/// The answer to "send a code to this number".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartOutcome {
    /// A code is on its way (status 0).
    Started { request_id: String },
    /// A request to this number is still running: its code is still valid (v1 status 10, v2
    /// 409). Verify v2 does not say which request: then the id is `None`.
    InProgress { request_id: Option<String> },
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

/// The answer to "deliver the code by the next channel".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextOutcome {
    /// The next channel is under way.
    Moved,
    /// The request is over (expired, used, ended by wrong codes, unknown).
    Expired,
    /// The workflow has no further channel.
    NoMore,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The provider is busy, rate limited or short of quota (v1 1, 5, 9; v2 429): try again
    /// shortly, after `retry_after` seconds when the provider said.
    #[error("provider busy (status {status}): {text}")]
    Busy {
        status: String,
        text: String,
        retry_after: Option<u64>,
    },
    /// Our account or request is wrong (2, 4, 8, 20, unknown statuses): an admin must act.
    #[error("provider misconfigured (status {status}): {text}")]
    Misconfigured { status: String, text: String },
    /// Timeout, refused connection, HTTP 5xx, or a body that is not the expected JSON.
    #[error("provider unreachable: {0}")]
    Transport(String),
}

#[async_trait]
pub trait Verifier: Send + Sync {
    /// Sends a code to `number`. `client_ref` is ours (letters and digits): providers that
    /// call back with a request's outcome name it.
    async fn start(
        &self,
        number: &PhoneNumber,
        client_ref: &str,
    ) -> Result<StartOutcome, VerifyError>;
    /// Checks `code` against the request `request_id`.
    async fn check(&self, request_id: &str, code: &str) -> Result<CheckOutcome, VerifyError>;
    /// Cancels a running request (best effort: the provider may refuse, e.g. in the first 30 s).
    async fn cancel(&self, request_id: &str) -> Result<(), VerifyError>;
    /// The channels a request goes through, in order ("Call me instead" moves to the next).
    fn workflow(&self) -> &[VerifyChannel] {
        &[VerifyChannel::Sms]
    }
    /// Delivers the code of a running request by its next channel.
    async fn next_channel(&self, _request_id: &str) -> Result<NextOutcome, VerifyError> {
        Ok(NextOutcome::NoMore)
    }
}

/// A busy provider that did not say when to come back.
pub fn busy(status: impl Into<String>, text: impl Into<String>) -> VerifyError {
    VerifyError::Busy {
        status: status.into(),
        text: text.into(),
        retry_after: None,
    }
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
        // A concurrent request, with its id or (rarely) without.
        ("10", request_id) => Ok(StartOutcome::InProgress { request_id }),
        ("3" | "6" | "7" | "15" | "29", _) => Ok(StartOutcome::Rejected),
        ("1" | "5" | "9", _) => Err(busy(status, text)),
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
        "1" | "5" | "9" => Err(busy(status, text)),
        _ => Err(VerifyError::Misconfigured {
            status: status.into(),
            text,
        }),
    }
}
