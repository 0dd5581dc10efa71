//! `/admin/`: how much there is (polls, votes, users, codes sent today) and the latest
//! security events of everyone.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::store::{self, Counts};
use super::Staff;
use crate::error::AppResult;
use crate::events;
use crate::state::AppState;
use crate::web::routes::{get, Routes};
use crate::web::{self, Page, PageContext};

pub fn router() -> Routes {
    Routes::new().route("/admin/", get(dashboard))
}

/// A security event as the admin lists it.
pub struct EventLine {
    pub when: String,
    pub kind: String,
    pub who: String,
    pub user_id: Option<i64>,
    pub ip: String,
    pub detail: String,
}

impl EventLine {
    pub fn of(e: events::Event) -> EventLine {
        EventLine {
            when: web::when(e.at),
            kind: e.kind.replace('_', " "),
            who: match (&e.username, e.user_id) {
                (Some(name), _) => name.clone(),
                (None, Some(id)) => format!("user #{id}"),
                (None, None) => "—".to_string(),
            },
            user_id: e.username.as_ref().and(e.user_id),
            ip: e.ip,
            detail: e.detail,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
pub struct DashboardPage {
    pub ctx: PageContext,
    pub section: &'static str,
    pub counts: Counts,
    pub events: Vec<EventLine>,
}

/// How many of the latest events the dashboard shows.
const RECENT_EVENTS: i64 = 25;

async fn dashboard(
    State(state): State<AppState>,
    _staff: Staff,
    page: Page,
) -> AppResult<Response> {
    let now = crate::db::now();
    let counts = store::counts(&state.db, now - now.rem_euclid(86_400)).await?;
    let since = now - 30 * 86_400;
    let events = events::list(&state.db, None, since, RECENT_EVENTS)
        .await?
        .into_iter()
        .rev()
        .map(EventLine::of)
        .collect();
    web::render(&DashboardPage {
        ctx: page.ctx,
        section: "dashboard",
        counts,
        events,
    })
}
