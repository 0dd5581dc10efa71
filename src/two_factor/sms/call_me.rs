//! *Call me instead* (`POST /2fa/next/`): the running request's code again by the workflow's
//! next channel (a voice call after the text message). It costs a send, so it passes the same
//! guard and is counted against the same limits and budgets as one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::guard::{self, Admission, Destination};
use super::phone::PhoneNumber;
use super::{
    cannot_receive, channel_at, login_redirect, paused, provider_trouble, reserve_send,
    too_many_sends, verifier, warn_and_go, with_provider_wait, NextOutcome, VerifyChannel,
    VerifyPage, ENDED, NOT_ALLOWED, NO_OTHER_WAY,
};
use crate::error::AppResult;
use crate::events::{self, Kind};
use crate::limits;
use crate::session;
use crate::state::AppState;
use crate::web::{self, flash, ClientIp, Form, Level, Page, SafeNext};

#[derive(Deserialize)]
pub struct NextForm {
    next: Option<String>,
}

/// "Call me instead": the running request's code by the workflow's next channel. It costs a
/// send, so it is counted against the same limits and budgets as one.
pub async fn next_channel(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    page: Page,
    Form(form): Form<NextForm>,
) -> AppResult<Response> {
    let next = SafeNext::or_default(form.next.as_deref());
    let Some(user) = page.ctx.user.clone() else {
        return Ok(login_redirect("/2fa/verify/", &next));
    };
    let Some(mut pending) = session::SMS_PENDING.get(&page.session).await? else {
        return warn_and_go(&page, &next.url("/2fa/"), ENDED).await;
    };
    let to_verify = next.url("/2fa/verify/");
    let Some(channel) = channel_at(&state, pending.channel + 1) else {
        return warn_and_go(&page, &to_verify, NO_OTHER_WAY).await;
    };
    let number = PhoneNumber::from_stored(pending.number.clone());
    let masked = number.masked();
    let to = Destination::of(&number);
    let page_now = VerifyPage::new(&state, page.ctx.clone(), &next, &pending);
    match guard::admit(&state, &to).await? {
        Admission::Allowed => {}
        Admission::CannotReceive(kind) => {
            let detail = format!("{masked} in {}: {kind} numbers take no calls", to.country);
            events::record(&state.db, Kind::CodeRefused, Some(user.id), &ip, &detail).await?;
            return page_now.with_error(StatusCode::UNPROCESSABLE_ENTITY, cannot_receive(kind));
        }
        Admission::CountryNotAllowed => {
            return page_now.with_error(StatusCode::UNPROCESSABLE_ENTITY, NOT_ALLOWED);
        }
        Admission::Paused { until } => {
            let wait = (until - crate::db::now()).max(1) as u64;
            let res = page_now.with_error(StatusCode::SERVICE_UNAVAILABLE, paused(wait))?;
            return Ok(web::retry_after(res, wait));
        }
    }
    let reservation = match reserve_send(&state, user.id, &number, &to, &ip).await? {
        Ok(r) => r,
        Err(wait) => {
            events::record(
                &state.db,
                Kind::CodeRefused,
                Some(user.id),
                &ip,
                &format!("send limit, {} to {masked}", channel.as_str()),
            )
            .await?;
            let res = page_now.with_error(StatusCode::TOO_MANY_REQUESTS, too_many_sends(wait))?;
            return Ok(web::retry_after(res, wait));
        }
    };
    let outcome = match verifier(&state).next_channel(&pending.request_id).await {
        Ok(outcome) => outcome,
        Err(e) => {
            limits::release(&state.db, reservation).await?;
            let res =
                page_now.with_error(StatusCode::SERVICE_UNAVAILABLE, provider_trouble(&e, true))?;
            return Ok(with_provider_wait(res, &e));
        }
    };
    match outcome {
        NextOutcome::Moved => {
            guard::record_next_channel(&state.db, &pending.request_id).await?;
            events::record(
                &state.db,
                Kind::CodeSent,
                Some(user.id),
                &ip,
                &format!("by {} to {masked}", channel.as_str()),
            )
            .await?;
            pending.channel += 1;
            session::SMS_PENDING.insert(&page.session, pending).await?;
            let msg = match channel {
                VerifyChannel::Voice => {
                    format!("We are calling {masked} now to read you a new code.")
                }
                VerifyChannel::Sms => format!("We have sent a new code to {masked}."),
            };
            flash::push(&page.session, Level::Info, msg).await?;
            Ok(Redirect::to(&to_verify).into_response())
        }
        NextOutcome::NoMore => {
            limits::release(&state.db, reservation).await?;
            pending.channel = verifier(&state).workflow().len().saturating_sub(1);
            session::SMS_PENDING.insert(&page.session, pending).await?;
            warn_and_go(&page, &to_verify, NO_OTHER_WAY).await
        }
        NextOutcome::Expired => {
            limits::release(&state.db, reservation).await?;
            session::SMS_PENDING.remove(&page.session).await?;
            flash::push(
                &page.session,
                Level::Warning,
                "That code has expired or was already used. Send a new code.",
            )
            .await?;
            Ok(next.redirect("/2fa/"))
        }
    }
}
