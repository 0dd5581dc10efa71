//! Prometheus metrics (`pollstr::telemetry`): the scrape is Prometheus text, a login, a code
//! sent, a refusal and a vote each move their series by exactly one, and no label holds a value
//! outside its fixed set (route templates, never a path; ISO codes, never a number). Each test
//! app has its own recorder, so the counts are this app's alone.

use std::collections::BTreeMap;

use pollstr::config::Limits;
use pollstr::limits::Limit;
use reqwest::StatusCode;

use crate::helpers::*;

crate::both_backends!(
    each_event_moves_its_series_by_one,
    metrics_are_off_unless_asked_for,
);

/// Series (`name{k="v",…}` with labels sorted) and their values.
type Scrape = BTreeMap<String, f64>;

/// Parses the Prometheus text format strictly enough to fail on anything malformed: comments
/// are `# HELP`/`# TYPE` (with a known type), every other line is a series and a number.
fn parse(text: &str) -> Scrape {
    let mut out = Scrape::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.split(' ');
            match words.next() {
                Some("HELP") => {}
                Some("TYPE") => {
                    let kind = words.nth(1).unwrap_or("");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{line}"
                    );
                }
                _ => panic!("not a Prometheus comment: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, labels_of(rest.strip_suffix('}').expect(line))),
            None => (series, Vec::new()),
        };
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name: {line}"
        );
        out.insert(series_key(name, &labels), value);
    }
    out
}

/// `k="v",k2="v2"` with Prometheus escapes.
fn labels_of(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "{text}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => panic!("{text}"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        if chars.peek() == Some(&',') {
            chars.next();
        }
        labels.push((key, value));
    }
    labels.sort();
    labels
}

fn series_key(name: &str, labels: &[(String, String)]) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    series_key(name, &labels)
}

async fn scrape(app: &TestApp) -> (String, Scrape) {
    let url = app.metrics.as_ref().expect("metrics on");
    let res = reqwest::get(url).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text().await.unwrap();
    let parsed = parse(&text);
    (text, parsed)
}

/// How much `key` moved between two scrapes.
fn moved(before: &Scrape, after: &Scrape, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

/// Every label value is from its fixed set.
fn check_labels(app: &TestApp, text: &str) {
    let routes: Vec<&str> = pollstr::app::routes(&app.state)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let scopes = [
        "sms_user",
        "sms_number",
        "sms_ip",
        "sms_country",
        "sms_prefix",
        "code_user",
        "login_ip",
        "login_username",
        "signup_ip",
    ];
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('{'))
    {
        let (series, _) = line.rsplit_once(' ').unwrap();
        let (name, rest) = series.split_once('{').unwrap();
        for (k, v) in labels_of(rest.strip_suffix('}').unwrap()) {
            let ok = match k.as_str() {
                "route" => v == "unmatched" || routes.contains(&v.as_str()),
                "method" => ["GET", "POST", "HEAD", "other"].contains(&v.as_str()),
                "status" => v.len() == 3 && v.parse::<u16>().is_ok(),
                "le" => v == "+Inf" || v.parse::<f64>().is_ok(),
                "outcome" if name.starts_with("pollstr_logins") => {
                    ["ok", "failed", "refused", "busy"].contains(&v.as_str())
                }
                "outcome" => [
                    "right",
                    "wrong",
                    "ended",
                    "not_checked",
                    "malformed",
                    "refused",
                ]
                .contains(&v.as_str()),
                "factor" => ["sms", "totp", "recovery", "passkey"].contains(&v.as_str()),
                "limit" => scopes.contains(&v.as_str()),
                "country" => {
                    v == "001"
                        || v == "unknown"
                        || (v.len() == 2 && v.chars().all(|c| c.is_ascii_uppercase()))
                }
                "channel" => ["sms", "voice"].contains(&v.as_str()),
                "state" => ["in_use", "idle"].contains(&v.as_str()),
                "version" => v == env!("CARGO_PKG_VERSION"),
                "backend" => ["sqlite", "postgres"].contains(&v.as_str()),
                _ => false,
            };
            assert!(ok, "label {k}={v:?} of {name} is not in its set");
        }
    }
}

async fn each_event_moves_its_series_by_one(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |c| {
            c.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
            c.limits = Limits {
                login_per_username: vec![Limit {
                    count: 1,
                    window: std::time::Duration::from_secs(3600),
                }],
                ..c.limits.clone()
            };
        },
        None,
    )
    .await;
    app.load(SEED).await;
    app.load(SEED_USER).await;
    let (_, start) = scrape(&app).await;
    assert_eq!(
        start.get(&series(
            "pollstr_build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                (
                    "backend",
                    if backend == Backend::Sqlite {
                        "sqlite"
                    } else {
                        "postgres"
                    }
                )
            ]
        )),
        Some(&1.0)
    );

    // A login.
    let b = app.browser();
    b.login("test", "test1234").await;
    let (_, after_login) = scrape(&app).await;
    let ok = series("pollstr_logins_total", &[("outcome", "ok")]);
    assert_eq!(moved(&start, &after_login, &ok), 1.0);
    let posted = series(
        "pollstr_http_requests_total",
        &[("route", "/login/"), ("method", "POST"), ("status", "303")],
    );
    assert_eq!(moved(&start, &after_login, &posted), 1.0);

    // A code sent, and confirmed: one SMS check, right.
    b.verify_phone(&app, PHONE).await;
    let (_, after_code) = scrape(&app).await;
    // +44 7911 is Guernsey's range, for libphonenumber.
    let gg_sms = [("country", "GG"), ("channel", "sms")];
    for name in ["pollstr_codes_sent_total", "pollstr_codes_confirmed_total"] {
        assert_eq!(
            moved(&after_login, &after_code, &series(name, &gg_sms)),
            1.0,
            "{name}"
        );
    }
    let right = series(
        "pollstr_second_factor_checks_total",
        &[("factor", "sms"), ("outcome", "right")],
    );
    assert_eq!(moved(&after_login, &after_code, &right), 1.0);

    // A vote.
    let csrf = b.get("/polls/1/").await.csrf().unwrap();
    let vote = b
        .post_raw("/polls/1/vote/", &[("choice", "2"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(vote.status, StatusCode::SEE_OTHER);
    let (_, after_vote) = scrape(&app).await;
    assert_eq!(
        moved(
            &after_code,
            &after_vote,
            &series("pollstr_votes_written_total", &[])
        ),
        1.0
    );
    assert_eq!(
        moved(
            &after_code,
            &after_vote,
            &series("pollstr_vote_batch_size_count", &[])
        ),
        1.0
    );

    // A refusal: the second failed login for one username is over LOGIN_LIMIT_PER_USERNAME.
    let other = app.browser();
    let wrong = [("username", "test"), ("password", "not-the-password")];
    assert_eq!(
        other.submit("/login/", "/login/", &wrong).await.status,
        StatusCode::OK
    );
    let (_, before_refusal) = scrape(&app).await;
    assert_eq!(
        other.submit("/login/", "/login/", &wrong).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let (_, after_refusal) = scrape(&app).await;
    let refusal = series(
        "pollstr_limit_refusals_total",
        &[("limit", "login_username")],
    );
    assert_eq!(moved(&before_refusal, &after_refusal, &refusal), 1.0);
    let refused = series("pollstr_logins_total", &[("outcome", "refused")]);
    assert_eq!(moved(&before_refusal, &after_refusal, &refused), 1.0);

    // Paths that are no route, with numbers in them, are one `unmatched` series.
    assert_eq!(
        b.get("/polls/98765432/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.get("/nothing/44791112345/").await.status,
        StatusCode::NOT_FOUND
    );
    let (text, last) = scrape(&app).await;
    assert!(!text.contains("98765432") && !text.contains("44791112345"));
    assert!(!text.contains("7911") && !text.contains("test1234") && !text.contains("\"test\""));
    assert!(last.contains_key(&series(
        "pollstr_http_requests_total",
        &[
            ("route", "/polls/{id}/"),
            ("method", "GET"),
            ("status", "404")
        ]
    )));
    for name in [
        "pollstr_vote_queue_depth",
        "pollstr_hash_queue_depth",
        "pollstr_hash_queue_refusals_total",
    ] {
        assert!(last.contains_key(&series(name, &[])), "{name}");
    }
    assert!(last.contains_key(&series("pollstr_db_connections", &[("state", "idle")])));
    check_labels(&app, &text);
}

async fn metrics_are_off_unless_asked_for(backend: Backend) {
    let app = TestApp::seeded(backend).await;
    assert!(app.metrics.is_none());
    // Never on the public port.
    assert_eq!(
        app.browser().get("/metrics").await.status,
        StatusCode::NOT_FOUND
    );
    let on = spawn_app_with(
        backend,
        |c| c.metrics_addr = Some("127.0.0.1:0".parse().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        on.browser().get("/metrics").await.status,
        StatusCode::NOT_FOUND
    );
    assert!(scrape(&on).await.0.contains("pollstr_build_info"));
}
