//! The development mailer: each message goes to the log, marked DEVELOPMENT ONLY, instead of
//! being sent, so that `cargo run` needs no mail server (as the console verify provider prints
//! codes). Only chosen in development (`Outbox::from_config`). Tests may also take each
//! message from a channel ([`ConsoleMailer::with_outbox`]).

use async_trait::async_trait;
use tokio::sync::mpsc::UnboundedSender;

use super::{Mail, Mailer};

pub struct ConsoleMailer {
    from: String,
    outbox: Option<UnboundedSender<Mail>>,
}

impl ConsoleMailer {
    pub fn new(from: &str) -> ConsoleMailer {
        ConsoleMailer {
            from: from.to_string(),
            outbox: None,
        }
    }

    /// Also hands every message to `outbox` (tests, the browser suite).
    pub fn with_outbox(from: &str, outbox: UnboundedSender<Mail>) -> ConsoleMailer {
        ConsoleMailer {
            from: from.to_string(),
            outbox: Some(outbox),
        }
    }
}

#[async_trait]
impl Mailer for ConsoleMailer {
    async fn send(&self, mail: &Mail) -> Result<(), String> {
        tracing::warn!(
            "DEVELOPMENT ONLY: mail not sent, printed here instead\nFrom: {}\nTo: {}\nSubject: {}\n\n{}",
            self.from,
            mail.to,
            mail.subject,
            mail.body
        );
        if let Some(outbox) = &self.outbox {
            let _ = outbox.send(mail.clone());
        }
        Ok(())
    }
}
