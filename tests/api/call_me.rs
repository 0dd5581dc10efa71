//! "Call me instead" (the workflow's next channel, which spends the send limits and the SMS
//! guard's budgets) and running verifications, with the console
//! provider and with the Verify v2 client against the fake v2 server.

use pollstr::config::VerifyChannel;
use pollstr::limits::Limit;
use reqwest::StatusCode;

use crate::each_provider;
use crate::helpers::{spawn_app_with, Backend, Browser, TestApp, PHONE, PHONE_E164, SEED};

each_provider!(
    call_me_instead_reads_a_new_code,
    no_call_button_without_a_next_channel,
    a_call_counts_against_the_send_limits,
    another_account_cannot_join_a_running_verification,
    a_call_spends_the_country_budget,
    a_call_spends_the_prefix_budget,
);

async fn app_with(backend: Backend, tweak: impl FnOnce(&mut pollstr::config::Config)) -> TestApp {
    let app = spawn_app_with(backend, tweak, None).await;
    app.load(SEED).await;
    app
}

async fn call_me_instead_reads_a_new_code(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    b.login("test", "test1234").await;
    b.submit("/2fa/", "/2fa/create/", &[("number", PHONE)])
        .await;
    let texted = app.code_for(PHONE_E164).await;
    let page = b.get("/2fa/verify/").await;
    assert!(page.has("Type in the code from the text message."));
    assert!(page.has("It is valid for 5 minutes."));
    assert!(page.form("/2fa/next/").is_some(), "{}", page.body);
    assert!(page.has("Call me instead"));

    let moved = b.submit("/2fa/verify/", "/2fa/next/", &[]).await;
    assert_eq!(
        moved.location.as_deref(),
        Some("/2fa/verify/?next=/polls/"),
        "{}",
        moved.text()
    );
    let called = app.code_for(PHONE_E164).await;
    let page = b.get("/2fa/verify/").await;
    assert!(
        page.has("We are calling +44 •••• ••3456 now to read you a new code."),
        "{}",
        page.text()
    );
    assert!(page.has("Type in the code you heard in the call."));
    // Voice was the last channel: no button now, and a post anyway is a message.
    assert!(page.form("/2fa/next/").is_none());
    // "Send a new code" continues the running request, which stays on its channel.
    let resent = b.submit("/2fa/verify/", "/2fa/create/", &[]).await;
    assert_eq!(resent.status, StatusCode::SEE_OTHER, "{}", resent.text());
    let page = b.get("/2fa/verify/").await;
    assert!(page.has("A code was already sent"), "{}", page.text());
    assert!(page.form("/2fa/next/").is_none());
    let again = b
        .post_raw("/2fa/next/", &[("csrf_token", &page.csrf().unwrap())])
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert!(b
        .get("/2fa/verify/")
        .await
        .has("There is no other way to send this code."));
    assert!(app.no_code_sent());
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM security_events WHERE kind = 'code_sent' AND detail LIKE 'by voice%'")
            .await,
        1
    );
    assert_eq!(app.scalar("SELECT channels FROM sms_sends").await, 2);

    // The call's code is the one that counts now.
    if texted != called {
        let old = b
            .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &texted)])
            .await;
        assert_eq!(old.status, StatusCode::BAD_REQUEST, "{}", old.text());
    }
    let done = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &called)])
        .await;
    assert_eq!(done.location.as_deref(), Some("/polls/"), "{}", done.text());
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM sms_sends WHERE confirmed_at IS NOT NULL")
            .await,
        1
    );
}

async fn no_call_button_without_a_next_channel(backend: Backend) {
    let app = app_with(backend, |c| c.verify.workflow = vec![VerifyChannel::Sms]).await;
    let b = app.browser();
    b.login("test", "test1234").await;
    b.submit("/2fa/", "/2fa/create/", &[("number", PHONE)])
        .await;
    let code = app.code_for(PHONE_E164).await;
    let page = b.get("/2fa/verify/").await;
    assert!(page.form("/2fa/next/").is_none());
    assert!(!page.has("Call me instead"));
    let forced = b
        .post_raw("/2fa/next/", &[("csrf_token", &page.csrf().unwrap())])
        .await;
    assert_eq!(forced.status, StatusCode::SEE_OTHER);
    assert!(b
        .get("/2fa/verify/")
        .await
        .has("There is no other way to send this code."));
    assert!(app.no_code_sent());
    let done = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    assert_eq!(done.location.as_deref(), Some("/polls/"));
    // Without a code running, the button's post goes back to the start.
    let b2 = app.browser();
    b2.login("test", "test1234").await;
    let csrf = b2.get("/2fa/").await.csrf().unwrap();
    let none = b2.post_raw("/2fa/next/", &[("csrf_token", &csrf)]).await;
    assert_eq!(none.location.as_deref(), Some("/2fa/?next=/polls/"));
}

async fn a_call_counts_against_the_send_limits(backend: Backend) {
    let app = app_with(backend, |c| {
        c.limits.sms_per_user = Limit::parse_list("1/10m").unwrap();
    })
    .await;
    let b = app.browser();
    b.login("test", "test1234").await;
    b.submit("/2fa/", "/2fa/create/", &[("number", PHONE)])
        .await;
    let code = app.code_for(PHONE_E164).await;
    let page = b.submit("/2fa/verify/", "/2fa/next/", &[]).await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        page.text()
    );
    assert!(page.has("Too many codes were sent."));
    // The text's send leaves the 10-minute window in a little under 600 s.
    let wait = page.retry_after().expect("Retry-After");
    assert!((570..=600).contains(&wait), "Retry-After: {wait}");
    assert!(app.no_code_sent());
    // Nothing was lost: the text message's code still works.
    let done = b
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    assert_eq!(done.location.as_deref(), Some("/polls/"));
}

/// Someone else's number, typed while its owner's code is running, does not join the owner's
/// request: wrong codes there would end it and the owner's right code would be refused.
async fn another_account_cannot_join_a_running_verification(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let owner = app.browser();
    owner.login("test", "test1234").await;
    owner
        .submit("/2fa/", "/2fa/create/", &[("number", PHONE)])
        .await;
    let code = app.code_for(crate::helpers::PHONE_E164).await;
    let other = app.browser();
    other.register("mallory").await;
    let page = other
        .submit("/2fa/", "/2fa/create/", &[("number", PHONE)])
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.text());
    assert!(page.has("A code was sent to this number from another account a moment ago."));
    // Nothing pending for the other account: it has no code form to guess on.
    let form = other.get("/2fa/verify/").await;
    assert!(form.location.is_some(), "{}", form.text());
    // The owner's code still works.
    let done = owner
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(app.scalar("SELECT COUNT(*) FROM phone_numbers").await, 1);
}

/// A new account that sends a code to `number` (GB: the SMS guard's budgets are per country).
async fn sent_to(app: &TestApp, name: &str, number: &str) -> Browser {
    let b = app.browser();
    b.register(name).await;
    let page = b
        .submit("/2fa/", "/2fa/create/", &[("number", number)])
        .await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "{name}: {}",
        page.text()
    );
    b
}

/// *Call me instead* asks the provider for another delivery: it spends the destination
/// country's budget like a text. With a budget of three, a text and a call, then another
/// text, spend it; the next call and the next text are refused.
async fn a_call_spends_the_country_budget(backend: Backend) {
    let app = app_with(backend, |c| {
        c.limits.sms_per_country = Limit::parse_list("3/1d").unwrap();
    })
    .await;
    let a = sent_to(&app, "alice", "+44 7400 900001").await;
    app.code_for("+447400900001").await;
    let call = a.submit("/2fa/verify/", "/2fa/next/", &[]).await;
    assert_eq!(call.status, StatusCode::SEE_OTHER, "{}", call.text());
    app.code_for("+447400900001").await;
    let b = sent_to(&app, "bob", "+44 7400 910002").await;
    app.code_for("+447400910002").await;
    let call = b.submit("/2fa/verify/", "/2fa/next/", &[]).await;
    assert_eq!(
        call.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        call.text()
    );
    assert!(call.has("Too many codes were sent."), "{}", call.text());
    let c = app.browser();
    c.register("carol").await;
    let page = c
        .submit("/2fa/", "/2fa/create/", &[("number", "+44 7400 920003")])
        .await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        page.text()
    );
    assert!(app.no_code_sent());
}

/// The same for a block of 10,000 numbers: a text and a call to one number spend a budget of
/// two, and the block's next number is refused while the next block is open.
async fn a_call_spends_the_prefix_budget(backend: Backend) {
    let app = app_with(backend, |c| {
        c.limits.sms_per_prefix = Limit::parse_list("2/1d").unwrap();
    })
    .await;
    let a = sent_to(&app, "alice", "+44 7400 900001").await;
    app.code_for("+447400900001").await;
    let call = a.submit("/2fa/verify/", "/2fa/next/", &[]).await;
    assert_eq!(call.status, StatusCode::SEE_OTHER, "{}", call.text());
    app.code_for("+447400900001").await;
    let b = app.browser();
    b.register("bob").await;
    let page = b
        .submit("/2fa/", "/2fa/create/", &[("number", "+44 7400 900002")])
        .await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        page.text()
    );
    assert!(app.no_code_sent());
    let page = b
        .submit("/2fa/", "/2fa/create/", &[("number", "+44 7400 910002")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
}
