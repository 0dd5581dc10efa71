//! The authenticator-app factor (TOTP, RFC 6238: 30-second steps, 6 digits, SHA-1, a window of
//! one step either side, each code accepted once). `/account/totp/` sets one up (a QR code drawn
//! in the page, the secret as text, a code to confirm) or removes it (with the password); at
//! login, `/2fa/` sends a user who has one to `/2fa/totp/`, with the SMS flow one link away.
//! The secret is sealed at rest ([`crate::crypto`]).

pub mod store;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use totp_rs::{Builder, Secret, Totp};

use crate::crypto::SecretKey;
use crate::error::{AppError, AppResult};
use crate::events::{self, Kind};
use crate::session::{self, SessionUser};
use crate::state::AppState;
use crate::two_factor::challenge::{self, Attempt, Factor, Verdict};
use crate::two_factor::gate;
use crate::users::current_password::{check_current_password, PasswordForm};
use crate::web::next::NextQuery;
use crate::web::routes::{get, post, Routes};
use crate::web::{self, flash, ClientIp, Form, Level, Page, PageContext, SafeNext};

pub fn router(state: &AppState) -> Routes {
    // Adding a factor takes the password given in the last ten minutes (removing one asks
    // for it on its form).
    let setup_routes = Routes::new()
        .route("/account/totp/", get(setup_page).post(setup))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            gate::require_recent_password,
        ));
    let account = Routes::new()
        .route("/account/totp/remove/", post(remove))
        .merge(setup_routes)
        // Adding or removing a factor takes a session that passed the second factor.
        .route_layer(middleware::from_fn(gate::require_verified));
    Routes::new()
        .route("/2fa/totp/", get(login_page).post(login))
        .merge(account)
}

/// The name apps show beside the account.
const ISSUER: &str = "Pollstr";

fn totp(secret: Vec<u8>, account: &str) -> Result<Totp, AppError> {
    Builder::new()
        .with_secret(Secret::from(secret))
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        .build()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("totp: {e:?}")))
}

fn key(state: &AppState) -> Result<&SecretKey, AppError> {
    state
        .config
        .secret_key
        .as_ref()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("POLLSTR_SECRET_KEY is not set")))
}

/// The 6 digits of a typed code (spaces and dashes allowed), or `None`.
fn digits(code: &str) -> Option<String> {
    let code: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

fn now() -> u64 {
    crate::db::now().max(0) as u64
}

// --- Setting one up and removing it ------------------------------------------------------

#[derive(Template)]
#[template(path = "two_factor/totp_setup.html")]
pub struct SetupPage {
    pub ctx: PageContext,
    /// Set up since (a date), when the user has one.
    pub active_since: Option<String>,
    /// While setting one up: the QR code (SVG markup made here) and the secret as text.
    pub qr_svg: String,
    pub secret_text: String,
    pub error: Option<String>,
}

/// The secret being set up in this session, sealed ([`session::TOTP_SETUP`]); a new one if none.
async fn pending_secret(state: &AppState, page: &Page, user: &SessionUser) -> AppResult<Vec<u8>> {
    let key = key(state)?;
    let owner = format!("totp-setup:{}", user.id);
    if let Some(sealed) = session::TOTP_SETUP.get(&page.session).await? {
        if let Some(secret) = key.open(&sealed, &owner) {
            return Ok(secret);
        }
    }
    let mut secret = vec![0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
    session::TOTP_SETUP
        .insert(&page.session, key.seal(&secret, &owner))
        .await?;
    Ok(secret)
}

async fn render_setup(
    state: &AppState,
    page: Page,
    user: &SessionUser,
    status: StatusCode,
    error: Option<String>,
) -> AppResult<Response> {
    let page = page.with_form().await?;
    let active = store::of_user(&state.db, user.id).await?;
    let (qr_svg, secret_text) = match &active {
        Some(_) => (String::new(), String::new()),
        None => {
            let secret = pending_secret(state, &page, user).await?;
            let base32 = Secret::from(secret.clone()).to_base32();
            let t = totp(secret, &user.username)?;
            let url = t
                .to_url()
                .map_err(|e| AppError::Internal(anyhow::anyhow!("totp url: {e:?}")))?;
            let qr = qrcode::QrCode::new(url.as_bytes())
                .map_err(|e| AppError::Internal(anyhow::anyhow!("qr: {e}")))?
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .build();
            // The renderer writes a standalone SVG file; inline in HTML the XML declaration is
            // an error (the Nu Html Checker's "Saw <?"), so the page gets the `<svg>` alone.
            let qr = match qr.find("<svg") {
                Some(start) => qr[start..].to_string(),
                None => qr,
            };
            let grouped = base32
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            (qr, grouped)
        }
    };
    let body = web::render(&SetupPage {
        ctx: page.ctx,
        active_since: active.map(|f| date(f.created_at)),
        qr_svg,
        secret_text,
        error,
    })?;
    Ok((status, body).into_response())
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!("[year]-[month]-[day]"))
                .ok()
        })
        .unwrap_or_default()
}

async fn setup_page(State(state): State<AppState>, page: Page) -> AppResult<Response> {
    let user = page.user()?;
    render_setup(&state, page, &user, StatusCode::OK, None).await
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
    next: Option<String>,
    /// "Trust this browser" was ticked.
    remember: Option<String>,
}

async fn setup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    page: Page,
    Form(form): Form<CodeForm>,
) -> AppResult<Response> {
    let user = page.user()?;
    if store::of_user(&state.db, user.id).await?.is_some() {
        return Ok(Redirect::to("/account/totp/").into_response());
    }
    let secret = pending_secret(&state, &page, &user).await?;
    let step = digits(&form.code)
        .and_then(|c| totp(secret.clone(), &user.username).ok()?.check(&c, now()));
    let Some(step) = step else {
        let msg = "That code is not right. Type the 6 digits your app shows now (check that your phone's clock is right).";
        return render_setup(
            &state,
            page,
            &user,
            StatusCode::BAD_REQUEST,
            Some(msg.into()),
        )
        .await;
    };
    let sealed = key(&state)?.seal(&secret, &store::owner(user.id));
    store::add(&state.db, user.id, &sealed, step as i64).await?;
    session::TOTP_SETUP.remove(&page.session).await?;
    events::record(
        &state.db,
        Kind::FactorAdded,
        Some(user.id),
        &ip,
        "authenticator app",
    )
    .await?;
    crate::users::notify::security(
        &state,
        user.id,
        "An authenticator app was added to your Pollstr account",
        "An authenticator app was set up as a second factor of your Pollstr account, with new recovery codes.",
        &headers,
        &ip,
    )
    .await?;
    flash::push(
        &page.session,
        Level::Success,
        "Your authenticator app is set up. When you log in, Pollstr asks for its code.",
    )
    .await?;
    // Codes for the day the phone is lost, shown once, on this answer.
    let codes = super::recovery::issue(&state, user.id).await?;
    super::recovery::show_new_codes(page, codes).await
}

async fn remove(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    page: Page,
    Form(form): Form<PasswordForm>,
) -> AppResult<Response> {
    let user = page.user()?;
    let why = "removing the authenticator app";
    let wrong = "To remove your authenticator app, enter your current password.";
    let check = check_current_password(&state, &user, &ip, &form.password, why).await?;
    if let Some(no) = check.refusal(StatusCode::FORBIDDEN, wrong) {
        let res = render_setup(&state, page, &user, no.status, Some(no.message.clone())).await?;
        return Ok(no.answer(res));
    }
    super::recovery::store::remove_all(&state.db, user.id).await?;
    super::trusted::forget_all(&state.db, user.id).await?;
    if store::remove(&state.db, user.id).await? {
        events::record(
            &state.db,
            Kind::FactorRemoved,
            Some(user.id),
            &ip,
            "authenticator app",
        )
        .await?;
        crate::users::notify::security(
            &state,
            user.id,
            "The authenticator app was removed from your Pollstr account",
            "The authenticator app was removed from your Pollstr account, with its recovery codes; logins ask for a code by text message again.",
            &headers,
            &ip,
        )
        .await?;
    }
    flash::push(
        &page.session,
        Level::Info,
        "Your authenticator app was removed. Logins ask for a code by text message again.",
    )
    .await?;
    Ok(Redirect::to("/account/totp/").into_response())
}

// --- At login ----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "two_factor/totp_login.html")]
pub struct LoginPage {
    pub ctx: PageContext,
    pub next: String,
    pub error: Option<String>,
    /// Unused recovery codes (the link to use one is shown when there are some).
    pub recovery_left: i64,
    /// Days a trusted browser skips the second factor (0: the box is not shown).
    pub trust_days: u32,
    /// The account has a passkey: a link to use it instead.
    pub has_passkey: bool,
}

/// Whether the user has an authenticator (the SMS page sends them here first).
pub async fn has_factor(state: &AppState, user: i64) -> AppResult<bool> {
    Ok(store::of_user(&state.db, user).await?.is_some())
}

async fn login_page(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<NextQuery>,
) -> AppResult<Response> {
    let next = SafeNext::or_default(q.next.as_deref());
    let Some(user) = page.ctx.user.clone() else {
        return Ok(next.redirect("/login/"));
    };
    if !has_factor(&state, user.id).await? {
        return Ok(
            Redirect::to(&format!("/2fa/?method=sms&next={}", next.query_value())).into_response(),
        );
    }
    let page = page.with_form().await?;
    web::render(&LoginPage {
        ctx: page.ctx,
        next: next.as_str().to_string(),
        error: None,
        recovery_left: super::recovery::store::left(&state.db, user.id).await?,
        trust_days: state.config.trusted_browser_days,
        has_passkey: super::passkeys::store::has_any(&state.db, user.id).await?,
    })
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    page: Page,
    Form(form): Form<CodeForm>,
) -> AppResult<Response> {
    let next = SafeNext::or_default(form.next.as_deref());
    let Some(user) = page.ctx.user.clone() else {
        return Ok(next.redirect("/login/"));
    };
    let Some(factor) = store::of_user(&state.db, user.id).await? else {
        return Ok(
            Redirect::to(&format!("/2fa/?method=sms&next={}", next.query_value())).into_response(),
        );
    };
    let page = page.with_form().await?;
    let challenge = AppChallenge {
        form: LoginPage {
            ctx: page.ctx.clone(),
            next: next.as_str().to_string(),
            error: None,
            recovery_left: super::recovery::store::left(&state.db, user.id).await?,
            trust_days: state.config.trusted_browser_days,
            has_passkey: super::passkeys::store::has_any(&state.db, user.id).await?,
        },
        factor,
    };
    let remember = form.remember.is_some();
    let at = Attempt::new(&state, &page, &user, &ip, &headers, &next, remember);
    challenge::answer(&challenge, at, &form.code).await
}

/// The authenticator app's challenge at login: its form, and the user's sealed secret.
struct AppChallenge {
    form: LoginPage,
    factor: store::Factor,
}

#[async_trait::async_trait]
impl Factor for AppChallenge {
    type Answer = String;
    const NAME: &'static str = "authenticator app";
    const LABEL: &'static str = "totp";

    fn parse(&self, typed: &str) -> Result<String, String> {
        digits(typed).ok_or_else(|| "Enter the 6-digit code from your authenticator app.".into())
    }

    async fn check(&self, at: &Attempt<'_>, code: String) -> AppResult<Verdict> {
        let (state, user) = (at.state, at.user);
        let Some(secret) = key(state)?.open(&self.factor.secret, &store::owner(user.id)) else {
            tracing::error!(
                user = user.id,
                "an authenticator secret does not open with POLLSTR_SECRET_KEY (was the key changed?)"
            );
            return Ok(Verdict::NotChecked(self.refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "Your authenticator app cannot be checked right now. Use a code by text message instead.".into(),
            )?));
        };
        let step = totp(secret, &user.username)?.check(&code, now());
        let accepted = match step {
            Some(step) => store::accept_step(&state.db, user.id, step as i64).await?,
            None => false,
        };
        Ok(match (accepted, step) {
            (true, _) => Verdict::Right {
                detail: Self::NAME.into(),
                also: Vec::new(),
            },
            (false, Some(_)) => Verdict::Wrong {
                detail: "authenticator app: a code already used".into(),
                message: "That code was already used. Wait for the next one and type it in.".into(),
            },
            (false, None) => Verdict::Wrong {
                detail: Self::NAME.into(),
                message: "That code is not right. Please try again.".into(),
            },
        })
    }

    fn refuse(&self, status: StatusCode, message: String) -> AppResult<Response> {
        let body = web::render(&LoginPage {
            ctx: self.form.ctx.clone(),
            next: self.form.next.clone(),
            error: Some(message),
            recovery_left: self.form.recovery_left,
            trust_days: self.form.trust_days,
            has_passkey: self.form.has_passkey,
        })?;
        Ok((status, body).into_response())
    }
}
