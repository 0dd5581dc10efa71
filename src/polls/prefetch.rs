//! On PostgreSQL, a verified poll page (`GET /polls/{id}/` and its results) reads its session
//! and its poll in one round trip.
//!
//! Neither may be kept in memory there: another instance may have ended the session or counted
//! a vote a moment ago. Read one after the other they cost two queries, and a query to a
//! database on the network is most of a page's cost. So this layer, in front of the verified
//! layer, reads both in one statement ([`queries::poll_view_with_session`]) before anything
//! touches the session: the session store answers the session layer's first load of that id
//! with the row read here (`db::session_store::with_prefetched`), and [`load_view`] takes the
//! poll from the request instead of asking again. Both are as fresh as two queries would make
//! them.
//!
//! [`load_view`]: super::load_view

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use tower_sessions::Session;

use super::queries::{self, PollView};
use crate::db::lane::Lane;
use crate::db::session_store;
use crate::state::AppState;
use crate::web;

/// The poll read with the session, for the handler. `view` is as `user_id` sees it (their own
/// vote); `None`: the poll is not published.
#[derive(Clone, Debug)]
pub struct Prefetched {
    pub question_id: i64,
    pub user_id: i64,
    pub view: Option<PollView>,
}

impl Prefetched {
    /// The view read for this question and this user, if it was (`Some(None)`: not published).
    pub fn view_for(&self, question_id: i64, user_id: i64) -> Option<Option<PollView>> {
        (self.question_id == question_id && self.user_id == user_id).then(|| self.view.clone())
    }
}

/// The layer: on PostgreSQL, for a GET of a poll page with a session cookie, one statement
/// reads both. Anything else goes on untouched, and reads as before.
pub async fn session_and_poll(
    State(state): State<AppState>,
    session: Session,
    mut req: Request,
    next: Next,
) -> Response {
    // The lane is there on PostgreSQL only.
    let (Some(lane), Some(id), Some(question_id)) =
        (state.try_part::<Lane>(), session.id(), poll_of(&req))
    else {
        return next.run(req).await;
    };
    if req.method() != Method::GET {
        return next.run(req).await;
    }
    let read = async {
        let mut conn = lane.acquire().await?;
        let read = queries::poll_view_with_session(&mut conn, &id.to_string(), question_id).await?;
        conn.done();
        Ok::<_, sqlx::Error>(read)
    };
    // A failed read is left to the ordinary path, which reads again and answers as it would.
    let Ok(read) = read.await else {
        return next.run(req).await;
    };
    let Ok(record) = read
        .session
        .as_deref()
        .map(session_store::decode)
        .transpose()
    else {
        return next.run(req).await;
    };
    if let (Some(user_id), true) = (read.user_id, record.is_some()) {
        req.extensions_mut().insert(Prefetched {
            question_id,
            user_id,
            view: read.view,
        });
    }
    session_store::with_prefetched(id, record, next.run(req)).await
}

/// The question id of `/polls/{id}/` or `/polls/{id}/results/`.
fn poll_of(req: &Request) -> Option<i64> {
    let rest = req.uri().path().strip_prefix("/polls/")?;
    let (id, tail) = rest.split_once('/')?;
    matches!(tail, "" | "results/")
        .then(|| web::parse_id(id).ok())
        .flatten()
}
