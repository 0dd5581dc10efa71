//! The console provider, for development without Vonage keys. It behaves like Verify v1: a
//! 6-digit code from the OS CSPRNG, only its hash stored, 5 minutes to use it, 3 wrong codes end
//! the request, one running request per number (status 10), single use. The code is printed to
//! the server log instead of being sent. State lives in the database, so it works across
//! instances and restarts (its SQL: `store/console.rs`).

use async_trait::async_trait;
use pbkdf2::sha2::{Digest, Sha256};
use rand::Rng;

use super::phone::PhoneNumber;
use super::store::console as store;
use super::verifier::{
    busy, CheckOutcome, NextOutcome, StartOutcome, Verifier, VerifyChannel, VerifyError,
};
use crate::db::{self, Db};

pub const MAX_WRONG: i64 = 3;
/// Like Verify: a request cannot be cancelled in its first 30 seconds.
pub const CANCEL_AFTER_SECS: i64 = 30;

/// A code as "sent" by the console provider: (E.164 number, code). Tests read these.
pub type Outbox = tokio::sync::mpsc::UnboundedSender<(String, String)>;

pub struct ConsoleVerifier {
    db: Db,
    outbox: Option<Outbox>,
    workflow: Vec<VerifyChannel>,
    /// How long each channel's code is valid.
    ttl: i64,
}

impl ConsoleVerifier {
    pub fn new(db: Db) -> Self {
        let settings = crate::config::VerifySettings::default();
        ConsoleVerifier {
            db,
            outbox: None,
            workflow: settings.workflow,
            ttl: settings.channel_timeout.as_secs() as i64,
        }
    }

    /// Also hands every code to `outbox` (for tests that play the phone).
    pub fn with_outbox(db: Db, outbox: Outbox) -> Self {
        ConsoleVerifier {
            outbox: Some(outbox),
            ..ConsoleVerifier::new(db)
        }
    }

    /// Delivers by the channels of `VERIFY_WORKFLOW` in turn, each code valid for
    /// `VERIFY_CHANNEL_TIMEOUT`.
    pub fn with_settings(mut self, settings: &crate::config::VerifySettings) -> Self {
        self.workflow = settings.workflow.clone();
        self.ttl = settings.channel_timeout.as_secs() as i64;
        self
    }

    /// "Sends" a code: the log, and the outbox when there is one.
    fn deliver(&self, number: &PhoneNumber, code: &str, channel: VerifyChannel) {
        tracing::warn!(
            target: "pollstr::console_sms",
            "DEVELOPMENT ONLY (console verify provider): code for {} is {code} (by {})",
            number.masked(),
            channel.as_str()
        );
        if let Some(outbox) = &self.outbox {
            let _ = outbox.send((number.e164().to_string(), code.to_string()));
        }
    }
}

fn new_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

fn hash_code(request_id: &str, code: &str) -> String {
    let digest = Sha256::new()
        .chain_update(request_id.as_bytes())
        .chain_update(b":")
        .chain_update(code.as_bytes())
        .finalize();
    hex::encode(digest)
}

fn transport(e: sqlx::Error) -> VerifyError {
    VerifyError::Transport(format!("console provider database: {e}"))
}

#[async_trait]
impl Verifier for ConsoleVerifier {
    async fn start(
        &self,
        number: &PhoneNumber,
        _client_ref: &str,
    ) -> Result<StartOutcome, VerifyError> {
        let now = db::now();
        // A request whose time is up no longer runs (it stays 'pending' until then).
        store::expire_ended(&self.db, number.e164(), now)
            .await
            .map_err(transport)?;
        let request_id = crate::crypto::random_hex(16);
        let code = new_code();
        // One running request per number (status 10), kept by a unique index on the running
        // ones: of two requests started together, one inserts and the other finds it.
        let inserted = store::start(
            &self.db,
            &request_id,
            number.e164(),
            &hash_code(&request_id, &code),
            now,
            now + self.ttl,
        )
        .await
        .map_err(transport)?;
        if inserted == 0 {
            let running = store::pending_of(&self.db, number.e164())
                .await
                .map_err(transport)?;
            // Gone in between (checked or cancelled a moment ago): the caller may send again.
            return match running {
                Some(request_id) => Ok(StartOutcome::InProgress {
                    request_id: Some(request_id),
                }),
                None => Err(busy(
                    "10",
                    "the running request ended while another started",
                )),
            };
        }
        self.deliver(number, &code, self.workflow[0]);
        Ok(StartOutcome::Started { request_id })
    }

    async fn check(&self, request_id: &str, code: &str) -> Result<CheckOutcome, VerifyError> {
        let now = db::now();
        let row = store::find(&self.db, request_id).await.map_err(transport)?;
        let Some((hash, expires_at, state)) = row else {
            return Ok(CheckOutcome::Expired);
        };
        if state != "pending" || expires_at <= now {
            return Ok(CheckOutcome::Expired);
        }
        let given = hash_code(request_id, code);
        if bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes(),
            hash.as_bytes(),
        )) {
            // Single use: only the check that flips the state wins.
            let done = store::verify(&self.db, request_id)
                .await
                .map_err(transport)?;
            return Ok(if done == 1 {
                CheckOutcome::Verified
            } else {
                CheckOutcome::Expired
            });
        }
        let wrong = store::count_wrong(&self.db, request_id, MAX_WRONG)
            .await
            .map_err(transport)?;
        Ok(match wrong {
            Some(n) if n >= MAX_WRONG => CheckOutcome::TooManyWrong,
            Some(_) => CheckOutcome::WrongCode,
            None => CheckOutcome::Expired,
        })
    }

    async fn cancel(&self, request_id: &str) -> Result<(), VerifyError> {
        let done = store::cancel(&self.db, request_id, db::now() - CANCEL_AFTER_SECS)
            .await
            .map_err(transport)?;
        if done == 1 {
            Ok(())
        } else {
            Err(busy("19", "can't be cancelled now"))
        }
    }

    fn workflow(&self) -> &[VerifyChannel] {
        &self.workflow
    }

    /// Like Verify v2's next workflow: a new code by the next channel, with its own time.
    async fn next_channel(&self, request_id: &str) -> Result<NextOutcome, VerifyError> {
        let now = db::now();
        let code = new_code();
        let moved = store::next_channel(
            &self.db,
            request_id,
            &hash_code(request_id, &code),
            now + self.ttl,
            now,
            self.workflow.len() as i64,
        )
        .await
        .map_err(transport)?;
        if let Some((number, channel)) = moved {
            let channel = self.workflow[channel as usize];
            self.deliver(&PhoneNumber::from_stored(number), &code, channel);
            return Ok(NextOutcome::Moved);
        }
        let running = store::is_running(&self.db, request_id, now)
            .await
            .map_err(transport)?;
        Ok(if running {
            NextOutcome::NoMore
        } else {
            NextOutcome::Expired
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_request_and_code() {
        assert_ne!(hash_code("a", "123456"), hash_code("b", "123456"));
        assert_ne!(hash_code("a", "123456"), hash_code("a", "123457"));
        assert_eq!(hash_code("a", "1").len(), 64);
    }
}
