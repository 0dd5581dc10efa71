//! Accounts: login, logout and registration pages, the logged-in user in the session, and
//! password hashing; the account page, sudo mode, changing the password, password-reset
//! links (`reset`) and asking for one by mail (`forgot`), the email address (`email`),
//! and the login with a passkey instead of the password (`passkey_login.rs`).

mod change_password;
mod confirm_password;
pub mod email;
pub mod forgot;
mod overview;
mod passkey_login;
pub mod reset;

use askama::Template;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use crate::error::{AppError, AppResult};
use crate::events::{self, Kind};
use crate::limits::{self, human_wait};
use crate::state::AppState;
use crate::telemetry::Telemetry;
use crate::users;
use crate::users::current_password::reserve_password_check;
use crate::users::password::{self, Verdict};
use crate::users::validation::{self, password_problems, Username};
use crate::web::next::NextQuery;
use crate::web::routes::{get, post, Routes};
use crate::web::{self, csrf, flash, ClientIp, Form, Level, Page, PageContext, SafeNext};

pub use crate::session::{current_user, SessionUser};

/// Starts an authenticated session: a new session id (the old one is deleted, so a planted or
/// stolen pre-login id is useless), a new CSRF token, and no second factor yet.
async fn start_session(
    session: &Session,
    user: SessionUser,
    headers: &axum::http::HeaderMap,
    ip: &str,
) -> AppResult<()> {
    session.cycle_id().await?;
    crate::two_factor::gate::forget(session).await?;
    crate::session::USER.insert(session, user).await?;
    let device = crate::session::Device {
        label: crate::web::client::browser_label(headers),
        ip: ip.to_string(),
        since: crate::db::now(),
    };
    crate::session::DEVICE.insert(session, device).await?;
    csrf::rotate(session).await?;
    Ok(())
}

pub fn router(state: &AppState) -> Routes {
    Routes::new()
        .route("/login/", get(login_form).post(login))
        .route("/logout/", post(logout))
        .route("/register/", get(register_form).post(register))
        .merge(change_password::router(state))
        .merge(overview::router())
        .merge(confirm_password::router())
        .merge(reset::router())
        .merge(forgot::router())
        .merge(email::router())
        .merge(passkey_login::router())
}

#[derive(Template)]
#[template(path = "registration/login.html")]
pub struct LoginPage {
    pub ctx: PageContext,
    pub next: String,
    pub username: String,
    pub error: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

pub async fn login_form(page: Page, Query(q): Query<NextQuery>) -> AppResult<Response> {
    let page = page.with_form().await?;
    web::render(&LoginPage {
        ctx: page.ctx,
        next: SafeNext::or_default(q.next.as_deref()).as_str().to_string(),
        username: String::new(),
        error: None,
    })
}

const MISMATCH: &str = "Your username and password didn't match. Please try again.";

pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    page: Page,
    Form(form): Form<LoginForm>,
) -> AppResult<Response> {
    // The form is shown again on failure.
    let page = page.with_form().await?;
    let next = SafeNext::or_default(form.next.as_deref());
    let refuse = |page: Page, status: StatusCode, msg: &str| -> AppResult<Response> {
        let body = web::render(&LoginPage {
            ctx: page.ctx,
            next: next.as_str().to_string(),
            username: as_typed(&form.username),
            error: Some(msg.to_string()),
        })?;
        Ok((status, body).into_response())
    };
    if form.username.trim().is_empty() || form.password.is_empty() {
        return refuse(page, StatusCode::OK, "Enter your username and password.");
    }
    if form.password.len() > validation::MAX_PASSWORD || form.username.len() > 1024 {
        return refuse(page, StatusCode::OK, MISMATCH);
    }
    // `pollstr_logins_total{outcome}`: ok, failed, refused (a limit), busy (the hash queue).
    let logins = |outcome: &'static str| {
        let labels = [("outcome", outcome.into())];
        state
            .part::<Telemetry>()
            .count("pollstr_logins_total", &labels)
    };
    // A place among the password checks first: past a burst's worth, turned away at once.
    let _place = state
        .part::<password::HashQueue>()
        .enter()
        .inspect_err(|_| logins("busy"))?;
    let attempt = match reserve_password_check(&state, &ip, &form.username).await? {
        Ok(attempt) => attempt,
        Err(wait) => {
            logins("refused");
            let known = users::find_by_username(&state.db, form.username.trim()).await?;
            events::record(
                &state.db,
                Kind::LoginRefused,
                known.map(|u| u.id),
                &ip,
                "failed-login limit",
            )
            .await?;
            let msg = format!(
                "Too many failed logins. Please try again in {}.",
                human_wait(wait)
            );
            let mut res = refuse(page, StatusCode::TOO_MANY_REQUESTS, &msg)?;
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            return Ok(res);
        }
    };
    let user = users::find_by_username(&state.db, form.username.trim()).await?;
    let stored = user
        .as_ref()
        .filter(|u| u.is_active)
        .map(|u| u.password.clone());
    let verdict = password::verify(form.password.clone(), stored).await?;
    if verdict == Verdict::Invalid || user.is_none() {
        let (id, detail) = match &user {
            None => (None, "unknown username"),
            Some(u) if !u.is_active => (Some(u.id), "inactive account"),
            Some(u) => (Some(u.id), "wrong password"),
        };
        events::record(&state.db, Kind::LoginFailed, id, &ip, detail).await?;
        logins("failed");
        return refuse(page, StatusCode::OK, MISMATCH);
    }
    let user = match (verdict, user) {
        (Verdict::Invalid, _) | (_, None) => return refuse(page, StatusCode::OK, MISMATCH),
        (Verdict::ValidUpgrade(new_hash), Some(u)) => {
            users::set_password(&state.db, u.id, &new_hash).await?;
            u
        }
        (Verdict::Valid, Some(u)) => u,
    };
    limits::release(&state.db, attempt).await?;
    users::touch_last_login(&state.db, user.id).await?;
    events::record(&state.db, Kind::LoginOk, Some(user.id), &ip, "").await?;
    logins("ok");
    let me = SessionUser {
        id: user.id,
        username: user.username,
        epoch: user.session_epoch,
    };
    start_session(&page.session, me.clone(), &headers, &ip).await?;
    crate::two_factor::gate::password_given(&page.session).await?;
    // A browser the user trusts skips the second factor.
    if crate::two_factor::trusted::is_trusted(&state, me.id, &headers).await? {
        crate::two_factor::gate::passed(&page.session, &me).await?;
        events::record(&state.db, Kind::CodeOk, Some(me.id), &ip, "trusted browser").await?;
    }
    Ok(Redirect::to(next.as_str()).into_response())
}

pub async fn logout(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    session: Session,
) -> AppResult<Response> {
    if let Some(user) = current_user(&session).await? {
        events::record(&state.db, Kind::Logout, Some(user.id), &ip, "").await?;
    }
    // Deletes the record server-side: the old cookie is worthless from now on.
    session.flush().await?;
    flash::push(&session, Level::Info, "You have been logged out.").await?;
    Ok(Redirect::to("/polls/").into_response())
}

#[derive(Template)]
#[template(path = "registration/register.html")]
pub struct RegisterPage {
    pub ctx: PageContext,
    pub next: String,
    pub username: String,
    pub email: String,
    pub email_on: bool,
    pub errors: Vec<String>,
}

#[derive(Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password1: String,
    #[serde(default)]
    password2: String,
    /// Optional: kept unconfirmed, and a confirmation link is mailed to it.
    #[serde(default)]
    email: String,
    next: Option<String>,
}

pub async fn register_form(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<NextQuery>,
) -> AppResult<Response> {
    let page = page.with_form().await?;
    web::render(&RegisterPage {
        ctx: page.ctx,
        next: SafeNext::or_default(q.next.as_deref()).as_str().to_string(),
        username: String::new(),
        email: String::new(),
        email_on: email_on(&state),
        errors: Vec::new(),
    })
}

/// Counts a sign-up against `SIGNUP_LIMIT_PER_IP` before its password is hashed, so that sign-ups
/// sent together cannot all pass. What counts is every sign-up that reaches the hash, created or
/// not (a name taken meanwhile cost the hash too); a form refused before it (passwords that
/// differ, a name that is not allowed) is not counted. `Err(seconds)`: refused, try again then.
async fn reserve_signup(state: &AppState, ip: &str) -> AppResult<Result<(), u64>> {
    let l = &state.config.limits;
    let subject = web::client::limit_subject(ip, l.ipv6_prefix);
    let checks = [(
        limits::Scope::SignupPerIp,
        subject.as_str(),
        l.signup_per_ip.as_slice(),
    )];
    // Never released: the attempt counts whatever becomes of it.
    Ok(limits::reserve(state, &checks).await?.map(|_counted| ()))
}

pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    page: Page,
    Form(form): Form<RegisterForm>,
) -> AppResult<Response> {
    // The form is shown again on failure.
    let page = page.with_form().await?;
    let next = SafeNext::or_default(form.next.as_deref());
    let mut errors = Vec::new();
    let username = match Username::parse(&form.username) {
        Ok(u) => Some(u),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if form.password1 != form.password2 {
        errors.push("The two password fields didn't match.".into());
    }
    if let Err(e) = users::email::parse(&form.email) {
        errors.push(e);
    }
    errors.extend(password_problems(
        &form.password1,
        username.as_ref().map(|u| u.as_str()).unwrap_or(""),
    ));
    let mut created = None;
    if let (true, Some(name)) = (errors.is_empty(), &username) {
        // A place within the sign-ups' share of the hash queue, then the sign-up limit: a
        // flood is refused before it hashes, and never takes the places logins need.
        let _place = state.part::<password::HashQueue>().enter_signup()?;
        if let Err(wait) = reserve_signup(&state, &ip).await? {
            events::record(&state.db, Kind::SignupRefused, None, &ip, "sign-up limit").await?;
            let body = web::render(&RegisterPage {
                ctx: page.ctx,
                next: next.as_str().to_string(),
                username: as_typed(&form.username),
                email: as_typed_email(&form.email),
                email_on: email_on(&state),
                errors: vec![format!(
                    "Too many sign-ups from your network. Please try again in {}.",
                    human_wait(wait)
                )],
            })?;
            let mut res = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            return Ok(res);
        }
        let hash = password::hash(form.password1.clone()).await?;
        match users::create(&state.db, name.as_str(), &hash).await {
            Ok(id) => created = Some((id, name.as_str().to_string())),
            Err(users::CreateUserError::Db(e)) => return Err(AppError::from(e)),
            Err(refused) => errors.push(refused.to_string()),
        }
    }
    if let Some((id, _)) = &created {
        events::record(&state.db, Kind::SignedUp, Some(*id), &ip, "").await?;
    }
    let Some((id, username)) = created else {
        return web::render(&RegisterPage {
            ctx: page.ctx,
            next: next.as_str().to_string(),
            username: as_typed(&form.username),
            email: as_typed_email(&form.email),
            email_on: email_on(&state),
            errors,
        });
    };
    if let Ok(Some(address)) = users::email::parse(&form.email) {
        users::email::set_unconfirmed_email(&state.db, id, &address).await?;
        if email_on(&state) {
            email::send_confirmation(&state, id, &username, &address).await?;
        }
    }
    start_session(
        &page.session,
        SessionUser {
            id,
            username: username.clone(),
            epoch: 0,
        },
        &headers,
        &ip,
    )
    .await?;
    flash::push(
        &page.session,
        Level::Success,
        format!("Welcome to Pollstr, {username}!"),
    )
    .await?;
    Ok(Redirect::to(next.as_str()).into_response())
}

fn email_on(state: &AppState) -> bool {
    state.part::<crate::mail::Outbox>().enabled()
}

/// An address as typed, shown again in its form (at most as long as an address may be).
fn as_typed_email(email: &str) -> String {
    email.chars().take(users::email::MAX_EMAIL).collect()
}

/// A username as typed, shown again in its form (at most as long as a username may be).
fn as_typed(username: &str) -> String {
    username.chars().take(validation::MAX_USERNAME).collect()
}
