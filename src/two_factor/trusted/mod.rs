//! Trusted browsers: "Trust this browser" (the `remember` box on every second-factor form) lets
//! a browser skip the second factor at login for `TRUSTED_BROWSER_DAYS`. The browser keeps a
//! random token in an `HttpOnly`, `SameSite=Lax` cookie (`Secure` with `SESSION_SECURE`); the
//! database keeps only its keyed hash, bound to the user. A password change, removing a factor
//! and "Forget all trusted browsers" end them.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use base64::Engine;
use rand::RngCore;

use crate::db::{self, Db};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::with_db;

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
    with_db!(&state.db, p => sqlx::query(
        "INSERT INTO trusted_browsers (token_hash, user_id, label, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(digest(state, &token)?)
    .bind(user)
    .bind(crate::web::client::browser_label(headers))
    .bind(now)
    .bind(now + max_age)
    .execute(p)
    .await
    .map(|_| ()))?;
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
    let found = with_db!(&state.db, p => sqlx::query_scalar::<_, i64>(
        "SELECT user_id FROM trusted_browsers WHERE token_hash = $1 AND user_id = $2 AND expires_at > $3",
    )
    .bind(digest(state, token)?)
    .bind(user)
    .bind(db::now())
    .fetch_optional(p)
    .await)?;
    Ok(found.is_some())
}

/// A browser the user trusts, for the account page.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Trusted {
    pub label: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub async fn of_user(db: &Db, user: i64) -> sqlx::Result<Vec<Trusted>> {
    with_db!(db, p => sqlx::query_as::<_, Trusted>(
        "SELECT label, created_at, expires_at FROM trusted_browsers WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC",
    )
    .bind(user)
    .bind(db::now())
    .fetch_all(p)
    .await)
}

/// Ends every trust of the user (a password change, a factor removed, or asked for).
pub async fn forget_all(db: &Db, user: i64) -> sqlx::Result<u64> {
    with_db!(db, p => sqlx::query("DELETE FROM trusted_browsers WHERE user_id = $1")
        .bind(user)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}

/// Deletes trusts that have ended (housekeeping).
pub async fn prune(db: &Db) -> sqlx::Result<u64> {
    with_db!(db, p => sqlx::query("DELETE FROM trusted_browsers WHERE expires_at <= $1")
        .bind(db::now())
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}
