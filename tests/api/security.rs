//! CSRF, open redirects, bad input, escaping, error pages.

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

both_backends!(
    every_post_route_refuses_a_forged_post,
    every_post_needs_the_session_token,
    posts_from_another_site_are_refused_even_with_a_token,
    the_origin_must_name_the_scheme_the_site_is_served_by,
    next_never_leaves_the_site,
    oversized_and_malformed_bodies_are_4xx,
    user_text_is_escaped,
    error_pages_share_the_design,
    healthz_answers,
    session_cookies_carry_their_flags,
);

/// The session cookie: `HttpOnly` (no script reads it), `SameSite=Lax` (not sent on a cross-site
/// POST), `Path=/`, and `Secure` when `SESSION_SECURE` is on (the default off loopback).
async fn session_cookies_carry_their_flags(backend: Backend) {
    for secure in [false, true] {
        let app =
            crate::helpers::spawn_app_with(backend, |c| c.session_secure = secure, None).await;
        app.load(crate::helpers::SEED).await;
        let b = app.browser();
        let form = b.get("/login/").await;
        let token = form.csrf().unwrap();
        let csrf_cookie = form
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("pollstr_csrf="))
            .unwrap()
            .to_string();
        // The jar will not send a Secure cookie over plain HTTP: send the anonymous token by hand.
        let cookie_value = csrf_cookie.split(';').next().unwrap().to_string();
        let page = b
            .post_with_headers(
                "/login/",
                &[
                    ("username", "test"),
                    ("password", "test1234"),
                    ("csrf_token", &token),
                ],
                &[("cookie", &cookie_value)],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let session = page
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("pollstr_session="))
            .unwrap()
            .to_string();
        let attributes: Vec<String> = session
            .split(';')
            .skip(1)
            .map(|a| a.trim().to_ascii_lowercase())
            .collect();
        for wanted in ["httponly", "samesite=lax", "path=/"] {
            assert!(
                attributes.iter().any(|a| a == wanted),
                "{wanted}: {session}"
            );
        }
        assert_eq!(
            attributes.iter().any(|a| a == "secure"),
            secure,
            "{session}"
        );
        assert_eq!(csrf_cookie.contains("; Secure"), secure, "{csrf_cookie}");
    }
}

/// A site is a scheme, a host and a port: `https://` this host is another site to the http test
/// site. The site is https behind a trusted proxy that says so in `X-Forwarded-Proto` (then an
/// `http://` origin is the other site), or with `SESSION_SECURE`; anyone else's header is
/// ignored.
async fn the_origin_must_name_the_scheme_the_site_is_served_by(backend: Backend) {
    const REFUSED: StatusCode = StatusCode::FORBIDDEN;
    const CHECKED: StatusCode = StatusCode::OK;
    for (settings, cases) in [
        (
            "plain http",
            vec![
                (vec![("origin", "https://{host}")], REFUSED),
                (vec![("referer", "https://{host}/login/")], REFUSED),
                (vec![("origin", "http://{host}")], CHECKED),
                (vec![("referer", "http://{host}/login/")], CHECKED),
                // Not a trusted proxy: its X-Forwarded-Proto is ignored.
                (
                    vec![("origin", "https://{host}"), ("x-forwarded-proto", "https")],
                    REFUSED,
                ),
                (
                    vec![("origin", "http://{host}"), ("x-forwarded-proto", "https")],
                    CHECKED,
                ),
            ],
        ),
        (
            "trusted proxy",
            vec![
                (
                    vec![("origin", "https://{host}"), ("x-forwarded-proto", "https")],
                    CHECKED,
                ),
                (
                    vec![("origin", "http://{host}"), ("x-forwarded-proto", "https")],
                    REFUSED,
                ),
                (vec![("origin", "https://{host}")], REFUSED),
                (vec![("origin", "http://{host}")], CHECKED),
                // A trusted origin is trusted whatever the scheme of the request.
                (vec![("origin", "https://polls.example.com")], CHECKED),
            ],
        ),
        (
            "session secure",
            vec![
                (vec![("origin", "https://{host}")], CHECKED),
                (vec![("origin", "http://{host}")], REFUSED),
            ],
        ),
    ] {
        let app = crate::helpers::spawn_app_with(
            backend,
            |c| match settings {
                "trusted proxy" => {
                    c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
                    c.csrf_trusted_origins = vec!["https://polls.example.com".into()];
                }
                "session secure" => c.session_secure = true,
                _ => {}
            },
            None,
        )
        .await;
        let host = app.addr.trim_start_matches("http://").to_string();
        for (headers, want) in cases {
            let headers: Vec<(&str, String)> = headers
                .into_iter()
                .map(|(k, v)| (k, v.replace("{host}", &host)))
                .collect();
            let (status, body) = wrong_login_with(&app, &headers).await;
            assert_eq!(status, want, "{settings}: {headers:?}: {body}");
            let expected = if want == REFUSED {
                "did not come from Pollstr"
            } else {
                "Your username and password didn"
            };
            assert!(body.contains(expected), "{settings}: {headers:?}: {body}");
        }
    }
}

/// Posts the login form (a wrong password, with a valid anonymous token) with `headers`: the
/// status and body. The token's cookie is sent by hand, as a browser would over https.
async fn wrong_login_with(app: &TestApp, headers: &[(&str, String)]) -> (StatusCode, String) {
    let form = app.browser().get("/login/").await;
    let token = form.csrf().unwrap();
    let cookie = form
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("pollstr_csrf="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    let mut request = reqwest::Client::new()
        .post(format!("{}/login/", app.addr))
        .header("cookie", cookie)
        .form(&[
            ("username", "test"),
            ("password", "wrong"),
            ("csrf_token", token.as_str()),
        ]);
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let res = request.send().await.unwrap();
    (res.status(), res.text().await.unwrap_or_default())
}

async fn posts_from_another_site_are_refused_even_with_a_token(backend: Backend) {
    let app = crate::helpers::spawn_app_with(
        backend,
        |c| c.csrf_trusted_origins = vec!["https://polls.example.com".into()],
        None,
    )
    .await;
    app.load(crate::helpers::SEED).await;
    let b = app.verified_browser().await;
    let host = app.addr.trim_start_matches("http://").to_string();
    let own = app.addr.clone();
    let own_page = format!("{own}/polls/1/");
    let vote = |headers: Vec<(&'static str, String)>| {
        let b = &b;
        async move {
            let token = b.get("/polls/1/").await.csrf().unwrap();
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            b.post_with_headers(
                "/polls/1/vote/",
                &[("choice", "1"), ("csrf_token", token.as_str())],
                &headers,
            )
            .await
        }
    };
    for headers in [
        vec![("origin", "https://evil.example".to_string())],
        vec![("origin", "null".to_string())],
        vec![("origin", format!("http://{host}.evil.example"))],
        vec![("origin", format!("https://evil.example@{host}"))],
        vec![("referer", "https://evil.example/polls/1/".to_string())],
        vec![("referer", format!("http://{host}.evil.example/"))],
        // The Origin decides when both are sent.
        vec![
            ("origin", "https://evil.example".to_string()),
            ("referer", own_page.clone()),
        ],
    ] {
        let page = vote(headers.clone()).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(page.has("did not come from Pollstr"), "{headers:?}");
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM votes").await, 0);
    for headers in [
        vec![],
        vec![("origin", own.clone())],
        vec![("origin", own.to_uppercase().replace("HTTP://", "http://"))],
        vec![("referer", own_page.clone())],
        vec![("origin", "https://polls.example.com".to_string())],
    ] {
        let page = vote(headers.clone()).await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "{headers:?}: {}",
            page.text()
        );
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM votes").await, 1);
}

const OFF_SITE: &[&str] = &[
    "https://evil.example/",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "javascript:alert(1)",
    "/%2F%2Fevil.example",
    "%2F%2Fevil.example",
    "/%5Cevil.example",
    "/%252F%252Fevil.example",
    "/\t/evil.example",
    "http:evil.example",
];

async fn every_post_needs_the_session_token(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.verified_browser().await;
    let good = b.get("/polls/1/").await.csrf().unwrap();
    for (path, fields) in [
        ("/polls/1/vote/", vec![("choice", "1")]),
        ("/logout/", vec![]),
        (
            "/login/",
            vec![("username", "test"), ("password", "test1234")],
        ),
        (
            "/register/",
            vec![
                ("username", "x1"),
                ("password1", "Xk3!pq9z#Lm"),
                ("password2", "Xk3!pq9z#Lm"),
            ],
        ),
        ("/2fa/create/", vec![("number", crate::helpers::PHONE)]),
        ("/2fa/confirm/", vec![("code", "123456")]),
    ] {
        for token in [None, Some("forged-token"), Some("")] {
            let mut f = fields.clone();
            if let Some(t) = token {
                f.push(("csrf_token", t));
            }
            let page = b.post_raw(path, &f).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} {token:?}");
            assert!(page.has("This form has expired or did not come from Pollstr."));
        }
    }
    // Nothing changed: no vote, no new user, still logged in and verified, no code sent.
    assert_eq!(app.scalar("SELECT COUNT(*) FROM votes").await, 0);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM users").await, 1);
    assert!(app.no_code_sent());
    assert_eq!(b.get("/polls/1/").await.status, StatusCode::OK);
    // Another session's token does not work either.
    let other = app.browser();
    let theirs = other.get("/login/").await.csrf().unwrap();
    assert_ne!(theirs, good);
    let page = b
        .post_raw(
            "/polls/1/vote/",
            &[("choice", "1"), ("csrf_token", &theirs)],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

async fn next_never_leaves_the_site(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    for bad in OFF_SITE {
        let b = app.browser();
        let page = b.login_next("test", "test1234", bad).await;
        assert_eq!(
            page.location.as_deref(),
            Some("/polls/"),
            "login next={bad:?}"
        );
        // The login form never renders it back either.
        let form = b
            .get(&format!(
                "/login/?next={}",
                pollstr::web::next::url_encode(bad)
            ))
            .await;
        assert!(
            form.body.contains("name=\"next\" value=\"/polls/\""),
            "{bad:?}"
        );
    }
    // The same rule at the end of verification.
    let b = app.browser();
    b.login("test", "test1234").await;
    let sent = b
        .submit(
            "/2fa/",
            "/2fa/create/",
            &[
                ("number", crate::helpers::PHONE),
                ("next", "//evil.example"),
            ],
        )
        .await;
    assert_eq!(sent.location.as_deref(), Some("/2fa/verify/?next=/polls/"));
    let code = app.code_for(crate::helpers::PHONE_E164).await;
    let done = b
        .submit(
            "/2fa/verify/",
            "/2fa/confirm/",
            &[("code", &code), ("next", "https://evil.example/")],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/polls/"));
    // A local next survives.
    let b = app.browser();
    let page = b.login_next("test", "test1234", "/polls/2/results/").await;
    assert_eq!(page.location.as_deref(), Some("/polls/2/results/"));
}

async fn oversized_and_malformed_bodies_are_4xx(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let b = app.browser();
    let csrf = b.get("/login/").await.csrf().unwrap();
    // A body that is not a form.
    let res = b
        .client
        .post(b.url("/login/"))
        .header("content-type", "application/json")
        .body(format!("{{\"csrf_token\":\"{csrf}\"}}"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    // Invalid percent-encoding / UTF-8 in the form.
    let res = b
        .client
        .post(b.url("/login/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={csrf}&username=%ff%fe&password=%"))
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_client_error() || res.status() == StatusCode::OK,
        "{}",
        res.status()
    );
    assert!(!res.status().is_server_error());
    // Overlong username on login is an ordinary failure.
    let long = "u".repeat(2000);
    let page = b
        .submit(
            "/login/",
            "/login/",
            &[("username", &long), ("password", "x")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    // Last: after a 413 the server closes the connection without reading the body.
    let huge = "x".repeat(100_000);
    let page = b
        .post_raw(
            "/login/",
            &[
                ("username", &huge),
                ("password", "x"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(page.has("Too much data"));
}

async fn user_text_is_escaped(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    app.load(r#"[{"model":"polls.question","pk":50,"fields":{"question_text":"<script>alert('x')</script>?","pub_date":"2020-01-01T00:00:00Z"}}]"#).await;
    let page = app.browser().get("/polls/").await;
    assert!(!page.body.contains("<script>alert"));
    assert!(page.body.contains("&#60;script&#62;") || page.body.contains("&lt;script&gt;"));
    let b = app.browser();
    let page = b
        .submit(
            "/login/",
            "/login/",
            &[("username", "<b>bold</b>"), ("password", "x")],
        )
        .await;
    assert!(!page.body.contains("<b>bold</b>"));
}

async fn error_pages_share_the_design(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let page = app.browser().get("/does/not/exist").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        page.body.contains("/static/pollstr.css")
            && page.has("Page not found")
            && page.has("Pollstr")
    );
    let page = app.browser().post_raw("/polls/", &[]).await;
    assert!(page.status == StatusCode::METHOD_NOT_ALLOWED || page.status == StatusCode::FORBIDDEN);
    let page = app.browser().get("/polls/").await;
    assert!(page.headers.contains_key("x-request-id"));
    for (h, value) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ] {
        assert_eq!(page.headers[h], value, "{h}");
    }
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "frame-ancestors 'none'",
        "form-action 'self'",
        "default-src 'self'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    let css = app.browser().get("/static/pollstr.css").await;
    assert_eq!(css.status, StatusCode::OK);
    for missing in ["/static/nope.css", "/static/..%2FCargo.toml", "/static/"] {
        assert_eq!(
            app.browser().get(missing).await.status,
            StatusCode::NOT_FOUND,
            "{missing}"
        );
    }
    assert!(css.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert!(css.headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));
}

async fn healthz_answers(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    let page = app.browser().get("/healthz").await;
    assert_eq!(page.status, StatusCode::OK);
    match &app.db {
        pollstr::db::Db::Sqlite(p) => p.close().await,
        pollstr::db::Db::Postgres(p) => p.close().await,
    }
    let page = app.browser().get("/healthz").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    let page = app.browser().get("/polls/").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.has("Pollstr is briefly unavailable"));
}

/// Every POST route the routers list (`app::routes`) refuses a post without the session's
/// token, and one with it from another site, with 403 before its handler runs, even for a
/// signed-in, verified staff user in sudo mode (the most a forged request could borrow). A
/// new form is on the list by being routed. Only Vonage's callbacks are outside the check:
/// they are signed requests, not a browser's.
async fn every_post_route_refuses_a_forged_post(backend: Backend) {
    use std::sync::Arc;

    use pollstr::two_factor::sms::console::ConsoleVerifier;

    let app = TestApp::seeded(backend).await;
    let b = app.staff_browser().await;
    let config = crate::helpers::test_config(&app.database_url);
    let state = pollstr::app::new_state(
        app.db.clone(),
        config,
        Arc::new(ConsoleVerifier::new(app.db.clone())),
    );
    let posts: Vec<&str> = pollstr::app::routes(&state)
        .into_iter()
        .filter(|(m, _)| m.as_str() == "POST")
        .map(|(_, path)| path)
        .filter(|path| *path != pollstr::two_factor::sms::callbacks::PATH)
        .collect();
    for known in [
        "/login/",
        "/polls/{id}/vote/",
        "/2fa/next/",
        "/admin/fixtures/",
    ] {
        assert!(posts.contains(&known), "{known} is listed: {posts:?}");
    }
    let token = b.get("/polls/1/").await.csrf().unwrap();
    for route in &posts {
        // Each path parameter filled with a real one: poll 1, user 1 (test), a real action, a
        // token.
        let path = route
            .split('/')
            .map(|part| match part {
                "{id}" => "1",
                "{action}" => "deactivate",
                // A reset link's token, well formed (unknown: the check comes first anyway).
                "{token}" => "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                p if p.starts_with('{') => panic!("no value for {p} in {route}: add one here"),
                p => p,
            })
            .collect::<Vec<_>>()
            .join("/");
        let without = b.post_raw(&path, &[]).await;
        let foreign = b
            .post_with_headers(
                &path,
                &[("csrf_token", token.as_str())],
                &[("origin", "https://evil.example")],
            )
            .await;
        for (how, page) in [("without a token", without), ("from another site", foreign)] {
            assert_eq!(
                page.status,
                StatusCode::FORBIDDEN,
                "{path} {how}: {}",
                page.text()
            );
            assert!(page.has("did not come from Pollstr"), "{path} {how}");
        }
    }
    // Nothing happened: still signed in, verified and staff; no vote, no code, no new poll.
    assert_eq!(b.get("/admin/").await.status, StatusCode::OK);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM votes").await, 0);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM questions").await, 3);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE is_active")
            .await,
        1
    );
    assert!(app.no_code_sent());
}
