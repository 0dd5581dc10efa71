//! Mail: a [`Mailer`] sends one message (SMTP through `lettre` in [`smtp`], or the development
//! console in [`console`]), chosen like the Verify provider ([`Outbox::from_config`]): SMTP when
//! `SMTP_URL` is set; else the console in development (the message in the log, marked
//! DEVELOPMENT ONLY, so `cargo run` needs nothing); else none, and the pages that would mail say
//! that email is off (no silent fail-open).
//!
//! The [`Outbox`] is what pages use: [`Outbox::send`] hands the message to a task of its own and
//! returns at once, so a slow, refusing or hanging server never delays or fails the page. Each
//! try is bounded by `SMTP_TIMEOUT`; a failed one is logged and tried again, `MAIL_ATTEMPTS`
//! times in all, waiting longer each time; at most [`MAX_PENDING`] messages wait at once (past
//! that a message is dropped and logged: a flood cannot grow the memory without bound).

pub mod console;
pub mod smtp;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, Semaphore};

use crate::config::Config;

/// One plain-text message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Sends one message, once.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &Mail) -> Result<(), String>;
}

/// Messages waiting or being sent, at most: past it a message is dropped (and logged).
pub const MAX_PENDING: usize = 1000;
/// Messages being sent at once, at most (connections to the SMTP server).
const AT_ONCE: usize = 4;

/// Counts of what became of the messages handed to an [`Outbox`].
#[derive(Default)]
struct Tally {
    pending: AtomicUsize,
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    settled: Notify,
}

/// The mail part of a server (see the module documentation).
#[derive(Clone)]
pub struct Outbox {
    mailer: Option<Arc<dyn Mailer>>,
    attempts: u32,
    timeout: Duration,
    /// The wait after the first failed try; each later wait is four times the one before.
    backoff: Duration,
    slots: Arc<Semaphore>,
    tally: Arc<Tally>,
}

impl Outbox {
    /// An outbox sending through `mailer` (none: email is off).
    pub fn new(mailer: Option<Arc<dyn Mailer>>, attempts: u32, timeout: Duration) -> Outbox {
        Outbox {
            mailer,
            attempts: attempts.max(1),
            timeout,
            backoff: Duration::from_secs(5),
            slots: Arc::new(Semaphore::new(AT_ONCE)),
            tally: Arc::default(),
        }
    }

    /// The same, waiting `backoff` after a first failure (tests shorten it).
    pub fn with_backoff(mut self, backoff: Duration) -> Outbox {
        self.backoff = backoff;
        self
    }

    /// The mailer the configuration names: SMTP with `SMTP_URL`, else the console in
    /// development, else none.
    pub fn from_config(config: &Config) -> anyhow::Result<Outbox> {
        let m = &config.mail;
        let mailer: Option<Arc<dyn Mailer>> = match &m.smtp {
            Some(settings) => Some(Arc::new(smtp::SmtpMailer::new(
                settings, &m.from, m.timeout,
            )?)),
            None if config.is_development() => Some(Arc::new(console::ConsoleMailer::new(&m.from))),
            None => None,
        };
        Ok(Outbox::new(mailer, m.attempts, m.timeout))
    }

    /// Whether this server sends mail at all.
    pub fn enabled(&self) -> bool {
        self.mailer.is_some()
    }

    /// Hands `mail` over to be sent, and returns at once: whether it was taken (email on, and
    /// fewer than [`MAX_PENDING`] waiting). Must be called inside a Tokio runtime.
    pub fn send(&self, mail: Mail) -> bool {
        let Some(mailer) = self.mailer.clone() else {
            return false;
        };
        let tally = self.tally.clone();
        if tally.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING {
            tally.pending.fetch_sub(1, Ordering::AcqRel);
            tally.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(subject = %mail.subject, "mail dropped: {MAX_PENDING} messages already wait to be sent");
            return false;
        }
        let (slots, attempts, timeout, backoff) = (
            self.slots.clone(),
            self.attempts,
            self.timeout,
            self.backoff,
        );
        tokio::spawn(async move {
            let sent = deliver(&*mailer, &mail, &slots, attempts, timeout, backoff).await;
            let count = if sent { &tally.sent } else { &tally.failed };
            count.fetch_add(1, Ordering::Relaxed);
            if tally.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                tally.settled.notify_waiters();
            }
        });
        true
    }

    /// Waits until no message is waiting or being sent (tests, and a graceful shutdown).
    pub async fn settled(&self) {
        loop {
            let notified = self.tally.settled.notified();
            if self.tally.pending.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Messages sent, given up after every try, and dropped, so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.tally.sent.load(Ordering::Relaxed),
            self.tally.failed.load(Ordering::Relaxed),
            self.tally.dropped.load(Ordering::Relaxed),
        )
    }
}

/// Tries `mail` up to `attempts` times, each within `timeout`: whether it went.
async fn deliver(
    mailer: &dyn Mailer,
    mail: &Mail,
    slots: &Semaphore,
    attempts: u32,
    timeout: Duration,
    backoff: Duration,
) -> bool {
    let mut wait = backoff;
    for attempt in 1..=attempts {
        let outcome = {
            let Ok(_slot) = slots.acquire().await else {
                return false;
            };
            tokio::time::timeout(timeout, mailer.send(mail)).await
        };
        let why = match outcome {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => e,
            Err(_) => format!("no answer within {}s", timeout.as_secs_f32()),
        };
        if attempt == attempts {
            tracing::error!(subject = %mail.subject, attempts, error = %why, "mail given up");
            return false;
        }
        tracing::warn!(subject = %mail.subject, attempt, error = %why, "mail not sent: trying again");
        tokio::time::sleep(wait).await;
        wait = wait.saturating_mul(4);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Fails its first `fails` sends, then records what it sends.
    struct Flaky {
        fails: Mutex<u32>,
        tries: AtomicUsize,
        sent: Mutex<Vec<Mail>>,
    }

    #[async_trait]
    impl Mailer for Flaky {
        async fn send(&self, mail: &Mail) -> Result<(), String> {
            self.tries.fetch_add(1, Ordering::SeqCst);
            let mut fails = self.fails.lock().unwrap();
            if *fails > 0 {
                *fails -= 1;
                return Err("refused".into());
            }
            self.sent.lock().unwrap().push(mail.clone());
            Ok(())
        }
    }

    fn mail() -> Mail {
        Mail {
            to: "a@example.com".into(),
            subject: "s".into(),
            body: "b".into(),
        }
    }

    fn flaky(fails: u32) -> Arc<Flaky> {
        Arc::new(Flaky {
            fails: Mutex::new(fails),
            tries: AtomicUsize::new(0),
            sent: Mutex::default(),
        })
    }

    #[tokio::test]
    async fn failed_sends_are_tried_again_a_bounded_number_of_times() {
        let m = flaky(2);
        let out = Outbox::new(Some(m.clone()), 3, Duration::from_secs(5))
            .with_backoff(Duration::from_millis(1));
        assert!(out.send(mail()));
        out.settled().await;
        assert_eq!(m.tries.load(Ordering::SeqCst), 3);
        assert_eq!(m.sent.lock().unwrap().len(), 1);
        assert_eq!(out.counts(), (1, 0, 0));

        let m = flaky(10);
        let out = Outbox::new(Some(m.clone()), 3, Duration::from_secs(5))
            .with_backoff(Duration::from_millis(1));
        assert!(out.send(mail()));
        out.settled().await;
        assert_eq!(m.tries.load(Ordering::SeqCst), 3, "three tries, no more");
        assert_eq!(out.counts(), (0, 1, 0));
    }

    #[tokio::test]
    async fn without_a_mailer_nothing_is_taken() {
        let out = Outbox::new(None, 3, Duration::from_secs(5));
        assert!(!out.enabled());
        assert!(!out.send(mail()));
        out.settled().await;
    }
}
