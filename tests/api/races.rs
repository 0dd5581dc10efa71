//! The slow path raced against the fast one: a request still waiting on the Verify provider when
//! its session is logged out must not bring the session back when it ends.

use std::sync::Arc;

use async_trait::async_trait;
use pollstr::two_factor::sms::phone::PhoneNumber;
use pollstr::two_factor::sms::{CheckOutcome, StartOutcome, Verifier, VerifyError};
use reqwest::StatusCode;
use tokio::sync::Semaphore;

use crate::both_backends;
use crate::helpers::{spawn_app_with, Backend, Browser, TestApp, PHONE, SEED};

both_backends!(
    a_logout_during_a_slow_send_stays_done,
    a_logout_during_a_slow_check_stays_done,
    a_password_change_during_a_slow_check_ends_that_session_too,
    a_code_sent_before_a_number_was_proven_cannot_replace_it,
);

/// A provider that answers only when the test lets it: `entered` gets a permit when a call
/// arrives, and the call waits for a permit on `gate`.
pub(crate) struct Held {
    entered: Arc<Semaphore>,
    gate: Arc<Semaphore>,
}

impl Held {
    async fn hold(&self) {
        self.entered.add_permits(1);
        self.gate.acquire().await.unwrap().forget();
    }
}

#[async_trait]
impl Verifier for Held {
    async fn start(&self, _: &PhoneNumber, _: &str) -> Result<StartOutcome, VerifyError> {
        self.hold().await;
        Ok(StartOutcome::Started {
            request_id: "held-request".into(),
        })
    }
    async fn check(&self, _: &str, _: &str) -> Result<CheckOutcome, VerifyError> {
        self.hold().await;
        Ok(CheckOutcome::Verified)
    }
    async fn cancel(&self, _: &str) -> Result<(), VerifyError> {
        Ok(())
    }
}

pub(crate) async fn app(backend: Backend) -> (TestApp, Arc<Semaphore>, Arc<Semaphore>) {
    let (entered, gate) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
    let verifier = Held {
        entered: entered.clone(),
        gate: gate.clone(),
    };
    let app = spawn_app_with(backend, |_| {}, Some(Arc::new(verifier))).await;
    app.load(SEED).await;
    (app, entered, gate)
}

/// Logs `b` out while `slow` waits in the provider, then lets the provider answer.
async fn logout_while_held(
    b: &Browser,
    entered: &Semaphore,
    gate: &Semaphore,
    slow: tokio::task::JoinHandle<crate::helpers::Page>,
) {
    entered.acquire().await.unwrap().forget();
    let out = b.submit("/polls/", "/logout/", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    gate.add_permits(1);
    slow.await.unwrap();
}

async fn a_logout_during_a_slow_send_stays_done(backend: Backend) {
    let (_app, entered, gate) = app(backend).await;
    let b = Arc::new(_app.browser());
    b.login("test", "test1234").await;
    let sender = b.clone();
    let slow = tokio::spawn(async move {
        sender
            .submit("/2fa/", "/2fa/create/", &[("number", PHONE)])
            .await
    });
    logout_while_held(&b, &entered, &gate, slow).await;
    // The send ended after the logout and saved its session: it must not be back.
    let page = b.get("/polls/").await;
    assert!(!page.has("Signed in as"), "{}", page.text());
    let page = b.get("/2fa/").await;
    assert!(page.location.unwrap().starts_with("/login/"));
}

async fn a_logout_during_a_slow_check_stays_done(backend: Backend) {
    let (app, entered, gate) = app(backend).await;
    let b = Arc::new(app.browser());
    b.login("test", "test1234").await;
    let send = tokio::spawn({
        let b = b.clone();
        async move {
            b.submit("/2fa/", "/2fa/create/", &[("number", PHONE)])
                .await
        }
    });
    entered.acquire().await.unwrap().forget();
    gate.add_permits(1);
    send.await.unwrap();
    let checker = b.clone();
    let slow = tokio::spawn(async move {
        checker
            .submit("/2fa/verify/", "/2fa/confirm/", &[("code", "123456")])
            .await
    });
    logout_while_held(&b, &entered, &gate, slow).await;
    // The right code came back after the logout: no new session is started from the old one,
    // and the number is not bound in its name.
    let page = b.get("/polls/1/").await;
    assert!(page.location.unwrap().starts_with("/login/"));
    assert!(!b.get("/polls/").await.has("Signed in as"));
    assert_eq!(app.scalar("SELECT COUNT(*) FROM phone_numbers").await, 0);
}

/// Submits a form whose request reaches the held provider once, letting that call through.
pub(crate) async fn through_held(
    b: &Arc<Browser>,
    (entered, gate): (&Semaphore, &Semaphore),
    page: &'static str,
    action: &'static str,
    fields: &'static [(&'static str, &'static str)],
) {
    let slow = tokio::spawn({
        let b = b.clone();
        async move { b.submit(page, action, fields).await }
    });
    entered.acquire().await.unwrap().forget();
    gate.add_permits(1);
    assert_eq!(slow.await.unwrap().status, StatusCode::SEE_OTHER);
}

/// A second session of the account waits on a code check when the first changes the password:
/// the change ends it, and the check that comes back afterwards must not revive it.
async fn a_password_change_during_a_slow_check_ends_that_session_too(backend: Backend) {
    let (app, entered, gate) = app(backend).await;
    let held = (&*entered, &*gate);
    let me = Arc::new(app.browser());
    me.login("test", "test1234").await;
    through_held(&me, held, "/2fa/", "/2fa/create/", &[("number", PHONE)]).await;
    through_held(
        &me,
        held,
        "/2fa/verify/",
        "/2fa/confirm/",
        &[("code", "123456")],
    )
    .await;
    assert_eq!(me.get("/polls/1/").await.status, StatusCode::OK);

    let other = Arc::new(app.browser());
    other.login("test", "test1234").await;
    through_held(&other, held, "/2fa/", "/2fa/create/", &[]).await;
    let slow = tokio::spawn({
        let other = other.clone();
        async move {
            other
                .submit("/2fa/verify/", "/2fa/confirm/", &[("code", "123456")])
                .await
        }
    });
    entered.acquire().await.unwrap().forget();
    let changed = me
        .submit(
            "/account/password/",
            "/account/password/",
            &[
                ("old_password", "test1234"),
                ("new_password1", crate::helpers::STRONG),
                ("new_password2", crate::helpers::STRONG),
            ],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.text());
    gate.add_permits(1);
    slow.await.unwrap();
    let page = other.get("/polls/1/").await;
    assert!(page.location.unwrap().starts_with("/login/"));
    assert!(!other.get("/polls/").await.has("Signed in as"));
    assert_eq!(me.get("/polls/1/").await.status, StatusCode::OK);
}

/// Two sessions of one account: a code sent in one while the account had no number comes back
/// after the other session proved a number. It must not replace that number without the
/// password (replacing a proven number asks for it).
async fn a_code_sent_before_a_number_was_proven_cannot_replace_it(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let (first, second) = (app.browser(), app.browser());
    first.login("test", "test1234").await;
    second.login("test", "test1234").await;
    let sent = second
        .submit("/2fa/", "/2fa/create/", &[("number", "+44 7400 700001")])
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    let code = app.code_for("+447400700001").await;
    first.verify_phone(&app, PHONE).await;
    let page = second
        .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(
        page.has("Your phone number was changed in another session meanwhile."),
        "{}",
        page.text()
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM phone_numbers WHERE number = '+447911123456'")
            .await,
        1,
        "the proven number stays"
    );
    // Sending to the other number again now asks for the password.
    let page = second
        .submit("/2fa/", "/2fa/create/", &[("number", "+44 7400 700001")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
}
