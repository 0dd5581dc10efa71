//! On PostgreSQL, a verified poll page (`GET /polls/{id}/` and its results) costs one statement.
//!
//! Neither the session nor the user's vote may be kept in memory there: another instance may
//! have ended the session or taken a vote a moment ago. Read separately, session and poll cost
//! two queries, and a query to a database on the network is most of a page's cost. So this
//! layer, in front of the verified layer, reads them before anything touches the session:
//!
//! - **Poll kept in memory** (`cache::SnapshotPoll`, at most a second old, with the snapshot it
//!   was read under): one statement reads the session row, the user's vote, and whether that
//!   snapshot saw the vote row as it is now (`store::sessions_and_votes`, with the reads of
//!   other requests waiting at the same time: `read_batch`). If it did, the kept counts include
//!   this user's vote, and the page uses them.
//! - **Otherwise** (nothing kept, or the user voted since, on any instance): one statement reads
//!   the session row and the whole poll with its snapshot (`store::poll_view_with_session`),
//!   and the poll is kept.
//!
//! The session store answers the session layer's first load of that id with the row read here
//! (`db::session_store::with_prefetched`), and [`load_view`] takes the poll from the request.
//! A logout anywhere shows at once (the session row is read on every request), and so does a
//! voter's own vote; other people's votes, like an edit of the poll, within a second.
//!
//! [`load_view`]: super::load_view

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use tower_sessions::Session;

use std::sync::Arc;

use super::cache::{PollData, SnapshotPoll};
use super::read_batch::ReadBatch;
use super::store::{self, PollView, VoteAsk};
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
        (state.try_part::<Arc<Lane>>(), session.id(), poll_of(&req))
    else {
        return next.run(req).await;
    };
    if req.method() != Method::GET {
        return next.run(req).await;
    }
    // A failed read is left to the ordinary path, which reads again and answers as it would.
    let Ok(read) = read(&state, lane, &id.to_string(), question_id).await else {
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

/// What one page read: the session row, its user and the poll as that user sees it.
struct Read {
    session: Option<Vec<u8>>,
    user_id: Option<i64>,
    view: Option<PollView>,
}

/// The session row and the poll, in one statement: with the poll kept in memory, the session
/// and the user's vote, and the kept poll if its snapshot saw that vote as it is now; else (or
/// when it did not) the session and the whole poll, which is then kept with its snapshot.
async fn read(
    state: &AppState,
    lane: &Lane,
    session_id: &str,
    question_id: i64,
) -> sqlx::Result<Read> {
    let cache = super::cache(state);
    if let (Some(kept), Some(batch)) = (
        cache.snapshot_poll(question_id),
        state.try_part::<ReadBatch>(),
    ) {
        let ask = VoteAsk {
            session_id: session_id.to_string(),
            question_id,
            snapshot: kept.snapshot.clone(),
        };
        let r = batch
            .ask(ask)
            .await
            .ok_or_else(|| sqlx::Error::Protocol("batched read failed".into()))?;
        if r.seen {
            return Ok(Read {
                session: r.session,
                user_id: r.user_id,
                view: Some(PollView {
                    question: kept.poll.question.clone(),
                    choices: kept.poll.choices.clone(),
                    mine: r.mine,
                }),
            });
        }
    }
    let mut conn = lane.acquire().await?;
    let g = cache.snapshot_generation();
    let r = store::poll_view_with_session(&mut conn, session_id, question_id).await?;
    conn.done();
    if let Some(view) = &r.view {
        cache.fill_snapshot_poll(
            g,
            question_id,
            Arc::new(SnapshotPoll {
                poll: Arc::new(PollData {
                    question: view.question.clone(),
                    choices: view.choices.clone(),
                }),
                snapshot: r.snapshot,
            }),
        );
    }
    Ok(Read {
        session: r.session,
        user_id: r.user_id,
        view: r.view,
    })
}

/// The question id of `/polls/{id}/` or `/polls/{id}/results/`.
fn poll_of(req: &Request) -> Option<i64> {
    let rest = req.uri().path().strip_prefix("/polls/")?;
    let (id, tail) = rest.split_once('/')?;
    matches!(tail, "" | "results/")
        .then(|| web::parse_id(id).ok())
        .flatten()
}
