//! The gate: what a session has proven ([`session::VERIFIED`]), and the layer in front of the
//! pages that need both factors ([`require_verified`]). Every factor checks a code the same
//! way: [`reserve_code_check`] first (the wrong-code limit all factors share), then on a right
//! code [`complete`]. Logging in or out forgets it ([`forget`]).

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

use crate::error::{AppError, AppResult};
use crate::events::{self, Kind};
use crate::limits::{self, human_wait, Reservation, Scope};
use crate::session::{self, SessionUser, Verified};
use crate::state::AppState;
use crate::web::{csrf, SafeNext};

/// Reserves a code check against the wrong-code limit (`CODE_LIMIT_PER_USER`), which every
/// factor shares: the attempt counts as wrong until the code proves right, so that codes sent
/// together (from several sessions) cannot all pass. `Err(seconds)`: refused (recorded, with
/// `factor` in the event).
pub async fn reserve_code_check(
    state: &AppState,
    user: &SessionUser,
    ip: &str,
    factor: &str,
) -> AppResult<Result<Reservation, u64>> {
    let uid = user.id.to_string();
    let checks = [(
        Scope::WrongCodePerUser,
        uid.as_str(),
        state.config.limits.code_per_user.as_slice(),
    )];
    let reserved = limits::reserve(state, &checks).await?;
    if reserved.is_err() {
        let detail = format!("wrong-code limit ({factor})");
        events::record(&state.db, Kind::CodeRefused, Some(user.id), ip, &detail).await?;
    }
    Ok(reserved)
}

/// What a page says when [`reserve_code_check`] refused.
pub fn too_many_codes(wait: u64) -> String {
    format!(
        "Too many wrong codes. Please wait {} before trying again.",
        human_wait(wait)
    )
}

/// A second factor passed: a new session id and CSRF token (a privilege change), the session
/// marked verified, the browser trusted if `remember` was ticked; then on to `next`.
pub async fn complete(
    state: &AppState,
    session: &Session,
    user: &SessionUser,
    remember: bool,
    headers: &HeaderMap,
    next: &SafeNext,
) -> AppResult<Response> {
    session.cycle_id().await?;
    session::SMS_PENDING.remove(session).await?;
    passed(session, user).await?;
    csrf::rotate(session).await?;
    let mut res = Redirect::to(next.as_str()).into_response();
    if remember {
        super::trusted::remember(state, user.id, headers, &mut res).await?;
    }
    Ok(res)
}

/// Drops any second-factor state (at login and logout).
pub async fn forget(session: &Session) -> AppResult<()> {
    session::SMS_PENDING.remove(session).await?;
    session::VERIFIED.remove(session).await?;
    Ok(())
}

pub async fn is_verified(session: &Session, user: &SessionUser) -> AppResult<bool> {
    let v = session::VERIFIED.get(session).await?;
    Ok(v.is_some_and(|v| v.user_id == user.id))
}

/// Records that `user` passed a second factor in this session ([`complete`] does it with the
/// rest; a trusted browser at login, alone).
pub async fn passed(session: &Session, user: &SessionUser) -> AppResult<()> {
    session::VERIFIED
        .insert(
            session,
            Verified {
                user_id: user.id,
                at: crate::db::now(),
            },
        )
        .await?;
    Ok(())
}

/// Records that the password was given in this session just now (at login, and at
/// `/account/confirm/`).
pub async fn password_given(session: &Session) -> AppResult<()> {
    session::PASSWORD_AT
        .insert(session, crate::db::now())
        .await?;
    Ok(())
}

/// Whether the password was given in this session within `SUDO_WINDOW` (sudo mode).
pub async fn has_recent_password(state: &AppState, session: &Session) -> AppResult<bool> {
    let at = session::PASSWORD_AT.get(session).await?.unwrap_or(0);
    Ok(crate::db::now() - at <= state.config.sudo_window.as_secs() as i64)
}

/// Sudo mode, for setting up a factor: the password must have been given in this session
/// within `SUDO_WINDOW` (ten minutes), else `/account/confirm/?next=` asks for it and comes
/// back. Put it inside [`require_verified`].
pub async fn require_recent_password(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    session: Session,
    req: Request,
    next: Next,
) -> Result<Response, AppError> {
    if has_recent_password(&state, &session).await? {
        return Ok(next.run(req).await);
    }
    // A POST cannot be replayed by a redirect: come back to its page.
    let back = if req.method() == axum::http::Method::GET {
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/account/")
    } else {
        req.uri().path()
    };
    let back = SafeNext::or_default(Some(back));
    Ok(back.redirect("/account/confirm/"))
}

/// The verified layer: a logged-in user whose second factor was checked in this session passes;
/// otherwise login (anonymous) or `/2fa/` (not verified), with `next` pointing back here.
pub async fn require_verified(
    session: Session,
    req: Request,
    next: Next,
) -> Result<Response, AppError> {
    let back = if req.method() == axum::http::Method::GET {
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/polls/")
            .to_string()
    } else {
        // A POST cannot be replayed by a redirect; come back to the page it was sent from.
        req.uri().path().trim_end_matches("vote/").to_string()
    };
    let back = SafeNext::or_default(Some(&back));
    match session::current_user(&session).await? {
        None => Ok(back.redirect("/login/")),
        Some(user) if is_verified(&session, &user).await? => Ok(next.run(req).await),
        Some(_) => Ok(back.redirect("/2fa/")),
    }
}
