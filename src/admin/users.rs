//! `/admin/users/`: the users (search, 50 a page); one user's second factors (the phone
//! masked), sessions and security events; and what an admin may do to them, each asked again
//! on a page of its own, in sudo mode, and recorded as an event naming the admin: reset the
//! second factor (they enrol again), end every session, deactivate (or activate again), the
//! staff flag, and make a password-reset link (shown to the admin once: `users::reset`).
//! Ending sessions (alone, with a deactivation or a reset) also forgets the user's trusted
//! browsers, so their next login asks for the second factor.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::dashboard::EventLine;
use super::store::{self, UserRow};
use super::{Staff, PER_PAGE};
use crate::error::{AppError, AppResult};
use crate::events;
use crate::state::AppState;
use crate::two_factor::{gate, passkeys, recovery, sms, totp, trusted};
use crate::users;
use crate::web::routes::{get, Routes};
use crate::web::{self, flash, ClientIp, Level, Page, PageContext};

pub fn router(state: &AppState) -> Routes {
    let sudo = Routes::new()
        .route("/admin/users/{id}/{action}/", get(confirm).post(act))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            gate::require_recent_password,
        ));
    Routes::new()
        .route("/admin/users/", get(list))
        .route("/admin/users/{id}/", get(detail))
        .merge(sudo)
}

// -- The list ---------------------------------------------------------------------------------

pub struct UserLine {
    pub id: i64,
    pub username: String,
    pub is_staff: bool,
    pub is_active: bool,
    pub joined: String,
    pub last_login: String,
}

impl UserLine {
    fn of(u: UserRow) -> UserLine {
        UserLine {
            id: u.id,
            username: u.username,
            is_staff: u.is_staff,
            is_active: u.is_active,
            joined: web::when(u.date_joined),
            last_login: u
                .last_login
                .map(web::when)
                .unwrap_or_else(|| "never".into()),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/user_list.html")]
pub struct UserListPage {
    pub ctx: PageContext,
    pub section: &'static str,
    pub q: String,
    pub rows: Vec<UserLine>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    pub newer: Option<String>,
    pub older: Option<String>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    page: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    _staff: Staff,
    page: Page,
    Query(query): Query<ListQuery>,
) -> AppResult<Response> {
    let q = super::search_text(query.q, 150);
    let number = super::page_number(query.page.as_deref())?;
    let rows = store::user_list(&state.db, &q, PER_PAGE, (number - 1) * PER_PAGE).await?;
    let total = super::list_total(rows.first().map(|r| r.total), number)?;
    let pages = super::pages(total);
    let link = |n: i64| {
        let n = n.to_string();
        format!(
            "/admin/users/?{}",
            super::query_string(&[("q", &q), ("page", &n)])
        )
    };
    web::render(&UserListPage {
        newer: (number > 1).then(|| link(number - 1)),
        older: (number < pages).then(|| link(number + 1)),
        rows: rows.into_iter().map(UserLine::of).collect(),
        ctx: page.ctx,
        section: "users",
        q,
        total,
        page: number,
        pages,
    })
}

// -- One user ---------------------------------------------------------------------------------

pub struct SessionLine {
    pub what: String,
    pub since: String,
}

#[derive(Template)]
#[template(path = "admin/user_detail.html")]
pub struct UserPage {
    pub ctx: PageContext,
    pub section: &'static str,
    pub user: UserLine,
    pub me: bool,
    pub phone: Option<String>,
    pub authenticator_since: Option<String>,
    pub recovery_left: i64,
    pub trusted: usize,
    pub sessions: Vec<SessionLine>,
    pub events: Vec<EventLine>,
}

async fn find_user(state: &AppState, raw: &str) -> AppResult<UserRow> {
    let id = web::parse_id(raw)?;
    store::user(&state.db, id).await?.ok_or(AppError::NotFound)
}

async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    page: Page,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let user = find_user(&state, &id).await?;
    let db = &state.db;
    let sessions = crate::db::session_store::of_user(db, user.id)
        .await?
        .into_iter()
        .map(|record| match crate::session::Device::of(&record) {
            Some(d) => SessionLine {
                what: format!("{}, from {}", d.label, d.ip),
                since: format!("since {}", web::when(d.since)),
            },
            None => SessionLine {
                what: "A browser".into(),
                since: String::new(),
            },
        })
        .collect();
    let events = events::list(db, Some(user.id), crate::db::now() - 30 * 86_400, 50)
        .await?
        .into_iter()
        .rev()
        .map(EventLine::of)
        .collect();
    web::render(&UserPage {
        ctx: page.ctx,
        section: "users",
        me: user.id == staff.id,
        phone: sms::store::numbers::of_user(db, user.id)
            .await?
            .map(|n| n.masked()),
        authenticator_since: totp::store::of_user(db, user.id)
            .await?
            .map(|f| web::when(f.created_at)),
        recovery_left: recovery::store::left(db, user.id).await?,
        trusted: trusted::of_user(db, user.id).await?.len(),
        sessions,
        events,
        user: UserLine::of(user),
    })
}

// -- Actions ----------------------------------------------------------------------------------

/// What an admin may do to a user.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    ResetFactors,
    EndSessions,
    Deactivate,
    Activate,
    MakeStaff,
    RemoveStaff,
    ResetLink,
}

impl Action {
    fn parse(raw: &str) -> Option<Action> {
        Some(match raw {
            "reset-factors" => Action::ResetFactors,
            "end-sessions" => Action::EndSessions,
            "deactivate" => Action::Deactivate,
            "activate" => Action::Activate,
            "make-staff" => Action::MakeStaff,
            "remove-staff" => Action::RemoveStaff,
            "reset-link" => Action::ResetLink,
            _ => return None,
        })
    }

    fn slug(self) -> &'static str {
        match self {
            Action::ResetFactors => "reset-factors",
            Action::EndSessions => "end-sessions",
            Action::Deactivate => "deactivate",
            Action::Activate => "activate",
            Action::MakeStaff => "make-staff",
            Action::RemoveStaff => "remove-staff",
            Action::ResetLink => "reset-link",
        }
    }

    /// The confirmation page's title and text, and its button.
    fn wording(self, name: &str) -> (String, String, &'static str) {
        match self {
            Action::ResetFactors => (
                format!("Reset {name}'s second factor?"),
                "Their proven phone number, authenticator app, passkeys, recovery codes and trusted browsers are removed, and every session of theirs ends: at their next login they prove a phone number again.".into(),
                "Reset the second factor",
            ),
            Action::EndSessions => (
                format!("Log {name} out everywhere?"),
                "Every session of theirs ends at once, on every instance, and no browser of theirs stays trusted: they log in again with their second factor.".into(),
                "End every session",
            ),
            Action::Deactivate => (
                format!("Deactivate {name}?"),
                "Every session of theirs ends, no browser of theirs stays trusted, and they can no longer log in until an admin activates the account again (then with their second factor). Their votes stay.".into(),
                "Deactivate",
            ),
            Action::Activate => (
                format!("Activate {name} again?"),
                "They can log in again.".into(),
                "Activate",
            ),
            Action::MakeStaff => (
                format!("Make {name} staff?"),
                "They can use this admin (after logging in with both factors): change polls, load fixtures, and act on users.".into(),
                "Make staff",
            ),
            Action::RemoveStaff => (
                format!("Remove {name}'s staff flag?"),
                "They can no longer open the admin, from their next request on.".into(),
                "Remove the staff flag",
            ),
            Action::ResetLink => (
                format!("Make a password-reset link for {name}?"),
                "The link is shown to you once: give it to them yourself, by a way you trust to reach them. It works once, for RESET_LINK_TTL, and replaces any earlier link. Using it ends every session of theirs; their next login still asks for their second factor.".into(),
                "Make the link",
            ),
        }
    }

    /// Whether it applies to the user as they are now.
    fn applies_to(self, user: &UserRow) -> bool {
        match self {
            Action::Deactivate | Action::ResetLink => user.is_active,
            Action::Activate => !user.is_active,
            Action::MakeStaff => !user.is_staff,
            Action::RemoveStaff => user.is_staff,
            Action::ResetFactors | Action::EndSessions => true,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/user_action.html")]
pub struct ActionPage {
    pub ctx: PageContext,
    pub section: &'static str,
    pub user_id: i64,
    pub title: String,
    pub text: String,
    pub button: &'static str,
    pub action: &'static str,
}

/// The user and the action, or where to go instead: an action on oneself, or one that does
/// not apply (already done: a second submission), goes back to the user's page and says why.
async fn target(
    state: &AppState,
    staff: &Staff,
    page: &Page,
    id: &str,
    action: &str,
) -> AppResult<Result<(UserRow, Action), Response>> {
    let user = find_user(state, id).await?;
    let action = Action::parse(action).ok_or(AppError::NotFound)?;
    let back = Redirect::to(&format!("/admin/users/{}/", user.id)).into_response();
    if user.id == staff.id {
        flash::push(
            &page.session,
            Level::Error,
            "You cannot do that to your own account here: your account page has what you need.",
        )
        .await?;
        return Ok(Err(back));
    }
    if !action.applies_to(&user) {
        flash::push(
            &page.session,
            Level::Info,
            "That was already done: nothing changed.",
        )
        .await?;
        return Ok(Err(back));
    }
    Ok(Ok((user, action)))
}

async fn confirm(
    State(state): State<AppState>,
    staff: Staff,
    page: Page,
    Path((id, action)): Path<(String, String)>,
) -> AppResult<Response> {
    let (user, action) = match target(&state, &staff, &page, &id, &action).await? {
        Ok(found) => found,
        Err(elsewhere) => return Ok(elsewhere),
    };
    let (title, text, button) = action.wording(&user.username);
    web::render(&ActionPage {
        ctx: page.ctx,
        section: "users",
        user_id: user.id,
        title,
        text,
        button,
        action: action.slug(),
    })
}

async fn act(
    State(state): State<AppState>,
    staff: Staff,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    page: Page,
    Path((id, action)): Path<(String, String)>,
) -> AppResult<Response> {
    let (user, action) = match target(&state, &staff, &page, &id, &action).await? {
        Ok(found) => found,
        Err(elsewhere) => return Ok(elsewhere),
    };
    if action == Action::ResetLink {
        return reset_link(&state, &staff, &ip, &headers, page, user).await;
    }
    let db = &state.db;
    let name = format!("{} (#{})", user.username, user.id);
    // Every session ends, and so does every trusted browser: else the next login from one of
    // them would skip the second factor. Nothing brings them back (activating does not).
    let end_sessions = || async {
        users::end_sessions(db, user.id, None).await?;
        state.sessions.forget_cached();
        AppResult::Ok(trusted::forget_all(db, user.id).await?)
    };
    let (what, done) = match action {
        Action::ResetFactors => {
            // Sessions first: none of theirs stays verified while the factors go.
            let browsers = end_sessions().await?;
            let phone = store::remove_phone(db, user.id).await?;
            let app = totp::store::remove(db, user.id).await?;
            let keys = passkeys::store::remove_all(db, user.id).await?;
            recovery::store::remove_all(db, user.id).await?;
            (
                format!(
                    "reset the second factor of {name}: {}, {}, {keys} passkey(s), recovery codes and {browsers} trusted browser(s) removed, every session ended",
                    if phone { "phone number" } else { "no phone number" },
                    if app { "authenticator app" } else { "no authenticator app" },
                ),
                format!("{}'s second factor was reset: they prove a phone number at their next login.", user.username),
            )
        }
        Action::EndSessions => {
            let browsers = end_sessions().await?;
            (
                format!("ended every session of {name} and forgot {browsers} trusted browser(s)"),
                format!("Every session of {} has ended.", user.username),
            )
        }
        Action::Deactivate => {
            store::set_active(db, user.id, false).await?;
            let browsers = end_sessions().await?;
            (
                format!("deactivated {name}, ended every session and forgot {browsers} trusted browser(s)"),
                format!(
                    "{} was deactivated: they can no longer log in.",
                    user.username
                ),
            )
        }
        Action::Activate => {
            store::set_active(db, user.id, true).await?;
            (
                format!("activated {name}"),
                format!("{} can log in again.", user.username),
            )
        }
        Action::MakeStaff => {
            store::set_staff(db, user.id, true).await?;
            (
                format!("made {name} staff"),
                format!("{} is staff now.", user.username),
            )
        }
        Action::RemoveStaff => {
            store::set_staff(db, user.id, false).await?;
            (
                format!("removed the staff flag of {name}"),
                format!("{} is no longer staff.", user.username),
            )
        }
        Action::ResetLink => return Err(AppError::NotFound),
    };
    super::record(&state, &staff, Some(user.id), &ip, &what).await?;
    flash::push(&page.session, Level::Success, done).await?;
    Ok(Redirect::to(&format!("/admin/users/{}/", user.id)).into_response())
}

#[derive(Template)]
#[template(path = "admin/reset_link.html")]
pub struct ResetLinkPage {
    pub ctx: PageContext,
    pub section: &'static str,
    pub user_id: i64,
    pub username: String,
    pub link: String,
    pub valid_for: String,
}

/// Makes a password-reset link for `user` and shows it, once (only its keyed hash is kept).
async fn reset_link(
    state: &AppState,
    staff: &Staff,
    ip: &str,
    headers: &axum::http::HeaderMap,
    page: Page,
    user: UserRow,
) -> AppResult<Response> {
    let key = state
        .config
        .secret_key
        .as_ref()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("POLLSTR_SECRET_KEY is not set")))?;
    let ttl = state.config.reset_link_ttl;
    let token = users::reset::issue(&state.db, key, user.id, ttl).await?;
    let what = format!(
        "made a password-reset link for {} (#{}), valid for {}",
        user.username,
        user.id,
        crate::limits::human_wait(ttl.as_secs())
    );
    super::record(state, staff, Some(user.id), ip, &what).await?;
    // The link as the admin's own browser reached this server.
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if state.config.session_secure {
        "https"
    } else {
        "http"
    };
    let mut res = web::render(&ResetLinkPage {
        ctx: page.ctx,
        section: "users",
        user_id: user.id,
        username: user.username,
        link: format!("{scheme}://{host}{}", users::reset::path(&token)),
        valid_for: crate::limits::human_wait(ttl.as_secs()),
    })?;
    // Shown once: not kept by the browser's cache.
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}
