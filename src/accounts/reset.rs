//! `/account/reset/{token}/`: a password-reset link (made in the admin, `users::reset`). The
//! page asks for the new password twice; then every session of the user ends (this browser's
//! too: the user logs in again) and every trusted browser is forgotten, so the next login asks
//! for the second factor: a reset never skips it. A link that was used, expired, never existed
//! or belongs to a deactivated user answers 410 with a page that says so; of two uses at once,
//! exactly one sets the password (`users::reset::claim`).
//!
//! [`set_password`] is the one way a password is set without the old one: this page and
//! `pollstr set-password` both use it.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::events::{self, Kind};
use crate::state::AppState;
use crate::users::validation::password_problems;
use crate::users::{self, password, reset};
use crate::web::routes::{get, Routes};
use crate::web::{self, flash, ClientIp, Form, Level, Page, PageContext};

pub fn router() -> Routes {
    Routes::new().route("/account/reset/{token}/", get(form).post(submit))
}

/// Sets `user`'s password to `hash` without the old one: every session of the user ends (on
/// every instance: the epoch moves on), every trusted browser and reset link goes, and a
/// `password_reset` event says `how`. The caller clears a server's cached sessions. Returns
/// how many trusted browsers were forgotten.
pub async fn set_password(db: &Db, user: i64, hash: &str, ip: &str, how: &str) -> AppResult<u64> {
    users::end_sessions(db, user, Some(hash)).await?;
    let browsers = crate::two_factor::trusted::forget_all(db, user).await?;
    let detail = format!("{how}: every session ended, {browsers} trusted browser(s) forgotten");
    events::record(db, Kind::PasswordReset, Some(user), ip, &detail).await?;
    Ok(browsers)
}

#[derive(Template)]
#[template(path = "registration/password_reset_confirm.html")]
pub struct ResetPage {
    pub ctx: PageContext,
    pub token: String,
    pub username: String,
    pub errors: Vec<String>,
}

#[derive(Template)]
#[template(path = "registration/password_reset_gone.html")]
pub struct GonePage {
    pub ctx: PageContext,
}

fn key(state: &AppState) -> AppResult<&crate::crypto::SecretKey> {
    state
        .config
        .secret_key
        .as_ref()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("POLLSTR_SECRET_KEY is not set")))
}

/// The 410 page: the link no longer works, whatever the reason (saying which would tell a
/// guesser which links once existed).
fn gone(page: Page) -> AppResult<Response> {
    let body = web::render(&GonePage { ctx: page.ctx })?;
    Ok((StatusCode::GONE, body).into_response())
}

async fn form(
    State(state): State<AppState>,
    page: Page,
    Path(token): Path<String>,
) -> AppResult<Response> {
    let page = page.with_form().await?;
    let Some(user) = reset::peek(&state.db, key(&state)?, &token).await? else {
        return gone(page);
    };
    web::render(&ResetPage {
        ctx: page.ctx,
        token,
        username: user.username,
        errors: Vec::new(),
    })
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    new_password1: String,
    #[serde(default)]
    new_password2: String,
}

async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    page: Page,
    Path(token): Path<String>,
    Form(form): Form<ResetForm>,
) -> AppResult<Response> {
    let page = page.with_form().await?;
    let key = key(&state)?;
    let Some(user) = reset::peek(&state.db, key, &token).await? else {
        return gone(page);
    };
    let mut errors = Vec::new();
    if form.new_password1 != form.new_password2 {
        errors.push("The two password fields didn't match.".to_string());
    }
    errors.extend(password_problems(&form.new_password1, &user.username));
    if !errors.is_empty() {
        return web::render(&ResetPage {
            ctx: page.ctx,
            token,
            username: user.username,
            errors,
        });
    }
    let hash = {
        let _place = state.part::<password::HashQueue>().enter()?;
        password::hash(form.new_password1.clone()).await?
    };
    // Used up here, once: a second use at the same moment finds it gone.
    match reset::claim(&state.db, key, &token).await? {
        Some(id) if id == user.id => {}
        _ => return gone(page),
    }
    set_password(&state.db, user.id, &hash, &ip, "with a reset link").await?;
    crate::users::notify::security(
        &state,
        user.id,
        "Your Pollstr password was reset",
        "The password of your Pollstr account was reset with a password-reset link. Every session was logged out; the next login still asks for your second factor.",
        &headers,
        &ip,
    )
    .await?;
    state.sessions.forget_cached();
    // This browser logs in again too, with the second factor.
    page.session.flush().await?;
    flash::push(
        &page.session,
        Level::Success,
        "Your password was reset and every session of your account has ended. Log in with the new password: you will still be asked for your second factor.",
    )
    .await?;
    Ok(Redirect::to("/login/").into_response())
}
