//! The signed-in user's email address (`/account/email/`): typing an address mails a
//! confirmation link to it; the address counts (is ever mailed) only once the link is followed
//! (`/account/email/confirm/{token}/`, a page with a button: a mail scanner that fetches the
//! link confirms nothing). Confirming a new address tells the old confirmed one. Removing the
//! address is at once. With email off (a public address and no `SMTP_URL`) nothing is mailed
//! and the page says so. Confirmation mails are counted against `CONFIRM_LIMIT_PER_USER`, per
//! account and per address. The addresses and links are in `users::email`.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::current_user;
use crate::error::{AppError, AppResult};
use crate::events::{self, Kind};
use crate::limits::{self, human_wait, Scope};
use crate::mail::{Mail, Outbox};
use crate::state::AppState;
use crate::two_factor::gate;
use crate::users::email;
use crate::web::routes::{get, post, Routes};
use crate::web::{self, flash, ClientIp, Form, Level, Page, PageContext};

pub fn router() -> Routes {
    Routes::new()
        .merge(
            Routes::new()
                .route("/account/email/", post(change))
                .route_layer(middleware::from_fn(gate::require_verified)),
        )
        .route(
            "/account/email/confirm/{token}/",
            get(confirm_form).post(confirm),
        )
}

fn key(state: &AppState) -> AppResult<&crate::crypto::SecretKey> {
    state
        .config
        .secret_key
        .as_ref()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("POLLSTR_SECRET_KEY is not set")))
}

/// The site's own address for links in mail: the configured origin (`WEBAUTHN_ORIGIN`, the
/// address people use), never the request's `Host` header, which the sender controls.
pub fn site(state: &AppState) -> String {
    state
        .config
        .webauthn
        .origin
        .as_str()
        .trim_end_matches('/')
        .to_string()
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
    /// Set by the "Remove" button.
    #[serde(default)]
    remove: Option<String>,
}

/// What became of a confirmation mail.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// Handed to the outbox.
    Yes,
    /// Email is off, or the outbox is full.
    No,
    /// `CONFIRM_LIMIT_PER_USER` reached (for the account or the address): try again in so
    /// many seconds.
    Limited(u64),
}

/// Mails a link confirming `address` for `user` (a new link replaces a pending one), counted
/// against `CONFIRM_LIMIT_PER_USER` per account and per address first, so that typing address
/// after address cannot mail-bomb anyone.
pub async fn send_confirmation(
    state: &AppState,
    user: i64,
    username: &str,
    address: &str,
) -> AppResult<Sent> {
    let outbox = state.part::<Outbox>();
    if !outbox.enabled() {
        return Ok(Sent::No);
    }
    let (id, to) = (user.to_string(), address.to_ascii_lowercase());
    let per_user = state.config.limits.confirm_per_user.as_slice();
    let checks = [
        (Scope::ConfirmPerUser, id.as_str(), per_user),
        (Scope::ConfirmPerEmail, to.as_str(), per_user),
    ];
    if let Err(wait) = limits::reserve(state, &checks).await? {
        return Ok(Sent::Limited(wait));
    }
    let token = email::issue(&state.db, key(state)?, user, address).await?;
    let link = format!("{}{}", site(state), email::path(&token));
    let taken = outbox.send(Mail {
        to: address.to_string(),
        subject: "Confirm your email address for Pollstr".into(),
        body: format!(
            "Hello {username},\n\nTo use this address for your Pollstr account, open this link \
             within a day and press the button:\n\n{link}\n\nIf you did not ask for this, do \
             nothing: the address will not be used.\n"
        ),
    });
    Ok(if taken { Sent::Yes } else { Sent::No })
}

async fn change(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    page: Page,
    Form(form): Form<EmailForm>,
) -> AppResult<Response> {
    let Some(me) = current_user(&page.session).await? else {
        return Err(AppError::Forbidden("Log in first.".into()));
    };
    let back = || Ok(Redirect::to("/account/").into_response());
    if form.remove.is_some() {
        email::set_unconfirmed_email(&state.db, me.id, "").await?;
        events::record(&state.db, Kind::EmailChanged, Some(me.id), &ip, "removed").await?;
        flash::push(
            &page.session,
            Level::Success,
            "Your email address was removed.",
        )
        .await?;
        return back();
    }
    let address = match email::parse(&form.email) {
        Ok(Some(a)) => a,
        Ok(None) => {
            flash::push(&page.session, Level::Error, "Enter an email address.").await?;
            return back();
        }
        Err(message) => {
            flash::push(&page.session, Level::Error, message).await?;
            return back();
        }
    };
    if !state.part::<Outbox>().enabled() {
        flash::push(
            &page.session,
            Level::Error,
            "Email is off on this site: no address can be confirmed.",
        )
        .await?;
        return back();
    }
    match send_confirmation(&state, me.id, &me.username, &address).await? {
        Sent::Yes => {}
        Sent::No => {
            flash::push(
                &page.session,
                Level::Error,
                "The confirmation mail could not be sent now. Please try again later.",
            )
            .await?;
            return back();
        }
        Sent::Limited(wait) => {
            let message = format!(
                "Too many confirmation mails. Please try again in {}.",
                human_wait(wait)
            );
            flash::push(&page.session, Level::Error, message).await?;
            return back();
        }
    }
    let detail = format!("confirmation link sent to {}", email::masked(&address));
    events::record(&state.db, Kind::EmailChanged, Some(me.id), &ip, &detail).await?;
    flash::push(
        &page.session,
        Level::Success,
        format!(
            "A confirmation link was sent to {address}. The address counts once you follow it."
        ),
    )
    .await?;
    back()
}

#[derive(Template)]
#[template(path = "registration/email_confirm.html")]
pub struct ConfirmPage {
    pub ctx: PageContext,
    pub token: String,
    pub email: String,
}

#[derive(Template)]
#[template(path = "registration/email_confirm_gone.html")]
pub struct GonePage {
    pub ctx: PageContext,
}

fn gone(page: Page) -> AppResult<Response> {
    let body = web::render(&GonePage { ctx: page.ctx })?;
    Ok((StatusCode::GONE, body).into_response())
}

async fn confirm_form(
    State(state): State<AppState>,
    page: Page,
    Path(token): Path<String>,
) -> AppResult<Response> {
    let page = page.with_form().await?;
    let Some((_, address)) = email::peek(&state.db, key(&state)?, &token).await? else {
        return gone(page);
    };
    web::render(&ConfirmPage {
        ctx: page.ctx,
        token,
        email: address,
    })
}

async fn confirm(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    page: Page,
    Path(token): Path<String>,
) -> AppResult<Response> {
    let Some((user, address, old)) = email::confirm(&state.db, key(&state)?, &token).await? else {
        let page = page.with_form().await?;
        return gone(page);
    };
    let detail = format!("{} confirmed", email::masked(&address));
    events::record(&state.db, Kind::EmailChanged, Some(user), &ip, &detail).await?;
    if let Some(old) = old {
        let browser = crate::web::client::browser_label(&headers);
        let at = events::format_time(crate::db::now());
        state.part::<Outbox>().send(Mail {
            to: old,
            subject: "Your Pollstr email address was changed".into(),
            body: format!(
                "Hello,\n\nThe email address of your Pollstr account was changed to {} at {at}, \
                 from {browser} at {ip}. This address will get no more mail from Pollstr.\n\n\
                 If this was not you, log in, change your password and check your account page; \
                 if you cannot log in, ask the site's staff for help.\n",
                email::masked(&address)
            ),
        });
    }
    flash::push(
        &page.session,
        Level::Success,
        format!("Your email address {address} is confirmed."),
    )
    .await?;
    let to = if current_user(&page.session).await?.is_some() {
        "/account/"
    } else {
        "/login/"
    };
    Ok(Redirect::to(to).into_response())
}
