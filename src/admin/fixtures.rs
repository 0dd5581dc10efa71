//! `/admin/fixtures/`: a Django dumpdata file uploaded and loaded with the rules and messages of
//! `pollstr loaddata` (all or nothing, a summary of what was loaded), and the whole database
//! downloaded as one (as `pollstr dumpdata`). Both in sudo mode: a dump holds password hashes.
//! An upload only adds accounts, never staff ones (`fixtures::Accounts::AddOnly`); its event
//! names each account it created, and a refused upload is an event too, so an account planted
//! from a stolen admin session shows on the trail by name.

use std::sync::Arc;

use askama::Template;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};

use super::Staff;
use crate::error::{AppError, AppResult};
use crate::fixtures::{self, FixtureError};
use crate::polls::cache::PollCache;
use crate::state::AppState;
use crate::two_factor::gate;
use crate::web::routes::{get, Routes};
use crate::web::{self, csrf, flash, ClientIp, Level, Page, PageContext};

pub fn router(state: &AppState) -> Routes {
    Routes::new()
        .route(crate::web::csrf::UPLOAD_PATH, get(form).post(import))
        .route("/admin/fixtures/download/", get(download))
        // The CSRF check has read the body already, within its own bound for uploads.
        .layer(DefaultBodyLimit::max(csrf::MULTIPART_LIMIT))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            gate::require_recent_password,
        ))
}

#[derive(Template)]
#[template(path = "admin/fixtures.html")]
pub struct FixturesPage {
    pub ctx: PageContext,
    pub section: &'static str,
    pub error: Option<String>,
    pub limit_mib: usize,
}

fn page(ctx: PageContext, error: Option<String>) -> FixturesPage {
    FixturesPage {
        ctx,
        section: "fixtures",
        error,
        limit_mib: csrf::UPLOAD_LIMIT / (1024 * 1024),
    }
}

async fn form(_staff: Staff, page_: Page) -> AppResult<Response> {
    web::render(&page(page_.ctx, None))
}

/// The uploaded file's name, as messages show it.
fn file_name(raw: Option<&str>) -> String {
    let name: String = raw
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    if name.trim().is_empty() {
        "upload.json".into()
    } else {
        name
    }
}

async fn import(
    State(state): State<AppState>,
    staff: Staff,
    ClientIp(ip): ClientIp,
    page_: Page,
    multipart: Result<Multipart, MultipartRejection>,
) -> AppResult<Response> {
    let session = page_.session.clone();
    let refuse = |status: StatusCode, msg: String| -> AppResult<Response> {
        Ok((status, web::render(&page(page_.ctx.clone(), Some(msg)))?).into_response())
    };
    let Ok(mut multipart) = multipart else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Choose a fixture file to upload.".into(),
        );
    };
    let mut file: Option<(String, axum::body::Bytes)> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => {
                return refuse(
                    e.status(),
                    format!("The upload could not be read: {}", e.body_text()),
                )
            }
        };
        if field.name() != Some("file") {
            continue;
        }
        let name = file_name(field.file_name());
        match field.bytes().await {
            Ok(bytes) => file = Some((name, bytes)),
            Err(e) => {
                return refuse(
                    e.status(),
                    format!("The upload could not be read: {}", e.body_text()),
                )
            }
        }
    }
    let Some((name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Choose a fixture file to upload.".into(),
        );
    };
    if bytes.len() > csrf::UPLOAD_LIMIT {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{name} is larger than {} MiB: load it on the server with `pollstr loaddata`.",
                csrf::UPLOAD_LIMIT / (1024 * 1024)
            ),
        );
    }
    let Ok(text) = String::from_utf8(bytes.to_vec()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("{name}: not valid JSON: the file is not UTF-8 text."),
        );
    };
    let files = [(name.clone(), text)];
    let report = match fixtures::load_with(&state.db, &files, fixtures::Accounts::AddOnly).await {
        Ok(report) => report,
        Err(FixtureError::Db(e)) => return Err(e.into()),
        Err(e) => {
            // On the trail too: a refused account or staff grant is what a stolen session tries.
            super::record(&state, &staff, None, &ip, &format!("refused {name:?}: {e}")).await?;
            return refuse(StatusCode::BAD_REQUEST, format!("{e}. Nothing was loaded."));
        }
    };
    state.part::<Arc<PollCache>>().clear();
    let summary = report.summary(1) + &created(&report.created);
    super::record(
        &state,
        &staff,
        None,
        &ip,
        &format!("loaded {name:?}: {summary}"),
    )
    .await?;
    flash::push(&session, Level::Success, format!("{name}: {summary}.")).await?;
    Ok(Redirect::to("/admin/fixtures/").into_response())
}

/// How many new accounts an upload's event and message name; past it, how many more.
const NAMED_ACCOUNTS: usize = 20;

/// The accounts an upload created, by name: "; new account(s): eve (#12), …".
fn created(accounts: &[(i64, String)]) -> String {
    if accounts.is_empty() {
        return String::new();
    }
    let mut names: Vec<String> = accounts
        .iter()
        .take(NAMED_ACCOUNTS)
        .map(|(id, name)| format!("{name} (#{id})"))
        .collect();
    if accounts.len() > NAMED_ACCOUNTS {
        names.push(format!("and {} more", accounts.len() - NAMED_ACCOUNTS));
    }
    format!("; new account(s): {}", names.join(", "))
}

async fn download(
    State(state): State<AppState>,
    staff: Staff,
    ClientIp(ip): ClientIp,
) -> AppResult<Response> {
    let json = fixtures::dump(&state.db).await.map_err(|e| match e {
        FixtureError::Db(e) => AppError::from(e),
        other => AppError::Internal(other.into()),
    })?;
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]-[hour][minute][second]"
        ))
        .unwrap_or_default();
    super::record(
        &state,
        &staff,
        None,
        &ip,
        &format!(
            "downloaded the database as a fixture ({} bytes)",
            json.len()
        ),
    )
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"pollstr-{stamp}.json\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        json,
    )
        .into_response())
}
