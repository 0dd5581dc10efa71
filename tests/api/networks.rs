//! Per-address limits behind a trusted proxy count an IPv6 client by its network
//! (`IPV6_LIMIT_PREFIX`, a /64 by default) and an IPv4-mapped address as its IPv4 address; the
//! audit trail keeps the address the client came from.

use pollstr::limits::Limit;
use reqwest::{redirect, StatusCode};

use crate::both_backends;
use crate::helpers::{spawn_app_with, Backend, Browser, TestApp, SEED};

both_backends!(
    addresses_of_one_ipv6_network_share_the_sms_limit,
    addresses_of_one_ipv6_network_share_the_login_limit,
    a_mapped_address_counts_as_its_ipv4_address,
);

/// Behind a trusted proxy on 127.0.0.1 (the test), with `tweak` on top.
async fn behind_proxy(
    backend: Backend,
    tweak: impl FnOnce(&mut pollstr::config::Config),
) -> TestApp {
    let app = spawn_app_with(
        backend,
        |c| {
            c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            c.limits.sms_per_user = Limit::parse_list("100/1h").unwrap();
            c.limits.sms_per_number = Limit::parse_list("100/1h").unwrap();
            tweak(c);
        },
        None,
    )
    .await;
    app.load(SEED).await;
    app
}

/// A browser whose every request the proxy forwards for `ip`.
fn browser_from(app: &TestApp, ip: &str) -> Browser {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", ip.parse().unwrap());
    Browser {
        base: app.addr.clone(),
        client: reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .default_headers(headers)
            .redirect(redirect::Policy::none())
            .build()
            .unwrap(),
        jar,
    }
}

/// `test` logs in from `ip` and asks for a code to `number`: the answer's status.
async fn send_from(app: &TestApp, ip: &str, number: &str) -> StatusCode {
    let b = browser_from(app, ip);
    b.login("test", "test1234").await;
    b.submit("/2fa/", "/2fa/create/", &[("number", number)])
        .await
        .status
}

/// Four addresses of one /64 against `SMS_LIMIT_PER_IP=2/1h`: two codes, then 429; another /64
/// has its own budget. The refused send is recorded with the whole address.
async fn addresses_of_one_ipv6_network_share_the_sms_limit(backend: Backend) {
    let app = behind_proxy(backend, |c| {
        c.limits.sms_per_ip = Limit::parse_list("2/1h").unwrap();
    })
    .await;
    let mut answers = Vec::new();
    for (i, ip) in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "2001:db8:1:2:aaaa:bbbb:cccc:dddd",
        "2001:db8:1:2:ffff:ffff:ffff:ffff",
    ]
    .iter()
    .enumerate()
    {
        answers.push(send_from(&app, ip, &format!("+44 7400 90000{i}")).await);
    }
    let (sent, refused) = (StatusCode::SEE_OTHER, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answers, [sent, sent, refused, refused]);
    assert_eq!(
        send_from(&app, "2001:db8:1:3::1", "+44 7400 900009").await,
        sent
    );
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM security_events \
             WHERE kind = 'code_refused' AND ip = '2001:db8:1:2:ffff:ffff:ffff:ffff'"
        )
        .await,
        1
    );
}

/// `n` wrong passwords for `test`, the i-th from `ip(i)`: how many were checked and how many
/// refused by the failed-login limit.
async fn wrong_passwords_from(
    app: &TestApp,
    n: usize,
    ip: impl Fn(usize) -> String,
) -> (usize, usize) {
    let (mut checked, mut refused) = (0, 0);
    for i in 0..n {
        let page = browser_from(app, &ip(i))
            .submit(
                "/login/",
                "/login/",
                &[("username", "test"), ("password", "wrong")],
            )
            .await;
        match page.status {
            StatusCode::OK if page.has("didn't match") => checked += 1,
            StatusCode::TOO_MANY_REQUESTS if page.has("Too many failed logins") => refused += 1,
            other => panic!("{other}: {}", page.text()),
        }
    }
    (checked, refused)
}

/// Ten addresses of one /64 against `LOGIN_LIMIT_PER_IP=3/15m`: three wrong passwords checked,
/// seven refused; another /64 is checked. With `IPV6_LIMIT_PREFIX=128` each address counts alone.
async fn addresses_of_one_ipv6_network_share_the_login_limit(backend: Backend) {
    let app = behind_proxy(backend, |c| {
        c.limits.login_per_ip = Limit::parse_list("3/15m").unwrap();
    })
    .await;
    let in_one_64 = |i: usize| format!("2001:db8:5:6:{:x}::{:x}", i * 4099, i + 1);
    assert_eq!(wrong_passwords_from(&app, 10, in_one_64).await, (3, 7));
    let other = |_| "2001:db8:5:7::1".to_string();
    assert_eq!(wrong_passwords_from(&app, 1, other).await, (1, 0));

    let each = behind_proxy(backend, |c| {
        c.limits.login_per_ip = Limit::parse_list("3/15m").unwrap();
        c.limits.ipv6_prefix = 128;
    })
    .await;
    assert_eq!(wrong_passwords_from(&each, 5, in_one_64).await, (5, 0));
}

/// `::ffff:203.0.113.9` and `203.0.113.9` are one client: one count (`SMS_LIMIT_PER_IP=1/1h`),
/// and the audit trail records the IPv4 address.
async fn a_mapped_address_counts_as_its_ipv4_address(backend: Backend) {
    let app = behind_proxy(backend, |c| {
        c.limits.sms_per_ip = Limit::parse_list("1/1h").unwrap();
    })
    .await;
    assert_eq!(
        send_from(&app, "::ffff:203.0.113.9", "+44 7400 910001").await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        send_from(&app, "203.0.113.9", "+44 7400 910002").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let events = app.scalar("SELECT COUNT(*) FROM security_events").await;
    assert!(events >= 4, "two logins, a code sent, a code refused");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM security_events WHERE ip = '203.0.113.9'")
            .await,
        events
    );
}
