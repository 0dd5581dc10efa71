//! `/account/`: the signed-in user's page: their email address (`email`), their second factors, their password, the browsers
//! they trust and their sessions (with "log out everywhere else"), and their recent security
//! events (each with its address, except an admin's action: that address is the admin's).

use askama::Template;
use axum::extract::State;
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};

use super::{current_user, users, SessionUser};
use crate::error::{AppError, AppResult};
use crate::events::{self, Kind};
use crate::state::AppState;
use crate::two_factor::{gate, passkeys, recovery, sms, totp, trusted};
use crate::web::routes::{get, post, Routes};
use crate::web::{self, csrf, flash, when, ClientIp, Level, Page, PageContext};

pub fn router() -> Routes {
    Routes::new()
        .route("/account/", get(overview))
        .route("/account/sessions/end-others/", post(end_other_sessions))
        .route("/account/trusted/forget/", post(forget_trusted))
        .route_layer(middleware::from_fn(gate::require_verified))
}

/// A line of the account page's lists.
pub struct Line {
    pub what: String,
    pub when: String,
}

#[derive(Template)]
#[template(path = "registration/account.html")]
pub struct AccountPage {
    pub ctx: PageContext,
    pub phone: Option<String>,
    pub authenticator_since: Option<String>,
    /// How many passkeys the user has.
    pub passkeys: usize,
    pub recovery_left: i64,
    pub email: String,
    pub email_confirmed: bool,
    pub email_on: bool,
    pub trusted: Vec<Line>,
    pub sessions: Vec<Line>,
    pub events: Vec<Line>,
}

async fn overview(State(state): State<AppState>, page: Page) -> AppResult<Response> {
    let page = page.with_form().await?;
    let user = page.user()?;
    let db = &state.db;
    let this = page.session.id();
    let mut sessions: Vec<(bool, i64, Line)> = crate::db::session_store::of_user(db, user.id)
        .await?
        .into_iter()
        .map(|record| {
            let device = crate::session::Device::of(&record);
            let current = Some(record.id) == this;
            let (what, since) = match device {
                Some(d) => (format!("{}, from {}", d.label, d.ip), d.since),
                None => ("A browser".to_string(), 0),
            };
            let what = if current {
                format!("{what} (this one)")
            } else {
                what
            };
            let when = if since > 0 {
                format!("since {}", when(since))
            } else {
                String::new()
            };
            (current, since, Line { what, when })
        })
        .collect();
    // This session first, then the newest.
    sessions.sort_by_key(|(current, since, _)| (!*current, -*since));
    let sessions = sessions.into_iter().map(|(_, _, line)| line).collect();
    let since = crate::db::now() - 30 * 86400;
    let events = events::list(db, Some(user.id), since, 20)
        .await?
        .into_iter()
        .rev()
        .map(|e| {
            let what = if e.detail.is_empty() {
                e.kind.replace('_', " ")
            } else {
                format!("{}: {}", e.kind.replace('_', " "), e.detail)
            };
            // An admin action's address is the admin's, not theirs: it stays in `pollstr
            // events` and the admin's pages.
            let what = if e.kind == Kind::AdminAction.as_str() {
                what
            } else {
                format!("{what} (from {})", e.ip)
            };
            Line {
                what,
                when: when(e.at),
            }
        })
        .collect();
    let (email, email_confirmed) = users::email::email_of(db, user.id)
        .await?
        .unwrap_or_default();
    web::render(&AccountPage {
        email,
        email_confirmed,
        email_on: state.part::<crate::mail::Outbox>().enabled(),
        phone: sms::store::numbers::of_user(db, user.id)
            .await?
            .map(|n| n.masked()),
        authenticator_since: totp::store::of_user(db, user.id)
            .await?
            .map(|f| when(f.created_at)),
        passkeys: passkeys::store::of_user(db, user.id).await?.len(),
        recovery_left: recovery::store::left(db, user.id).await?,
        trusted: trusted::of_user(db, user.id)
            .await?
            .into_iter()
            .map(|t| Line {
                what: t.label,
                when: format!("since {}, until {}", when(t.created_at), when(t.expires_at)),
            })
            .collect(),
        sessions,
        events,
        ctx: page.ctx,
    })
}

async fn end_other_sessions(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    page: Page,
) -> AppResult<Response> {
    let Some(me) = current_user(&page.session).await? else {
        return Err(AppError::Forbidden("Log in first.".into()));
    };
    let epoch = users::end_sessions(&state.db, me.id, None).await?;
    state.sessions.forget_cached();
    // This session goes on under a new id (its row went with the others) and the new epoch.
    let session = &page.session;
    session.cycle_id().await?;
    crate::session::USER
        .insert(
            session,
            SessionUser {
                epoch,
                ..me.clone()
            },
        )
        .await?;
    csrf::rotate(session).await?;
    events::record(&state.db, Kind::OtherSessionsEnded, Some(me.id), &ip, "").await?;
    flash::push(
        session,
        Level::Success,
        "Every other session of your account has been logged out.",
    )
    .await?;
    Ok(Redirect::to("/account/").into_response())
}

async fn forget_trusted(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    page: Page,
) -> AppResult<Response> {
    let Some(me) = current_user(&page.session).await? else {
        return Err(AppError::Forbidden("Log in first.".into()));
    };
    let n = trusted::forget_all(&state.db, me.id).await?;
    events::record(
        &state.db,
        Kind::TrustedBrowsersForgotten,
        Some(me.id),
        &ip,
        &format!("{n} browser(s)"),
    )
    .await?;
    flash::push(
        &page.session,
        Level::Success,
        "No browser is trusted any more: each asks for the second factor at the next login.",
    )
    .await?;
    Ok(Redirect::to("/account/").into_response())
}
