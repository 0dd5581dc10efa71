//! `/account/` and trusted browsers: what the page lists, "log out everywhere else", and
//! "Trust this browser" (skips the second factor at login until it is forgotten or its days are
//! up).

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{spawn_app_with, Backend, Browser, TestApp, PHONE, PHONE_E164, STRONG};

both_backends!(
    a_trusted_browser_skips_the_second_factor_until_forgotten,
    a_password_change_forgets_trusted_browsers,
    the_account_page_lists_factors_sessions_and_events,
    log_out_everywhere_else_keeps_this_session,
    no_trust_box_when_trust_is_turned_off,
    a_trusted_browser_past_its_days_is_asked_again,
);

/// Logs in as `test` and proves the phone by SMS, ticking "Trust this browser" if `remember`.
pub(crate) async fn verify_by_sms(
    app: &TestApp,
    b: &Browser,
    remember: bool,
) -> crate::helpers::Page {
    b.login("test", "test1234").await;
    b.submit("/2fa/", "/2fa/create/", &[("number", PHONE)])
        .await;
    let code = app.code_for(PHONE_E164).await;
    let mut fields = vec![("code", code.as_str())];
    if remember {
        fields.push(("remember", "1"));
    }
    let page = b.submit("/2fa/verify/", "/2fa/confirm/", &fields).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
    page
}

fn trusted_cookie(page: &crate::helpers::Page) -> Option<String> {
    page.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("pollstr_trusted="))
        .map(str::to_string)
}

async fn logged_out_and_in(b: &Browser) {
    b.submit("/polls/", "/logout/", &[]).await;
    b.login("test", "test1234").await;
}

async fn a_trusted_browser_skips_the_second_factor_until_forgotten(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    let page = verify_by_sms(&app, &b, true).await;
    let cookie = trusted_cookie(&page).expect("a trusted-browser cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Max-Age=2592000", "Path=/"] {
        assert!(cookie.contains(flag), "{flag}: {cookie}");
    }
    // Only a keyed hash of the token is kept.
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("pollstr_trusted=");
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM trusted_browsers WHERE token_hash = '{token}'"
        ))
        .await,
        0
    );
    logged_out_and_in(&b).await;
    assert_eq!(
        b.get("/polls/1/").await.status,
        StatusCode::OK,
        "no code asked"
    );
    // Another browser, or another user in this one, is asked as before.
    let other = app.browser();
    other.login("test", "test1234").await;
    assert!(other
        .get("/polls/1/")
        .await
        .location
        .unwrap()
        .starts_with("/2fa/"));
    b.submit("/polls/", "/logout/", &[]).await;
    b.register("someone").await;
    assert!(b
        .get("/polls/1/")
        .await
        .location
        .unwrap()
        .starts_with("/2fa/"));
    b.submit("/polls/", "/logout/", &[]).await;
    // "Forget all trusted browsers" on the account page.
    b.login("test", "test1234").await;
    let page = b.get("/account/").await;
    assert!(page.has("Forget all trusted browsers"), "{}", page.text());
    let done = b.submit("/account/", "/account/trusted/forget/", &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    logged_out_and_in(&b).await;
    assert!(b
        .get("/polls/1/")
        .await
        .location
        .unwrap()
        .starts_with("/2fa/"));
    let kinds: Vec<String> = pollstr::events::list(&app.db, Some(1), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {}", e.kind, e.detail))
        .collect();
    assert!(
        kinds.iter().any(|k| k == "code_ok trusted browser"),
        "{kinds:?}"
    );
    assert!(kinds
        .iter()
        .any(|k| k.starts_with("trusted_browsers_forgotten")));
}

async fn a_password_change_forgets_trusted_browsers(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    verify_by_sms(&app, &b, true).await;
    let page = b
        .submit(
            "/account/password/",
            "/account/password/",
            &[
                ("old_password", "test1234"),
                ("new_password1", STRONG),
                ("new_password2", STRONG),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM trusted_browsers").await, 0);
    b.submit("/polls/", "/logout/", &[]).await;
    b.login("test", STRONG).await;
    assert!(b
        .get("/polls/1/")
        .await
        .location
        .unwrap()
        .starts_with("/2fa/"));
}

async fn the_account_page_lists_factors_sessions_and_events(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let anonymous = app.browser().get("/account/").await;
    assert!(anonymous.location.unwrap().starts_with("/login/"));
    let b = app.browser();
    verify_by_sms(&app, &b, false).await;
    let page = b.get("/account/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.has("Phone: +44 •••• ••3456"), "{}", page.text());
    assert!(page.has("Authenticator app: none"));
    assert!(page.has("No browser skips the second factor."));
    assert!(
        page.has("You are signed in in 1 session, this one included"),
        "{}",
        page.text()
    );
    assert!(
        page.has("A browser, from 127.0.0.1 (this one) since"),
        "{}",
        page.text()
    );
    assert!(page.has("login ok"), "{}", page.text());
    assert!(page.has("number bound: +44 •••• ••3456"));
    assert!(!page.text().contains("7911123456"));
    // Another session, from a browser that names itself.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let other = crate::helpers::Browser {
        base: app.addr.clone(),
        client: reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0")
            .build()
            .unwrap(),
        jar,
    };
    other.login("test", "test1234").await;
    let page = b.get("/account/").await;
    assert!(page.has("signed in in 2 sessions"), "{}", page.text());
    assert!(
        page.has("Firefox on Linux, from 127.0.0.1 since"),
        "{}",
        page.text()
    );
}

async fn log_out_everywhere_else_keeps_this_session(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    verify_by_sms(&app, &b, false).await;
    let others = [app.browser(), app.browser()];
    for o in &others {
        o.login("test", "test1234").await;
    }
    let before = b.session_cookie();
    let done = b
        .submit("/account/", "/account/sessions/end-others/", &[])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_ne!(b.session_cookie(), before);
    let page = b.get("/account/").await;
    assert!(page.has("Every other session of your account has been logged out."));
    assert!(page.has("signed in in 1 session"), "{}", page.text());
    assert_eq!(b.get("/polls/1/").await.status, StatusCode::OK);
    for o in &others {
        assert!(!o.get("/polls/").await.has("Signed in as"));
    }
}

async fn no_trust_box_when_trust_is_turned_off(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.trusted_browser_days = 0, None).await;
    app.load(crate::helpers::SEED).await;
    let b = app.browser();
    b.login("test", "test1234").await;
    b.submit("/2fa/", "/2fa/create/", &[("number", PHONE)])
        .await;
    let form = b.get("/2fa/verify/").await;
    assert!(!form.has("Trust this browser"));
    let code = app.code_for(PHONE_E164).await;
    let page = b
        .submit(
            "/2fa/verify/",
            "/2fa/confirm/",
            &[("code", &code), ("remember", "1")],
        )
        .await;
    assert!(trusted_cookie(&page).is_none());
    assert_eq!(app.scalar("SELECT COUNT(*) FROM trusted_browsers").await, 0);
}

/// `TRUSTED_BROWSER_DAYS` is the server's to enforce: the cookie's `Max-Age` only asks the
/// browser to drop it, and a browser that still sends it afterwards (a copied cookie, a clock
/// set back) is asked for the second factor. The trust is aged in the database.
async fn a_trusted_browser_past_its_days_is_asked_again(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    verify_by_sms(&app, &b, true).await;
    logged_out_and_in(&b).await;
    assert_eq!(b.get("/polls/1/").await.status, StatusCode::OK, "trusted");
    let days = i64::from(
        pollstr::config::Config::from_lookup(|_| None)
            .unwrap()
            .trusted_browser_days,
    );
    let past = days * 86400 + 60;
    app.execute(&format!(
        "UPDATE trusted_browsers SET created_at = created_at - {past}, expires_at = expires_at - {past}"
    ))
    .await;
    logged_out_and_in(&b).await;
    let url: reqwest::Url = b.base.parse().unwrap();
    let sent = reqwest::cookie::CookieStore::cookies(b.jar.as_ref(), &url)
        .and_then(|h| h.to_str().ok().map(str::to_string))
        .unwrap_or_default();
    assert!(
        sent.contains("pollstr_trusted="),
        "the browser still sends it: {sent}"
    );
    let page = b.get("/polls/1/").await;
    assert!(
        page.location
            .as_deref()
            .is_some_and(|l| l.starts_with("/2fa/")),
        "the second factor is asked: {:?}",
        page.location
    );
}
