//! Recovery codes: ten single-use codes, made when an authenticator app is set up and again on
//! request, shown once, kept as keyed hashes. At login, `/2fa/recovery/` takes one in place of
//! the second factor and says how many are left.

pub mod store;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::Deserialize;

use crate::error::{AppError, AppResult};
use crate::events::{self, Kind};
use crate::session::SessionUser;
use crate::state::AppState;
use crate::two_factor::challenge::{self, Attempt, Factor, Verdict};
use crate::two_factor::gate;
use crate::users::current_password::{check_current_password, PasswordForm};
use crate::web::next::NextQuery;
use crate::web::routes::{get, Routes};
use crate::web::{self, flash, ClientIp, Form, Level, Page, PageContext, SafeNext};

pub fn router() -> Routes {
    let account = Routes::new()
        .route("/account/recovery/", get(manage_page).post(regenerate))
        .route_layer(middleware::from_fn(gate::require_verified));
    Routes::new()
        .route("/2fa/recovery/", get(login_page).post(login))
        .merge(account)
}

const COUNT: usize = 10;
/// Letters and digits that cannot be mistaken for one another (no 0/o, 1/l/i).
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A code as typed, compared without case, spaces or dashes.
fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn digest(state: &AppState, user: i64, code: &str) -> AppResult<String> {
    let key = state
        .config
        .secret_key
        .as_ref()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("POLLSTR_SECRET_KEY is not set")))?;
    Ok(key.digest(&format!("recovery:{user}"), normalize(code).as_bytes()))
}

/// Makes the user a new set of codes (the old ones stop working) and returns them, to be shown
/// once.
pub async fn issue(state: &AppState, user: i64) -> AppResult<Vec<String>> {
    let codes: Vec<String> = {
        let mut rng = rand::rng();
        (0..COUNT)
            .map(|_| {
                let c: String = (0..10)
                    .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                    .collect();
                format!("{}-{}", &c[..5], &c[5..])
            })
            .collect()
    };
    let hashes = codes
        .iter()
        .map(|c| digest(state, user, c))
        .collect::<AppResult<Vec<_>>>()?;
    store::replace(&state.db, user, &hashes).await?;
    Ok(codes)
}

#[derive(Template)]
#[template(path = "two_factor/recovery_codes.html")]
pub struct CodesPage {
    pub ctx: PageContext,
    pub codes: Vec<String>,
}

/// The page that shows new codes, once.
pub async fn show_new_codes(page: Page, codes: Vec<String>) -> AppResult<Response> {
    let page = page.with_form().await?;
    web::render(&CodesPage {
        ctx: page.ctx,
        codes,
    })
}

#[derive(Template)]
#[template(path = "two_factor/recovery_manage.html")]
pub struct ManagePage {
    pub ctx: PageContext,
    pub left: i64,
    pub error: Option<String>,
}

async fn manage(
    state: &AppState,
    page: Page,
    user: &SessionUser,
    status: StatusCode,
    error: Option<String>,
) -> AppResult<Response> {
    let page = page.with_form().await?;
    let body = web::render(&ManagePage {
        ctx: page.ctx,
        left: store::left(&state.db, user.id).await?,
        error,
    })?;
    Ok((status, body).into_response())
}

async fn manage_page(State(state): State<AppState>, page: Page) -> AppResult<Response> {
    let user = page.user()?;
    manage(&state, page, &user, StatusCode::OK, None).await
}

async fn regenerate(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    page: Page,
    Form(form): Form<PasswordForm>,
) -> AppResult<Response> {
    let user = page.user()?;
    let wrong = "To make new recovery codes, enter your current password.";
    let check = check_current_password(&state, &user, &ip, &form.password, "new recovery codes");
    if let Some(no) = check.await?.refusal(StatusCode::FORBIDDEN, wrong) {
        let res = manage(&state, page, &user, no.status, Some(no.message.clone())).await?;
        return Ok(no.answer(res));
    }
    let codes = issue(&state, user.id).await?;
    events::record(
        &state.db,
        Kind::FactorAdded,
        Some(user.id),
        &ip,
        "new recovery codes",
    )
    .await?;
    crate::users::notify::security(
        &state,
        user.id,
        "New recovery codes for your Pollstr account",
        "New recovery codes were made for your Pollstr account; the old ones no longer work.",
        &headers,
        &ip,
    )
    .await?;
    show_new_codes(page, codes).await
}

// --- At login ----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "two_factor/recovery_login.html")]
pub struct LoginPage {
    pub ctx: PageContext,
    pub next: String,
    pub error: Option<String>,
    /// Days a trusted browser skips the second factor (0: the box is not shown).
    pub trust_days: u32,
}

async fn login_page(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<NextQuery>,
) -> AppResult<Response> {
    let next = SafeNext::or_default(q.next.as_deref());
    if page.ctx.user.is_none() {
        return Ok(next.redirect("/login/"));
    }
    let page = page.with_form().await?;
    web::render(&LoginPage {
        ctx: page.ctx,
        next: next.as_str().to_string(),
        error: None,
        trust_days: state.config.trusted_browser_days,
    })
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
    next: Option<String>,
    /// "Trust this browser" was ticked.
    remember: Option<String>,
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
    let page = page.with_form().await?;
    let challenge = CodeChallenge {
        ctx: page.ctx.clone(),
        next: next.as_str().to_string(),
        trust_days: state.config.trusted_browser_days,
    };
    let remember = form.remember.is_some();
    let at = Attempt::new(&state, &page, &user, &ip, &headers, &next, remember);
    challenge::answer(&challenge, at, &form.code).await
}

/// A recovery code's challenge at login: what its form shows again.
struct CodeChallenge {
    ctx: PageContext,
    next: String,
    trust_days: u32,
}

#[async_trait::async_trait]
impl Factor for CodeChallenge {
    type Answer = String;
    const NAME: &'static str = "recovery code";
    const LABEL: &'static str = "recovery";

    fn parse(&self, typed: &str) -> Result<String, String> {
        let code = normalize(typed);
        if code.len() != 10 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(
                "Enter one of your recovery codes (ten letters and digits, like abcde-fgh23)."
                    .into(),
            );
        }
        Ok(code)
    }

    async fn check(&self, at: &Attempt<'_>, code: String) -> AppResult<Verdict> {
        let (state, user) = (at.state, at.user);
        if !store::use_code(&state.db, user.id, &digest(state, user.id, &code)?).await? {
            return Ok(Verdict::Wrong {
                detail: Self::NAME.into(),
                message: "That recovery code is not right, or was already used.".into(),
            });
        }
        let left = store::left(&state.db, user.id).await?;
        let what = format!(
            "A recovery code was used in place of the second factor to log in to your Pollstr account ({left} left)."
        );
        crate::users::notify::security(
            state,
            user.id,
            "A recovery code was used on your Pollstr account",
            &what,
            at.headers,
            at.ip,
        )
        .await?;
        let msg = match left {
            0 => "You used your last recovery code. Make new ones now from your account page."
                .to_string(),
            1 => "You used a recovery code. 1 is left.".to_string(),
            n => format!("You used a recovery code. {n} are left."),
        };
        let level = if left < 3 {
            Level::Warning
        } else {
            Level::Info
        };
        flash::push(at.session, level, msg).await?;
        Ok(Verdict::Right {
            detail: format!("recovery code ({left} left)"),
            also: Vec::new(),
        })
    }

    fn refuse(&self, status: StatusCode, message: String) -> AppResult<Response> {
        let body = web::render(&LoginPage {
            ctx: self.ctx.clone(),
            next: self.next.clone(),
            error: Some(message),
            trust_days: self.trust_days,
        })?;
        Ok((status, body).into_response())
    }
}
