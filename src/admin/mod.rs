//! The staff admin under `/admin/`: a dashboard (dashboard.rs), the polls and their choices
//! (polls.rs), the users and their factors, sessions and events (users.rs), and fixture import
//! and export (fixtures.rs); the SQL only the admin runs is in store.rs.
//!
//! Every page is behind [`require_staff`]: a signed-in user whose `is_staff` and `is_active`
//! are read from the database on each request (a staff flag removed takes effect at once, on
//! every instance), and whose session passed the second factor. Anyone else is not told the
//! admin exists (the site's 404). The same rule ([`access`]) decides, before a byte of the body
//! is read, who may send the admin's large bodies ([`may_send_large_bodies`]). Destructive actions also take sudo mode
//! (`gate::require_recent_password`), and every action is a security event naming the admin.

mod dashboard;
mod fixtures;
mod polls;
pub mod store;
mod users;

/// The store's former name, which the integration tests and `pollstr createuser` still import:
/// kept so that the rename left them untouched. New code says `store`.
#[doc(hidden)]
pub use store as queries;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

use crate::error::{AppError, AppResult};
use crate::events::{self, Kind};
use crate::session::SessionUser;
use crate::state::AppState;
use crate::two_factor::gate;
use crate::web::routes::Routes;
use crate::web::SafeNext;

/// Rows per page of the admin's lists (as Django's admin).
pub const PER_PAGE: i64 = 50;

pub fn router(state: &AppState) -> Routes {
    Routes::new()
        .merge(dashboard::router())
        .merge(polls::router(state))
        .merge(users::router(state))
        .merge(fixtures::router(state))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_staff))
}

/// The staff user of an admin request, put there by [`require_staff`].
#[derive(Clone, Debug)]
pub struct Staff {
    pub id: i64,
    pub username: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Staff {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Only routes behind `require_staff` ask for it: its absence is a wiring mistake.
        parts.extensions.get::<Staff>().cloned().ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("admin page reached without the staff gate"))
        })
    }
}

/// What a session is to the admin.
pub enum Access {
    Anonymous,
    /// Signed in, but not an active staff user.
    NotStaff,
    /// Active staff whose session has not passed the second factor.
    NeedsSecondFactor,
    Staff(SessionUser),
}

/// The admin's rule: an active staff user (read from the database now) whose session passed
/// the second factor.
pub async fn access(state: &AppState, session: &Session) -> AppResult<Access> {
    let Some(user) = crate::session::current_user(session).await? else {
        return Ok(Access::Anonymous);
    };
    match store::staff_status(&state.db, user.id).await? {
        Some((true, true)) => {}
        _ => return Ok(Access::NotStaff),
    }
    if !gate::is_verified(session, &user).await? {
        return Ok(Access::NeedsSecondFactor);
    }
    Ok(Access::Staff(user))
}

/// Whether a session may send the admin's large bodies (a fixture upload, a long poll form):
/// only one the admin lets in. Registered with the body limit (`web::csrf::LargeBodies`) by
/// `app`, as the web layer must not depend on the admin.
pub fn may_send_large_bodies<'a>(
    state: &'a AppState,
    session: &'a Session,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = AppResult<bool>> + Send + 'a>> {
    Box::pin(async move { Ok(matches!(access(state, session).await?, Access::Staff(_))) })
}

/// The staff gate: anonymous visitors to login, signed-in users who are not active staff to
/// the 404 page (before anything else, so that the admin is not advertised), staff whose
/// session has not passed the second factor to `/2fa/`; `next` points back here.
pub async fn require_staff(
    State(state): State<AppState>,
    session: Session,
    mut req: Request,
    next: Next,
) -> Result<Response, AppError> {
    let back = if req.method() == axum::http::Method::GET {
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/admin/")
            .to_string()
    } else {
        // A POST cannot be replayed by a redirect: come back to its page.
        req.uri().path().to_string()
    };
    let back = SafeNext::or_default(Some(&back));
    let user = match access(&state, &session).await? {
        Access::Staff(user) => user,
        Access::Anonymous => {
            let to = back.url("/login/");
            return Ok(Redirect::to(&to).into_response());
        }
        Access::NotStaff => return Err(AppError::NotFound),
        Access::NeedsSecondFactor => {
            let to = back.url("/2fa/");
            return Ok(Redirect::to(&to).into_response());
        }
    };
    req.extensions_mut().insert(Staff {
        id: user.id,
        username: user.username,
    });
    Ok(next.run(req).await)
}

/// Records what a staff user did: an `admin_action` event about `user` (the target when it is
/// a user, else the admin), whose detail begins with the admin's name.
pub async fn record(
    state: &AppState,
    staff: &Staff,
    user: Option<i64>,
    ip: &str,
    what: &str,
) -> AppResult<()> {
    let detail = format!("by {} (#{}): {what}", staff.username, staff.id);
    events::record(
        &state.db,
        Kind::AdminAction,
        Some(user.unwrap_or(staff.id)),
        ip,
        &detail,
    )
    .await?;
    Ok(())
}

/// A list's page number from the query: absent is 1; anything but a positive number is a 404
/// (as the public list).
pub fn page_number(raw: Option<&str>) -> AppResult<i64> {
    match raw {
        None | Some("") => Ok(1),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or(AppError::NotFound),
    }
}

/// The search text of a list: trimmed, at most `max` characters.
pub fn search_text(raw: Option<String>, max: usize) -> String {
    raw.unwrap_or_default().trim().chars().take(max).collect()
}

/// The rows a list has in all, from the count its first row carries: a page past the end
/// (no rows, not the first page) is not found.
pub fn list_total(first_row_total: Option<i64>, page: i64) -> AppResult<i64> {
    match first_row_total {
        Some(total) => Ok(total),
        None if page == 1 => Ok(0),
        None => Err(AppError::NotFound),
    }
}

/// The number of pages of a list of `total` rows.
pub fn pages(total: i64) -> i64 {
    ((total + PER_PAGE - 1) / PER_PAGE).max(1)
}

/// `?q=…&page=…`, with the search text encoded.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    serde_urlencoded::to_string(kept).unwrap_or_default()
}
