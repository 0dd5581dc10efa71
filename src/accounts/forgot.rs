//! `/password-reset/` (linked from `/login/`): a user who forgot their password types their
//! username or email address, and a password-reset link (the admin's kind, `users::reset`, to
//! `/account/reset/{token}/`) is mailed to the account's confirmed address.
//!
//! The page must tell nobody who has an account. Before it answers, it does the same work
//! whatever was typed ([`accept`]): one reservation against `RESET_LIMIT_PER_IP` (refused: 429,
//! which says nothing about the account), then what was typed is handed over, unread, and the
//! answer is one redirect to `/password-reset/sent/`. Only after that, in a task of its own
//! ([`Requests`]), is the account looked up, counted against `RESET_LIMIT_PER_USER` per account
//! and per address mailed (a limit reached there sends nothing and says nothing), and the link
//! made and handed to the outbox. So a known and an unknown name cost the page exactly the same
//! (the unit test below counts the steps), where the login needs a dummy argon2 hash for that.
//!
//! Only an active account with a confirmed address is mailed; a reset never skips the second
//! factor (`accounts::reset`). With email off (a public address, no `SMTP_URL`) the page says
//! reset by email is not available and to ask the operator, and does nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use askama::Template;
use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tokio::sync::Notify;

use crate::error::{AppError, AppResult};
use crate::events::{self, Kind};
use crate::limits::{self, human_wait, Scope};
use crate::mail::{Mail, Outbox};
use crate::state::AppState;
use crate::users::{email, reset};
use crate::web::routes::{get, Routes};
use crate::web::{self, ClientIp, Form, Page, PageContext};

pub fn router() -> Routes {
    Routes::new()
        .route("/password-reset/", get(form).post(submit))
        .route("/password-reset/sent/", get(sent))
}

#[derive(Template)]
#[template(path = "registration/password_reset_form.html")]
pub struct ForgotPage {
    pub ctx: PageContext,
    pub email_on: bool,
    pub typed: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "registration/password_reset_sent.html")]
pub struct SentPage {
    pub ctx: PageContext,
    /// How long a link works, in words.
    pub ttl: String,
}

#[derive(Deserialize)]
pub struct ForgotForm {
    /// A username or an email address.
    #[serde(default)]
    login: String,
}

fn email_on(state: &AppState) -> bool {
    state.part::<Outbox>().enabled()
}

async fn form(State(state): State<AppState>, page: Page) -> AppResult<Response> {
    let page = page.with_form().await?;
    web::render(&ForgotPage {
        ctx: page.ctx,
        email_on: email_on(&state),
        typed: String::new(),
        error: None,
    })
}

async fn sent(State(state): State<AppState>, page: Page) -> AppResult<Response> {
    web::render(&SentPage {
        ctx: page.ctx,
        ttl: in_words(state.config.reset_link_ttl.as_secs()),
    })
}

/// How long a link works, in words: "1 hour", "90 minutes", "2 days".
fn in_words(secs: u64) -> String {
    let (n, unit) = match secs {
        s if s >= 86400 && s % 86400 == 0 => (s / 86400, "day"),
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s => (s.div_ceil(60), "minute"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// What a request costs before the page answers, split into steps so that a test can count
/// them.
#[async_trait]
pub trait Steps: Send + Sync {
    /// Counts one request from `ip` against `RESET_LIMIT_PER_IP`: `Err(seconds)` when refused.
    async fn reserve_address(&self, ip: &str) -> AppResult<Result<(), u64>>;
    /// Hands what was typed over to the work done after the page answers (no read here).
    fn hand_over(&self, typed: String, ip: &str, browser: String);
}

/// The page's work before it answers: the same steps whatever `typed` names (an account with
/// a confirmed address, one without, a deactivated one, nobody). `Err(seconds)`: refused.
pub async fn accept(
    steps: &dyn Steps,
    ip: &str,
    typed: &str,
    browser: String,
) -> AppResult<Result<(), u64>> {
    if let Err(wait) = steps.reserve_address(ip).await? {
        return Ok(Err(wait));
    }
    // At most one character past the longest address: longer names nobody (`reset::recipients`).
    let typed: String = typed.trim().chars().take(email::MAX_EMAIL + 1).collect();
    steps.hand_over(typed, ip, browser);
    Ok(Ok(()))
}

/// The server's steps.
struct Live<'a>(&'a AppState);

#[async_trait]
impl Steps for Live<'_> {
    async fn reserve_address(&self, ip: &str) -> AppResult<Result<(), u64>> {
        let l = &self.0.config.limits;
        let subject = web::client::limit_subject(ip, l.ipv6_prefix);
        let checks = [(
            Scope::ResetPerIp,
            subject.as_str(),
            l.reset_per_ip.as_slice(),
        )];
        // Never released: every request counts, whatever it names.
        Ok(limits::reserve(self.0, &checks).await?.map(|_counted| ()))
    }

    fn hand_over(&self, typed: String, ip: &str, browser: String) {
        let state = self.0.clone();
        let ip = ip.to_string();
        self.0.part::<Requests>().spawn(async move {
            if let Err(e) = mail_links(&state, &typed, &ip, &browser).await {
                tracing::error!(error = %e, "a password-reset request failed");
            }
        });
    }
}

async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    page: Page,
    Form(form): Form<ForgotForm>,
) -> AppResult<Response> {
    let page = page.with_form().await?;
    let again = |page: Page, status: StatusCode, error: Option<String>| -> AppResult<Response> {
        let body = web::render(&ForgotPage {
            ctx: page.ctx,
            email_on: email_on(&state),
            typed: form.login.chars().take(email::MAX_EMAIL).collect(),
            error,
        })?;
        Ok((status, body).into_response())
    };
    if !email_on(&state) {
        return again(page, StatusCode::OK, None);
    }
    if form.login.trim().is_empty() {
        let message = "Enter your username or email address.".to_string();
        return again(page, StatusCode::OK, Some(message));
    }
    let browser = web::client::browser_label(&headers);
    match accept(&Live(&state), &ip, &form.login, browser).await? {
        Ok(()) => Ok(Redirect::to("/password-reset/sent/").into_response()),
        Err(wait) => {
            let message = format!(
                "Too many password-reset requests from your network. Please try again in {}.",
                human_wait(wait)
            );
            let res = again(page, StatusCode::TOO_MANY_REQUESTS, Some(message))?;
            Ok(web::retry_after(res, wait))
        }
    }
}

/// After the page answered: mails a link to each account `typed` names that may get one.
async fn mail_links(state: &AppState, typed: &str, ip: &str, browser: &str) -> AppResult<()> {
    let db = &state.db;
    let key = state
        .config
        .secret_key
        .as_ref()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("POLLSTR_SECRET_KEY is not set")))?;
    let per_user = state.config.limits.reset_per_user.as_slice();
    let ttl = state.config.reset_link_ttl;
    for (user, username, address) in reset::recipients(db, typed).await? {
        let (id, to) = (user.to_string(), address.to_ascii_lowercase());
        let checks = [
            (Scope::ResetPerUser, id.as_str(), per_user),
            (Scope::ResetPerEmail, to.as_str(), per_user),
        ];
        if limits::reserve(state, &checks).await?.is_err() {
            let detail = format!("not mailed to {}: reset limit", email::masked(&address));
            events::record(db, Kind::ResetLinkMailed, Some(user), ip, &detail).await?;
            continue;
        }
        let token = reset::issue(db, key, user, ttl).await?;
        // The configured origin, never the request's Host: a forged Host would otherwise put a
        // stranger's site in the link (password-reset poisoning).
        let link = format!("{}{}", super::email::site(state), reset::path(&token));
        let at = events::format_time(crate::db::now());
        let within = in_words(ttl.as_secs());
        state.part::<Outbox>().send(Mail {
            to: address.clone(),
            subject: "Reset your Pollstr password".into(),
            body: format!(
                "Hello {username},\n\nSomeone asked to reset the password of your Pollstr \
                 account {username}.\n\nWhen: {at}\nBrowser: {browser}\nAddress: {ip}\n\n\
                 To choose a new password, open this link within {within}:\n\n{link}\n\n\
                 It works once. Then every session of your account ends, and the next login \
                 still asks for your second factor.\n\nIf you did not ask for this, do \
                 nothing: your password stays as it is.\n"
            ),
        });
        let detail = format!("mailed to {}", email::masked(&address));
        events::record(db, Kind::ResetLinkMailed, Some(user), ip, &detail).await?;
    }
    Ok(())
}

/// Reset requests being worked on after their page answered: at most [`MAX_PENDING`] at once
/// (past that a request is dropped and logged, as the outbox drops mail), and a way for tests
/// and a shutdown to wait until none is.
#[derive(Clone, Default)]
pub struct Requests(Arc<Tally>);

#[derive(Default)]
struct Tally {
    pending: AtomicUsize,
    settled: Notify,
}

/// Requests worked on at once, at most.
pub const MAX_PENDING: usize = 1000;

impl Requests {
    fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let tally = self.0.clone();
        if tally.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING {
            tally.pending.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("password-reset request dropped: {MAX_PENDING} already wait");
            return;
        }
        tokio::spawn(async move {
            work.await;
            if tally.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                tally.settled.notify_waiters();
            }
        });
    }

    /// Waits until no request is being worked on.
    pub async fn settled(&self) {
        loop {
            let notified = self.0.settled.notified();
            if self.0.pending.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records every step, and what was handed over.
    #[derive(Default)]
    struct Counting {
        steps: Mutex<Vec<&'static str>>,
        handed: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Steps for Counting {
        async fn reserve_address(&self, _ip: &str) -> AppResult<Result<(), u64>> {
            self.steps.lock().unwrap().push("reserve_address");
            Ok(Ok(()))
        }
        fn hand_over(&self, typed: String, _ip: &str, _browser: String) {
            self.steps.lock().unwrap().push("hand_over");
            self.handed.lock().unwrap().push(typed);
        }
    }

    /// The work the page does before it answers is the same for a known and an unknown name
    /// or address: the same steps, and no lookup among them (the page holds no database
    /// handle to look with: `Steps` is all it gets).
    #[tokio::test]
    async fn the_page_does_the_same_work_whoever_is_named() {
        let mut seen = Vec::new();
        for typed in [
            "test",
            "nobody-at-all",
            "test@example.com",
            "nobody@example.org",
            &"x".repeat(5000),
        ] {
            let steps = Counting::default();
            let answer = accept(&steps, "127.0.0.1", typed, "Firefox".into())
                .await
                .unwrap();
            assert_eq!(answer, Ok(()));
            seen.push(steps.steps.lock().unwrap().clone());
            let handed = steps.handed.lock().unwrap();
            assert!(handed[0].chars().count() <= email::MAX_EMAIL + 1);
        }
        assert_eq!(seen[0], ["reserve_address", "hand_over"]);
        assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");
    }

    #[test]
    fn how_long_a_link_works_reads_well() {
        assert_eq!(in_words(3600), "1 hour");
        assert_eq!(in_words(5400), "90 minutes");
        assert_eq!(in_words(172800), "2 days");
        assert_eq!(in_words(60), "1 minute");
    }

    /// Refused by the address limit: nothing is handed over.
    #[tokio::test]
    async fn a_refused_request_hands_nothing_over() {
        struct Refusing(Counting);
        #[async_trait]
        impl Steps for Refusing {
            async fn reserve_address(&self, _ip: &str) -> AppResult<Result<(), u64>> {
                Ok(Err(60))
            }
            fn hand_over(&self, typed: String, ip: &str, browser: String) {
                self.0.hand_over(typed, ip, browser)
            }
        }
        let steps = Refusing(Counting::default());
        let answer = accept(&steps, "127.0.0.1", "test", String::new())
            .await
            .unwrap();
        assert_eq!(answer, Err(60));
        assert!(steps.0.handed.lock().unwrap().is_empty());
    }
}
