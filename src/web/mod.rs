//! What every page shares: the page context (user, CSRF token, flash messages), template
//! rendering, the form extractor, and the safe `next` rule.

pub mod assets;
pub mod client;
pub mod csrf;
pub mod envelope;
pub mod flash;
pub mod next;
pub mod routes;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use serde::de::DeserializeOwned;
use tower_sessions::Session;

use crate::error::{AppError, AppResult};
pub use crate::page::PageContext;
pub use client::ClientIp;
pub use flash::{Flash, Level};
pub use next::SafeNext;

/// The value of the cookie `name` in a request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h axum::http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
}

/// A refusal with `Retry-After: wait` (seconds).
pub fn retry_after(mut res: Response, wait: u64) -> Response {
    res.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(wait),
    );
    res
}

/// A refusal sent before the request's body was read whole: `Connection: close`. Hyper closes
/// such a connection after the answer (the unread rest cannot be told from a next request), and
/// without the header a client puts it back in its pool and may send its next request on a
/// socket already closed, which loses that request: a keep-alive client's POST is not retried.
/// Seen in the admin suite: one run in three lost the upload sent right after an oversized form.
pub fn closing(mut res: Response) -> Response {
    res.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    res
}

/// Extracts the session and builds the page context. Anonymous visitors get no session (and no
/// cookie) until they log in; a page with a form asks for a CSRF token through
/// [`Page::with_form`].
pub struct Page {
    pub session: Session,
    pub ctx: PageContext,
    /// An anonymous visitor's token from their cookie ([`csrf::COOKIE`]).
    cookie_csrf: Option<String>,
    /// Where a new anonymous token goes to be sent as a cookie (put there by [`guard`]).
    issued: Option<csrf::IssuedToken>,
}

impl Page {
    /// The signed-in user, on a page that [`crate::two_factor::gate::require_verified`] guards
    /// (it sends anyone else away first, so being here without one is refused, not redirected).
    pub fn user(&self) -> AppResult<crate::session::SessionUser> {
        self.ctx
            .user
            .clone()
            .ok_or_else(|| AppError::Forbidden("Log in first.".into()))
    }

    /// Makes sure the page has a CSRF token, so it can render a form: the session's for a
    /// logged-in user; for an anonymous visitor, their cookie's, or a new one sent as a cookie.
    pub async fn with_form(mut self) -> AppResult<Self> {
        if self.ctx.csrf.is_empty() {
            self.ctx.csrf = match (&self.ctx.user, self.cookie_csrf.take(), &self.issued) {
                (None, Some(token), _) => token,
                (None, None, Some(issued)) => issued.issue(),
                _ => csrf::ensure_token(&self.session).await?,
            };
        }
        Ok(self)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, m)| AppError::Internal(anyhow::anyhow!(m)))?;
        let user = crate::session::current_user(&session).await?;
        let csrf = if user.is_some() {
            csrf::ensure_token(&session).await?
        } else {
            csrf::token(&session).await?.unwrap_or_default()
        };
        let messages = flash::take(&session).await?;
        let cookie_csrf = if user.is_none() {
            csrf::cookie_token(&parts.headers)
        } else {
            None
        };
        Ok(Page {
            session,
            ctx: PageContext {
                user,
                csrf,
                messages,
            },
            cookie_csrf,
            issued: parts.extensions.get::<csrf::IssuedToken>().cloned(),
        })
    }
}

/// Renders a template into an HTML response.
pub fn render<T: Template>(page: &T) -> AppResult<Response> {
    Ok(Html(page.render()?).into_response())
}

/// `axum::Form` whose rejections are error pages (400/415) instead of plain text.
pub struct Form<T>(pub T);

impl<T, S> FromRequest<S> for Form<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(Form(v)),
            Err(e) => Err(AppError::bad_request(format!(
                "The form could not be read: {}",
                e.body_text()
            ))),
        }
    }
}

/// A moment as pages show it: `2026-12-01 15:55 UTC`.
pub fn when(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// A path id such as `/polls/{id}/`: anything but a positive integer is a 404, as in Django.
pub fn parse_id(raw: &str) -> AppResult<i64> {
    if raw.is_empty() || raw.len() > 18 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AppError::NotFound);
    }
    raw.parse().map_err(|_| AppError::NotFound)
}

/// Fallback for unknown paths.
pub async fn not_found() -> AppError {
    AppError::NotFound
}

/// Middleware inside the session layer: the CSRF check for unsafe requests (told the scheme the
/// client used, for its origin check), then, on the response, [`error_context`],
/// [`keep_alive`], and the anonymous CSRF cookie if one was made.
pub async fn guard(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    session: Session,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let issued = csrf::IssuedToken::default();
    req.extensions_mut().insert(issued.clone());
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    let https = client::is_https(
        req.headers(),
        peer,
        &state.config.trusted_proxies,
        state.config.session_secure,
    );
    req.extensions_mut()
        .insert(csrf::SiteScheme(if https { "https" } else { "http" }));
    let res = match csrf::check(
        &state,
        &session,
        req,
        state.config.http.body_timeout,
        &state.config.csrf_trusted_origins,
    )
    .await
    {
        // A large body's permit is held until its handler has answered.
        Ok((req, _permit)) => next.run(req).await,
        // Refused before (or while) its body was read: the connection ends after the answer.
        Err(e) => closing(e.into_response()),
    };
    let mut res = error_context(&session, res).await;
    keep_alive(&session, state.config.session_ttl).await;
    if let Some(cookie) = issued.set_cookie(state.config.session_secure) {
        res.headers_mut()
            .append(axum::http::header::SET_COOKIE, cookie);
    }
    res
}

/// Keeps a session in use alive: `SESSION_TTL` counts from the last visit, not the last change.
///
/// The session layer saves a session (which moves its expiry and renews the cookie's max-age)
/// only when its data changed, so a voter who only reads would be logged out `SESSION_TTL`
/// after logging in. Saving on every request would be a database write per page view; this
/// saves at most once per [`keep_alive_interval`] of the TTL.
pub async fn keep_alive(session: &Session, ttl: std::time::Duration) {
    // No cookie, or one that names no stored session (or no longer): nothing to keep.
    if session.id().is_none() {
        return;
    }
    let Ok(seen) = crate::session::SEEN.get(session).await else {
        return;
    };
    if session.id().is_none() || session.is_empty().await {
        return;
    }
    let now = crate::db::now();
    let interval = keep_alive_interval(ttl).as_secs() as i64;
    // A changed session is saved anyway: note the visit at no cost.
    if session.is_modified() || seen.is_none_or(|t| now - t >= interval) {
        let _ = crate::session::SEEN.insert(session, now).await;
    }
}

/// A quarter of the TTL, at most a minute: a session lives between TTL − interval and TTL
/// after its last visit.
pub fn keep_alive_interval(ttl: std::time::Duration) -> std::time::Duration {
    (ttl / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    )
}

/// Error pages are rendered where no session is at hand; this renders a 4xx page again with the
/// signed-in user's navbar (their name and the logout button). 5xx pages are left alone: the
/// database may be what failed.
async fn error_context(session: &Session, mut res: Response) -> Response {
    let Some(details) = res
        .extensions()
        .get::<crate::error::ErrorDetails>()
        .cloned()
    else {
        return res;
    };
    if details.status.is_server_error() {
        return res;
    }
    let Ok(Some(user)) = crate::session::current_user(session).await else {
        return res;
    };
    let csrf = csrf::token(session)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let ctx = PageContext {
        user: Some(user),
        csrf,
        messages: Vec::new(),
    };
    if let Ok(html) = details.render(ctx) {
        res.headers_mut().remove(axum::http::header::CONTENT_LENGTH);
        *res.body_mut() = axum::body::Body::from(html);
    }
    res
}
