//! `/account/passkeys/`: the user's passkeys (name, when added, when last used, whether it may
//! be synced between devices), adding one with a name (sudo mode, and only for an account that
//! has proven a phone: the site's one-account-per-phone rule), renaming, and removing one with
//! the password; removing the last forgets every trusted browser, as removing the app does.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use webauthn_rs::prelude::{RegisterPublicKeyCredential, Uuid};

use super::{backup_eligible, credential_id, relying, store, STATE_LIFETIME};
use crate::error::AppResult;
use crate::events::{self, Kind};
use crate::session::{self, Ceremony, SessionUser};
use crate::state::AppState;
use crate::two_factor::{gate, sms, trusted};
use crate::users::current_password::check_current_password;
use crate::web::routes::{get, post, Routes};
use crate::web::{self, flash, when, ClientIp, Form, Level, Page, PageContext};

const HERE: &str = "/account/passkeys/";

pub fn router(state: &AppState) -> Routes {
    // Adding one takes the password given in the last ten minutes (removing one asks for it
    // on its form).
    let add = Routes::new()
        .route("/account/passkeys/add/", post(add))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            gate::require_recent_password,
        ));
    Routes::new()
        .route(HERE, get(list_page))
        .route("/account/passkeys/rename/", post(rename))
        .route("/account/passkeys/remove/", post(remove))
        .merge(add)
        .route_layer(middleware::from_fn(gate::require_verified))
}

/// One passkey as the list shows it.
pub struct Line {
    pub id: i64,
    pub name: String,
    pub added: String,
    pub last_used: String,
    pub synced: bool,
}

#[derive(Template)]
#[template(path = "two_factor/passkeys.html")]
pub struct PasskeysPage {
    pub ctx: PageContext,
    pub passkeys: Vec<Line>,
    /// The account has proven a phone (else it cannot add one).
    pub has_phone: bool,
    /// The options of a new passkey for the browser (JSON), in sudo mode; empty otherwise.
    pub options: String,
    pub error: Option<String>,
}

/// A passkey's name: 1 to 64 characters, no control characters.
fn valid_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > 64 || name.chars().any(char::is_control) {
        return Err("Give the passkey a name of 1 to 64 characters (e.g. \"Work laptop\").".into());
    }
    Ok(name.to_string())
}

/// The options of a new passkey, its ceremony kept in the session.
async fn begin_adding(state: &AppState, page: &Page, user: &SessionUser) -> AppResult<String> {
    if let Some(pending) = session::PASSKEY_ADD.get(&page.session).await? {
        if super::reusable(&pending) {
            return Ok(pending.options);
        }
    }
    let mine = store::of_user(&state.db, user.id).await?;
    let handle = match mine.first() {
        Some(p) => p.user_handle.clone(),
        None => Uuid::new_v4().to_string(),
    };
    let uuid = Uuid::parse_str(&handle)
        .map_err(|e| anyhow::anyhow!("a stored user handle is not a UUID: {e}"))?;
    let exclude = mine
        .iter()
        .filter_map(|p| super::passkey_of(p).ok())
        .map(|p| p.cred_id().clone())
        .collect::<Vec<_>>();
    let (options, registration) = relying(state)?
        .start_passkey_registration(uuid, &user.username, &user.username, Some(exclude))
        .map_err(|e| anyhow::anyhow!("passkey registration: {e}"))?;
    // A discoverable credential where the authenticator can keep one, for the login without a
    // password (webauthn-rs asks for none by default; the ceremony's state does not depend on it).
    let mut options = serde_json::to_value(&options).map_err(anyhow::Error::from)?;
    if let Some(sel) = options.pointer_mut("/publicKey/authenticatorSelection") {
        sel["residentKey"] = "preferred".into();
        sel["requireResidentKey"] = false.into();
    }
    let options = options.to_string();
    let ceremony = Ceremony {
        state: registration,
        at: crate::db::now(),
        user_handle: handle,
        options: options.clone(),
    };
    session::PASSKEY_ADD.insert(&page.session, ceremony).await?;
    Ok(options)
}

async fn render(
    state: &AppState,
    page: Page,
    user: &SessionUser,
    status: StatusCode,
    error: Option<String>,
) -> AppResult<Response> {
    let page = page.with_form().await?;
    let has_phone = sms::store::numbers::of_user(&state.db, user.id)
        .await?
        .is_some();
    let options = if has_phone && gate::has_recent_password(state, &page.session).await? {
        begin_adding(state, &page, user).await?
    } else {
        String::new()
    };
    let passkeys = store::of_user(&state.db, user.id)
        .await?
        .into_iter()
        .map(|p| Line {
            id: p.id,
            name: p.name,
            added: when(p.created_at),
            last_used: p.last_used_at.map(when).unwrap_or_else(|| "never".into()),
            synced: p.backup_eligible != 0,
        })
        .collect();
    let body = web::render(&PasskeysPage {
        ctx: page.ctx,
        passkeys,
        has_phone,
        options,
        error,
    })?;
    Ok((status, body).into_response())
}

async fn list_page(State(state): State<AppState>, page: Page) -> AppResult<Response> {
    let user = page.user()?;
    render(&state, page, &user, StatusCode::OK, None).await
}

#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    name: String,
    /// The browser's answer (JSON), filled in by `static/passkeys.js`.
    #[serde(default)]
    credential: String,
}

async fn add(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    page: Page,
    Form(form): Form<AddForm>,
) -> AppResult<Response> {
    let user = page.user()?;
    let ceremony = session::PASSKEY_ADD.get(&page.session).await?;
    session::PASSKEY_ADD.remove(&page.session).await?;
    let refuse = |status: StatusCode, msg: &str| (status, msg.to_string());
    let outcome = async {
        let name = match valid_name(&form.name) {
            Ok(name) => name,
            Err(m) => return Ok(Err(refuse(StatusCode::BAD_REQUEST, &m))),
        };
        if sms::store::numbers::of_user(&state.db, user.id)
            .await?
            .is_none()
        {
            let msg = "Prove a phone number first: then you can add a passkey.";
            return Ok(Err(refuse(StatusCode::FORBIDDEN, msg)));
        }
        let Some(ceremony) = ceremony.filter(|c| crate::db::now() - c.at <= STATE_LIFETIME) else {
            let msg = "That request to add a passkey has expired or was already used. Please try again.";
            return Ok(Err(refuse(StatusCode::BAD_REQUEST, msg)));
        };
        let Ok(answer) = serde_json::from_str::<RegisterPublicKeyCredential>(&form.credential)
        else {
            let msg = "Your browser's answer could not be read. Please try again.";
            return Ok(Err(refuse(StatusCode::BAD_REQUEST, msg)));
        };
        let passkey = match relying(&state)?.finish_passkey_registration(&answer, &ceremony.state)
        {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(error = ?e, "a passkey's registration was refused");
                let detail = format!("passkey not added: {e}");
                events::record(&state.db, Kind::PasskeyRefused, Some(user.id), &ip, &detail)
                    .await?;
                let msg = "The passkey could not be added (your browser's answer did not check out). Please try again.";
                return Ok(Err(refuse(StatusCode::BAD_REQUEST, msg)));
            }
        };
        let json = serde_json::to_string(&passkey).map_err(anyhow::Error::from)?;
        let added = store::add(
            &state.db,
            store::New {
                user: user.id,
                credential_id: &credential_id(passkey.cred_id()),
                user_handle: &ceremony.user_handle,
                name: &name,
                passkey: &json,
                backup_eligible: backup_eligible(&passkey),
            },
        )
        .await?;
        if !added {
            let msg = "That passkey is already registered.";
            return Ok(Err(refuse(StatusCode::BAD_REQUEST, msg)));
        }
        AppResult::Ok(Ok(name))
    }
    .await?;
    match outcome {
        Ok(name) => {
            let detail = format!("passkey \"{name}\"");
            events::record(&state.db, Kind::FactorAdded, Some(user.id), &ip, &detail).await?;
            let what = format!("A passkey named \"{name}\" was added to your Pollstr account.");
            let subject = "A passkey was added to your Pollstr account";
            crate::users::notify::security(&state, user.id, subject, &what, &headers, &ip).await?;
            let msg = format!("Your passkey \"{name}\" is added. Next time, log in with it.");
            flash::push(&page.session, Level::Success, &msg).await?;
            Ok(Redirect::to(HERE).into_response())
        }
        Err((status, msg)) => render(&state, page, &user, status, Some(msg)).await,
    }
}

#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
}

async fn rename(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    page: Page,
    Form(form): Form<RenameForm>,
) -> AppResult<Response> {
    let user = page.user()?;
    let name = match valid_name(&form.name) {
        Ok(name) => name,
        Err(msg) => return render(&state, page, &user, StatusCode::BAD_REQUEST, Some(msg)).await,
    };
    let id = form.id.trim().parse::<i64>().unwrap_or(0);
    if !store::rename(&state.db, user.id, id, &name).await? {
        let msg = "That passkey is not one of yours (was it removed?).".to_string();
        return render(&state, page, &user, StatusCode::NOT_FOUND, Some(msg)).await;
    }
    let detail = format!("passkey #{id} renamed to {name:?}");
    events::record(&state.db, Kind::FactorRenamed, Some(user.id), &ip, &detail).await?;
    flash::push(&page.session, Level::Success, "The passkey was renamed.").await?;
    Ok(Redirect::to(HERE).into_response())
}

#[derive(Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    password: String,
}

async fn remove(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    page: Page,
    Form(form): Form<RemoveForm>,
) -> AppResult<Response> {
    let user = page.user()?;
    let why = "removing a passkey";
    let wrong = "To remove a passkey, enter your current password.";
    let check = check_current_password(&state, &user, &ip, &form.password, why).await?;
    if let Some(no) = check.refusal(StatusCode::FORBIDDEN, wrong) {
        let res = render(&state, page, &user, no.status, Some(no.message.clone())).await?;
        return Ok(no.answer(res));
    }
    let id = form.id.trim().parse::<i64>().unwrap_or(0);
    let Some(name) = store::remove(&state.db, user.id, id).await? else {
        let msg = "That passkey is not one of yours (was it removed already?).".to_string();
        return render(&state, page, &user, StatusCode::NOT_FOUND, Some(msg)).await;
    };
    let detail = format!("passkey \"{name}\"");
    events::record(&state.db, Kind::FactorRemoved, Some(user.id), &ip, &detail).await?;
    let what = format!("The passkey named \"{name}\" was removed from your Pollstr account.");
    let subject = "A passkey was removed from your Pollstr account";
    crate::users::notify::security(&state, user.id, subject, &what, &headers, &ip).await?;
    let msg = if store::has_any(&state.db, user.id).await? {
        format!("The passkey \"{name}\" was removed.")
    } else {
        // As with the app: a browser trusted on the strength of the last passkey is forgotten.
        trusted::forget_all(&state.db, user.id).await?;
        format!("The passkey \"{name}\" was removed. It was your last: your trusted browsers were forgotten.")
    };
    flash::push(&page.session, Level::Info, &msg).await?;
    Ok(Redirect::to(HERE).into_response())
}
