//! Sign-up floods: `SIGNUP_LIMIT_PER_IP` holds a burst from one address to its count (reserved
//! before the hash), and sign-ups take at most half of the hash queue, so logins still get in.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use pollstr::limits::Limit;
use pollstr::users::password::HashQueue;
use reqwest::{redirect, StatusCode};

use crate::both_backends;
use crate::helpers::{spawn_app_with, Backend, TestApp, SEED, STRONG};

both_backends!(
    a_burst_of_sign_ups_from_one_address_is_held_to_the_limit,
    logins_get_in_during_a_sign_up_flood,
);

const LIMITED: &str = "Too many sign-ups from your network. Please try again in";
const BUSY: &str = "Many people are signing up right now.";

async fn app_with(backend: Backend, tweak: impl FnOnce(&mut pollstr::config::Config)) -> TestApp {
    let app = spawn_app_with(backend, tweak, None).await;
    app.load(SEED).await;
    app
}

/// Ten sign-ups at once from one address against a limit of three: three accounts are made,
/// the seven others are told when to try again (429, `Retry-After` the window's hour) and
/// recorded. Forms refused before the hash (passwords that differ) do not count.
async fn a_burst_of_sign_ups_from_one_address_is_held_to_the_limit(backend: Backend) {
    let app = app_with(backend, |c| {
        c.limits.signup_per_ip = Limit::parse_list("3/1h").unwrap();
    })
    .await;
    let users = app.scalar("SELECT COUNT(*) FROM users").await;
    let b = app.browser();
    for i in 0..5 {
        let page = b
            .submit(
                "/register/",
                "/register/",
                &[
                    ("username", &format!("typo{i}")),
                    ("password1", STRONG),
                    ("password2", "something else"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.has("The two password fields didn't match."));
    }
    let pages = b
        .burst("/register/", "/register/", 10, |i| {
            vec![
                ("username", format!("newcomer{i}")),
                ("password1", STRONG.to_string()),
                ("password2", STRONG.to_string()),
            ]
        })
        .await;
    let created = pages
        .iter()
        .filter(|p| p.status == StatusCode::SEE_OTHER)
        .count();
    let refused: Vec<_> = pages
        .iter()
        .filter(|p| p.status == StatusCode::TOO_MANY_REQUESTS && p.has(LIMITED))
        .collect();
    assert_eq!((created, refused.len()), (3, 7));
    assert_eq!(app.scalar("SELECT COUNT(*) FROM users").await, users + 3);
    for page in refused {
        let wait: u64 = page.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((3590..=3600).contains(&wait), "Retry-After: {wait}");
        assert!(page.has("60 minutes"), "{}", page.text());
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM security_events WHERE kind = 'signup_refused'")
            .await,
        7
    );
}

/// Sign-ups from many clients at once, more than the whole hash queue holds, with no sign-up
/// limit in the way: once they fill their share of the queue (some are told "try again in a
/// moment"), logins are still admitted, each in turn.
async fn logins_get_in_during_a_sign_up_flood(backend: Backend) {
    let app = app_with(backend, |c| {
        c.limits.signup_per_ip = Limit::parse_list("100000/1h").unwrap();
    })
    .await;
    let queue = HashQueue::default();
    let workers = queue.capacity() + queue.signup_share();
    let (token, cookie) = anonymous_form(&app).await;
    // No cookie jar: a sign-up's new session must not replace the anonymous token.
    let client = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let busy = Arc::new(AtomicUsize::new(0));
    let created = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::new();
    for w in 0..workers {
        let (client, url) = (client.clone(), format!("{}/register/", app.addr));
        let (token, cookie) = (token.clone(), cookie.clone());
        let (stop, busy, created) = (stop.clone(), busy.clone(), created.clone());
        flood.push(tokio::spawn(async move {
            for k in 0..200 {
                if stop.load(SeqCst) {
                    break;
                }
                let name = format!("flood{w}x{k}");
                let form = [
                    ("username", name.as_str()),
                    ("password1", STRONG),
                    ("password2", STRONG),
                    ("csrf_token", token.as_str()),
                ];
                let res = client
                    .post(&url)
                    .header("cookie", cookie.as_str())
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                let status = res.status();
                let body = res.text().await.unwrap_or_default();
                match status {
                    StatusCode::SEE_OTHER => {
                        created.fetch_add(1, SeqCst);
                    }
                    StatusCode::TOO_MANY_REQUESTS if body.contains(BUSY) => {
                        busy.fetch_add(1, SeqCst);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    other => panic!("a sign-up answered {other}: {body}"),
                }
            }
        }));
    }
    // The flood has filled the sign-ups' share.
    for _ in 0..3000 {
        if busy.load(SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(busy.load(SeqCst) > 0, "the flood never filled its share");
    for _ in 0..3 {
        let page = app
            .browser()
            .submit(
                "/login/",
                "/login/",
                &[("username", "test"), ("password", "test1234")],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "a login during the flood: {}",
            page.text()
        );
    }
    stop.store(true, SeqCst);
    for worker in flood {
        worker.await.unwrap();
    }
    assert!(created.load(SeqCst) > 0, "sign-ups went on meanwhile");
}

/// The login and sign-up forms' anonymous CSRF token and the cookie that carries it.
async fn anonymous_form(app: &TestApp) -> (String, String) {
    let page = app.browser().get("/register/").await;
    let token = page.csrf().unwrap();
    let cookie = page
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("pollstr_csrf="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    (token, cookie)
}
