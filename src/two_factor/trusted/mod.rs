//! Trusted browsers: "Trust this browser" (the `remember` box on every second-factor form) lets
//! a browser skip the second factor at login for `TRUSTED_BROWSER_DAYS`. The browser keeps a
//! random token in an `HttpOnly`, `SameSite=Lax` cookie (`Secure` with `SESSION_SECURE`); the
//! database keeps only its keyed hash, bound to the user. A password change, removing a factor
//! and "Forget all trusted browsers" end them. The SQL is in `store.rs`.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use base64::Engine;
use rand::RngCore;

mod store;

use crate::db;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

pub use store::{forget_all, of_user, prune, Trusted};

pub const COOKIE: &str = "pollstr_trusted";

fn digest(state: &AppState, token: &str) -> AppResult<String> {
    let key = state
        .config
        .secret_key
        .as_ref()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("POLLSTR_SECRET_KEY is not set")))?;
    Ok(key.digest("trusted-browser", token.as_bytes()))
}

fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    crate::web::cookie(headers, COOKIE).filter(|v| v.len() == 43)
}

/// Trusts this browser for `user`: a new token, its hash stored, the cookie set on `res`.
pub async fn remember(
    state: &AppState,
    user: i64,
    headers: &HeaderMap,
    res: &mut Response,
) -> AppResult<()> {
    let days = state.config.trusted_browser_days;
    if days == 0 {
        return Ok(());
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let now = db::now();
    let max_age = i64::from(days) * 86400;
    let label = crate::web::client::browser_label(headers);
    store::add(
        &state.db,
        &digest(state, &token)?,
        user,
        &label,
        now,
        now + max_age,
    )
    .await?;
    let secure = if state.config.session_secure {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
    if let Ok(v) = HeaderValue::try_from(cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(())
}

/// Whether this request comes from a browser `user` trusted, and the trust has not ended.
pub async fn is_trusted(state: &AppState, user: i64, headers: &HeaderMap) -> AppResult<bool> {
    let Some(token) = cookie_token(headers) else {
        return Ok(false);
    };
    Ok(store::holds(&state.db, &digest(state, token)?, user).await?)
}
