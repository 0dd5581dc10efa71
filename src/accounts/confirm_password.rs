//! `/account/confirm/?next=…`: the password again, for sensitive changes (sudo mode: it then
//! counts for ten minutes in this session, `two_factor::gate::require_recent_password`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::error::AppResult;
use crate::state::AppState;
use crate::two_factor::gate;
use crate::users::current_password::check_current_password;
use crate::web::next::NextQuery;
use crate::web::routes::{get, Routes};
use crate::web::{self, ClientIp, Form, Page, PageContext, SafeNext};

pub fn router() -> Routes {
    Routes::new()
        .route("/account/confirm/", get(form).post(confirm))
        .route_layer(middleware::from_fn(gate::require_verified))
}

#[derive(Template)]
#[template(path = "registration/confirm_password.html")]
pub struct ConfirmPage {
    pub ctx: PageContext,
    pub next: String,
    pub error: Option<String>,
}

async fn form(page: Page, Query(q): Query<NextQuery>) -> AppResult<Response> {
    let page = page.with_form().await?;
    web::render(&ConfirmPage {
        ctx: page.ctx,
        next: SafeNext::or_default(q.next.as_deref()).as_str().to_string(),
        error: None,
    })
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    password: String,
    next: Option<String>,
}

async fn confirm(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    page: Page,
    Form(form): Form<ConfirmForm>,
) -> AppResult<Response> {
    let next = SafeNext::or_default(form.next.as_deref());
    let page = page.with_form().await?;
    let me = page.user()?;
    let again = |page: Page, status: StatusCode, msg: String| -> AppResult<Response> {
        let body = web::render(&ConfirmPage {
            ctx: page.ctx,
            next: next.as_str().to_string(),
            error: Some(msg),
        })?;
        Ok((status, body).into_response())
    };
    let wrong = "That is not your password. Please try again.";
    let check = check_current_password(&state, &me, &ip, &form.password, "confirming it").await?;
    if let Some(no) = check.refusal(StatusCode::OK, wrong) {
        let res = again(page, no.status, no.message.clone())?;
        return Ok(no.answer(res));
    }
    gate::password_given(&page.session).await?;
    Ok(Redirect::to(next.as_str()).into_response())
}
