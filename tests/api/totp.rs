//! The authenticator-app factor: setting it up, logging in with it (each code once, one step of
//! clock drift either way), the SMS flow one link away, the shared wrong-code limit, removing
//! it with the password (which forgets trusted browsers). Codes are computed here with
//! totp-rs, as an app computes them.

use reqwest::StatusCode;
use totp_rs::{Builder, Secret, Totp};

use crate::both_backends;
use crate::helpers::{spawn_app_with, Backend, Browser, TestApp, SEED};

both_backends!(
    setting_up_needs_both_factors_and_a_right_code,
    login_asks_for_the_app_and_takes_each_code_once,
    a_code_sent_twice_at_once_is_accepted_once,
    the_sms_flow_stays_one_link_away,
    wrong_app_codes_share_the_wrong_code_limit,
    removing_the_app_needs_the_password,
    removing_the_app_forgets_trusted_browsers,
    a_recovery_code_lets_in_once_and_says_how_many_are_left,
    new_recovery_codes_need_the_password_and_end_the_old_ones,
    setting_up_asks_the_password_again_after_the_sudo_window,
    dump_and_load_carry_the_authenticator_and_its_codes,
);

const SETUP: &str = "/account/totp/";

fn now() -> u64 {
    pollstr::db::now() as u64
}

/// The secret shown as text on the setup page, without its spaces.
fn shown_secret(page: &crate::helpers::Page) -> String {
    let doc = scraper::Html::parse_document(&page.body);
    let sel = scraper::Selector::parse("#totp-secret").unwrap();
    doc.select(&sel)
        .next()
        .expect("the secret as text")
        .text()
        .collect::<String>()
        .split_whitespace()
        .collect()
}

/// The app's view of the secret shown on the setup page.
fn app_from(page: &crate::helpers::Page) -> Totp {
    Builder::new()
        .with_secret(Secret::try_from_base32(shown_secret(page)).unwrap())
        .build()
        .unwrap()
}

fn code(app: &Totp, at: u64) -> String {
    app.generate(at).to_string()
}

/// Sets up the authenticator for a verified browser; returns the app.
async fn set_up(b: &Browser) -> Totp {
    set_up_with_codes(b).await.0
}

/// Sets up the authenticator; returns the app and the recovery codes shown once.
pub(crate) async fn set_up_with_codes(b: &Browser) -> (Totp, Vec<String>) {
    let page = b.get(SETUP).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.body.contains("<svg"), "a QR code drawn in the page");
    let app = app_from(&page);
    let done = b
        .submit(SETUP, SETUP, &[("code", &code(&app, now()))])
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert!(done.has("Save your recovery codes"));
    (app, recovery_codes(&done))
}

fn recovery_codes(page: &crate::helpers::Page) -> Vec<String> {
    let doc = scraper::Html::parse_document(&page.body);
    let sel = scraper::Selector::parse("#recovery-codes code").unwrap();
    doc.select(&sel).map(|c| c.text().collect()).collect()
}

async fn log_in(app: &TestApp) -> Browser {
    let b = app.browser();
    b.login("test", "test1234").await;
    b
}

async fn setting_up_needs_both_factors_and_a_right_code(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let half = log_in(&app).await;
    let page = half.get(SETUP).await;
    assert!(page.location.unwrap().starts_with("/2fa/"));

    let b = app.verified_browser().await;
    let page = b.get(SETUP).await;
    let phone_app = app_from(&page);
    let page_before = page;
    // The same secret while this setup lasts (a reload does not change the QR code).
    let again = app_from(&b.get(SETUP).await);
    assert_eq!(code(&phone_app, now()), code(&again, now()));
    for wrong in ["000000", "12345", "abcdef", ""] {
        let page = b.submit(SETUP, SETUP, &[("code", wrong)]).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{wrong}");
        assert!(page.has("That code is not right."), "{wrong}");
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM totp_factors").await, 0);
    let done = b
        .submit(SETUP, SETUP, &[("code", &code(&phone_app, now()))])
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(recovery_codes(&done).len(), 10);
    let page = b.get(SETUP).await;
    assert!(
        page.has("Your authenticator app is set up"),
        "{}",
        page.text()
    );
    // Sealed at rest: the base32 secret is nowhere in the row.
    let secret: String = match &app.db {
        pollstr::db::Db::Sqlite(p) => sqlx::query_scalar("SELECT secret FROM totp_factors")
            .fetch_one(p)
            .await
            .unwrap(),
        pollstr::db::Db::Postgres(p) => sqlx::query_scalar("SELECT secret FROM totp_factors")
            .fetch_one(p)
            .await
            .unwrap(),
    };
    let shown = shown_secret(&page_before);
    assert_eq!(shown.len(), 32, "160 bits in base32");
    assert!(!secret.contains(&shown) && secret.len() > 40, "{secret}");
    let events = pollstr::events::list(&app.db, Some(1), 0, 100)
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.kind == "factor_added"));
}

async fn login_asks_for_the_app_and_takes_each_code_once(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let phone_app = set_up(&app.verified_browser().await).await;

    let b = log_in(&app).await;
    let page = b.get("/polls/1/").await;
    assert_eq!(page.location.as_deref(), Some("/2fa/?next=/polls/1/"));
    let page = b.get("/2fa/?next=/polls/1/").await;
    assert_eq!(page.location.as_deref(), Some("/2fa/totp/?next=/polls/1/"));
    let form = b.get("/2fa/totp/?next=/polls/1/").await;
    assert!(form.has("Enter your authenticator code"));
    assert!(form.has("Text me a code instead"));

    let wrong = b
        .submit(
            "/2fa/totp/?next=/polls/1/",
            "/2fa/totp/",
            &[("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(wrong.has("That code is not right."));
    // The code used to set it up was accepted then: not again.
    let used = b
        .submit(
            "/2fa/totp/?next=/polls/1/",
            "/2fa/totp/",
            &[("code", &code(&phone_app, now() - 30))],
        )
        .await;
    assert_eq!(used.status, StatusCode::BAD_REQUEST);
    assert!(used.has("That code was already used.") || used.has("That code is not right."));
    // The next step's code (a phone clock 30 s ahead) is accepted, once.
    let ahead = code(&phone_app, now() + 30);
    let before = b.session_cookie();
    let done = b
        .submit(
            "/2fa/totp/?next=/polls/1/",
            "/2fa/totp/",
            &[("code", &ahead)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(done.location.as_deref(), Some("/polls/1/"));
    assert_ne!(b.session_cookie(), before, "a new session id");
    assert_eq!(b.get("/polls/1/").await.status, StatusCode::OK);
    let other = log_in(&app).await;
    let replay = other
        .submit("/2fa/totp/", "/2fa/totp/", &[("code", &ahead)])
        .await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(
        replay.has("That code was already used."),
        "{}",
        replay.text()
    );
    // Two steps away is too far.
    let far = other
        .submit(
            "/2fa/totp/",
            "/2fa/totp/",
            &[("code", &code(&phone_app, now() + 90))],
        )
        .await;
    assert_eq!(far.status, StatusCode::BAD_REQUEST);
}

async fn a_code_sent_twice_at_once_is_accepted_once(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let phone_app = set_up(&app.verified_browser().await).await;
    let b = log_in(&app).await;
    let ahead = code(&phone_app, now() + 30);
    let pages = b
        .burst("/2fa/totp/", "/2fa/totp/", 6, |_| {
            vec![("code", ahead.clone())]
        })
        .await;
    let accepted = pages
        .iter()
        .filter(|p| p.status == StatusCode::SEE_OTHER)
        .count();
    assert_eq!(accepted, 1);
}

async fn the_sms_flow_stays_one_link_away(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    set_up(&app.verified_browser().await).await;
    let b = log_in(&app).await;
    let page = b.get("/2fa/?method=sms&next=/polls/1/").await;
    assert_eq!(page.status, StatusCode::OK);
    let sent = b
        .submit("/2fa/?method=sms&next=/polls/1/", "/2fa/create/", &[])
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    let code = app.code_for(crate::helpers::PHONE_E164).await;
    let done = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get("/polls/1/").await.status, StatusCode::OK);
}

async fn wrong_app_codes_share_the_wrong_code_limit(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |c| c.limits.code_per_user = pollstr::limits::Limit::parse_list("2/15m").unwrap(),
        None,
    )
    .await;
    app.load(SEED).await;
    let phone_app = set_up(&app.verified_browser_with_seed_user().await).await;
    let b = log_in(&app).await;
    let pages = b
        .burst("/2fa/totp/", "/2fa/totp/", 6, |i| {
            vec![("code", format!("00000{i}"))]
        })
        .await;
    let wrong = pages
        .iter()
        .filter(|p| p.status == StatusCode::BAD_REQUEST)
        .count();
    let refused = pages
        .iter()
        .filter(|p| p.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((wrong, refused), (2, 4));
    // The right code is refused too while the limit holds.
    let page = b
        .submit(
            "/2fa/totp/",
            "/2fa/totp/",
            &[("code", &code(&phone_app, now() + 30))],
        )
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
}

async fn removing_the_app_needs_the_password(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser().await;
    set_up(&b).await;
    let page = b
        .submit(SETUP, "/account/totp/remove/", &[("password", "wrong-one")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM totp_factors").await, 1);
    let page = b
        .submit(SETUP, "/account/totp/remove/", &[("password", "test1234")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM totp_factors").await, 0);
    // Logins ask for a text message again.
    let again = log_in(&app).await;
    let page = again.get("/2fa/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.form("/2fa/create/").is_some());
}

async fn removing_the_app_forgets_trusted_browsers(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    crate::account::verify_by_sms(&app, &b, true).await;
    set_up(&b).await;
    let again = |b: &Browser| {
        let b = b.clone();
        async move {
            b.submit("/polls/", "/logout/", &[]).await;
            b.login("test", "test1234").await;
            b.get("/polls/1/").await.location
        }
    };
    // Trusted: the app is not asked for.
    assert_eq!(again(&b).await, None);
    let page = b
        .submit(SETUP, "/account/totp/remove/", &[("password", "test1234")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let sent = again(&b).await;
    assert!(
        sent.as_deref().is_some_and(|to| to.starts_with("/2fa/")),
        "{sent:?}"
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM trusted_browsers").await, 0);
}

async fn a_recovery_code_lets_in_once_and_says_how_many_are_left(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let (_, codes) = set_up_with_codes(&app.verified_browser().await).await;
    assert_eq!(codes.len(), 10);
    assert!(
        codes
            .iter()
            .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'),
        "{codes:?}"
    );
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    // Kept as keyed hashes: no code is in the database.
    for c in &codes {
        let n = app
            .scalar(&format!(
                "SELECT COUNT(*) FROM recovery_codes WHERE code_hash LIKE '%{}%'",
                c.replace('-', "")
            ))
            .await;
        assert_eq!(n, 0);
    }
    let b = log_in(&app).await;
    let form = b.get("/2fa/totp/?next=/polls/1/").await;
    assert!(form.has("Use a recovery code"));
    let wrong = b
        .submit(
            "/2fa/recovery/?next=/polls/1/",
            "/2fa/recovery/",
            &[("code", "aaaaa-bbbbb")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    // Typed loosely: upper case, spaces.
    let typed = codes[0].to_uppercase().replace('-', " ");
    let done = b
        .submit(
            "/2fa/recovery/?next=/polls/1/",
            "/2fa/recovery/",
            &[("code", &typed)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(done.location.as_deref(), Some("/polls/1/"));
    let page = b.get("/polls/1/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.has("You used a recovery code. 9 are left."),
        "{}",
        page.text()
    );
    // Used once: not again, in another session.
    let other = log_in(&app).await;
    let again = other
        .submit("/2fa/recovery/", "/2fa/recovery/", &[("code", &codes[0])])
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.has("not right, or was already used"));
    // Two sessions with the same fresh code at once: one gets in.
    let pages = other
        .burst("/2fa/recovery/", "/2fa/recovery/", 4, |_| {
            vec![("code", codes[1].clone())]
        })
        .await;
    assert_eq!(
        pages
            .iter()
            .filter(|p| p.status == StatusCode::SEE_OTHER)
            .count(),
        1
    );
}

async fn new_recovery_codes_need_the_password_and_end_the_old_ones(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser().await;
    let (_, old) = set_up_with_codes(&b).await;
    let page = b.get("/account/recovery/").await;
    assert!(
        page.has("You have 10 unused recovery codes."),
        "{}",
        page.text()
    );
    let refused = b
        .submit(
            "/account/recovery/",
            "/account/recovery/",
            &[("password", "nope-nope")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let page = b
        .submit(
            "/account/recovery/",
            "/account/recovery/",
            &[("password", "test1234")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let new = recovery_codes(&page);
    assert_eq!(new.len(), 10);
    let other = log_in(&app).await;
    let stale = other
        .submit("/2fa/recovery/", "/2fa/recovery/", &[("code", &old[0])])
        .await;
    assert_eq!(stale.status, StatusCode::BAD_REQUEST);
    let fresh = other
        .submit("/2fa/recovery/", "/2fa/recovery/", &[("code", &new[0])])
        .await;
    assert_eq!(fresh.status, StatusCode::SEE_OTHER);
    // Removing the app removes its codes.
    b.submit(SETUP, "/account/totp/remove/", &[("password", "test1234")])
        .await;
    assert_eq!(app.scalar("SELECT COUNT(*) FROM recovery_codes").await, 0);
}

/// Sudo mode: setting up a factor takes the password given in the last `SUDO_WINDOW`; after it,
/// `/account/confirm/` asks for it and comes back.
async fn setting_up_asks_the_password_again_after_the_sudo_window(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |c| c.sudo_window = std::time::Duration::from_secs(1),
        None,
    )
    .await;
    app.load(SEED).await;
    let b = app.verified_browser_with_seed_user().await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let page = b.get(SETUP).await;
    assert_eq!(
        page.location.as_deref(),
        Some("/account/confirm/?next=/account/totp/")
    );
    // A POST too: nothing is set up without the password.
    let page = b.post_raw(SETUP, &[("code", "123456")]).await;
    assert_ne!(page.status, StatusCode::OK);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM totp_factors").await, 0);
    let wrong = b
        .submit(
            "/account/confirm/?next=/account/totp/",
            "/account/confirm/",
            &[("password", "not-it-at-all")],
        )
        .await;
    assert!(wrong.has("That is not your password."));
    let right = b
        .submit(
            "/account/confirm/?next=/account/totp/",
            "/account/confirm/",
            &[("password", "test1234")],
        )
        .await;
    assert_eq!(right.location.as_deref(), Some("/account/totp/"));
    assert_eq!(b.get(SETUP).await.status, StatusCode::OK);
    // The confirm page does not lead off the site.
    let off = b
        .submit(
            "/account/confirm/?next=https://evil.example/",
            "/account/confirm/",
            &[("password", "test1234")],
        )
        .await;
    assert_eq!(off.location.as_deref(), Some("/polls/"));
}

async fn dump_and_load_carry_the_authenticator_and_its_codes(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser().await;
    let shown = shown_secret(&b.get(SETUP).await);
    let (phone_app, codes) = set_up_with_codes(&b).await;
    let used = log_in(&app).await;
    used.submit("/2fa/recovery/", "/2fa/recovery/", &[("code", &codes[0])])
        .await;
    let dump = pollstr::fixtures::dump(&app.db).await.unwrap();
    assert!(dump.contains("\"two_factor.totpdevice\"") && dump.contains("\"secret_sealed\""));
    assert!(!dump.contains(&shown), "the secret stays sealed");
    assert!(!dump.contains(&codes[1]) && !dump.contains(&codes[1].replace('-', "")));

    let copy = crate::helpers::spawn_app(backend).await;
    copy.load(&dump).await;
    assert_eq!(pollstr::fixtures::dump(&copy.db).await.unwrap(), dump);
    let c = log_in(&copy).await;
    assert_eq!(
        c.get("/2fa/").await.location.as_deref(),
        Some("/2fa/totp/?next=/polls/")
    );
    let done = c
        .submit(
            "/2fa/totp/",
            "/2fa/totp/",
            &[("code", &code(&phone_app, now() + 30))],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    let again = log_in(&copy).await;
    let spent = again
        .submit("/2fa/recovery/", "/2fa/recovery/", &[("code", &codes[0])])
        .await;
    assert_eq!(
        spent.status,
        StatusCode::BAD_REQUEST,
        "a used code stays used"
    );
    let fresh = again
        .submit("/2fa/recovery/", "/2fa/recovery/", &[("code", &codes[1])])
        .await;
    assert_eq!(fresh.status, StatusCode::SEE_OTHER);
}
