//! `/account/password/`: change the password (the current one required), which ends every other
//! session of the user, on every instance, at once.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{current_user, SessionUser};
use crate::error::{AppError, AppResult};
use crate::events::{self, Kind};
use crate::state::AppState;
use crate::users;
use crate::users::current_password::check_current_password;
use crate::users::password;
use crate::users::validation::{self, password_problems};
use crate::web::routes::{get, Routes};
use crate::web::{self, csrf, flash, ClientIp, Form, Level, Page, PageContext};

pub fn router(state: &AppState) -> Routes {
    Routes::new()
        .route("/account/password/", get(form).post(change))
        // Only with both factors: a password alone must not be enough to take an account over.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::two_factor::gate::require_verified,
        ))
}

#[derive(Template)]
#[template(path = "registration/password_change.html")]
pub struct PasswordChangePage {
    pub ctx: PageContext,
    pub errors: Vec<String>,
}

#[derive(Deserialize)]
pub struct PasswordChangeForm {
    #[serde(default)]
    old_password: String,
    #[serde(default)]
    new_password1: String,
    #[serde(default)]
    new_password2: String,
}

async fn form(page: Page) -> AppResult<Response> {
    let page = page.with_form().await?;
    web::render(&PasswordChangePage {
        ctx: page.ctx,
        errors: Vec::new(),
    })
}

const WRONG: &str = "Your old password was entered incorrectly. Please enter it again.";

async fn change(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    page: Page,
    Form(form): Form<PasswordChangeForm>,
) -> AppResult<Response> {
    let page = page.with_form().await?;
    let Some(me) = current_user(&page.session).await? else {
        return Err(AppError::Forbidden("Log in first.".into()));
    };
    let refuse = |page: Page, status: StatusCode, errors: Vec<String>| -> AppResult<Response> {
        let body = web::render(&PasswordChangePage {
            ctx: page.ctx,
            errors,
        })?;
        Ok((status, body).into_response())
    };
    let mut errors = Vec::new();
    if form.new_password1 != form.new_password2 {
        errors.push("The two password fields didn't match.".to_string());
    }
    errors.extend(password_problems(&form.new_password1, &me.username));
    if form.old_password.len() > validation::MAX_PASSWORD {
        errors.push(WRONG.to_string());
    }
    if !errors.is_empty() {
        return refuse(page, StatusCode::OK, errors);
    }
    // A wrong current password is a failed login: the same limits, reserved before the hash.
    let check = check_current_password(&state, &me, &ip, &form.old_password, "password change");
    if let Some(no) = check.await?.refusal(StatusCode::OK, WRONG) {
        let res = refuse(page, no.status, vec![no.message.clone()])?;
        return Ok(no.answer(res));
    }
    let hash = password::hash(form.new_password1.clone()).await?;
    let epoch = users::end_sessions(&state.db, me.id, Some(&hash)).await?;
    state.sessions.forget_cached();
    crate::two_factor::trusted::forget_all(&state.db, me.id).await?;
    events::record(
        &state.db,
        Kind::PasswordChanged,
        Some(me.id),
        &ip,
        "every other session ended, every trusted browser forgotten",
    )
    .await?;
    crate::users::notify::security(
        &state,
        me.id,
        "Your Pollstr password was changed",
        "The password of your Pollstr account was changed. Every other session was logged out.",
        &headers,
        &ip,
    )
    .await?;
    // This session goes on under a new id (its row went with the others) and the new epoch.
    let session = &page.session;
    session.cycle_id().await?;
    crate::session::USER
        .insert(session, SessionUser { epoch, ..me })
        .await?;
    csrf::rotate(session).await?;
    flash::push(
        session,
        Level::Success,
        "Your password was changed. Every other session of your account has been logged out.",
    )
    .await?;
    Ok(Redirect::to("/polls/").into_response())
}
