//! `/admin/polls/`: the list (search, a filter on the publication date, 50 a page) and a poll's
//! page: its question, publication date and time (in the future: scheduled) and its choices
//! inline (edit, reorder, delete, three empty rows to add more), saved in one transaction.
//! Deleting a choice or a poll that has votes says how many go with it, asks again, and takes
//! sudo mode.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::store::{self, ChoiceEdit, PollEdit, PollRow, Saved};
use super::{Staff, PER_PAGE};
use crate::error::{AppError, AppResult};
use crate::polls::cache::PollCache;
use crate::polls::closing::{self, Visibility};
use crate::polls::store as poll_store;
use crate::state::AppState;
use crate::two_factor::gate;
use crate::web::routes::{get, post, Routes};
use crate::web::{self, csrf, flash, ClientIp, Form, Level, Page, PageContext};

/// Django's `max_length` of `Question.question_text` and `Choice.choice_text`.
pub const MAX_TEXT: usize = 200;
/// Empty rows under a poll's choices, for new ones (Django's `extra = 3`).
const EXTRA_ROWS: usize = 3;
/// The most choice rows a form may send.
const MAX_ROWS: usize = 100;

pub fn router(state: &AppState) -> Routes {
    let sudo = Routes::new()
        .route("/admin/polls/{id}/delete/", get(delete_form).post(delete))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            gate::require_recent_password,
        ));
    Routes::new()
        .route("/admin/polls/", get(list))
        .route("/admin/polls/new/", get(new_form).post(create))
        .route("/admin/polls/{id}/", get(edit_form).post(save))
        .route("/admin/polls/{id}/close/", post(close_now))
        .route("/admin/polls/{id}/reopen/", post(reopen))
        .merge(sudo)
}

/// The public pages read polls through a cache: after a write, this server's is cleared (the
/// others', on PostgreSQL, expire within `polls::cache::TTL`).
fn changed(state: &AppState) {
    state.part::<Arc<PollCache>>().clear();
}

// -- The list ---------------------------------------------------------------------------------

/// The publication-date filter of the list.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum DateFilter {
    Any,
    Today,
    Week,
    Month,
    Scheduled,
}

impl DateFilter {
    pub const ALL: [DateFilter; 5] = [
        DateFilter::Any,
        DateFilter::Today,
        DateFilter::Week,
        DateFilter::Month,
        DateFilter::Scheduled,
    ];

    fn parse(raw: Option<&str>) -> Option<DateFilter> {
        Some(match raw.unwrap_or("") {
            "" | "any" => DateFilter::Any,
            "today" => DateFilter::Today,
            "week" => DateFilter::Week,
            "month" => DateFilter::Month,
            "scheduled" => DateFilter::Scheduled,
            _ => return None,
        })
    }

    pub fn key(self) -> &'static str {
        match self {
            DateFilter::Any => "any",
            DateFilter::Today => "today",
            DateFilter::Week => "week",
            DateFilter::Month => "month",
            DateFilter::Scheduled => "scheduled",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DateFilter::Any => "Any date",
            DateFilter::Today => "Today",
            DateFilter::Week => "Past 7 days",
            DateFilter::Month => "This month",
            DateFilter::Scheduled => "Scheduled",
        }
    }

    /// The publication dates it keeps, `[from, to]` (UTC, as Django's admin filter: published
    /// ones end now).
    fn bounds(self, now: i64) -> (Option<i64>, Option<i64>) {
        let today = now - now.rem_euclid(86_400);
        match self {
            DateFilter::Any => (None, None),
            DateFilter::Today => (Some(today), Some(now)),
            DateFilter::Week => (Some(now - 7 * 86_400), Some(now)),
            DateFilter::Month => {
                let month = time::OffsetDateTime::from_unix_timestamp(now)
                    .ok()
                    .and_then(|t| t.replace_day(1).ok())
                    .map(|t| t.date().midnight().assume_utc().unix_timestamp())
                    .unwrap_or(today);
                (Some(month), Some(now))
            }
            DateFilter::Scheduled => (Some(now + 1), None),
        }
    }
}

pub struct ListRow {
    pub id: i64,
    pub question_text: String,
    pub published: String,
    /// "Yes", "No" or "Scheduled" (Django's `was_published_recently`: within the last day).
    pub recently: &'static str,
    pub choices: i64,
    pub votes: i64,
}

impl ListRow {
    fn of(r: PollRow, now: i64) -> ListRow {
        ListRow {
            recently: if r.pub_date > now {
                "Scheduled"
            } else if r.pub_date >= now - 86_400 {
                "Yes"
            } else {
                "No"
            },
            id: r.id,
            published: web::when(r.pub_date),
            question_text: r.question_text,
            choices: r.choices,
            votes: r.votes,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/poll_list.html")]
pub struct PollListPage {
    pub ctx: PageContext,
    pub section: &'static str,
    pub q: String,
    pub date: DateFilter,
    pub rows: Vec<ListRow>,
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    pub newer: Option<String>,
    pub older: Option<String>,
}

impl PollListPage {
    pub fn filters(&self) -> [DateFilter; 5] {
        DateFilter::ALL
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    date: Option<String>,
    page: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    _staff: Staff,
    page: Page,
    Query(query): Query<ListQuery>,
) -> AppResult<Response> {
    let q = super::search_text(query.q, MAX_TEXT);
    let Some(date) = DateFilter::parse(query.date.as_deref()) else {
        return Err(AppError::bad_request("There is no such date filter."));
    };
    let number = super::page_number(query.page.as_deref())?;
    let now = crate::db::now();
    let (from, to) = date.bounds(now);
    let rows = store::poll_list(&state.db, &q, from, to, PER_PAGE, (number - 1) * PER_PAGE).await?;
    let total = super::list_total(rows.first().map(|r| r.total), number)?;
    let pages = super::pages(total);
    let link = |n: i64| {
        let n = n.to_string();
        let date = if date == DateFilter::Any {
            ""
        } else {
            date.key()
        };
        format!(
            "/admin/polls/?{}",
            super::query_string(&[("q", &q), ("date", date), ("page", &n)])
        )
    };
    web::render(&PollListPage {
        newer: (number > 1).then(|| link(number - 1)),
        older: (number < pages).then(|| link(number + 1)),
        rows: rows.into_iter().map(|r| ListRow::of(r, now)).collect(),
        ctx: page.ctx,
        section: "polls",
        q,
        date,
        total,
        page: number,
        pages,
    })
}

// -- A poll's page ----------------------------------------------------------------------------

/// A choice row of the form, as shown (again).
pub struct ChoiceRow {
    pub index: usize,
    /// The choice's id, empty for a new row.
    pub id: String,
    pub text: String,
    pub order: String,
    pub delete: bool,
    pub votes: i64,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/poll_form.html")]
pub struct PollFormPage {
    pub ctx: PageContext,
    pub section: &'static str,
    /// None: a new poll.
    pub poll_id: Option<i64>,
    pub action: String,
    pub question_text: String,
    pub pub_date: String,
    pub pub_time: String,
    /// The closing date and time (both empty: the poll stays open).
    pub close_date: String,
    pub close_time: String,
    pub close_error: Option<String>,
    /// "This poll closed on …" when its close is recorded (Reopen to change it).
    pub closed: Option<String>,
    /// Whether the poll, as saved, is closed now (by its time or staff's Close now).
    pub is_closed: bool,
    pub visibility: Visibility,
    /// How many choices a voter may pick, as typed (1: radio buttons; more: checkboxes).
    pub max_choices: String,
    pub max_choices_error: Option<String>,
    pub rows: Vec<ChoiceRow>,
    pub question_error: Option<String>,
    pub date_error: Option<String>,
    pub choices_error: Option<String>,
    /// The form's one-time token (a second submission saves nothing).
    pub token: String,
    /// Votes the admin was told would go with the choices marked for deletion.
    pub confirm_votes: i64,
    pub warning: Option<String>,
    /// Whether the poll, as saved, is published yet (and so on the public list).
    pub scheduled: bool,
}

impl PollFormPage {
    pub fn visibilities(&self) -> [Visibility; 3] {
        Visibility::ALL
    }

    pub fn has_errors(&self) -> bool {
        self.question_error.is_some()
            || self.date_error.is_some()
            || self.close_error.is_some()
            || self.max_choices_error.is_some()
            || self.choices_error.is_some()
            || self.rows.iter().any(|r| r.error.is_some())
    }
}

fn date_and_time(unix: i64) -> (String, String) {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let date = t
        .format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap_or_default();
    let hm = t
        .format(time::macros::format_description!("[hour]:[minute]"))
        .unwrap_or_default();
    (date, hm)
}

/// A date (`2026-12-01`) and a time (`15:55`, seconds allowed, empty for midnight), in UTC.
fn parse_date_and_time(date: &str, hm: &str) -> Result<i64, &'static str> {
    let date = time::Date::parse(
        date.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| "Enter a valid date, such as 2026-12-01.")?;
    let hm = hm.trim();
    let t = if hm.is_empty() {
        time::Time::MIDNIGHT
    } else {
        time::Time::parse(hm, time::macros::format_description!("[hour]:[minute]"))
            .or_else(|_| {
                time::Time::parse(
                    hm,
                    time::macros::format_description!("[hour]:[minute]:[second]"),
                )
            })
            .map_err(|_| "Enter a valid time, such as 14:30.")?
    };
    let year = date.year();
    if !(1900..=9999).contains(&year) {
        return Err("Enter a year between 1900 and 9999.");
    }
    Ok(time::PrimitiveDateTime::new(date, t)
        .assume_utc()
        .unix_timestamp())
}

fn empty_rows(from: usize) -> impl Iterator<Item = ChoiceRow> {
    (from..from + EXTRA_ROWS).map(|index| ChoiceRow {
        index,
        id: String::new(),
        text: String::new(),
        order: String::new(),
        delete: false,
        votes: 0,
        error: None,
    })
}

fn form_page(ctx: PageContext, poll_id: Option<i64>) -> PollFormPage {
    PollFormPage {
        ctx,
        section: "polls",
        action: match poll_id {
            Some(id) => format!("/admin/polls/{id}/"),
            None => "/admin/polls/new/".to_string(),
        },
        poll_id,
        question_text: String::new(),
        pub_date: String::new(),
        pub_time: String::new(),
        close_date: String::new(),
        close_time: String::new(),
        close_error: None,
        closed: None,
        is_closed: false,
        visibility: Visibility::Always,
        max_choices: "1".to_string(),
        max_choices_error: None,
        rows: Vec::new(),
        question_error: None,
        date_error: None,
        choices_error: None,
        token: csrf::new_token(),
        confirm_votes: 0,
        warning: None,
        scheduled: false,
    }
}

async fn new_form(_staff: Staff, page: Page) -> AppResult<Response> {
    let mut form = form_page(page.ctx, None);
    let now = crate::db::now();
    (form.pub_date, form.pub_time) = date_and_time(now - now.rem_euclid(60));
    form.rows = empty_rows(0).collect();
    web::render(&form)
}

async fn edit_form(
    State(state): State<AppState>,
    _staff: Staff,
    page: Page,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let id = web::parse_id(&id)?;
    let (poll, choices) = store::poll(&state.db, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut form = form_page(page.ctx, Some(id));
    form.question_text = poll.question_text;
    (form.pub_date, form.pub_time) = date_and_time(poll.pub_date);
    let now = crate::db::now();
    form.scheduled = poll.pub_date > now;
    if let Some(t) = poll.closes_at {
        (form.close_date, form.close_time) = date_and_time(t);
    }
    form.is_closed = closing::is_closed(poll.closes_at, poll.closed_at, now);
    form.closed = poll
        .closed_at
        .map(|_| closing::closed_message(poll.closes_at.or(poll.closed_at)));
    form.visibility = Visibility::parse(&poll.results_visibility);
    form.max_choices = poll.max_choices.to_string();
    form.rows = choices
        .into_iter()
        .enumerate()
        .map(|(i, c)| ChoiceRow {
            index: i,
            id: c.id.to_string(),
            text: c.choice_text,
            order: (i + 1).to_string(),
            delete: false,
            votes: c.votes,
            error: None,
        })
        .collect();
    let n = form.rows.len();
    form.rows.extend(empty_rows(n));
    web::render(&form)
}

/// The poll form as sent: fields named `question_text`, `pub_date`, `pub_time`, `token`,
/// `confirm_votes`, and per choice row `choice-N-id`, `choice-N-text`, `choice-N-order`,
/// `choice-N-delete`.
pub struct SentForm(Vec<(String, String)>);

impl SentForm {
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// The row numbers the form has, in order.
    fn rows(&self) -> AppResult<Vec<usize>> {
        let mut rows: Vec<usize> = self
            .0
            .iter()
            .filter_map(|(k, _)| k.strip_prefix("choice-")?.split_once('-'))
            .map(|(n, _)| n.parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| AppError::bad_request("The form's choice rows could not be read."))?;
        rows.sort_unstable();
        rows.dedup();
        if rows.len() > MAX_ROWS || rows.last().is_some_and(|n| *n >= MAX_ROWS * 10) {
            return Err(AppError::bad_request("The form has too many choice rows."));
        }
        Ok(rows)
    }
}

/// Reads the form into a poll to save, or the form again with a message next to each field
/// that is wrong.
fn validate(
    sent: &SentForm,
    form: &mut PollFormPage,
    current: &[store::ChoiceRecord],
) -> AppResult<Option<PollEdit>> {
    let question: String = sent.get("question_text").trim().to_string();
    let length = question.chars().count();
    if question.is_empty() {
        form.question_error = Some("Enter the question.".into());
    } else if length > MAX_TEXT {
        form.question_error = Some(format!(
            "Ensure the question has at most {MAX_TEXT} characters (it has {length})."
        ));
    }
    form.question_text = question.chars().take(MAX_TEXT * 2).collect();
    form.pub_date = sent.get("pub_date").chars().take(40).collect();
    form.pub_time = sent.get("pub_time").chars().take(40).collect();
    let pub_date = match parse_date_and_time(&form.pub_date, &form.pub_time) {
        Ok(t) => Some(t),
        Err(e) => {
            form.date_error = Some(e.into());
            None
        }
    };
    let closes_at = validate_closing(sent, form, pub_date);
    form.confirm_votes = sent.get("confirm_votes").parse().unwrap_or(0);
    let mut edits: Vec<(i64, usize, ChoiceEdit)> = Vec::new();
    for (index, n) in sent.rows()?.into_iter().enumerate() {
        let field = |name: &str| sent.get(&format!("choice-{n}-{name}")).to_string();
        let id = match field("id").trim() {
            "" => None,
            raw => Some(web::parse_id(raw).map_err(|_| {
                AppError::bad_request("The form names a choice that is not a number.")
            })?),
        };
        let text = field("text").trim().to_string();
        let order_raw = field("order").trim().to_string();
        let delete = !field("delete").is_empty();
        let mut row = ChoiceRow {
            index,
            id: id.map(|i| i.to_string()).unwrap_or_default(),
            text: text.chars().take(MAX_TEXT * 2).collect(),
            order: order_raw.chars().take(20).collect(),
            delete,
            votes: id
                .and_then(|id| current.iter().find(|c| c.id == id))
                .map(|c| c.votes)
                .unwrap_or(0),
            error: None,
        };
        let order = if order_raw.is_empty() {
            Some(1_000_000 + index as i64)
        } else {
            order_raw
                .parse::<i64>()
                .ok()
                .filter(|o| o.abs() < 1_000_000)
        };
        if id.is_none() && (text.is_empty() || delete) {
            // An empty extra row (or a new one ticked for deletion): nothing to save.
            if !text.is_empty() || !order_raw.is_empty() {
                form.rows.push(row);
            }
            continue;
        }
        let length = text.chars().count();
        if !delete {
            if text.is_empty() {
                row.error = Some("Enter the choice, or tick Delete.".into());
            } else if length > MAX_TEXT {
                row.error = Some(format!(
                    "Ensure the choice has at most {MAX_TEXT} characters (it has {length})."
                ));
            } else if order.is_none() {
                row.error = Some("Enter a whole number for the order.".into());
            } else if edits
                .iter()
                .any(|(_, _, e)| !e.delete && e.text.to_lowercase() == text.to_lowercase())
            {
                row.error = Some("Another choice has the same text.".into());
            }
        }
        edits.push((
            order.unwrap_or(0),
            index,
            ChoiceEdit {
                id,
                text,
                position: 0,
                delete,
            },
        ));
        form.rows.push(row);
    }
    // Positions follow the order numbers given (ties: the rows' order on the page).
    edits.sort_by_key(|(order, index, _)| (*order, *index));
    let choices: Vec<ChoiceEdit> = edits
        .into_iter()
        .enumerate()
        .map(|(i, (_, _, c))| ChoiceEdit {
            position: i as i64 + 1,
            ..c
        })
        .collect();
    let n = form.rows.len();
    form.rows.extend(empty_rows(n));
    let kept = choices.iter().filter(|c| !c.delete).count() as i64;
    let max_choices = validate_max_choices(sent, form, kept);
    match (form.has_errors(), pub_date, max_choices) {
        (false, Some(pub_date), Some(max_choices)) => Ok(Some(PollEdit {
            id: form.poll_id,
            question_text: question,
            pub_date,
            closes_at,
            results_visibility: form.visibility.key().to_string(),
            max_choices,
            choices,
        })),
        _ => Ok(None),
    }
}

/// How many choices a voter may pick: a whole number from 1 to the number of choices the poll
/// keeps (`kept`); empty is 1.
fn validate_max_choices(sent: &SentForm, form: &mut PollFormPage, kept: i64) -> Option<i64> {
    let raw = sent.get("max_choices").trim();
    form.max_choices = raw.chars().take(20).collect();
    let n = if raw.is_empty() {
        Some(1)
    } else {
        raw.parse::<i64>().ok()
    };
    match n {
        Some(1) => Some(1),
        Some(n) if n >= 1 && n <= kept => Some(n),
        Some(n) if n > 1 => {
            form.max_choices_error = Some(format!(
                "A voter can pick at most as many choices as the poll has ({kept}); {n} is more."
            ));
            None
        }
        _ => {
            form.max_choices_error =
                Some("Enter a whole number of choices a voter may pick: 1 or more.".into());
            None
        }
    }
}

/// The closing date and time (optional: both empty, the poll stays open; after the
/// publication) and the results' visibility, read into the form; the closing time to save.
fn validate_closing(
    sent: &SentForm,
    form: &mut PollFormPage,
    pub_date: Option<i64>,
) -> Option<i64> {
    form.close_date = sent.get("close_date").chars().take(40).collect();
    form.close_time = sent.get("close_time").chars().take(40).collect();
    match Visibility::from_key(sent.get("results_visibility")) {
        Some(v) => form.visibility = v,
        None => form.close_error = Some("Choose who sees the results.".into()),
    }
    if form.close_date.trim().is_empty() {
        if !form.close_time.trim().is_empty() {
            form.close_error = Some("Enter the closing date too, or clear the time.".into());
        }
        return None;
    }
    match parse_date_and_time(&form.close_date, &form.close_time) {
        Ok(t) if pub_date.is_some_and(|p| t <= p) => {
            form.close_error = Some("The poll must close after it is published.".into());
            None
        }
        Ok(t) => Some(t),
        Err(e) => {
            form.close_error = Some(e.into());
            None
        }
    }
}

async fn create(
    State(state): State<AppState>,
    staff: Staff,
    ClientIp(ip): ClientIp,
    page: Page,
    Form(sent): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    submit(&state, &staff, &ip, page, None, SentForm(sent)).await
}

async fn save(
    State(state): State<AppState>,
    staff: Staff,
    ClientIp(ip): ClientIp,
    page: Page,
    Path(id): Path<String>,
    Form(sent): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let id = web::parse_id(&id)?;
    submit(&state, &staff, &ip, page, Some(id), SentForm(sent)).await
}

async fn submit(
    state: &AppState,
    staff: &Staff,
    ip: &str,
    page: Page,
    poll_id: Option<i64>,
    sent: SentForm,
) -> AppResult<Response> {
    let current = match poll_id {
        Some(id) => {
            store::poll(&state.db, id)
                .await?
                .ok_or(AppError::NotFound)?
                .1
        }
        None => Vec::new(),
    };
    let session = page.session.clone();
    let mut form = form_page(page.ctx, poll_id);
    let token = sent.get("token");
    if token.len() != form.token.len() {
        return Err(AppError::bad_request(
            "The form has no valid token: reload the page.",
        ));
    }
    form.token = token.to_string();
    let Some(edit) = validate(&sent, &mut form, &current)? else {
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, web::render(&form)?).into_response());
    };
    let voted: Vec<&str> = edit
        .choices
        .iter()
        .filter(|c| c.delete)
        .filter_map(|c| current.iter().find(|k| Some(k.id) == c.id))
        .filter(|k| k.votes > 0)
        .map(|k| k.choice_text.as_str())
        .collect();
    if !voted.is_empty() && !gate::has_recent_password(state, &session).await? {
        flash::push(
            &session,
            Level::Warning,
            "Deleting votes needs your password again. Nothing was saved: confirm your password, then make the change again.",
        )
        .await?;
        let back = web::SafeNext::or_default(Some(&form.action));
        return Ok(back.redirect("/account/confirm/"));
    }
    match store::save_poll(&state.db, &edit, &form.token, staff.id, form.confirm_votes).await? {
        Saved::Saved(id) => {
            let is_new = poll_id.is_none();
            let msg =
                announce_saved(state, staff, ip, &edit, id, is_new, form.confirm_votes).await?;
            flash::push(&session, Level::Success, msg).await?;
            Ok(Redirect::to(&format!("/admin/polls/{id}/")).into_response())
        }
        Saved::Duplicate(to) => {
            flash::push(
                &session,
                Level::Info,
                "This form was already saved: it was not saved again.",
            )
            .await?;
            Ok(Redirect::to(&to).into_response())
        }
        Saved::Missing => {
            if let Some(id) = poll_id {
                if store::poll_votes(&state.db, id).await?.is_none() {
                    return Err(AppError::NotFound);
                }
            }
            form.choices_error = Some(
                "A choice was changed or deleted by someone else meanwhile. Nothing was saved: reload the page and make your change again.".into(),
            );
            Ok((StatusCode::CONFLICT, web::render(&form)?).into_response())
        }
        Saved::VotesToConfirm(n) => {
            form.confirm_votes = n;
            form.warning = Some(votes_to_confirm(&voted, n));
            Ok((StatusCode::CONFLICT, web::render(&form)?).into_response())
        }
        Saved::SelectionsTooLarge(n) => {
            form.max_choices_error = Some(format!(
                "Some voters chose {n} choices: a voter may pick at least {n} on this poll now. Nothing was saved."
            ));
            Ok((StatusCode::CONFLICT, web::render(&form)?).into_response())
        }
    }
}

/// A saved poll: the admin's event; returns the message that says so.
async fn announce_saved(
    state: &AppState,
    staff: &Staff,
    ip: &str,
    edit: &PollEdit,
    id: i64,
    is_new: bool,
    confirmed_votes: i64,
) -> AppResult<String> {
    changed(state);
    let deleted = edit.choices.iter().filter(|c| c.delete).count();
    let kept = edit.choices.len() - deleted;
    let what = format!(
        "{} poll #{id} {:?}: {kept} choice(s){}{}",
        if is_new { "created" } else { "changed" },
        edit.question_text,
        if deleted > 0 {
            format!(", {deleted} deleted")
        } else {
            String::new()
        },
        if confirmed_votes > 0 {
            format!(" with their {confirmed_votes} vote(s)")
        } else {
            String::new()
        },
    );
    super::record(state, staff, None, ip, &what).await?;
    let when = if edit.pub_date > crate::db::now() {
        format!(
            " It is scheduled: it appears on the public list at {}.",
            web::when(edit.pub_date)
        )
    } else {
        String::new()
    };
    let done = if is_new { "added" } else { "changed" };
    Ok(format!(
        "The poll “{}” was {done}.{when}",
        edit.question_text
    ))
}

/// What the form says when deleting choices would delete `n` votes (of the choices `voted`).
fn votes_to_confirm(voted: &[&str], n: i64) -> String {
    let one = voted.len() == 1;
    format!(
        "The {} marked for deletion {} {n} vote{}, which will be deleted with {}. Nothing was saved yet: press Save again to confirm.",
        if voted.is_empty() {
            "choices".to_string()
        } else {
            format!("choice{} “{}”", if one { "" } else { "s" }, voted.join("”, “"))
        },
        if one { "has" } else { "have" },
        if n == 1 { "" } else { "s" },
        if one { "it" } else { "them" },
    )
}

// -- Deleting a poll --------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "admin/poll_delete.html")]
pub struct DeletePage {
    pub ctx: PageContext,
    pub section: &'static str,
    pub id: i64,
    pub question_text: String,
    pub choices: usize,
    pub votes: i64,
    pub changed: bool,
}

async fn delete_page(
    state: &AppState,
    ctx: PageContext,
    id: i64,
    changed: bool,
) -> AppResult<DeletePage> {
    let (poll, choices) = store::poll(&state.db, id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(DeletePage {
        ctx,
        section: "polls",
        id,
        question_text: poll.question_text,
        choices: choices.len(),
        votes: choices.iter().map(|c| c.votes).sum(),
        changed,
    })
}

async fn delete_form(
    State(state): State<AppState>,
    _staff: Staff,
    page: Page,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let id = web::parse_id(&id)?;
    web::render(&delete_page(&state, page.ctx, id, false).await?)
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm_votes: String,
}

async fn delete(
    State(state): State<AppState>,
    staff: Staff,
    ClientIp(ip): ClientIp,
    page: Page,
    Path(id): Path<String>,
    Form(form): Form<DeleteForm>,
) -> AppResult<Response> {
    let id = web::parse_id(&id)?;
    let confirmed: i64 = form
        .confirm_votes
        .trim()
        .parse()
        .map_err(|_| AppError::bad_request("The form could not be read: reload the page."))?;
    let question = store::poll(&state.db, id)
        .await?
        .map(|(p, _)| p.question_text)
        .unwrap_or_default();
    match store::delete_poll(&state.db, id, confirmed).await? {
        Saved::Saved(_) => {
            changed(&state);
            let what = format!("deleted poll #{id} {question:?} with its {confirmed} vote(s)");
            super::record(&state, &staff, None, &ip, &what).await?;
            flash::push(
                &page.session,
                Level::Success,
                format!("The poll “{question}” was deleted."),
            )
            .await?;
            Ok(Redirect::to("/admin/polls/").into_response())
        }
        Saved::VotesToConfirm(_) => {
            let page = delete_page(&state, page.ctx, id, true).await?;
            Ok((StatusCode::CONFLICT, web::render(&page)?).into_response())
        }
        Saved::Missing | Saved::Duplicate(_) | Saved::SelectionsTooLarge(_) => {
            Err(AppError::NotFound)
        }
    }
}

// -- Closing and reopening --------------------------------------------------------------------

/// *Close now*: the poll stops taking votes at once; its close is recorded with the votes held
/// still, so its counts are final (`polls::store::record_close`).
async fn close_now(
    State(state): State<AppState>,
    staff: Staff,
    ClientIp(ip): ClientIp,
    page: Page,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let id = web::parse_id(&id)?;
    let (poll, _) = store::poll(&state.db, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let text = if poll_store::record_close(&state.db, id, true).await? {
        changed(&state);
        let what = format!("closed poll #{id} {:?}", poll.question_text);
        super::record(&state, &staff, None, &ip, &what).await?;
        format!(
            "The poll “{}” is closed: its results are final.",
            poll.question_text
        )
    } else {
        format!("The poll “{}” was closed already.", poll.question_text)
    };
    flash::push(&page.session, Level::Success, text).await?;
    Ok(Redirect::to(&format!("/admin/polls/{id}/")).into_response())
}

/// *Reopen*: the poll takes votes again, with no closing time.
async fn reopen(
    State(state): State<AppState>,
    staff: Staff,
    ClientIp(ip): ClientIp,
    page: Page,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let id = web::parse_id(&id)?;
    let (poll, _) = store::poll(&state.db, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !poll_store::reopen(&state.db, id).await? {
        return Err(AppError::NotFound);
    }
    changed(&state);
    let what = format!("reopened poll #{id} {:?}", poll.question_text);
    super::record(&state, &staff, None, &ip, &what).await?;
    let text = format!(
        "The poll “{}” is open again, with no closing time.",
        poll.question_text
    );
    flash::push(&page.session, Level::Success, text).await?;
    Ok(Redirect::to(&format!("/admin/polls/{id}/")).into_response())
}
