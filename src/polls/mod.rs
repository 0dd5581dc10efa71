//! Polls: the public list, and (behind the verified layer) a poll's page, voting and results.

pub mod cache;
pub mod closing;
pub mod counts;
pub mod csv;
pub mod export;
pub mod prefetch;
pub mod read_batch;
pub mod receipt;
pub mod seal;
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
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Extension;
use serde::Deserialize;

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::routes::{get, post, Routes};
use crate::web::{self, Form, Page, PageContext};
use cache::{PollCache, PollData, PollList, Rules};
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
        .route("/polls/{id}/results.csv", get(results_csv))
        .route("/polls/{id}/audit.csv", get(audit_csv))
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
    /// "Closed", "Closes in 3 days", or nothing (no closing time).
    pub ends: Option<String>,
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
    // The rows come grouped by question, in page order (open polls first).
    let now = crate::db::now();
    let mut polls: Vec<PollCard> = Vec::new();
    for r in rows {
        if polls.last().map(|p| p.id) != Some(r.id) {
            polls.push(PollCard {
                id: r.id,
                question_text: r.question_text,
                published: format_date(r.pub_date),
                ends: closing::ends_label(r.closes_at, r.closed_at, now),
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
    /// On a poll of several answers, the choices of this user's vote (read only there).
    pub selection: Vec<i64>,
    pub error_message: Option<String>,
    /// Whether the "See results" link is shown (the results are visible to this user).
    pub results_link: bool,
}

impl DetailPage {
    pub fn is_mine(&self, id: &i64) -> bool {
        self.my_choice == Some(*id) || self.selection.contains(id)
    }

    /// Checkboxes (several answers) rather than radio buttons.
    pub fn several(&self) -> bool {
        self.question.max_choices > 1
    }

    /// When voting closes, if it will.
    pub fn closes(&self) -> Option<String> {
        self.question.closes_at.map(web::when)
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

async fn detail_page(
    state: &AppState,
    page: Page,
    view: PollView,
    error: Option<String>,
) -> AppResult<DetailPage> {
    let results_link = hidden_from(state, &page, &view).await?.is_none();
    // A poll of several answers: the voter's whole selection (one query, there only).
    let selection = match (view.question.max_choices > 1, view.mine) {
        (true, Some(_)) => {
            store::user_selection(&state.db, user_id(&page)?, view.question.id).await?
        }
        _ => Vec::new(),
    };
    Ok(DetailPage {
        ctx: page.ctx,
        question: view.question,
        choices: view.choices,
        my_choice: view.mine,
        selection,
        error_message: error,
        results_link,
    })
}

/// Why this user may not see the poll's results yet (`None`: they may). Staff always may: the
/// staff check is a query, made only when the results are hidden from others.
async fn hidden_from(
    state: &AppState,
    page: &Page,
    view: &PollView,
) -> AppResult<Option<&'static str>> {
    let now = crate::db::now();
    let Some(why) = closing::hidden_because(&view.question, view.mine.is_some(), false, now) else {
        return Ok(None);
    };
    let staff = store::is_staff(&state.db, user_id(page)?).await?;
    Ok((!staff).then_some(why))
}

pub async fn detail(
    State(state): State<AppState>,
    mut page: Page,
    Path(id): Path<String>,
    sent: SentReceipt,
    prefetched: Option<Extension<Prefetched>>,
) -> AppResult<Response> {
    let prefetched = prefetched.as_ref().map(|p| &p.0);
    let question_id = web::parse_id(&id)?;
    let view = load_view(&state, question_id, &page, prefetched).await?;
    let clear = take_receipt(&state, &mut page, sent, question_id);
    // A closed poll's page is its final results.
    let res = if view.question.is_closed(crate::db::now()) {
        results_page(&state, page, view, None).await?
    } else {
        web::render(&detail_page(&state, page, view, None).await?)?
    };
    Ok(with_receipt_cleared(res, clear))
}

/// What a vote form sent: its `choice` fields (one on a poll of one answer, up to its
/// `max_choices` on a poll of several), trimmed.
fn sent_choices(form: &[(String, String)]) -> Vec<&str> {
    form.iter()
        .filter(|(k, _)| k == "choice")
        .map(|(_, v)| v.trim())
        .collect()
}

/// A selection as sent to a poll of several answers, checked: each a number, none twice, at
/// most `max` (sorted; `Err`: why it is refused, nothing written).
fn checked_selection(sent: &[&str], max: i64) -> Result<Vec<i64>, String> {
    let mut choices = Vec::with_capacity(sent.len());
    for raw in sent {
        match raw.parse::<i64>() {
            Ok(c) => choices.push(c),
            Err(_) => return Err(NOT_THIS_POLLS.into()),
        }
    }
    choices.sort_unstable();
    if choices.windows(2).any(|w| w[0] == w[1]) {
        return Err("The same choice was sent twice. Nothing was counted: choose again.".into());
    }
    if choices.len() as i64 > max {
        return Err(format!(
            "Choose at most {max} choices. Nothing was counted: choose again."
        ));
    }
    Ok(choices)
}

const NOT_THIS_POLLS: &str =
    "A choice sent is not one of this poll's. Nothing was counted: choose again.";

/// Who sees the poll's results and how many choices it takes, kept in memory (a vote costs no
/// query for them); `fresh`: read now, past the cache. `None`: not published.
async fn kept_rules(state: &AppState, question_id: i64, fresh: bool) -> AppResult<Option<Rules>> {
    let kept = &cache(state).rules;
    if !fresh {
        if let Some(rules) = kept.get(&question_id) {
            return Ok(rules);
        }
    }
    let g = kept.generation();
    let rules = store::poll_rules(&state.db, question_id)
        .await?
        .map(|(v, max_choices)| Rules {
            visibility: closing::Visibility::parse(&v),
            max_choices,
        });
    kept.fill(g, question_id, rules);
    Ok(rules)
}

pub async fn vote(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let question_id = web::parse_id(&id)?;
    let uid = user_id(&page)?;
    let sent = sent_choices(&form);
    let mut fresh = false;
    let refusal = loop {
        if sent.is_empty() {
            break "You didn't select a choice.".to_string();
        }
        let rules = kept_rules(&state, question_id, fresh)
            .await?
            .ok_or(AppError::NotFound)?;
        // The queue updates the cache itself, in commit order. Only the receipt's hash is
        // stored; the receipt itself is shown once, on the next page (`receipt`). Either
        // statement counts only choices of this question, and only if it is published, open
        // and takes that many choices.
        let receipt = receipt::Receipt::new();
        let queue = state.part::<VoteQueue>();
        let counted = if rules.max_choices <= 1 {
            if sent.len() > 1 {
                // Unless the poll took more since it was kept: once more, as it is now.
                if !fresh {
                    fresh = true;
                    continue;
                }
                break "This poll takes one choice.".to_string();
            }
            match sent[0].parse::<i64>() {
                Ok(c) => queue.cast_with(uid, question_id, c, receipt.hash).await?,
                Err(_) => false,
            }
        } else {
            match checked_selection(&sent, rules.max_choices) {
                Ok(choices) => {
                    queue
                        .cast_selection(uid, question_id, choices, receipt.hash)
                        .await?
                }
                // Too many for the poll as kept: once more, as it is now.
                Err(_) if !fresh && sent.len() as i64 > rules.max_choices => {
                    fresh = true;
                    continue;
                }
                Err(why) => break why,
            }
        };
        if counted {
            let shown = receipt::Shown {
                code: receipt.code,
                results_wait: results_wait(&state, &page, rules).await?,
            };
            return after_vote(&state, &page, question_id, shown).await;
        }
        // Nothing counted. If the poll's number of choices changed since it was kept, once
        // more as it is now.
        if !fresh && kept_rules(&state, question_id, true).await? != Some(rules) {
            fresh = true;
            continue;
        }
        break if rules.max_choices <= 1 {
            "You didn't select a choice.".to_string()
        } else {
            NOT_THIS_POLLS.to_string()
        };
    };
    // Nothing counted: an unknown or unpublished poll is a 404, a closed one a 409 (read now,
    // past any cache: the vote statement refused it), else the form says why.
    let (closes_at, closed_at) = store::closing(&state.db, question_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if closing::is_closed(closes_at, closed_at, crate::db::now()) {
        let message = closing::closed_message(closes_at.or(closed_at));
        cache(&state).forget_poll(question_id);
        let view = fresh_view(&state, question_id, uid).await?;
        let body = results_page(&state, page, view, Some(message)).await?;
        return Ok((StatusCode::CONFLICT, body).into_response());
    }
    let view = load_view(&state, question_id, &page, None).await?;
    let body = detail_page(&state, page, view, Some(refusal)).await?;
    Ok((StatusCode::BAD_REQUEST, web::render(&body)?).into_response())
}

/// Where a counted vote leads: its results, or the poll's page when they are hidden until
/// the poll closes (with a message that says so). The visibility was kept in memory with the
/// poll's rules: the vote's answer costs no query.
/// Whether a voter's results wait for the poll's close (staff see them: a query, made only
/// for a poll whose results wait).
async fn results_wait(state: &AppState, page: &Page, rules: Rules) -> AppResult<bool> {
    Ok(rules.visibility == closing::Visibility::AfterClosing
        && !store::is_staff(&state.db, user_id(page)?).await?)
}

/// The answer to a counted vote: to the results, or to the poll's page while they wait, with
/// the receipt (and why the results wait) to show there once: in a sealed cookie (`receipt`),
/// not the session, so the vote costs no session write. Without a server key (a test's
/// configuration) or a stored session, in the session's flash messages.
async fn after_vote(
    state: &AppState,
    page: &Page,
    question_id: i64,
    shown: receipt::Shown,
) -> AppResult<Response> {
    let to = if shown.results_wait {
        format!("/polls/{question_id}/")
    } else {
        format!("/polls/{question_id}/results/")
    };
    let mut res = Redirect::to(&to).into_response();
    match (&state.config.secret_key, page.session.id()) {
        (Some(key), Some(session)) => {
            let line = shown.cookie(
                key,
                user_id(page)?,
                question_id,
                &session.to_string(),
                crate::db::now(),
                state.config.session_secure,
            );
            let value = header::HeaderValue::from_str(&line)
                .map_err(|e| AppError::Internal(anyhow::anyhow!("receipt cookie: {e}")))?;
            res.headers_mut().append(header::SET_COOKIE, value);
        }
        _ => {
            for m in shown.messages() {
                web::flash::push(&page.session, m.level, m.text).await?;
            }
        }
    }
    Ok(res)
}

/// The sealed receipt a request carries in its cookie (`after_vote`), read from the request's
/// headers in place (an extractor of the whole `HeaderMap` would copy it on every page view).
/// None on a HEAD request: with no page to show it on, it is left for the GET.
pub struct SentReceipt(Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for SentReceipt {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(SentReceipt(if parts.method == axum::http::Method::HEAD {
            None
        } else {
            web::cookie(&parts.headers, receipt::COOKIE).map(str::to_owned)
        }))
    }
}

/// The receipt of the vote just made, if this request carries its cookie: its messages join
/// the page's. `Some` (a cookie to clear it, shown or not) when one was sent.
fn take_receipt(
    state: &AppState,
    page: &mut Page,
    sent: SentReceipt,
    question_id: i64,
) -> Option<header::HeaderValue> {
    let sealed = sent.0?;
    if let (Some(key), Some(session), Some(user)) =
        (&state.config.secret_key, page.session.id(), &page.ctx.user)
    {
        let now = crate::db::now();
        let sid = session.to_string();
        if let Some(shown) = receipt::Shown::open(key, &sealed, user.id, question_id, &sid, now) {
            page.ctx.messages.extend(shown.messages());
        }
    }
    let line = receipt::clearing_cookie(question_id, state.config.session_secure);
    header::HeaderValue::from_str(&line).ok()
}

/// A page that showed (or refused) a receipt: clears its cookie, and is not stored by the
/// browser or a cache.
fn with_receipt_cleared(mut res: Response, clear: Option<header::HeaderValue>) -> Response {
    if let Some(clear) = clear {
        res.headers_mut().append(header::SET_COOKIE, clear);
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    res
}

/// The poll read from the database now, past the caches.
async fn fresh_view(state: &AppState, question_id: i64, uid: i64) -> AppResult<PollView> {
    store::poll_view(&state.db, question_id, uid)
        .await?
        .ok_or(AppError::NotFound)
}

/// The view to show a poll's results from: a closed poll's close is recorded first (votes held
/// still), and if the view was read before that, it is read again: final counts.
async fn final_view(state: &AppState, view: PollView, uid: i64) -> AppResult<PollView> {
    let question = &view.question;
    if question.closed_at.is_some() || !question.is_closed(crate::db::now()) {
        return Ok(view);
    }
    closing::ensure_recorded(&state.db, question.id).await?;
    cache(state).forget_poll(question.id);
    fresh_view(state, question.id, uid).await
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
    /// Votes: one per chosen choice.
    pub total: i64,
    /// The people who voted (`total` on a poll of one answer); the percentages are of them.
    pub voters: i64,
    /// "This poll closed on …" (a closed poll's results are final).
    pub closed: Option<String>,
    /// Why the results are not shown to this user (then `rows` is empty).
    pub hidden: Option<&'static str>,
    /// A refusal to show above the results (a vote sent to a closed poll).
    pub error_message: Option<String>,
    /// A closed poll's seal (its audit file's digest and number of votes).
    pub seal: Option<Arc<store::Seal>>,
}

pub async fn results(
    State(state): State<AppState>,
    mut page: Page,
    Path(id): Path<String>,
    sent: SentReceipt,
    prefetched: Option<Extension<Prefetched>>,
) -> AppResult<Response> {
    let prefetched = prefetched.as_ref().map(|p| &p.0);
    let question_id = web::parse_id(&id)?;
    let view = load_view(&state, question_id, &page, prefetched).await?;
    let clear = take_receipt(&state, &mut page, sent, question_id);
    let res = results_page(&state, page, view, None).await?;
    Ok(with_receipt_cleared(res, clear))
}

/// The results page: final for a closed poll, hidden (403) from a user who may not see them.
async fn results_page(
    state: &AppState,
    page: Page,
    view: PollView,
    error_message: Option<String>,
) -> AppResult<Response> {
    let view = final_view(state, view, user_id(&page)?).await?;
    let hidden = hidden_from(state, &page, &view).await?;
    let PollView {
        question,
        choices,
        mine,
    } = view;
    let now = crate::db::now();
    let closed = question.is_closed(now).then(|| question.closed_message());
    let total: i64 = choices.iter().map(|c| c.votes).sum();
    // A poll of several answers: its number of voters and this voter's whole selection (two
    // queries, there only). One answer: a vote is a voter.
    let (voters, selection) = match (question.max_choices > 1, hidden) {
        (true, None) => (
            store::poll_voters(&state.db, question.id).await?,
            match mine {
                Some(_) => store::user_selection(&state.db, user_id(&page)?, question.id).await?,
                None => Vec::new(),
            },
        ),
        _ => (total, Vec::new()),
    };
    let rows = choices
        .into_iter()
        .filter(|_| hidden.is_none())
        .map(|c| ResultRow {
            percent: if voters > 0 {
                (c.votes * 100 + voters / 2) / voters
            } else {
                0
            },
            mine: Some(c.id) == mine || selection.contains(&c.id),
            choice_text: c.choice_text,
            votes: c.votes,
        })
        .collect();
    let status = if hidden.is_some() {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    // A closed poll's results are final and sealed: its seal's line, kept (`cache`).
    let seal = match &closed {
        Some(_) => seal_line(state, question.id).await?,
        None => None,
    };
    let body = web::render(&ResultsPage {
        ctx: page.ctx,
        question,
        rows,
        total: if hidden.is_some() { 0 } else { total },
        voters: if hidden.is_some() { 0 } else { voters },
        closed,
        hidden,
        error_message,
        seal,
    })?;
    Ok((status, body).into_response())
}

/// A closed poll's seal without its audit file: kept after the first read ([`PollCache::seals`]).
async fn seal_line(state: &AppState, question_id: i64) -> AppResult<Option<Arc<store::Seal>>> {
    let seals = &cache(state).seals;
    if let Some(seal) = seals.get(&question_id) {
        return Ok(Some(seal));
    }
    let g = seals.generation();
    let seal = store::seal_summary(&state.db, question_id)
        .await?
        .map(Arc::new);
    if let Some(seal) = &seal {
        seals.fill(g, question_id, seal.clone());
    }
    Ok(seal)
}

/// `/polls/{id}/results.csv`: the results as CSV (`export`), to whoever may see them.
pub async fn results_csv(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let question_id = web::parse_id(&id)?;
    let uid = user_id(&page)?;
    let view = fresh_view(&state, question_id, uid).await?;
    let view = final_view(&state, view, uid).await?;
    if let Some(why) = hidden_from(&state, &page, &view).await? {
        return Err(AppError::Forbidden(why.into()));
    }
    let voters = export::voters(&state.db, &view).await?;
    let csv = export::results_csv(&view.choices, voters);
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"poll-{question_id}-results.csv\""),
        ),
    ];
    Ok((headers, csv).into_response())
}

/// `/polls/{id}/audit.csv`: a closed poll's sealed audit file, byte for byte as sealed
/// (docs/polls.md); 404 while the poll is open.
pub async fn audit_csv(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let question_id = web::parse_id(&id)?;
    let uid = user_id(&page)?;
    let view = fresh_view(&state, question_id, uid).await?;
    final_view(&state, view, uid).await?;
    let seal = store::seal(&state.db, question_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"poll-{question_id}-audit.csv\""),
        ),
    ];
    Ok((headers, seal.body).into_response())
}

/// `25 Jul 2016`
pub fn format_date(ts: i64) -> String {
    let fmt = time::macros::format_description!("[day padding:none] [month repr:short] [year]");
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_default()
}
