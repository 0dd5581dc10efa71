//! End-to-end tests in a real browser: the `pollstr` binary that `cargo test` builds (or the file
//! named by `POLLSTR_E2E_BIN`, e.g. a release build) driven by headless Chromium through
//! chromedriver, with the console verify provider (the codes are read from the server's stderr).
//!
//! The suite needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`). When they are missing every test is reported as ignored, with a notice,
//! unless `POLLSTR_E2E_REQUIRED=1` makes that a failure (CI sets it). The harness is
//! libtest-mimic (`harness = false`): the standard one can only ignore a test at build time.
//!
//! Every page a test reaches is checked: each visible input has a `<label for>`, no request left
//! the app's address (the Resource Timing entries and every `src`/`href` that loads something),
//! the browser console has no error and nothing overflows or overlaps the viewport. The console is
//! read through chromedriver's log endpoint (`POST /session/{id}/se/log` with the
//! `goog:loggingPrefs` capability), which also sees what happens while a page loads, before any
//! script of ours could hook `console.error`.
//!
//! Screenshots of every page, at desktop (1280×900, `NAME.png`) and phone (390×844,
//! `NAME-phone.png`) size, go to `target/tmp/e2e-screenshots/`; with `POLLSTR_SCREENSHOTS=1` they go
//! to `docs/screenshots/` instead (the pictures in the README).

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::Method;
use base64::Engine;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Url;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long the suite waits for something that should happen at once (a process starting, a
/// page loading). A bound, not a performance assertion.
const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
struct Viewport {
    width: i64,
    height: i64,
    mobile: bool,
    suffix: &'static str,
}

const DESKTOP: Viewport = Viewport {
    width: 1280,
    height: 900,
    mobile: false,
    suffix: "",
};
const PHONE: Viewport = Viewport {
    width: 390,
    height: 844,
    mobile: true,
    suffix: "-phone",
};

/// The demo user's number, and how the pages and the log show it.
const NUMBER: &str = "+44 7911 123456";
const MASKED: &str = "+44 •••• ••3456";

// ---------------------------------------------------------------------------------------------
// The harness

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let missing = missing_prerequisites();
    let ignored = match &missing {
        Some(what) if !required() => {
            eprintln!("notice: {what} not found: the browser suite is ignored (apt-get install chromium chromium-driver)");
            true
        }
        _ => false,
    };
    let trials = vec![
        trial(
            "newcomer_logs_in_verifies_votes_changes_the_vote_and_logs_out",
            newcomer_logs_in_verifies_votes_changes_the_vote_and_logs_out,
        ),
        trial(
            "new_user_registers_gets_a_code_wrong_changes_number_and_votes",
            new_user_registers_gets_a_code_wrong_changes_number_and_votes,
        ),
        trial(
            "every_form_works_with_the_keyboard_alone",
            every_form_works_with_the_keyboard_alone,
        ),
        trial(
            "every_page_fits_phone_and_desktop_screens",
            every_page_fits_phone_and_desktop_screens,
        ),
        trial(
            "an_authenticator_app_a_recovery_code_and_a_trusted_browser",
            an_authenticator_app_a_recovery_code_and_a_trusted_browser,
        ),
        trial(
            "a_passkey_added_from_the_account_signs_in_alone_and_is_removed",
            a_passkey_added_from_the_account_signs_in_alone_and_is_removed,
        ),
        trial(
            "a_staff_user_adds_and_schedules_polls_and_loads_a_fixture_in_the_admin",
            a_staff_user_adds_and_schedules_polls_and_loads_a_fixture_in_the_admin,
        ),
        trial(
            "a_forgotten_password_is_reset_with_an_admins_link_then_the_second_factor",
            a_forgotten_password_is_reset_with_an_admins_link_then_the_second_factor,
        ),
        trial(
            "an_email_is_confirmed_then_a_forgotten_password_is_reset_by_mail",
            an_email_is_confirmed_then_a_forgotten_password_is_reset_by_mail,
        ),
        trial(
            "staff_close_a_poll_of_two_answers_a_voter_picks_two_and_checks_the_seal",
            staff_close_a_poll_of_two_answers_a_voter_picks_two_and_checks_the_seal,
        ),
    ];
    let trials = trials
        .into_iter()
        .map(|t| t.with_ignored_flag(ignored))
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

/// A test: `body` on a Tokio runtime of its own (as `#[tokio::test]` would give it); a panic is
/// the test's failure.
fn trial<Fut>(name: &'static str, body: fn() -> Fut) -> libtest_mimic::Trial
where
    Fut: Future<Output = ()> + 'static,
{
    libtest_mimic::Trial::test(name, move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("a Tokio runtime: {e}"))?
            .block_on(body());
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// The tests

/// The tutorial's newcomer: the polls, a poll, login, the phone, the code, back to the poll, a
/// vote, the results, a changed vote, logging out.
async fn newcomer_logs_in_verifies_votes_changes_the_vote_and_logs_out() {
    e2e(|b| async move {
        b.goto("/").await;
        b.expect_path("/polls/").await;
        let polls = b.texts(".poll-card h2").await;
        assert_eq!(polls.len(), 3, "the three demo polls: {polls:?}");
        assert!(polls.contains(&"What is your favorite kind of dog?".to_string()));

        b.click("h2 a[href='/polls/1/']").await;
        b.expect_path("/login/").await;
        b.log_in("test", "test1234").await;
        b.expect_path("/2fa/").await;
        b.expect_text("To continue we need to verify your phone number.")
            .await;

        b.send_code_to(NUMBER, MASKED).await;
        let code = b.server.code_for(MASKED).await;
        b.enter_code(&code).await;
        b.expect_path("/polls/1/").await;
        b.expect_text("Your phone number is verified.").await;
        b.expect_text("What is your favorite kind of dog?").await;

        b.vote("A golden retriever").await;
        b.expect_path("/polls/1/results/").await;
        b.expect_text("A golden retriever (your vote) 1 vote · 100%")
            .await;
        b.expect_text("1 vote in total.").await;

        b.follow("Vote again").await;
        b.expect_path("/polls/1/").await;
        assert!(b.is_checked("A golden retriever").await, "the vote is kept");
        b.expect_text("voting again changes your vote").await;
        b.vote("A cat").await;
        b.expect_text("A cat (your vote) 1 vote · 100%").await;
        b.expect_text("A golden retriever 0 votes · 0%").await;
        b.expect_text("1 vote in total.").await;

        b.press("Log out").await;
        b.expect_path("/polls/").await;
        b.expect_text("You have been logged out.").await;
        b.expect_text("Log in").await;
        b.goto("/polls/1/").await;
        b.expect_path("/login/").await;
    })
    .await;
}

/// A new account on a phone-sized screen: registration, a wrong code, "Send a new code", "Use a
/// different number" before the first one was proven, then a first vote.
async fn new_user_registers_gets_a_code_wrong_changes_number_and_votes() {
    e2e(|b| async move {
        b.set_viewport(PHONE).await;
        b.goto("/polls/").await;
        b.click("h2 a[href='/polls/2/']").await;
        b.expect_path("/login/").await;
        b.follow("Create an account").await;
        b.expect_path("/register/").await;
        b.fill("#id_username", "newcomer").await;
        b.fill("#id_password1", "purple-otter-42").await;
        b.fill("#id_password2", "purple-otter-42").await;
        b.press("Sign up").await;
        b.expect_path("/2fa/").await;
        b.expect_text("Welcome to Pollstr, newcomer!").await;

        let (first, first_masked) = ("+44 7400 600011", "+44 •••• ••0011");
        b.send_code_to(first, first_masked).await;
        let code = b.server.code_for(first_masked).await;
        b.enter_code(&wrong(&code)).await;
        b.expect_path("/2fa/confirm/").await;
        b.expect_text("That code is not right. Please try again.")
            .await;
        assert_eq!(b.status().await, 400);
        let field = b.find("#id_code").await;
        assert_eq!(
            field.attr("aria-describedby").await.unwrap().as_deref(),
            Some("code-error"),
            "a screen reader hears the message with the field"
        );

        b.press("Send a new code").await;
        b.expect_path("/2fa/verify/").await;
        b.expect_text(&format!(
            "A code was already sent to {first_masked} a moment ago and is still valid."
        ))
        .await;

        b.follow("Use a different number").await;
        b.expect_path("/2fa/").await;
        assert_eq!(
            b.value("#id_number").await,
            "+447400600011",
            "the number being verified is offered again"
        );
        let (second, second_masked) = ("+44 7400 600022", "+44 •••• ••0022");
        b.send_code_to(second, second_masked).await;
        let code = b.server.code_for(second_masked).await;
        b.enter_code(&code).await;
        b.expect_path("/polls/2/").await;
        b.expect_text("Your phone number is verified.").await;

        b.vote("The Baha Men").await;
        b.expect_path("/polls/2/results/").await;
        b.expect_text("The Baha Men (your vote) 1 vote · 100%")
            .await;
    })
    .await;
}

/// The code an authenticator app shows for this secret (base32, as the page shows it), `ahead`
/// steps of 30 s from now.
fn app_code(secret: &str, ahead: u64) -> String {
    let secret: String = secret.split_whitespace().collect();
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).expect("a base32 secret"))
        .build()
        .expect("a TOTP");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp.generate(now + 30 * ahead).to_string()
}

/// The second factors beyond SMS: an authenticator app set up from the account page (its QR
/// code and key), a login with it that trusts the browser, a login the trusted browser skips,
/// then, trust forgotten, a login with a recovery code.
async fn an_authenticator_app_a_recovery_code_and_a_trusted_browser() {
    e2e(|b| async move {
        b.goto("/polls/1/").await;
        b.log_in("test", "test1234").await;
        b.send_code_to(NUMBER, MASKED).await;
        let code = b.server.code_for(MASKED).await;
        b.enter_code(&code).await;
        b.expect_path("/polls/1/").await;

        b.follow("Account").await;
        b.expect_path("/account/").await;
        b.pictures("account").await;
        b.follow("set one up").await;
        b.expect_path("/account/totp/").await;
        let qr = b
            .js("return document.querySelectorAll('.qr svg').length", vec![])
            .await;
        assert_eq!(qr, json!(1), "a QR code drawn in the page");
        b.pictures("totp-setup").await;
        let secret = b.texts("#totp-secret").await.join("");
        b.fill("#id_code", &app_code(&secret, 0)).await;
        b.press("Turn it on").await;
        b.expect_text("Save your recovery codes").await;
        let codes = b.texts("#recovery-codes code").await;
        assert_eq!(codes.len(), 10, "{codes:?}");
        b.pictures("recovery-codes").await;
        b.follow("I have saved them").await;
        b.expect_text("Authenticator app: set up").await;

        // Log in with the app, trusting this browser.
        b.press("Log out").await;
        b.goto("/polls/1/").await;
        b.log_in("test", "test1234").await;
        b.expect_path("/2fa/totp/?next=/polls/1/").await;
        b.pictures("totp-login").await;
        b.fill("#id_code", &app_code(&secret, 1)).await;
        b.find("input[name=remember]")
            .await
            .click()
            .await
            .expect("tick Trust this browser");
        b.press("Confirm").await;
        b.expect_path("/polls/1/").await;

        // The trusted browser skips the second factor.
        b.press("Log out").await;
        b.goto("/polls/1/").await;
        b.log_in("test", "test1234").await;
        b.expect_path("/polls/1/").await;

        // Trust forgotten: the recovery code, in place of the app.
        b.goto("/account/").await;
        b.press("Forget all trusted browsers").await;
        b.expect_text("No browser is trusted any more").await;
        b.press("Log out").await;
        b.goto("/polls/1/").await;
        b.log_in("test", "test1234").await;
        b.expect_path("/2fa/totp/?next=/polls/1/").await;
        b.follow("Use a recovery code").await;
        b.pictures("recovery-login").await;
        b.fill("#id_code", &codes[0]).await;
        b.press("Confirm").await;
        b.expect_path("/polls/1/").await;
        b.expect_text("You used a recovery code. 9 are left.").await;
    })
    .await;
}

/// Passkeys with Chromium's virtual authenticator (resident keys, user verification): one
/// added from `/account/`, a login with it alone (the autofill answers at once) and a vote, then
/// removed with the password; between them, the password with the passkey as the second factor
/// (offered first on `/2fa/`). Not one SMS is sent on the passkey journeys.
async fn a_passkey_added_from_the_account_signs_in_alone_and_is_removed() {
    e2e(|b| async move {
        b.goto("/polls/1/").await;
        b.log_in("test", "test1234").await;
        b.send_code_to(NUMBER, MASKED).await;
        let code = b.server.code_for(MASKED).await;
        b.enter_code(&code).await;
        b.expect_path("/polls/1/").await;
        let authenticator = json!({
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
            "hasUserVerification": true, "isUserVerified": true, "isUserConsenting": true,
        });
        let id = b
            .session_post("webauthn/authenticator", authenticator.clone())
            .await;
        let id = id.as_str().expect("an authenticator id").to_string();
        let sms = || {
            b.server
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains("code for "))
                .count()
        };
        let sent = sms();

        b.follow("Account").await;
        b.follow("add one").await;
        b.expect_path("/account/passkeys/").await;
        b.pictures("passkeys").await;
        b.fill("#id_passkey_name", "This laptop").await;
        b.press("Add a passkey").await;
        b.expect_text("Your passkey \"This laptop\" is added.")
            .await;
        b.expect_text("on this device only").await;

        // The passkey alone: both factors, then a vote.
        b.press("Log out").await;
        // Chromium's virtual authenticator answers the autofill request (conditional
        // mediation) at once: the login page signs in by itself.
        b.goto("/login/?next=/polls/1/").await;
        let since = Instant::now();
        while !b.path().await.starts_with("/polls/1/") {
            assert!(since.elapsed() < PATIENCE, "no sign-in by passkey autofill");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        b.goto("/polls/1/").await;
        b.vote("A beagle").await;

        // The password, then the passkey as the second factor. The authenticator is taken
        // away before the login page (whose autofill it would answer first) and given back,
        // with the same passkey, only on the second-factor page.
        b.press("Log out").await;
        let kept = format!("webauthn/authenticator/{id}/credentials");
        let credentials = b.session_cmd(&kept, None, false).await;
        let credential = credentials[0].clone();
        assert_eq!(credential["isResidentCredential"], true, "{credentials}");
        b.session_cmd(&format!("webauthn/authenticator/{id}"), None, true)
            .await;
        b.goto("/login/?next=/polls/2/").await;
        b.log_in("test", "test1234").await;
        b.expect_path("/2fa/passkey/").await;
        b.expect_text("Use your passkey").await;
        let id = b
            .session_post("webauthn/authenticator", authenticator)
            .await;
        let id = id.as_str().expect("an authenticator id").to_string();
        b.session_post(
            &format!("webauthn/authenticator/{id}/credential"),
            credential,
        )
        .await;
        b.press("Use my passkey").await;
        b.expect_path("/polls/2/").await;
        b.vote("I did").await;

        assert_eq!(sms(), sent, "no SMS on the passkey journeys");

        // Removed with the password.
        b.goto("/account/passkeys/").await;
        b.fill("input[name=password]", "test1234").await;
        b.press("Remove").await;
        b.expect_text("It was your last").await;
        b.expect_text("You have no passkey yet.").await;
    })
    .await;
}

/// Keyboard only: every form is reached with Tab, filled by typing and sent with Enter; focus
/// always moves and is always visible.
async fn every_form_works_with_the_keyboard_alone() {
    e2e(|b| async move {
        b.goto("/polls/").await;
        // The first Tab shows the skip link; it leads past the navigation.
        b.key(Key::Tab).await;
        b.expect_focus(".skip-link").await;
        b.key(Key::Enter).await;
        b.key(Key::Tab).await;
        b.expect_focus("main h2 a[href='/polls/3/']").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_path("/login/").await;

        // Registration: the username field has focus, Tab moves through the fields, Enter sends.
        b.tab_to("a[href^='/register/']").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_path("/register/").await;
        b.expect_focus("#id_username").await;
        b.type_text("keyboarder").await;
        b.tab_to("#id_password1").await;
        b.type_text("velvet-lantern-7").await;
        b.tab_to("#id_password2").await;
        b.type_text("velvet-lantern-7").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_path("/2fa/").await;

        // The phone number, then the Verify button.
        b.expect_focus("#id_number").await;
        b.type_text("+44 7400 700033").await;
        b.tab_to("button[type=submit]").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_path("/2fa/verify/").await;
        b.expect_focus("#id_code").await;
        let code = b.server.code_for("+44 •••• ••0033").await;
        b.type_text(&code).await;
        b.key_and_wait(Key::Enter).await;
        b.expect_path("/polls/3/").await;

        // A vote: Tab into the choices, Space picks one, Tab to Vote, Enter.
        b.tab_to("input[name=choice]").await;
        b.key(Key::Space).await;
        assert!(b.is_checked("Nothing").await);
        b.tab_to("button[type=submit]").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_text("Nothing (your vote) 1 vote · 100%").await;

        // Vote again: the arrow keys move the choice.
        b.tab_to("a[href='/polls/3/']").await;
        b.key_and_wait(Key::Enter).await;
        b.tab_to("input[name=choice]:checked").await;
        b.key(Key::Down).await;
        assert!(b.is_checked("I'm OK!").await);
        b.tab_to("button[type=submit]").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_text("I'm OK! (your vote) 1 vote · 100%").await;

        b.tab_to("form[action='/logout/'] button").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_text("You have been logged out.").await;

        // Login, then the proven number: "Send code", "Send a new code", the code.
        b.tab_to("a[href='/login/']").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_focus("#id_username").await;
        b.type_text("keyboarder").await;
        b.tab_to("#id_password").await;
        b.type_text("velvet-lantern-7").await;
        b.tab_to("button[type=submit]").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_text("Signed in as keyboarder").await;
        b.goto("/polls/3/").await;
        b.expect_path("/2fa/").await;
        b.tab_to("form[action='/2fa/create/'] button").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_path("/2fa/verify/").await;
        b.tab_to("input[name=resend] ~ button").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_text("A code was already sent").await;
        b.expect_focus("#id_code").await;
        let code = b.server.code_for("+44 •••• ••0033").await;
        b.type_text(&code).await;
        b.key_and_wait(Key::Enter).await;
        b.expect_path("/polls/3/").await;
        b.expect_text("Your phone number is verified.").await;
    })
    .await;
}

/// Every page at phone and desktop size: nothing overflows or overlaps, and a screenshot of each.
async fn every_page_fits_phone_and_desktop_screens() {
    e2e(|b| async move {
        // Other people's votes, so the results page has something to show.
        b.server.load_votes(1, &[2, 2, 2, 1, 1, 3, 4, 2, 1, 2, 3]);

        b.goto("/polls/").await;
        b.pictures("polls").await;
        b.goto("/login/").await;
        b.pictures("login").await;
        b.goto("/register/").await;
        b.pictures("register").await;

        b.goto("/polls/1/").await;
        b.log_in("test", "test1234").await;
        b.expect_path("/2fa/").await;
        b.pictures("phone").await;
        b.send_code_to(NUMBER, MASKED).await;
        b.pictures("code").await;
        let code = b.server.code_for(MASKED).await;
        b.enter_code(&wrong(&code)).await;
        b.expect_text("That code is not right.").await;
        b.pictures("code-wrong").await;
        b.enter_code(&code).await;
        b.expect_path("/polls/1/").await;
        b.pictures("poll").await;
        b.press("Vote").await;
        b.expect_text("You didn't select a choice.").await;
        b.pictures("poll-no-choice").await;
        b.vote("A golden retriever").await;
        b.expect_text("A golden retriever (your vote) 6 votes · 50%")
            .await;
        b.pictures("results").await;
        b.follow("Vote again").await;
        b.pictures("poll-voted").await;
        b.goto("/account/password/").await;
        b.expect_text("Change your password").await;
        b.pictures("password").await;

        b.goto("/polls/999/").await;
        assert_eq!(b.status().await, 404);
        b.expect_text("Page not found").await;
        b.pictures("error").await;

        // A returning user: the proven number, and replacing it.
        b.goto("/polls/").await;
        b.press("Log out").await;
        b.goto("/polls/1/").await;
        b.log_in("test", "test1234").await;
        b.expect_text("We will send a 6-digit code by text message to")
            .await;
        b.pictures("phone-known").await;
        b.follow("Use a different number").await;
        b.expect_text("Your password").await;
        b.pictures("phone-change").await;
    })
    .await;
}

/// A staff user made with `pollstr createuser --staff`: the dashboard, a poll with choices added
/// through the admin (on the public list at once), one scheduled (not on it), a fixture
/// uploaded (on it), the users; a screenshot of each admin page.
async fn a_staff_user_adds_and_schedules_polls_and_loads_a_fixture_in_the_admin() {
    e2e(|b| async move {
        b.server.createuser("boss", "purple-otter-42", &["--staff"]);
        b.goto("/admin/").await;
        b.expect_path("/login/").await;
        b.log_in("boss", "purple-otter-42").await;
        b.expect_path("/2fa/").await;
        let (number, masked) = ("+44 7400 600022", "+44 •••• ••0022");
        b.send_code_to(number, masked).await;
        let code = b.server.code_for(masked).await;
        b.enter_code(&code).await;
        b.expect_path("/admin/").await;
        b.expect_text("Dashboard").await;
        b.expect_text("3 polls").await;
        b.pictures("admin-dashboard").await;

        // A poll with three choices, published now.
        b.follow("Polls").await;
        b.expect_path("/admin/polls/").await;
        b.pictures("admin-polls").await;
        b.follow("Add a poll").await;
        b.expect_path("/admin/polls/new/").await;
        b.fill("#id_question_text", "Which season is best?").await;
        b.fill("#id_choice_0_text", "Spring").await;
        b.fill("#id_choice_1_text", "Summer").await;
        b.fill("#id_choice_2_text", "Autumn").await;
        b.press("Save").await;
        b.expect_text("The poll “Which season is best?” was added.")
            .await;
        // Reordered, and a fourth choice, by keyboard alone.
        b.fill("#id_choice_2_order", "0").await;
        b.find("#id_choice_3_text").await;
        b.tab_to("#id_choice_3_text").await;
        b.type_text("Winter").await;
        b.tab_to("button[type=submit].btn").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_text("was changed").await;
        b.pictures("admin-poll").await;
        b.goto("/polls/").await;
        b.expect_text("Which season is best?").await;
        b.expect_text("Autumn Spring Summer Winter").await;

        // A second one, scheduled: not on the public list.
        b.goto("/admin/polls/new/").await;
        b.fill("#id_question_text", "Who wins next year?").await;
        b.js(
            "document.querySelector('#id_pub_date').value = '2999-01-01'; \
             document.querySelector('#id_pub_time').value = '09:00';",
            vec![],
        )
        .await;
        b.fill("#id_choice_0_text", "Us").await;
        b.fill("#id_choice_1_text", "Them").await;
        b.press("Save").await;
        b.expect_text("It is scheduled").await;
        b.goto("/admin/polls/?date=scheduled").await;
        b.expect_text("Who wins next year?").await;
        b.goto("/polls/").await;
        let polls = b.texts(".poll-card h2").await;
        assert!(
            !polls.contains(&"Who wins next year?".to_string()),
            "a scheduled poll is not listed: {polls:?}"
        );
        assert_eq!(polls.len(), 4, "{polls:?}");

        // A fixture by upload.
        b.goto("/admin/fixtures/").await;
        b.pictures("admin-fixtures").await;
        let file = b.server.dir.path().join("upload.json");
        std::fs::write(
            &file,
            r#"[{"model": "polls.question", "pk": 50, "fields": {"question_text": "Tea or coffee?", "pub_date": "2021-05-01T08:00:00Z"}},
               {"model": "polls.choice", "pk": 500, "fields": {"question": 50, "choice_text": "Tea", "votes": 7}},
               {"model": "polls.choice", "pk": 501, "fields": {"question": 50, "choice_text": "Coffee", "votes": 5}}]"#,
        )
        .unwrap();
        b.find("#id_file")
            .await
            .send_keys(&file.display().to_string())
            .await
            .expect("choose the file");
        b.press("Load").await;
        b.expect_path("/admin/fixtures/").await;
        b.expect_text("upload.json: Installed 3 object(s) from 1 fixture(s)")
            .await;
        b.goto("/polls/").await;
        b.expect_text("Tea or coffee?").await;

        // The users, and one of them.
        b.goto("/admin/users/").await;
        b.expect_text("2 users.").await;
        b.pictures("admin-users").await;
        b.follow("test").await;
        b.expect_text("Second factors").await;
        b.pictures("admin-user").await;
        b.goto("/admin/").await;
        b.expect_text("admin action").await;
    })
    .await;
}

/// A user forgot their password: an admin makes a reset link on the user's page and gives it to
/// them; the user opens it, types the new password twice by keyboard alone, logs in with it and
/// still proves their phone before a poll opens; the link then no longer works.
async fn a_forgotten_password_is_reset_with_an_admins_link_then_the_second_factor() {
    e2e(|b| async move {
        b.server.createuser("boss", "purple-otter-42", &["--staff"]);
        b.goto("/admin/users/").await;
        b.expect_path("/login/").await;
        b.log_in("boss", "purple-otter-42").await;
        b.expect_path("/2fa/").await;
        let (number, masked) = ("+44 7400 600022", "+44 •••• ••0022");
        b.send_code_to(number, masked).await;
        let code = b.server.code_for(masked).await;
        b.enter_code(&code).await;
        b.expect_path("/admin/users/").await;
        b.follow("test").await;
        b.follow("Make a password-reset link").await;
        b.expect_text("Make a password-reset link for test?").await;
        b.pictures("admin-reset-link-confirm").await;
        b.press("Make the link").await;
        b.expect_text("Password-reset link for test").await;
        b.pictures("admin-reset-link").await;
        let link = b.value("#reset_link").await;
        let path = link[link.find("/account/reset/").expect("a reset link")..].to_string();
        b.press("Log out").await;
        b.expect_path("/polls/").await;

        b.goto(&path).await;
        b.expect_text("Choose a new password").await;
        b.pictures("password-reset").await;
        // The first field has the focus (autofocus).
        b.expect_focus("#id_new_password1").await;
        b.type_text("violet-heron-77").await;
        b.tab_to("#id_new_password2").await;
        b.type_text("violet-heron-77").await;
        b.tab_to("button[type=submit].btn").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_path("/login/").await;
        b.expect_text("Your password was reset").await;
        b.log_in("test", "violet-heron-77").await;
        b.goto("/polls/1/").await;
        b.expect_path("/2fa/").await;
        b.send_code_to(NUMBER, MASKED).await;
        let code = b.server.code_for(MASKED).await;
        b.enter_code(&code).await;
        b.expect_path("/polls/1/").await;
        b.expect_text("What is your favorite kind of dog?").await;
        b.press("Log out").await;

        b.goto(&path).await;
        b.expect_text("This link no longer works").await;
        assert_eq!(b.status().await, 410);
        b.pictures("password-reset-gone").await;
    })
    .await;
}

/// By keyboard: an address added on `/account/` and confirmed with the link the console mailer
/// printed (phone size); then, the password forgotten, *Forgot your password?* on the login
/// page, the mailed link, the new password twice, the second factor still asked, and a poll
/// (desktop size). The new pages are checked and pictured at both sizes.
async fn an_email_is_confirmed_then_a_forgotten_password_is_reset_by_mail() {
    e2e(|b| async move {
        b.set_viewport(PHONE).await;
        b.goto("/account/").await;
        b.expect_path("/login/").await;
        b.log_in("test", "test1234").await;
        b.expect_path("/2fa/").await;
        b.send_code_to(NUMBER, MASKED).await;
        let code = b.server.code_for(MASKED).await;
        b.enter_code(&code).await;
        b.expect_path("/account/").await;
        b.tab_to("#id_email").await;
        b.type_text("ada@example.com").await;
        b.tab_to("form[action='/account/email/'] button").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_path("/account/").await;
        b.expect_text("A confirmation link was sent to ada@example.com")
            .await;
        let link = b.server.mailed_link("/account/email/confirm/").await;
        b.goto(&link).await;
        b.expect_text("Confirm your email address").await;
        b.expect_focus("button[type=submit].btn").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_path("/account/").await;
        b.expect_text("ada@example.com (confirmed)").await;
        b.press("Log out").await;
        b.expect_path("/polls/").await;

        b.set_viewport(DESKTOP).await;
        b.goto("/login/").await;
        b.tab_to("a[href='/password-reset/']").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_path("/password-reset/").await;
        b.expect_text("Forgot your password?").await;
        b.pictures("password-reset-request").await;
        b.expect_focus("#id_login").await;
        b.type_text("test").await;
        b.tab_to("form[action='/password-reset/'] button").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_path("/password-reset/sent/").await;
        b.expect_text("Check your mail").await;
        b.pictures("password-reset-sent").await;
        let link = b.server.mailed_link("/account/reset/").await;
        b.goto(&link).await;
        b.expect_text("Choose a new password").await;
        b.expect_focus("#id_new_password1").await;
        b.type_text("amber-falcon-58").await;
        b.tab_to("#id_new_password2").await;
        b.type_text("amber-falcon-58").await;
        b.tab_to("button[type=submit].btn").await;
        b.key_and_wait(Key::Enter).await;
        b.expect_path("/login/").await;
        b.expect_text("Your password was reset").await;
        b.log_in("test", "amber-falcon-58").await;
        b.goto("/polls/1/").await;
        // The reset did not skip the second factor: the proven number gets a code.
        b.expect_path("/2fa/").await;
        b.expect_text(&format!(
            "We will send a 6-digit code by text message to {MASKED}"
        ))
        .await;
        b.tab_to("form[action='/2fa/create/'] button[type=submit]")
            .await;
        b.key_and_wait(Key::Enter).await;
        b.expect_path("/2fa/verify/").await;
        let code = b.server.code_for(MASKED).await;
        b.enter_code(&code).await;
        b.expect_path("/polls/1/").await;
        b.expect_text("What is your favorite kind of dog?").await;
    })
    .await;
}

/// Staff give a poll a closing time, results shown only after it closes and up to two answers;
/// a voter ticks two checkboxes, is told the results come at the close and copies the receipt
/// shown once; staff close it now; the voter sees the final results, finds the receipt's hash
/// on both chosen lines of the audit file, whose SHA-256 the page shows, and the list marks the
/// poll closed (docs/polls.md).
async fn staff_close_a_poll_of_two_answers_a_voter_picks_two_and_checks_the_seal() {
    e2e(|b| async move {
        b.server.createuser("boss", "purple-otter-42", &["--staff"]);
        b.goto("/admin/polls/1/").await;
        b.log_in("boss", "purple-otter-42").await;
        let (number, masked) = ("+44 7400 600033", "+44 •••• ••0033");
        b.send_code_to(number, masked).await;
        let code = b.server.code_for(masked).await;
        b.trust_this_browser().await;
        b.enter_code(&code).await;
        b.expect_path("/admin/polls/1/").await;
        b.js(
            "document.querySelector('#id_close_date').value = '2999-01-01'; \
             document.querySelector('#id_close_time').value = '09:00';",
            vec![],
        )
        .await;
        b.js(
            "document.querySelector('#id_results_visibility').value = 'closed';",
            vec![],
        )
        .await;
        b.fill("#id_max_choices", "2").await;
        b.press("Save").await;
        b.expect_text("was changed").await;
        assert_eq!(b.value("#id_close_date").await, "2999-01-01");
        assert_eq!(b.value("#id_results_visibility").await, "closed");
        assert_eq!(b.value("#id_max_choices").await, "2");
        b.pictures("admin-poll-closing").await;
        b.press("Log out").await;

        // The voter: the poll says when it closes; after the vote, the results wait.
        b.goto("/polls/1/").await;
        b.log_in("test", "test1234").await;
        b.send_code_to(NUMBER, MASKED).await;
        let code = b.server.code_for(MASKED).await;
        b.enter_code(&code).await;
        b.expect_path("/polls/1/").await;
        b.expect_text("Voting closes at 2999-01-01 09:00 UTC.")
            .await;
        let links = b.texts("a").await;
        assert!(!links.contains(&"See results".to_string()), "{links:?}");
        // Two answers: checkboxes.
        b.expect_text("Choose up to 2").await;
        let boxes = b
            .js(
                "return document.querySelectorAll('input[name=choice][type=checkbox]').length",
                vec![],
            )
            .await;
        assert_eq!(boxes.as_u64(), Some(4));
        b.pictures("poll-several").await;
        b.vote_for(&["A beagle", "A cat"]).await;
        b.expect_path("/polls/1/").await;
        b.expect_text("The results of this poll are shown when it closes.")
            .await;
        // The receipt, shown once: the voter copies it from the message.
        let shown = b.texts(".messages").await.join(" ");
        let at = shown.find("Your receipt: ").expect("a receipt") + "Your receipt: ".len();
        let receipt = shown[at..at + 39].to_string();
        let receipt_hash = pollstr::polls::receipt::hash_of(&receipt).expect("a receipt");
        b.pictures("poll-receipt").await;
        b.goto("/polls/1/").await;
        assert!(!b.texts("body").await.join(" ").contains(&receipt));
        b.press("Log out").await;

        // Staff close it now.
        b.goto("/admin/polls/1/").await;
        b.log_in("boss", "purple-otter-42").await;
        b.expect_path("/admin/polls/1/").await;
        b.press("Close now").await;
        b.expect_text("is closed: its results are final").await;
        b.press("Log out").await;

        // The voter sees the final results, and the list shows the poll closed, last.
        b.goto("/polls/1/").await;
        b.log_in("test", "test1234").await;
        b.press("Send code").await;
        b.expect_path("/2fa/verify/").await;
        let code = b.server.code_for(MASKED).await;
        b.enter_code(&code).await;
        b.expect_path("/polls/1/").await;
        b.expect_text("FINAL RESULTS").await;
        b.expect_text("A beagle (your vote) 1 vote · 100%").await;
        b.expect_text("A cat (your vote) 1 vote · 100%").await;
        b.expect_text("1 voter chose up to 2 each: 2 votes in all")
            .await;
        b.expect_text("These results are final.").await;
        b.expect_text("2 votes from 1 person who proved a phone number")
            .await;
        b.pictures("poll-closed").await;
        // The audit file holds the receipt's hash once, and hashes to the digest shown.
        let audit = b
            .js(
                "return fetch('/polls/1/audit.csv').then(r => r.text())",
                vec![],
            )
            .await;
        let audit = audit.as_str().unwrap().to_string();
        for choice in ["A beagle", "A cat"] {
            assert_eq!(
                audit.matches(&format!("{receipt_hash},{choice}\n")).count(),
                1,
                "{audit}"
            );
        }
        assert_eq!(audit.lines().count(), 3, "{audit}");
        let digest = b.texts("code.digest").await;
        assert_eq!(digest, vec![pollstr::polls::receipt::digest(&audit)]);
        b.goto("/polls/").await;
        let cards = b.texts(".poll-card").await;
        assert!(
            cards.last().is_some_and(
                |c| c.contains("Closed") && c.contains("What is your favorite kind of dog?")
            ),
            "{cards:?}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Running a test: prerequisites, the server, chromedriver, the browser

/// Runs `body` against a fresh server and browser; the browser is closed whatever happens.
async fn e2e<F, Fut>(body: F)
where
    F: FnOnce(Arc<Browser>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Some(what) = missing_prerequisites() {
        panic!("{what} not found (apt-get install chromium chromium-driver)");
    }
    let server = Server::start(&server_binary());
    let driver = Driver::start();
    let browser = Arc::new(Browser::open(&driver, server).await);
    // A panic inside the spawned task comes back here as an error, after the browser is closed.
    let outcome = tokio::spawn(body(browser.clone())).await;
    let _ = browser.client.clone().close().await;
    if outcome.is_ok() {
        browser.server.assert_no_errors();
        let pages = std::mem::take(&mut *browser.pages.lock().unwrap());
        let errors = html_errors(&pages);
        assert!(
            errors.is_empty(),
            "pages that are not valid HTML (the Nu Html Checker):\n  {}",
            errors.join("\n  ")
        );
    }
    drop(browser);
    drop(driver);
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the test was cancelled: {e}"),
        }
    }
}

/// The Nu Html Checker (npm's `vnu-jar`, run with Java), where `.ci/e2e.sh --prepare` installs
/// it: `vnu/` in the target directory, or `POLLSTR_VNU_JAR`.
fn vnu_jar() -> Option<PathBuf> {
    if let Some(jar) = std::env::var_os("POLLSTR_VNU_JAR") {
        return Some(PathBuf::from(jar));
    }
    // This binary is target/debug/deps/e2e-…: the target directory is three levels up.
    let exe = std::env::current_exe().ok()?;
    let jar = exe
        .ancestors()
        .nth(3)?
        .join("vnu/node_modules/vnu-jar/build/dist/vnu.jar");
    jar.is_file().then_some(jar)
}

/// Every error the Nu Html Checker finds in `pages` (path, HTML), one line each. Without the
/// checker (or Java) the check is skipped with a notice, unless the suite is required.
fn html_errors(pages: &[(String, String)]) -> Vec<String> {
    let java_runs = || Command::new("java").arg("-version").output().is_ok();
    let Some(jar) = vnu_jar().filter(|_| java_runs()) else {
        assert!(
            !required(),
            "the Nu Html Checker is missing: run `bash .ci/e2e.sh --prepare` (npm's vnu-jar, Java)"
        );
        eprintln!("notice: the Nu Html Checker (npm's vnu-jar, and Java) not found: pages are not validated (bash .ci/e2e.sh --prepare installs it)");
        return Vec::new();
    };
    if pages.is_empty() {
        return Vec::new();
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let files: Vec<PathBuf> = pages
        .iter()
        .enumerate()
        .map(|(i, (_, html))| {
            let file = dir.path().join(format!("{i}.html"));
            std::fs::write(&file, html).expect("write a page");
            file
        })
        .collect();
    let out = Command::new("java")
        .arg("-jar")
        .arg(&jar)
        .args(["--errors-only", "--format", "json"])
        .args(&files)
        .output()
        .expect("run the Nu Html Checker");
    let report: Value = serde_json::from_slice(&out.stderr).unwrap_or_else(|e| {
        panic!(
            "the Nu Html Checker's answer is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut errors = Vec::new();
    for m in report["messages"].as_array().into_iter().flatten() {
        if m["type"] != "error" && m["subType"] != "fatal" {
            continue;
        }
        let url = m["url"].as_str().unwrap_or("");
        let page = files
            .iter()
            .position(|f| url.ends_with(&format!("/{}", f.file_name().unwrap().to_string_lossy())))
            .map_or("?", |i| pages[i].0.as_str());
        errors.push(format!(
            "{page} line {}: {} ({})",
            m["lastLine"],
            m["message"].as_str().unwrap_or(""),
            m["extract"].as_str().unwrap_or("").trim()
        ));
    }
    errors
}

fn required() -> bool {
    std::env::var("POLLSTR_E2E_REQUIRED").is_ok_and(|v| v == "1" || v == "true")
}

/// The server under test: the binary this `cargo test` built, unless POLLSTR_E2E_BIN names
/// another.
fn server_binary() -> PathBuf {
    std::env::var_os("POLLSTR_E2E_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pollstr")))
}

/// What the suite needs and this machine lacks, if anything.
fn missing_prerequisites() -> Option<String> {
    let bin = server_binary();
    let missing: Vec<String> = [Path::new(CHROMIUM), Path::new(CHROMEDRIVER), &bin]
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// Reads a child's output on a thread; `started` gets the first line containing `marker`.
fn read_lines(
    out: impl std::io::Read + Send + 'static,
    marker: &'static str,
) -> (Arc<Mutex<Vec<String>>>, std::sync::mpsc::Receiver<String>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(i) = line.find(marker) {
                let _ = tx.send(line[i + marker.len()..].trim().to_string());
            }
            sink.lock().unwrap().push(line);
        }
    });
    (lines, rx)
}

/// `pollstr serve` on a fresh SQLite database in a temporary directory, on a free port.
struct Server {
    child: Child,
    bin: PathBuf,
    base: String,
    database_url: String,
    log: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

impl Server {
    fn command(bin: &Path, dir: &Path, database_url: &str) -> Command {
        let mut cmd = Command::new(bin);
        // The temporary directory as working directory: no developer's `.env` is read.
        cmd.current_dir(dir)
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "pollstr=info");
        cmd
    }

    fn start(bin: &Path) -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let database_url = format!("sqlite://{}", dir.path().join("e2e.db").display());
        // A free port named up front: passkeys need the browser on http://localhost:<port>
        // (the RP ID `localhost`), and the default WEBAUTHN_ORIGIN takes POLLSTR_ADDR's port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Server::command(bin, dir.path(), &database_url)
            .env("POLLSTR_ADDR", format!("127.0.0.1:{port}"))
            .env("POLLSTR_SEED_DEMO", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let (log, started) = read_lines(child.stderr.take().unwrap(), "listening on ");
        // A server that dies closes the channel at once.
        let base = started
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("pollstr did not start: {:?}", log.lock().unwrap()));
        let base = base.trim_end_matches('/').to_string();
        assert!(base.starts_with("http://127.0.0.1:"), "listening on {base}");
        let base = base.replace("http://127.0.0.1:", "http://localhost:");
        Server {
            child,
            bin: bin.to_path_buf(),
            base,
            database_url,
            log,
            dir,
        }
    }

    /// Votes by other people on `question`, one per listed choice id (`pollstr loaddata`).
    fn load_votes(&self, question: i64, choices: &[i64]) {
        let mut entries = Vec::new();
        for (i, choice) in choices.iter().enumerate() {
            let user = 1000 + i as i64;
            entries.push(json!({"model": "auth.user", "pk": user, "fields": {
                "username": format!("voter{i}"), "password": "!unusable"}}));
            entries.push(json!({"model": "polls.vote", "fields": {
                "user": user, "question": question, "choice": choice}}));
        }
        let file = self.dir.path().join("votes.json");
        std::fs::write(&file, serde_json::to_vec(&entries).unwrap()).unwrap();
        let out = Server::command(&self.bin, self.dir.path(), &self.database_url)
            .arg("loaddata")
            .arg(&file)
            .output()
            .expect("pollstr loaddata");
        assert!(
            out.status.success(),
            "loaddata: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pollstr createuser NAME` with the password on standard input and `flags`.
    fn createuser(&self, name: &str, password: &str, flags: &[&str]) {
        use std::io::Write;
        let mut child = Server::command(&self.bin, self.dir.path(), &self.database_url)
            .args(["createuser", name, "--password-stdin"])
            .args(flags)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pollstr createuser");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().expect("pollstr createuser");
        assert!(
            out.status.success(),
            "createuser: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The last code the console provider printed for the masked number.
    async fn code_for(&self, masked: &str) -> String {
        let needle = format!("code for {masked} is ");
        let since = Instant::now();
        loop {
            let found = self.log.lock().unwrap().iter().rev().find_map(|l| {
                l.find(&needle)
                    .map(|i| l[i + needle.len()..].trim().chars().take(6).collect())
            });
            match found {
                Some(code) => return code,
                None if since.elapsed() > PATIENCE => {
                    panic!("no code for {masked} in {:?}", self.log.lock().unwrap())
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The path of the last link to `prefix` the console mailer printed (waits for it). Log
    /// lines of requests show such paths with `[token]`: those are passed over.
    async fn mailed_link(&self, prefix: &str) -> String {
        let since = Instant::now();
        loop {
            let found = self.log.lock().unwrap().iter().rev().find_map(|l| {
                let at = l.find(prefix)?;
                let path = l[at..].split_whitespace().next()?.to_string();
                (!path.contains('[')).then_some(path)
            });
            match found {
                Some(path) => return path,
                None if since.elapsed() > PATIENCE => {
                    panic!("no {prefix} link in {:?}", self.log.lock().unwrap())
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn assert_no_errors(&self) {
        let log = self.log.lock().unwrap();
        let bad: Vec<&String> = log
            .iter()
            .filter(|l| l.contains("ERROR") || l.contains("panicked"))
            .collect();
        assert!(bad.is_empty(), "the server logged errors: {bad:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver on a free port, in its own process group so that the browsers it starts go
/// with it.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        use std::os::unix::process::CommandExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let (out, started) = read_lines(child.stdout.take().unwrap(), "started successfully");
        if started.recv_timeout(PATIENCE).is_err() {
            let _ = child.kill();
            panic!("chromedriver did not start: {:?}", out.lock().unwrap());
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}/"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any browser a failed test left behind.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A POST (or, with no body, a GET; with `delete`, a DELETE) to `/session/{id}/{path}`:
/// chromedriver's endpoints that fantoccini has no method for.
#[derive(Debug)]
struct SessionPost {
    path: String,
    body: Option<Value>,
    delete: bool,
}

type UrlError = <Url as std::str::FromStr>::Err;

impl WebDriverCompatibleCommand for SessionPost {
    fn endpoint(&self, base: &Url, session: Option<&str>) -> Result<Url, UrlError> {
        base.join(&format!(
            "session/{}/{}",
            session.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &Url) -> (Method, Option<String>) {
        match (&self.body, self.delete) {
            (_, true) => (Method::DELETE, None),
            (Some(body), false) => (Method::POST, Some(body.to_string())),
            (None, false) => (Method::GET, None),
        }
    }
}

/// What a page check found wrong; empty when nothing.
type Problems = Vec<String>;

struct Browser {
    client: Client,
    server: Server,
    viewport: Mutex<Viewport>,
    /// Each checked page's HTML as the server sent it, by path, for the Nu Html Checker.
    pages: Mutex<Vec<(String, String)>>,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(driver: &Driver, server: Server) -> Browser {
        let profile = tempfile::tempdir().expect("a temporary directory");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--no-proxy-server",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--disable-breakpad",
            "--disable-crash-reporter",
            // Chromium's own traffic (autofill, password checks, updates, network time): off,
            // and no host name resolves, so whatever is left cannot leave the machine.
            "--disable-features=AutofillServerCommunication,PasswordLeakDetection,\
             NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
            "--hide-scrollbars",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args, "prefs": {
                "credentials_enable_service": false,
                "profile.password_manager_enabled": false,
                "profile.password_manager_leak_detection": false,
                "autofill.profile_enabled": false,
                "net.network_prediction_options": 2,
                "signin.allowed": false,
            }},
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a Chromium session");
        let b = Browser {
            client,
            server,
            viewport: Mutex::new(DESKTOP),
            pages: Mutex::new(Vec::new()),
            _profile: profile,
        };
        b.set_viewport(DESKTOP).await;
        b
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    async fn session_post(&self, path: &str, body: Value) -> Value {
        self.session_cmd(path, Some(body), false).await
    }

    async fn session_cmd(&self, path: &str, body: Option<Value>, delete: bool) -> Value {
        let path = path.to_string();
        self.client
            .issue_cmd(SessionPost {
                path: path.clone(),
                body,
                delete,
            })
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A Chrome DevTools Protocol command, through chromedriver.
    async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.session_post("goog/cdp/execute", json!({"cmd": cmd, "params": params}))
            .await
    }

    /// Gives the page exactly this viewport, through Chrome's device emulation (the phone size
    /// as a mobile device). It holds across navigations.
    async fn set_viewport(&self, v: Viewport) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": v.width, "height": v.height, "deviceScaleFactor": 1, "mobile": v.mobile}),
        )
        .await;
        let since = Instant::now();
        loop {
            // The screen's size in CSS pixels, whatever the page's layout width.
            let screen = self
                .js(
                    "const v = window.visualViewport;
                     return [Math.round(v.width * v.scale), Math.round(v.height * v.scale)]",
                    vec![],
                )
                .await;
            if screen == json!([v.width, v.height]) {
                break;
            }
            assert!(
                since.elapsed() < PATIENCE,
                "the viewport stays {screen} instead of {}×{}",
                v.width,
                v.height
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        *self.viewport.lock().unwrap() = v;
    }

    // -- Navigation ---------------------------------------------------------------------------

    /// Marks the current document, so that `wait_for_new_page` can tell when it is replaced.
    async fn mark(&self) {
        self.js("window.__e2eOld = true", vec![]).await;
    }

    async fn wait_for_new_page(&self) {
        let since = Instant::now();
        loop {
            let ready = self
                .client
                .execute(
                    "return !window.__e2eOld && document.readyState === 'complete'",
                    vec![],
                )
                .await;
            if matches!(ready, Ok(Value::Bool(true))) {
                break;
            }
            assert!(
                since.elapsed() < PATIENCE,
                "no new page after {:?}",
                self.client.current_url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.check().await;
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&self.url(path))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        self.wait_for_new_page().await;
    }

    async fn find_by(&self, locator: Locator<'_>) -> fantoccini::elements::Element {
        match self.client.find(locator).await {
            Ok(el) => el,
            Err(e) => panic!("{locator:?} on {}: {e}", self.path().await),
        }
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.find_by(Locator::Css(css)).await
    }

    /// Clicks the element and waits for the page it leads to.
    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.mark().await;
        el.click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
        self.wait_for_new_page().await;
    }

    /// Follows the link with this text.
    async fn follow(&self, text: &str) {
        let link = self.find_by(Locator::LinkText(text)).await;
        self.mark().await;
        link.click().await.expect("click the link");
        self.wait_for_new_page().await;
    }

    /// Presses the button with this text.
    async fn press(&self, text: &str) {
        let xpath = format!("//button[normalize-space()='{text}']");
        let button = self.find_by(Locator::XPath(&xpath)).await;
        self.mark().await;
        button.click().await.expect("click the button");
        self.wait_for_new_page().await;
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear the field");
        field.send_keys(value).await.expect("type into the field");
    }

    async fn log_in(&self, username: &str, password: &str) {
        self.fill("#id_username", username).await;
        self.fill("#id_password", password).await;
        self.press("Sign in").await;
    }

    /// On the phone page: types the number and sends a code.
    async fn send_code_to(&self, number: &str, masked: &str) {
        self.fill("#id_number", number).await;
        self.press("Verify").await;
        self.expect_path("/2fa/verify/").await;
        self.expect_text(&format!("We have sent a code to {masked}."))
            .await;
    }

    /// On the code page: ticks "Trust this browser" (the next login skips the second factor).
    async fn trust_this_browser(&self) {
        self.find("input[name=remember]")
            .await
            .click()
            .await
            .expect("tick Trust this browser");
    }

    async fn enter_code(&self, code: &str) {
        self.fill("#id_code", code).await;
        self.press("Confirm").await;
    }

    /// Picks the choice with this text and presses Vote.
    async fn vote(&self, choice: &str) {
        self.vote_for(&[choice]).await;
    }

    /// Picks each choice by its label (a radio button, or checkboxes on a poll of several
    /// answers) and votes.
    async fn vote_for(&self, choices: &[&str]) {
        for choice in choices {
            let xpath = format!("//label[normalize-space()=\"{choice}\"]");
            let label = self.find_by(Locator::XPath(&xpath)).await;
            label.click().await.expect("pick the choice");
        }
        for choice in choices {
            assert!(self.is_checked(choice).await, "{choice} is not checked");
        }
        self.press("Vote").await;
    }

    // -- What the page shows --------------------------------------------------------------------

    /// The current path and query.
    async fn path(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_string(),
            },
            Err(e) => format!("(no URL: {e})"),
        }
    }

    async fn expect_path(&self, path: &str) {
        let now = self.path().await;
        assert!(
            now == path || now.starts_with(&format!("{path}?")),
            "expected {path}, at {now}:\n{}",
            self.text().await
        );
    }

    /// The visible text of the page, whitespace collapsed.
    async fn text(&self) -> String {
        let text = self.js("return document.body.innerText", vec![]).await;
        text.as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    async fn expect_text(&self, needle: &str) {
        let text = self.text().await;
        assert!(
            text.contains(needle),
            "{needle:?} is not on {}:\n{text}",
            self.path().await
        );
    }

    async fn texts(&self, css: &str) -> Vec<String> {
        let v = self
            .js(
                "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText.trim())",
                vec![json!(css)],
            )
            .await;
        serde_json::from_value(v).unwrap()
    }

    async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    async fn is_checked(&self, choice: &str) -> bool {
        let v = self
            .js(
                "const l = [...document.querySelectorAll('label')]
                   .find(l => l.innerText.trim() === arguments[0]);
                 return !!(l && l.control && l.control.checked);",
                vec![json!(choice)],
            )
            .await;
        v == Value::Bool(true)
    }

    /// The HTTP status of the current document.
    async fn status(&self) -> i64 {
        self.js(
            "return performance.getEntriesByType('navigation')[0].responseStatus",
            vec![],
        )
        .await
        .as_i64()
        .unwrap_or_default()
    }

    // -- Keyboard ---------------------------------------------------------------------------------

    async fn key(&self, key: Key) {
        let c: char = key.into();
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: c })
            .then(KeyAction::Up { value: c });
        self.client
            .perform_actions(keys)
            .await
            .expect("press a key");
    }

    /// Presses a key that leads to another page, and waits for it.
    async fn key_and_wait(&self, key: Key) {
        self.mark().await;
        self.key(key).await;
        self.wait_for_new_page().await;
    }

    /// Types into the focused element.
    async fn type_text(&self, text: &str) {
        self.client
            .active_element()
            .await
            .expect("a focused element")
            .send_keys(text)
            .await
            .expect("type");
    }

    /// The focused element: a description, whether it matches `css`, and whether its focus
    /// shows (an outline or a box shadow). `None` when nothing has focus.
    async fn focused_matching(&self, css: &str) -> Option<Focus> {
        let v = self
            .js(
                "const el = document.activeElement;
                 if (!el || el === document.body || el === document.documentElement) return null;
                 const s = getComputedStyle(el);
                 const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
                 const r = el.getBoundingClientRect();
                 return {
                   desc: el.outerHTML.slice(0, 120),
                   matches: el.matches(arguments[0]),
                   visible: outline || s.boxShadow !== 'none',
                   onScreen: r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth,
                 };",
                vec![json!(css)],
            )
            .await;
        serde_json::from_value(v).unwrap()
    }

    /// The element matching `css` has focus, and its focus shows.
    async fn expect_focus(&self, css: &str) {
        let f = self.focused_matching(css).await;
        assert!(
            f.as_ref()
                .is_some_and(|f| f.matches && f.visible && f.on_screen),
            "{css} should have visible focus on {}, not {f:?}",
            self.path().await
        );
    }

    /// Presses Tab until the element matching `css` has focus. Each press must move the focus to
    /// an element whose focus is visible.
    async fn tab_to(&self, css: &str) {
        let mut last: Option<Focus> = None;
        for _ in 0..40 {
            self.key(Key::Tab).await;
            let Some(now) = self.focused_matching(css).await else {
                panic!("Tab left the page before reaching {css}");
            };
            assert!(
                last.as_ref().is_none_or(|l| l.desc != now.desc),
                "Tab did not move the focus from {}",
                now.desc
            );
            assert!(now.visible, "the focus on {} is not visible", now.desc);
            assert!(now.on_screen, "{} has focus off screen", now.desc);
            if now.matches {
                return;
            }
            last = Some(now);
        }
        panic!("Tab never reached {css} on {}", self.path().await);
    }

    // -- Checks on every page -------------------------------------------------------------------

    /// Labels, requests, console and layout of the current page.
    async fn check(&self) {
        let mut problems = self.unlabelled_inputs().await;
        problems.extend(self.foreign_requests().await);
        problems.extend(self.console_errors().await);
        problems.extend(self.layout_problems().await);
        self.keep_html().await;
        if !problems.is_empty() {
            let v = *self.viewport.lock().unwrap();
            panic!(
                "{} at {}×{}:\n  {}",
                self.path().await,
                v.width,
                v.height,
                problems.join("\n  ")
            );
        }
    }

    /// Keeps the current page's HTML for [`html_errors`] at the end: as the server sends it
    /// (fetched again with this browser's cookies, since the DOM hides what the parser mended)
    /// when a GET of its address answers with the page's status; else (a page shown in answer
    /// to a POST: a form with its errors, a wrong code) as the DOM serialises it. Runs after
    /// the console was read, and empties the console of its own request's errors.
    async fn keep_html(&self) {
        let path = self.path().await;
        let html = self
            .js(
                "const nav = performance.getEntriesByType('navigation')[0];
                 const dom = () => (document.doctype ? '<!DOCTYPE html>\\n' : '')
                   + document.documentElement.outerHTML;
                 return fetch(location.href, {credentials: 'same-origin', redirect: 'manual'})
                   .then(r => r.status === nav.responseStatus ? r.text() : dom())
                   .catch(dom);",
                vec![],
            )
            .await;
        self.session_post("se/log", json!({"type": "browser"}))
            .await;
        let mut pages = self.pages.lock().unwrap();
        if let Some(html) = html.as_str().filter(|h| pages.iter().all(|(_, p)| p != h)) {
            pages.push((path, html.to_string()));
        }
    }

    async fn problems(&self, script: &str, args: Vec<Value>) -> Problems {
        serde_json::from_value(self.js(script, args).await).expect("a list of problems")
    }

    /// Every input a person sees has a `<label for>`.
    async fn unlabelled_inputs(&self) -> Problems {
        self.problems(
            "return [...document.querySelectorAll('input, select, textarea')]
               .filter(i => i.type !== 'hidden')
               .filter(i => !i.id || !document.querySelector(`label[for=\"${CSS.escape(i.id)}\"]`))
               .map(i => 'no label for ' + i.outerHTML);",
            vec![],
        )
        .await
    }

    /// Requests that went anywhere but the app.
    async fn foreign_requests(&self) -> Problems {
        self.problems(
            "const base = arguments[0] + '/';
             const urls = [...performance.getEntriesByType('navigation'),
                           ...performance.getEntriesByType('resource')].map(e => e.name);
             for (const el of document.querySelectorAll(
                 'link[href], script[src], img[src], iframe[src], source[src], video[src], audio[src]'))
               urls.push(el.href || el.src);
             return urls.filter(u => !u.startsWith(base)).map(u => 'a request to ' + u);",
            vec![json!(self.server.base)],
        )
        .await
    }

    /// Console messages of level warning or worse since the last check. An error page's own
    /// status is logged as a failed load; that one is expected.
    async fn console_errors(&self) -> Problems {
        let logs = self
            .session_post("se/log", json!({"type": "browser"}))
            .await;
        let status = self.status().await;
        let here = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let expected = format!(
            "{here} - Failed to load resource: the server responded with a status of {status} ("
        );
        logs.as_array()
            .into_iter()
            .flatten()
            .filter(|e| matches!(e["level"].as_str(), Some("SEVERE" | "WARNING")))
            .filter_map(|e| e["message"].as_str())
            .filter(|m| !(status >= 400 && m.starts_with(&expected)))
            .map(|m| format!("console: {m}"))
            .collect()
    }

    /// The page is no wider than the viewport, no element sticks out of it, and no two
    /// elements a person reads or uses overlap.
    async fn layout_problems(&self) -> Problems {
        let width = self.viewport.lock().unwrap().width;
        self.problems(LAYOUT_CHECK, vec![json!(width)]).await
    }

    // -- Pictures ---------------------------------------------------------------------------------

    /// At phone and desktop size: the checks, and a screenshot of the whole page.
    async fn pictures(&self, name: &str) {
        let back = *self.viewport.lock().unwrap();
        for v in [DESKTOP, PHONE] {
            self.set_viewport(v).await;
            self.check().await;
            self.screenshot(&format!("{name}{}", v.suffix), v).await;
        }
        self.set_viewport(back).await;
    }

    async fn screenshot(&self, name: &str, v: Viewport) {
        let height = self
            .js("return document.documentElement.scrollHeight", vec![])
            .await
            .as_i64()
            .unwrap_or(v.height)
            .max(v.height);
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": v.width, "height": height, "scale": 1},
                }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Focus {
    desc: String,
    matches: bool,
    visible: bool,
    on_screen: bool,
}

/// `docs/screenshots/` with `POLLSTR_SCREENSHOTS=1` (the pictures in the README), otherwise
/// `target/e2e-screenshots/`, so that a routine run leaves the tree clean.
fn screenshot_dir() -> PathBuf {
    if std::env::var("POLLSTR_SCREENSHOTS").is_ok_and(|s| s == "1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-screenshots")
    }
}

/// A code that is not `code`.
fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| char::from(b'0' + (c as u8 - b'0' + 1) % 10))
        .collect()
}

const LAYOUT_CHECK: &str = r#"
const width = document.documentElement.clientWidth;
const problems = [];
if (window.innerWidth !== arguments[0]) {
  problems.push(`the page is laid out ${window.innerWidth}px wide on a ${arguments[0]}px screen`);
}
const name = el => {
  const cls = typeof el.className === 'string' && el.className.trim()
    ? '.' + el.className.trim().split(/\s+/).join('.') : '';
  const text = (el.innerText || el.value || '').trim().replace(/\s+/g, ' ').slice(0, 40);
  return `<${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${cls}> "${text}"`;
};
if (document.documentElement.scrollWidth > window.innerWidth) {
  problems.push(`the page is ${document.documentElement.scrollWidth}px wide in a ${window.innerWidth}px window`);
}
const shown = [...document.body.querySelectorAll('*')].filter(el => {
  const s = getComputedStyle(el);
  return s.display !== 'none' && s.visibility !== 'hidden' && !el.closest('.sr-only');
});
for (const el of shown) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;
  if (r.left < -0.5 || r.right > width + 0.5) {
    problems.push(`${name(el)} spans ${Math.round(r.left)}..${Math.round(r.right)}px of a ${width}px viewport`);
  }
}
const readable = shown.filter(el => el.matches(
  'a, button, input:not([type=hidden]), label, select, textarea, h1, h2, h3, p, li, legend, span, strong, em, .alert'));
const rects = readable.map(el => [...el.getClientRects()].filter(r => r.width > 0 && r.height > 0));
for (let i = 0; i < readable.length; i++) {
  for (let j = i + 1; j < readable.length; j++) {
    const a = readable[i], b = readable[j];
    if (a.contains(b) || b.contains(a)) continue;
    const hit = rects[i].some(ra => rects[j].some(rb =>
      Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left) > 1 &&
      Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top) > 1));
    if (hit) problems.push(`${name(a)} overlaps ${name(b)}`);
  }
}
return problems;
"#;
