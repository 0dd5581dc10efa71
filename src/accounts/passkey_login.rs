//! `/login/passkey/`: the login without a password. The login page's script asks
//! `/login/passkey/begin/` for a request (a POST: showing the login form starts no session, so
//! the ceremony's session begins only when a browser that can use a passkey asks for one), the
//! browser's answer comes back to `/login/passkey/`, and [`passkeys::signin::finish`] says whose
//! passkey it was. With user verification it is both factors: the session starts verified.
//! Sudo mode still asks for the password.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{start_session, LoginPage, SessionUser};
use crate::error::{AppError, AppResult};
use crate::events::{self, Kind};
use crate::state::AppState;
use crate::two_factor::passkeys::signin::{self, Outcome};
use crate::users;
use crate::web::routes::{post, Routes};
use crate::web::{self, ClientIp, Form, Page, SafeNext};

pub fn router() -> Routes {
    Routes::new()
        .route("/login/passkey/begin/", post(begin))
        .route("/login/passkey/", post(finish))
}

/// A new request for any of this site's passkeys, as JSON for the script.
async fn begin(State(state): State<AppState>, page: Page) -> AppResult<Response> {
    let options = signin::begin(&state, &page.session).await?;
    if options.is_empty() {
        return Err(AppError::Unavailable(anyhow::anyhow!(
            "passkeys are not set up on this server"
        )));
    }
    let json = [(header::CONTENT_TYPE, "application/json")];
    Ok((json, options).into_response())
}

#[derive(Deserialize)]
pub struct SignInForm {
    /// The browser's answer (JSON), filled in by `static/passkeys.js`.
    #[serde(default)]
    credential: String,
    next: Option<String>,
}

async fn finish(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    page: Page,
    Form(form): Form<SignInForm>,
) -> AppResult<Response> {
    let page = page.with_form().await?;
    let next = SafeNext::or_default(form.next.as_deref());
    let refuse = |page: Page, msg: &str| -> AppResult<Response> {
        let body = web::render(&LoginPage {
            ctx: page.ctx,
            next: next.as_str().to_string(),
            username: String::new(),
            error: Some(msg.to_string()),
        })?;
        Ok((StatusCode::BAD_REQUEST, body).into_response())
    };
    let (user, passkey) = match signin::finish(&state, &page.session, &ip, &form.credential).await?
    {
        Outcome::Both { user, passkey } => (user, passkey),
        Outcome::Refused(msg) => return refuse(page, msg),
    };
    let Some(user) = users::find(&state.db, user).await?.filter(|u| u.is_active) else {
        events::record(
            &state.db,
            Kind::LoginFailed,
            Some(user),
            &ip,
            "inactive account",
        )
        .await?;
        return refuse(page, "This account cannot log in.");
    };
    users::touch_last_login(&state.db, user.id).await?;
    let detail = format!("passkey \"{passkey}\"");
    events::record(&state.db, Kind::LoginOk, Some(user.id), &ip, &detail).await?;
    let me = SessionUser {
        id: user.id,
        username: user.username,
        epoch: user.session_epoch,
    };
    start_session(&page.session, me.clone(), &headers, &ip).await?;
    // User verification made it both factors.
    crate::two_factor::gate::passed(&page.session, &me).await?;
    let detail = format!("passkey \"{passkey}\" with user verification, at login");
    events::record(&state.db, Kind::CodeOk, Some(me.id), &ip, &detail).await?;
    Ok(Redirect::to(next.as_str()).into_response())
}
