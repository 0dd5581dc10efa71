//! Polls: the public list, and (behind the verified layer) a poll's page, voting and results.

pub mod cache;
pub mod counts;
pub mod prefetch;
pub mod read_batch;
pub mod store;
pub mod vote_queue;

/// The store's former name, which the integration tests and `fixtures.rs` still import: kept
/// so that the rename left them untouched. New code says `store`.
#[doc(hidden)]
pub use store as queries;

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Extension;
use serde::Deserialize;

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::routes::{get, post, Routes};
use crate::web::{self, Form, Page, PageContext};
use cache::{PollCache, PollData, PollList};
use prefetch::Prefetched;
use store::{ChoiceResult, PollView, Question};
use vote_queue::VoteQueue;

pub const PER_PAGE: i64 = 10;

/// What the poll pages keep in memory (registered by `app::new_state`).
fn cache(state: &AppState) -> &Arc<PollCache> {
    state.part::<Arc<PollCache>>()
}

pub fn router(state: &AppState) -> Routes {
    let verified = Routes::new()
        .route("/polls/{id}/", get(detail))
        .route("/polls/{id}/vote/", post(vote))
        .route("/polls/{id}/results/", get(results))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::two_factor::gate::require_verified,
        ))
        // Outermost: it must read the session before the verified layer does.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            prefetch::session_and_poll,
        ));
    Routes::new()
        .route("/", get(|| async { Redirect::to("/polls/") }))
        .route("/polls/", get(index))
        .merge(verified)
}

#[derive(Debug)]
pub struct PollCard {
    pub id: i64,
    pub question_text: String,
    pub published: String,
    pub choices: Vec<String>,
}

#[derive(Template)]
#[template(path = "polls/index.html")]
pub struct IndexPage {
    pub ctx: PageContext,
    pub list: Arc<PollList>,
    pub page: i64,
}

impl IndexPage {
    /// The pager's links: newer polls are on the pages before.
    fn newer(&self) -> Option<String> {
        (self.page > 1).then(|| format!("/polls/?page={}", self.page - 1))
    }

    fn older(&self) -> Option<String> {
        (self.page < self.list.pages).then(|| format!("/polls/?page={}", self.page + 1))
    }
}

#[derive(Deserialize)]
pub struct IndexQuery {
    page: Option<String>,
}

pub async fn index(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<IndexQuery>,
) -> AppResult<Response> {
    // As Django's paginator: a page that is not a number or is past the end is a 404.
    let number = match q.page.as_deref() {
        None | Some("") => 1,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or(AppError::NotFound)?,
    };
    let pages = &cache(&state).pages;
    let list = match pages.get(&number) {
        Some(cached) => cached,
        None => {
            let g = pages.generation();
            let list = list_page(&state, number).await?;
            pages.fill(g, number, list.clone());
            list
        }
    }
    .ok_or(AppError::NotFound)?;
    // Most views are anonymous, and then the page is the same for everyone until it expires.
    let anonymous = page.ctx.is_plain_anonymous();
    if let Some(html) = list.anonymous_html.get().filter(|_| anonymous) {
        return Ok(Html(html.clone()).into_response());
    }
    let html = IndexPage {
        ctx: page.ctx,
        list: list.clone(),
        page: number,
    }
    .render()?;
    if anonymous {
        let _ = list.anonymous_html.set(Bytes::from(html.clone()));
    }
    Ok(Html(html).into_response())
}

/// A page of the list from the database; `None` when it is past the end.
async fn list_page(state: &AppState, number: i64) -> AppResult<Option<Arc<PollList>>> {
    let rows = store::published_page(&state.db, PER_PAGE, (number - 1) * PER_PAGE).await?;
    // No row: no poll on this page, so count them to tell an empty list from a page too far.
    let total = match rows.first() {
        Some(r) => r.total,
        None => store::count_published(&state.db).await?,
    };
    let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    if number > pages {
        return Ok(None);
    }
    // The rows come grouped by question, in page order.
    let mut polls: Vec<PollCard> = Vec::new();
    for r in rows {
        if polls.last().map(|p| p.id) != Some(r.id) {
            polls.push(PollCard {
                id: r.id,
                question_text: r.question_text,
                published: format_date(r.pub_date),
                choices: Vec::new(),
            });
        }
        if let (Some(card), Some(choice)) = (polls.last_mut(), r.choice_text) {
            card.choices.push(choice);
        }
    }
    Ok(Some(Arc::new(PollList {
        polls,
        pages,
        anonymous_html: Default::default(),
    })))
}

#[derive(Template)]
#[template(path = "polls/detail.html")]
pub struct DetailPage {
    pub ctx: PageContext,
    pub question: Question,
    pub choices: Vec<ChoiceResult>,
    pub my_choice: Option<i64>,
    pub error_message: Option<String>,
}

impl DetailPage {
    pub fn is_mine(&self, id: &i64) -> bool {
        self.my_choice == Some(*id)
    }
}

fn user_id(page: &Page) -> AppResult<i64> {
    // The verified layer guarantees a user; its absence here is a bug, not a user error.
    page.ctx
        .user
        .as_ref()
        .map(|u| u.id)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("poll page reached without a user")))
}

/// The poll as this user sees it: as read with the session (PostgreSQL, [`prefetch`]), else
/// through the cache where it keeps polls (SQLite): a page view then needs no query at all once
/// the poll and the user's vote are cached.
async fn load_view(
    state: &AppState,
    question_id: i64,
    page: &Page,
    prefetched: Option<&Prefetched>,
) -> AppResult<PollView> {
    let uid = user_id(page)?;
    if let Some(view) = prefetched.and_then(|p| p.view_for(question_id, uid)) {
        return view.ok_or(AppError::NotFound);
    }
    let cache = self::cache(state);
    let g = cache.view_generations();
    let (poll, mine) = match (cache.poll(question_id), cache.vote(uid, question_id)) {
        (Some(poll), Some(mine)) => (poll, mine),
        (Some(poll), None) => {
            let mine = store::user_vote(&state.db, uid, question_id).await?;
            cache.fill_vote(&g, uid, question_id, mine);
            (poll, mine)
        }
        (None, _) => {
            let Some(view) = store::poll_view(&state.db, question_id, uid).await? else {
                cache.fill_poll(&g, question_id, None);
                return Err(AppError::NotFound);
            };
            let poll = Arc::new(PollData {
                question: view.question,
                choices: view.choices,
            });
            cache.fill_poll(&g, question_id, Some(poll.clone()));
            cache.fill_vote(&g, uid, question_id, view.mine);
            (Some(poll), view.mine)
        }
    };
    let poll = poll.ok_or(AppError::NotFound)?;
    Ok(PollView {
        question: poll.question.clone(),
        choices: poll.choices.clone(),
        mine,
    })
}

fn detail_page(page: Page, view: PollView, error: Option<String>) -> DetailPage {
    DetailPage {
        ctx: page.ctx,
        question: view.question,
        choices: view.choices,
        my_choice: view.mine,
        error_message: error,
    }
}

pub async fn detail(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    prefetched: Option<Extension<Prefetched>>,
) -> AppResult<Response> {
    let prefetched = prefetched.as_ref().map(|p| &p.0);
    let view = load_view(&state, web::parse_id(&id)?, &page, prefetched).await?;
    web::render(&detail_page(page, view, None))
}

#[derive(Deserialize)]
pub struct VoteForm {
    choice: Option<String>,
}

pub async fn vote(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    Form(form): Form<VoteForm>,
) -> AppResult<Response> {
    let question_id = web::parse_id(&id)?;
    let uid = user_id(&page)?;
    let choice = form
        .choice
        .as_deref()
        .and_then(|c| c.trim().parse::<i64>().ok());
    // One statement, which counts only a choice of this question, and only if it is published.
    if let Some(c) = choice {
        // The queue updates the cache itself, in commit order.
        let counted = state.part::<VoteQueue>().cast(uid, question_id, c).await?;
        if counted {
            return Ok(Redirect::to(&format!("/polls/{question_id}/results/")).into_response());
        }
    }
    // Nothing counted: an unknown or unpublished poll is a 404, else the form says why.
    let view = load_view(&state, question_id, &page, None).await?;
    let body = detail_page(page, view, Some("You didn't select a choice.".into()));
    Ok((StatusCode::BAD_REQUEST, web::render(&body)?).into_response())
}

pub struct ResultRow {
    pub choice_text: String,
    pub votes: i64,
    pub percent: i64,
    pub mine: bool,
}

#[derive(Template)]
#[template(path = "polls/results.html")]
pub struct ResultsPage {
    pub ctx: PageContext,
    pub question: Question,
    pub rows: Vec<ResultRow>,
    pub total: i64,
}

pub async fn results(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    prefetched: Option<Extension<Prefetched>>,
) -> AppResult<Response> {
    let prefetched = prefetched.as_ref().map(|p| &p.0);
    let PollView {
        question,
        choices,
        mine,
    } = load_view(&state, web::parse_id(&id)?, &page, prefetched).await?;
    let total: i64 = choices.iter().map(|c| c.votes).sum();
    let rows = choices
        .into_iter()
        .map(|c| ResultRow {
            percent: if total > 0 {
                (c.votes * 100 + total / 2) / total
            } else {
                0
            },
            mine: Some(c.id) == mine,
            choice_text: c.choice_text,
            votes: c.votes,
        })
        .collect();
    web::render(&ResultsPage {
        ctx: page.ctx,
        question,
        rows,
        total,
    })
}

/// `25 Jul 2016`
pub fn format_date(ts: i64) -> String {
    let fmt = time::macros::format_description!("[day padding:none] [month repr:short] [year]");
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_default()
}
