//! Passkeys: adding, listing, renaming and removing them at `/account/passkeys/`, and a passkey
//! as the second factor at `/2fa/passkey/`, with every refusal the design promises: another
//! origin, a replayed answer, another session's challenge, another user's credential, a
//! signature counter gone backwards, and a burst of answers to one challenge (one accepted);
//! and the login with a passkey instead of the password (`/login/passkey/`).
//! The authenticator is [`SoftKey`]: a P-256 key that builds the browser's JSON answers as a
//! real authenticator and browser would (CBOR attestation "none", signed assertions).

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::both_backends;
use crate::helpers::{Backend, Browser, Page, TestApp};

both_backends!(
    a_passkey_is_added_listed_renamed_and_removed,
    adding_a_passkey_is_refused_without_a_right_answer,
    a_passkey_is_the_second_factor_offered_first,
    the_app_and_sms_pages_link_to_the_passkey,
    an_answer_for_another_origin_is_refused,
    a_replayed_answer_is_refused,
    another_sessions_challenge_is_refused,
    another_users_passkey_is_refused,
    a_counter_going_backwards_is_refused_and_recorded,
    a_burst_of_answers_to_one_challenge_is_accepted_once,
    removing_the_last_passkey_forgets_trusted_browsers,
    the_admins_reset_removes_passkeys,
    a_verified_passkey_logs_in_without_the_password,
    a_passkey_answer_without_user_verification_is_refused,
);

const ORIGIN: &str = "http://localhost:8000";
const MANAGE: &str = "/account/passkeys/";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

/// A CBOR byte string's head.
fn cbor_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    match bytes.len() {
        n if n < 24 => out.push(0x40 | n as u8),
        n if n < 256 => out.extend([0x58, n as u8]),
        n => out.extend([0x59, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(bytes);
}

fn cbor_text(out: &mut Vec<u8>, text: &str) {
    out.push(0x60 | text.len() as u8);
    out.extend_from_slice(text.as_bytes());
}

/// A software authenticator with one P-256 credential.
pub struct SoftKey {
    pub id: Vec<u8>,
    key: SigningKey,
    pub counter: u32,
    /// Backup eligible and backed up (a synced passkey), in every answer.
    pub synced: bool,
    pub user_verified: bool,
    /// The user handle it was given when it was made.
    pub user_handle: Vec<u8>,
    pub origin: String,
}

impl SoftKey {
    pub fn new(seed: u8) -> SoftKey {
        let mut secret = [7u8; 32];
        secret[0] = seed;
        SoftKey {
            id: (0..16)
                .map(|i| seed.wrapping_mul(31).wrapping_add(i))
                .collect(),
            key: SigningKey::from_slice(&secret).expect("a P-256 key"),
            counter: 0,
            synced: true,
            user_verified: true,
            user_handle: Vec::new(),
            origin: ORIGIN.into(),
        }
    }

    fn flags(&self, attested: bool) -> u8 {
        let mut f = 0x01; // user present
        if self.user_verified {
            f |= 0x04;
        }
        if self.synced {
            f |= 0x08 | 0x10;
        }
        if attested {
            f |= 0x40;
        }
        f
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_sec1_point(false);
        let xy = &point.as_bytes()[1..];
        let mut out = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        cbor_bytes(&mut out, &xy[..32]);
        out.push(0x22);
        cbor_bytes(&mut out, &xy[32..]);
        out
    }

    /// The browser's answer to `navigator.credentials.create` with `options`.
    pub fn create(&mut self, options: &Value) -> String {
        let pk = &options["publicKey"];
        let challenge = pk["challenge"].as_str().expect("a challenge");
        let rp_id = pk["rp"]["id"].as_str().expect("an RP ID");
        self.user_handle = unb64(pk["user"]["id"].as_str().expect("a user id"));
        let mut auth = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth.push(self.flags(true));
        auth.extend(self.counter.to_be_bytes());
        auth.extend([0u8; 16]);
        auth.extend((self.id.len() as u16).to_be_bytes());
        auth.extend(&self.id);
        auth.extend(self.cose_key());
        let mut att = vec![0xa3];
        cbor_text(&mut att, "fmt");
        cbor_text(&mut att, "none");
        cbor_text(&mut att, "attStmt");
        att.push(0xa0);
        cbor_text(&mut att, "authData");
        cbor_bytes(&mut att, &auth);
        json!({
            "id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key", "extensions": {},
            "response": {
                "attestationObject": b64(&att),
                "clientDataJSON": b64(&self.client_data("webauthn.create", challenge)),
            },
        })
        .to_string()
    }

    /// The browser's answer to `navigator.credentials.get` with `options` (the counter goes up
    /// first when it is kept).
    pub fn get(&mut self, options: &Value) -> String {
        let pk = &options["publicKey"];
        let challenge = pk["challenge"].as_str().expect("a challenge");
        let rp_id = pk["rpId"].as_str().expect("an RP ID");
        if self.counter > 0 {
            self.counter += 1;
        }
        let mut auth = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth.push(self.flags(false));
        auth.extend(self.counter.to_be_bytes());
        let client = self.client_data("webauthn.get", challenge);
        let mut signed = auth.clone();
        signed.extend(Sha256::digest(&client));
        let sig: Signature = self.key.sign(&signed);
        json!({
            "id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key", "extensions": {},
            "response": {
                "authenticatorData": b64(&auth),
                "clientDataJSON": b64(&client),
                "signature": b64(sig.to_der().as_bytes()),
                "userHandle": b64(&self.user_handle),
            },
        })
        .to_string()
    }
}

/// The request in the `data-options` of the form posting to `action`.
pub fn options(page: &Page, action: &str) -> Value {
    let doc = scraper::Html::parse_document(&page.body);
    let sel = scraper::Selector::parse(&format!("form[action=\"{action}\"]")).unwrap();
    let form = doc
        .select(&sel)
        .next()
        .unwrap_or_else(|| panic!("no form posting to {action}: {}", page.body));
    serde_json::from_str(form.value().attr("data-options").expect("data-options")).unwrap()
}

/// Posts the form of `page` (already open: its request stays the one in the session) that
/// goes to `action`, with `fields` over its own.
pub async fn post_on(b: &Browser, page: &Page, action: &str, fields: &[(&str, &str)]) -> Page {
    let mut form = page
        .form(action)
        .unwrap_or_else(|| panic!("no form posting to {action}: {}", page.body));
    form.retain(|(k, _)| !fields.iter().any(|(f, _)| f == k));
    form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let res = b
        .client
        .post(b.url(action))
        .form(&form)
        .send()
        .await
        .unwrap();
    Page::from(res).await
}

/// Gives the password again (sudo mode), as `/account/confirm/` asks.
async fn sudo(b: &Browser, password: &str) {
    let done = b
        .submit(
            "/account/confirm/",
            "/account/confirm/",
            &[("password", password)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
}

/// Adds `key` as a passkey named `name` for a verified browser.
pub async fn enrol(b: &Browser, key: &mut SoftKey, name: &str) -> Page {
    let page = b.get(MANAGE).await;
    let answer = key.create(&options(&page, "/account/passkeys/add/"));
    let fields = [("name", name), ("credential", answer.as_str())];
    post_on(b, &page, "/account/passkeys/add/", &fields).await
}

async fn app_with_key(backend: Backend) -> (TestApp, Browser, SoftKey) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser().await;
    let mut key = SoftKey::new(1);
    let added = enrol(&b, &mut key, "Laptop").await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.text());
    (app, b, key)
}

/// A new browser past the password of `test`, on the passkey page of `/2fa/`.
async fn at_second_factor(app: &TestApp) -> (Browser, Page) {
    let b = app.browser();
    b.login("test", "test1234").await;
    let to = b.get("/2fa/?next=/polls/").await;
    assert_eq!(to.location.as_deref(), Some("/2fa/passkey/?next=/polls/"));
    let page = b.get(to.location.as_deref().unwrap()).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    (b, page)
}

/// Posts `credential` with the form of a page already open (its challenge stays the same).
async fn answer_on(b: &Browser, page: &Page, credential: &str) -> Page {
    post_on(b, page, "/2fa/passkey/", &[("credential", credential)]).await
}

async fn events(app: &TestApp, kind: &str) -> i64 {
    app.scalar(&format!(
        "SELECT COUNT(*) FROM security_events WHERE kind = '{kind}'"
    ))
    .await
}

async fn a_passkey_is_added_listed_renamed_and_removed(backend: Backend) {
    let (app, b, _key) = app_with_key(backend).await;
    let list = b.get(MANAGE).await;
    assert!(list.has("Laptop"), "{}", list.text());
    assert!(list.has("synced between your devices"), "{}", list.text());
    assert!(list.has("last used never"), "{}", list.text());
    assert!(b.get("/account/").await.has("Passkeys: 1"));
    assert_eq!(events(&app, "factor_added").await, 1);
    let id = app.scalar("SELECT id FROM passkeys").await.to_string();
    let renamed = b
        .submit(
            MANAGE,
            "/account/passkeys/rename/",
            &[("id", &id), ("name", "Phone")],
        )
        .await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER);
    assert!(b.get(MANAGE).await.has("Phone"));
    assert_eq!(events(&app, "factor_renamed").await, 1);
    let empty = b
        .submit(
            MANAGE,
            "/account/passkeys/rename/",
            &[("id", &id), ("name", "  ")],
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        events(&app, "factor_renamed").await,
        1,
        "not for a refused name"
    );
    let wrong = b
        .submit(
            MANAGE,
            "/account/passkeys/remove/",
            &[("id", &id), ("password", "nope")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM passkeys").await, 1);
    let removed = b
        .submit(
            MANAGE,
            "/account/passkeys/remove/",
            &[("id", &id), ("password", "test1234")],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM passkeys").await, 0);
    assert_eq!(events(&app, "factor_removed").await, 1);
    assert!(b.get(MANAGE).await.has("You have no passkey yet."));
}

async fn adding_a_passkey_is_refused_without_a_right_answer(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser().await;
    // Garbage, then a right answer to a request already used.
    let bad = b
        .submit(
            MANAGE,
            "/account/passkeys/add/",
            &[("name", "X"), ("credential", "{")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let page = b.get(MANAGE).await;
    let mut key = SoftKey::new(2);
    let answer = key.create(&options(&page, "/account/passkeys/add/"));
    let mut other = SoftKey::new(3);
    other.origin = "https://evil.example".into();
    let later = b.get(MANAGE).await;
    let evil = other.create(&options(&later, "/account/passkeys/add/"));
    let fields = [("name", "Evil"), ("credential", evil.as_str())];
    let refused = post_on(&b, &later, "/account/passkeys/add/", &fields).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    assert_eq!(events(&app, "passkey_refused").await, 1);
    // The first page's request was replaced by the later ones.
    let stale = b
        .submit(
            MANAGE,
            "/account/passkeys/add/",
            &[("name", "Old"), ("credential", &answer)],
        )
        .await;
    assert_eq!(stale.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM passkeys").await, 0);
    // Without a session, the page asks for a login.
    let anon = app.browser();
    assert_eq!(anon.get(MANAGE).await.status, StatusCode::SEE_OTHER);
}

async fn a_passkey_is_the_second_factor_offered_first(backend: Backend) {
    let (app, _b, mut key) = app_with_key(backend).await;
    while app.codes.lock().await.try_recv().is_ok() {}
    let (b, page) = at_second_factor(&app).await;
    assert!(page.body.contains("/static/passkeys.js"));
    let done = answer_on(&b, &page, &key.get(&options(&page, "/2fa/passkey/"))).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(done.location.as_deref(), Some("/polls/"));
    assert_eq!(b.get("/account/").await.status, StatusCode::OK);
    assert!(app.no_code_sent(), "no SMS for a passkey login");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM security_events WHERE kind = 'code_ok' AND detail LIKE 'passkey%'")
            .await,
        1
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM passkeys WHERE last_used_at IS NOT NULL")
            .await,
        1
    );
    // The other factors stay one link away.
    assert!(page.body.contains("/2fa/?method=sms"));
    assert_eq!(b.get("/2fa/?method=sms").await.status, StatusCode::OK);
}

/// The authenticator app's page and the text-message page offer the passkey too.
async fn the_app_and_sms_pages_link_to_the_passkey(backend: Backend) {
    let (app, b, _key) = app_with_key(backend).await;
    crate::totp::set_up_with_codes(&b).await;
    let other = app.browser();
    other.login("test", "test1234").await;
    let totp = other.get("/2fa/totp/?next=/polls/").await;
    assert_eq!(totp.status, StatusCode::OK, "{}", totp.text());
    assert!(totp.has("Use a passkey"), "{}", totp.text());
    assert!(
        totp.body.contains("href=\"/2fa/passkey/?next="),
        "{}",
        totp.body
    );
    let sent = other.submit("/2fa/?method=sms", "/2fa/create/", &[]).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    let verify = other.get(sent.location.as_deref().unwrap()).await;
    assert!(verify.has("Use a passkey"), "{}", verify.text());
    // Without a passkey, no such link.
    let id = app.scalar("SELECT id FROM passkeys").await.to_string();
    let removed = b
        .submit(
            MANAGE,
            "/account/passkeys/remove/",
            &[("id", &id), ("password", "test1234")],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert!(!other
        .get("/2fa/totp/?next=/polls/")
        .await
        .has("Use a passkey"));
    assert!(!other
        .get(sent.location.as_deref().unwrap())
        .await
        .has("Use a passkey"));
}

async fn an_answer_for_another_origin_is_refused(backend: Backend) {
    let (app, _b, mut key) = app_with_key(backend).await;
    let (b, page) = at_second_factor(&app).await;
    key.origin = "https://evil.example".into();
    let refused = answer_on(&b, &page, &key.get(&options(&page, "/2fa/passkey/"))).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    assert!(refused.has("That passkey was not accepted."));
    assert_eq!(b.get("/account/").await.status, StatusCode::SEE_OTHER);
    assert_eq!(events(&app, "code_wrong").await, 1);
}

async fn a_replayed_answer_is_refused(backend: Backend) {
    let (app, _b, mut key) = app_with_key(backend).await;
    let (b, page) = at_second_factor(&app).await;
    let signed = key.get(&options(&page, "/2fa/passkey/"));
    assert_eq!(
        answer_on(&b, &page, &signed).await.status,
        StatusCode::SEE_OTHER
    );
    // The same answer again, from another login of the same account.
    let (b2, page2) = at_second_factor(&app).await;
    let replayed = answer_on(&b2, &page2, &signed).await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST);
    assert_eq!(b2.get("/account/").await.status, StatusCode::SEE_OTHER);
    // And in the session that used it.
    let again = answer_on(&b, &page, &signed).await;
    assert_ne!(again.status, StatusCode::SEE_OTHER, "{}", again.text());
}

async fn another_sessions_challenge_is_refused(backend: Backend) {
    let (app, _b, mut key) = app_with_key(backend).await;
    let (_a, page_a) = at_second_factor(&app).await;
    let (b, page_b) = at_second_factor(&app).await;
    // Signed for A's challenge, sent by B.
    let for_a = key.get(&options(&page_a, "/2fa/passkey/"));
    let refused = answer_on(&b, &page_b, &for_a).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(b.get("/account/").await.status, StatusCode::SEE_OTHER);
}

async fn another_users_passkey_is_refused(backend: Backend) {
    let (app, _b, _key) = app_with_key(backend).await;
    let alice = app.browser();
    alice.register("alice").await;
    alice.verify_phone(&app, "+44 7911 123457").await;
    sudo(&alice, crate::helpers::STRONG).await;
    let mut hers = SoftKey::new(9);
    let added = enrol(&alice, &mut hers, "Alice's key").await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.text());
    // test's login, answered with alice's passkey.
    let (b, page) = at_second_factor(&app).await;
    let refused = answer_on(&b, &page, &hers.get(&options(&page, "/2fa/passkey/"))).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(b.get("/account/").await.status, StatusCode::SEE_OTHER);
}

async fn a_counter_going_backwards_is_refused_and_recorded(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser().await;
    let mut key = SoftKey::new(4);
    key.counter = 5;
    key.synced = false;
    assert_eq!(
        enrol(&b, &mut key, "Key").await.status,
        StatusCode::SEE_OTHER
    );
    let (b1, page) = at_second_factor(&app).await;
    let ok = answer_on(&b1, &page, &key.get(&options(&page, "/2fa/passkey/"))).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text());
    // A clone of the key as it was: its counter is behind the one stored.
    key.counter = 3;
    let (b2, page) = at_second_factor(&app).await;
    let refused = answer_on(&b2, &page, &key.get(&options(&page, "/2fa/passkey/"))).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(events(&app, "passkey_counter_backwards").await, 1);
    assert_eq!(b2.get("/account/").await.status, StatusCode::SEE_OTHER);
}

async fn a_burst_of_answers_to_one_challenge_is_accepted_once(backend: Backend) {
    let (app, _b, mut key) = app_with_key(backend).await;
    let (b, page) = at_second_factor(&app).await;
    let signed = key.get(&options(&page, "/2fa/passkey/"));
    let mut form = page.form("/2fa/passkey/").unwrap();
    form.retain(|(k, _)| k != "credential");
    form.push(("credential".into(), signed));
    let sent: Vec<_> = (0..8)
        .map(|_| {
            let request = b.client.post(b.url("/2fa/passkey/")).form(&form);
            tokio::spawn(async move { request.send().await })
        })
        .collect();
    let mut passed = 0;
    for s in sent {
        if s.await.unwrap().unwrap().status() == StatusCode::SEE_OTHER {
            passed += 1;
        }
    }
    assert_eq!(passed, 1);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM security_events WHERE kind = 'code_ok'")
            .await,
        2,
        "the phone at the first login, the passkey once"
    );
}

async fn removing_the_last_passkey_forgets_trusted_browsers(backend: Backend) {
    let (app, b, mut key) = app_with_key(backend).await;
    let mut second = SoftKey::new(5);
    assert_eq!(
        enrol(&b, &mut second, "Spare").await.status,
        StatusCode::SEE_OTHER
    );
    let (t, page) = at_second_factor(&app).await;
    let mut form = page.form("/2fa/passkey/").unwrap();
    form.retain(|(k, _)| k != "credential");
    form.push((
        "credential".into(),
        key.get(&options(&page, "/2fa/passkey/")),
    ));
    form.push(("remember".into(), "1".into()));
    let res = t
        .client
        .post(t.url("/2fa/passkey/"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM trusted_browsers").await, 1);
    let ids: Vec<i64> = vec![
        app.scalar("SELECT MIN(id) FROM passkeys").await,
        app.scalar("SELECT MAX(id) FROM passkeys").await,
    ];
    let remove = |id: i64| {
        let b = b.clone();
        async move {
            b.submit(
                MANAGE,
                "/account/passkeys/remove/",
                &[("id", &id.to_string()), ("password", "test1234")],
            )
            .await
        }
    };
    assert_eq!(remove(ids[0]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM trusted_browsers").await, 1);
    let last = remove(ids[1]).await;
    assert_eq!(last.status, StatusCode::SEE_OTHER);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM trusted_browsers").await, 0);
}

async fn the_admins_reset_removes_passkeys(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let staff = app.staff_browser().await;
    let alice = app.browser();
    alice.register("alice").await;
    alice.verify_phone(&app, "+44 7911 123457").await;
    sudo(&alice, crate::helpers::STRONG).await;
    let mut key = SoftKey::new(6);
    assert_eq!(
        enrol(&alice, &mut key, "Hers").await.status,
        StatusCode::SEE_OTHER
    );
    let id = app
        .scalar("SELECT id FROM users WHERE username = 'alice'")
        .await;
    let path = format!("/admin/users/{id}/reset-factors/");
    let done = staff.submit(&path, &path, &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(app.scalar("SELECT COUNT(*) FROM passkeys").await, 0);
}

/// The login page's request for any passkey (as its script asks for it).
async fn signin_options(b: &Browser, login: &Page) -> Value {
    let form = login
        .form("/login/passkey/")
        .expect("the passkey sign-in form");
    let res = b
        .client
        .post(b.url("/login/passkey/begin/"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    serde_json::from_str(&res.text().await.unwrap()).unwrap()
}

async fn a_verified_passkey_logs_in_without_the_password(backend: Backend) {
    let (app, _b, mut key) = app_with_key(backend).await;
    while app.codes.lock().await.try_recv().is_ok() {}
    let b = app.browser();
    let login = b.get("/login/?next=/polls/1/").await;
    assert!(login.body.contains("autocomplete=\"username webauthn\""));
    let request = signin_options(&b, &login).await;
    assert_eq!(request["mediation"], "conditional");
    let fields = [("credential", key.get(&request))];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = post_on(&b, &login, "/login/passkey/", &fields).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(done.location.as_deref(), Some("/polls/1/"));
    // Both factors: the account's pages open, and the vote goes in.
    assert_eq!(b.get("/account/").await.status, StatusCode::OK);
    let vote = b
        .submit("/polls/1/", "/polls/1/vote/", &[("choice", "1")])
        .await;
    assert_eq!(vote.status, StatusCode::SEE_OTHER, "{}", vote.text());
    assert!(app.no_code_sent(), "no SMS for a passkey login");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM security_events WHERE kind = 'login_ok' AND detail LIKE 'passkey%'")
            .await,
        1
    );
    // The same answer again, in a new request: refused.
    let replay = app.browser();
    let page = replay.get("/login/").await;
    signin_options(&replay, &page).await;
    let again = post_on(&replay, &page, "/login/passkey/", &fields).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(replay.get("/account/").await.status, StatusCode::SEE_OTHER);
}

async fn a_passkey_answer_without_user_verification_is_refused(backend: Backend) {
    let (app, _b, mut key) = app_with_key(backend).await;
    key.user_verified = false;
    let b = app.browser();
    let login = b.get("/login/").await;
    let request = signin_options(&b, &login).await;
    let credential = key.get(&request);
    let refused = post_on(
        &b,
        &login,
        "/login/passkey/",
        &[("credential", &credential)],
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.has("log in with your password"),
        "{}",
        refused.text()
    );
    assert_eq!(b.get("/account/").await.status, StatusCode::SEE_OTHER);
    assert_eq!(events(&app, "passkey_refused").await, 1);
    // Nor after the password: the passkey was enrolled with user verification, and an answer
    // without it is a downgrade (webauthn-rs refuses it).
    let (t, page) = at_second_factor(&app).await;
    let done = answer_on(&t, &page, &key.get(&options(&page, "/2fa/passkey/"))).await;
    assert_eq!(done.status, StatusCode::BAD_REQUEST, "{}", done.text());
    assert_eq!(t.get("/account/").await.status, StatusCode::SEE_OTHER);
    key.user_verified = true;
    let page = t.get("/2fa/passkey/?next=/polls/").await;
    let done = answer_on(&t, &page, &key.get(&options(&page, "/2fa/passkey/"))).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
}

/// The server time of a login by passkey against one by password (argon2id), printed: the
/// figure in docs/passkeys.md. Built only with POLLSTR_MEASURE set (a measurement, not a check):
/// `POLLSTR_MEASURE=1 cargo test --test api passkeys::measure -- --nocapture`.
#[cfg(pollstr_measure)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measure_a_passkey_login_against_a_password_login() {
    let (app, _b, mut key) = app_with_key(Backend::Sqlite).await;
    let median = |mut v: Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mut by_password, mut by_passkey) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let b = app.browser();
        let login = b.get("/login/").await;
        let start = std::time::Instant::now();
        let fields = [("username", "test"), ("password", "test1234")];
        let done = post_on(&b, &login, "/login/", &fields).await;
        by_password.push(start.elapsed());
        assert_eq!(done.status, StatusCode::SEE_OTHER);
        let b = app.browser();
        let login = b.get("/login/").await;
        let credential = key.get(&signin_options(&b, &login).await);
        let start = std::time::Instant::now();
        let done = post_on(
            &b,
            &login,
            "/login/passkey/",
            &[("credential", &credential)],
        )
        .await;
        by_passkey.push(start.elapsed());
        assert_eq!(done.status, StatusCode::SEE_OTHER);
    }
    println!(
        "median of 20: password login {:?}, passkey login {:?}",
        median(by_password),
        median(by_passkey)
    );
}
