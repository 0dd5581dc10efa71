//! The settings: defaults, refusals naming the setting, and that the documentation lists
//! exactly the settings the code reads.

use super::*;
use std::collections::HashMap;

fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

/// The passkeys' relying party of a public test server.
const RP_ID: (&str, &str) = ("WEBAUTHN_RP_ID", "polls.example.com");
const ORIGIN: (&str, &str) = ("WEBAUTHN_ORIGIN", "https://polls.example.com");

#[test]
fn passkeys_work_on_localhost_and_a_public_server_refuses_what_cannot_work() {
    let local = with(&[]).unwrap();
    assert_eq!(local.webauthn.rp_id, "localhost");
    assert_eq!(local.webauthn.origin.as_str(), "http://localhost:8000/");
    let port = with(&[("POLLSTR_ADDR", "127.0.0.1:3000")]).unwrap();
    assert_eq!(port.webauthn.origin.as_str(), "http://localhost:3000/");
    // A domain the origin is not under, an origin with a path, an RP ID with a scheme.
    for (pairs, name) in [
        (
            &[RP_ID, ("WEBAUTHN_ORIGIN", "https://evil.example")][..],
            "WEBAUTHN_RP_ID",
        ),
        (
            &[RP_ID, ("WEBAUTHN_ORIGIN", "https://polls.example.com/x")][..],
            "WEBAUTHN_ORIGIN",
        ),
        (
            &[("WEBAUTHN_RP_ID", "https://polls.example.com"), ORIGIN][..],
            "WEBAUTHN_RP_ID",
        ),
    ] {
        assert_eq!(with(pairs).unwrap_err().name, name, "{pairs:?}");
    }
    let sub = with(&[("WEBAUTHN_RP_ID", "example.com"), ORIGIN]).unwrap();
    assert_eq!(sub.webauthn.rp_id, "example.com");
    // A public server: https, and the site's domain.
    let key = crate::crypto::SecretKey::generate().encode();
    let public = [
        ("POLLSTR_ADDR", "0.0.0.0:8000"),
        ("VERIFY_BACKEND", "console"),
        ("POLLSTR_SECRET_KEY", key.as_str()),
    ];
    let e = with(&public).unwrap().check_for_serving().unwrap_err();
    assert_eq!(e.name, "WEBAUTHN_ORIGIN", "{e}");
    let plain = [
        &public[..],
        &[RP_ID, ("WEBAUTHN_ORIGIN", "http://polls.example.com")],
    ]
    .concat();
    let e = with(&plain).unwrap().check_for_serving().unwrap_err();
    assert_eq!(e.name, "WEBAUTHN_ORIGIN", "{e}");
    let local_name = [
        &public[..],
        &[
            ("WEBAUTHN_RP_ID", "localhost"),
            ("WEBAUTHN_ORIGIN", "https://localhost"),
        ],
    ]
    .concat();
    let e = with(&local_name).unwrap().check_for_serving().unwrap_err();
    assert_eq!(e.name, "WEBAUTHN_RP_ID", "{e}");
    let good = [&public[..], &[RP_ID, ORIGIN]].concat();
    assert!(with(&good).unwrap().check_for_serving().is_ok());
}

#[test]
fn defaults_are_a_local_console_setup() {
    let c = with(&[]).unwrap();
    assert_eq!(c.addr.to_string(), "127.0.0.1:8000");
    assert!(!c.session_secure);
    assert_eq!(c.verify_backend, VerifyBackend::Console);
    assert_eq!(c.vonage.base_url, "https://api.nexmo.com/v2/verify");
    assert_eq!(c.limits.sms_per_user.len(), 2);
    assert_eq!(c.limits.signup_per_ip.len(), 2);
    assert_eq!(c.limits.ipv6_prefix, 64);
    let whole = with(&[("IPV6_LIMIT_PREFIX", "128")]).unwrap();
    assert_eq!(whole.limits.ipv6_prefix, 128);
}

#[test]
fn keys_select_vonage_and_secret_is_hidden() {
    let c = with(&[("VONAGE_API_KEY", "k"), ("VONAGE_API_SECRET", "s3cr3t")]).unwrap();
    assert_eq!(c.verify_backend, VerifyBackend::VonageV2);
    assert_eq!(c.vonage.base_url, "https://api.nexmo.com/v2/verify");
    assert!(!format!("{c:?}").contains("s3cr3t"));
    // Staying on Verify v1 is one setting.
    let v1 = with(&[
        ("VONAGE_API_KEY", "k"),
        ("VONAGE_API_SECRET", "s3cr3t"),
        ("VERIFY_BACKEND", "vonage"),
    ])
    .unwrap();
    assert_eq!(v1.verify_backend, VerifyBackend::Vonage);
    assert_eq!(v1.vonage.base_url, "https://api.nexmo.com/verify");
}

#[test]
fn a_public_address_needs_keys_or_an_explicit_console_and_has_no_demo_user() {
    let local = with(&[]).unwrap();
    assert!(local.check_for_serving().is_ok());
    assert!(local.seed_demo);
    let public = with(&[("POLLSTR_ADDR", "0.0.0.0:8000")]).unwrap();
    assert_eq!(
        public.check_for_serving().unwrap_err().name,
        "VERIFY_BACKEND"
    );
    assert!(!public.seed_demo);
    let key = crate::crypto::SecretKey::generate().encode();
    let console = with(&[
        ("POLLSTR_ADDR", "0.0.0.0:8000"),
        ("VERIFY_BACKEND", "console"),
        ("POLLSTR_SECRET_KEY", &key),
        RP_ID,
        ORIGIN,
    ])
    .unwrap();
    assert!(console.check_for_serving().is_ok());
    let keys = with(&[
        ("POLLSTR_ADDR", "[::]:8000"),
        ("NEXMO_API_KEY", "k"),
        ("NEXMO_API_SECRET", "s"),
        ("POLLSTR_SECRET_KEY", &key),
        RP_ID,
        ORIGIN,
    ])
    .unwrap();
    assert!(keys.check_for_serving().is_ok());
    // Without the secret key, a public server does not start either.
    let keyless = with(&[
        ("POLLSTR_ADDR", "[::]:8000"),
        ("NEXMO_API_KEY", "k"),
        ("NEXMO_API_SECRET", "s"),
    ])
    .unwrap();
    assert_eq!(
        keyless.check_for_serving().unwrap_err().name,
        "POLLSTR_SECRET_KEY"
    );
    let seeded = with(&[
        ("POLLSTR_ADDR", "0.0.0.0:8000"),
        ("POLLSTR_SEED_DEMO", "true"),
    ])
    .unwrap();
    assert!(seeded.seed_demo);
}

#[test]
fn behind_a_proxy_or_told_so_is_production() {
    let key = crate::crypto::SecretKey::generate().encode();
    assert!(with(&[]).unwrap().is_development());
    // nginx on the same host forwards to 127.0.0.1: other people reach this server.
    for production in [
        &[("TRUSTED_PROXIES", "127.0.0.1")][..],
        &[("POLLSTR_ENV", "production")][..],
        &[("POLLSTR_ENV", " Production ")][..],
    ] {
        let c = with(production).unwrap();
        assert!(!c.is_development(), "{production:?}");
        assert!(c.session_secure && !c.seed_demo, "{production:?}");
        assert_eq!(c.check_for_serving().unwrap_err().name, "VERIFY_BACKEND");
        let console = with(&[production, &[("VERIFY_BACKEND", "console")]].concat()).unwrap();
        let e = console.check_for_serving().unwrap_err();
        assert_eq!(e.name, "POLLSTR_SECRET_KEY", "{production:?}");
        let keyed = [
            production,
            &[
                ("VERIFY_BACKEND", "console"),
                ("POLLSTR_SECRET_KEY", &key),
                RP_ID,
                ORIGIN,
            ],
        ]
        .concat();
        assert!(with(&keyed).unwrap().check_for_serving().is_ok());
    }
    let proxied = with(&[
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("VERIFY_BACKEND", "console"),
    ]);
    let e = proxied
        .unwrap()
        .check_for_serving()
        .unwrap_err()
        .to_string();
    assert!(e.contains("behind a proxy (TRUSTED_PROXIES is set)"), "{e}");
    // Each default can still be set, and development asked for on any address.
    let c = with(&[
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("SESSION_SECURE", "false"),
        ("POLLSTR_SEED_DEMO", "true"),
    ])
    .unwrap();
    assert!(!c.session_secure && c.seed_demo && !c.is_development());
    let dev = with(&[
        ("POLLSTR_ADDR", "0.0.0.0:8000"),
        ("POLLSTR_ENV", "development"),
    ])
    .unwrap();
    assert!(dev.is_development() && !dev.session_secure && dev.seed_demo);
    assert!(dev.check_for_serving().is_ok());
    assert_eq!(
        with(&[("POLLSTR_ENV", "staging")]).unwrap_err().name,
        "POLLSTR_ENV"
    );
}

#[test]
fn public_address_makes_cookies_secure() {
    assert!(
        with(&[("POLLSTR_ADDR", "0.0.0.0:8000")])
            .unwrap()
            .session_secure
    );
}

#[test]
fn http_limits_for_slow_clients() {
    let c = with(&[]).unwrap().http;
    assert_eq!(c.first_header_timeout, Duration::from_secs(5));
    assert_eq!(c.write_timeout, Duration::from_secs(15));
    assert_eq!(c.max_connections_per_ip, 64);
    // The first head's limit never exceeds the later heads'.
    let short = with(&[("HTTP_HEADER_TIMEOUT", "2s")]).unwrap().http;
    assert_eq!(short.first_header_timeout, Duration::from_secs(2));
    let set = with(&[
        ("HTTP_FIRST_HEADER_TIMEOUT", "3s"),
        ("HTTP_WRITE_TIMEOUT", "1m"),
        ("HTTP_MAX_CONNECTIONS_PER_IP", "8"),
        ("TRUSTED_PROXIES", "10.0.0.1"),
    ])
    .unwrap()
    .http;
    assert_eq!(set.first_header_timeout, Duration::from_secs(3));
    assert_eq!(set.write_timeout, Duration::from_secs(60));
    assert_eq!(set.max_connections_per_ip, 8);
    assert_eq!(set.per_ip_exempt, vec!["10.0.0.1/32".parse().unwrap()]);
    let whole = with(&[("IPV6_LIMIT_PREFIX", "128")]).unwrap().http;
    assert_eq!(whole.ipv6_prefix, 128);
}

#[test]
fn bad_values_name_the_setting() {
    for (k, v) in [
        ("POLLSTR_ADDR", "nope"),
        ("VERIFY_BACKEND", "twilio"),
        ("SMS_LIMIT_PER_USER", "3/10x"),
        ("TRUSTED_PROXIES", "10.0.0.0/99"),
        ("PHONE_DEFAULT_REGION", "XX1"),
        ("NEXMO_BRAND", "a brand name that is far too long"),
        ("HTTP_HEADER_TIMEOUT", "0s"),
        ("HTTP_BODY_TIMEOUT", "soon"),
        ("HTTP_MAX_CONNECTIONS", "0"),
        ("HTTP_WRITE_TIMEOUT", "never"),
        ("HTTP_FIRST_HEADER_TIMEOUT", "1 minute"),
        ("HTTP_FIRST_HEADER_TIMEOUT", "20s"),
        ("HTTP_MAX_CONNECTIONS_PER_IP", "none"),
        ("EVENT_RETENTION", "forever"),
        ("POLLSTR_SECRET_KEY", "not-a-key"),
        ("TRUSTED_BROWSER_DAYS", "forever"),
        ("CSRF_TRUSTED_ORIGINS", "polls.example.com"),
        ("CSRF_TRUSTED_ORIGINS", "https://polls.example.com/vote/"),
        ("VERIFY_WORKFLOW", "sms,fax"),
        ("VERIFY_WORKFLOW", "sms,voice,sms,voice"),
        ("VERIFY_CHANNEL_TIMEOUT", "5s"),
        ("VERIFY_LOCALE", "english"),
        ("NEXMO_BRAND", "Polls: {new}"),
        ("SMS_ALLOWED_COUNTRIES", "GB,Mars"),
        ("SMS_ALLOWED_COUNTRIES", "GB,002"),
        ("SMS_LIMIT_PER_COUNTRY", "lots"),
        ("SMS_LIMIT_PER_PREFIX", "5/never"),
        ("SIGNUP_LIMIT_PER_IP", "20"),
        ("IPV6_LIMIT_PREFIX", "129"),
        ("IPV6_LIMIT_PREFIX", "/64"),
        ("SMS_MIN_CONVERSION", "120%"),
        ("SMS_CONVERSION_MIN_SENDS", "0"),
        ("VONAGE_SIGNATURE_SECRET", "short"),
    ] {
        let e = with(&[(k, v)]).unwrap_err();
        assert_eq!(e.name, k, "{e}");
    }
    assert_eq!(
        with(&[("VERIFY_BACKEND", "vonage")]).unwrap_err().name,
        "NEXMO_API_KEY"
    );
    assert_eq!(
        with(&[("VERIFY_BACKEND", "vonage-v2")]).unwrap_err().name,
        "NEXMO_API_KEY"
    );
    // A v1 address kept from an older setup, now that keys mean v2.
    let old_url = with(&[
        ("NEXMO_API_KEY", "k"),
        ("NEXMO_API_SECRET", "s"),
        ("NEXMO_VERIFY_URL", "https://api.nexmo.com/verify"),
    ]);
    assert_eq!(old_url.unwrap_err().name, "NEXMO_VERIFY_URL");
    assert_eq!(
        with(&[("VONAGE_PRIVATE_KEY_PATH", "/nonexistent/key.pem")])
            .unwrap_err()
            .name,
        "VONAGE_APPLICATION_ID"
    );
    assert_eq!(
        with(&[
            (
                "VONAGE_APPLICATION_ID",
                "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
            ),
            ("VONAGE_PRIVATE_KEY_PATH", "/nonexistent/key.pem"),
        ])
        .unwrap_err()
        .name,
        "VONAGE_PRIVATE_KEY_PATH"
    );
}

#[test]
fn guard_and_workflow_settings() {
    let c = with(&[
        ("SMS_ALLOWED_COUNTRIES", "gb, US"),
        ("SMS_MIN_CONVERSION", "25%"),
        ("VERIFY_WORKFLOW", "voice"),
        ("VERIFY_CHANNEL_TIMEOUT", "2m"),
    ])
    .unwrap();
    assert_eq!(c.sms_guard.allowed_countries, ["GB", "US"]);
    let satellites = with(&[("SMS_ALLOWED_COUNTRIES", "GB,001")]).unwrap();
    assert_eq!(satellites.sms_guard.allowed_countries, ["GB", "001"]);
    assert!((c.sms_guard.min_conversion - 0.25).abs() < 1e-9);
    assert_eq!(c.verify.workflow, vec![VerifyChannel::Voice]);
    assert_eq!(c.verify.channel_timeout, Duration::from_secs(120));
    let d = with(&[]).unwrap();
    assert_eq!(
        d.verify.workflow,
        vec![VerifyChannel::Sms, VerifyChannel::Voice]
    );
    assert!(d.sms_guard.allowed_countries.is_empty());
}

/// The settings named in the first column of the Markdown tables of `file` (relative to the
/// repository), each a backticked `UPPER_CASE` name.
fn documented(file: &str) -> std::collections::BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    text.lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" | ").next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .filter(|name| {
            name.len() > 2
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
        })
        .map(str::to_string)
        .collect()
}

/// Settings read by something other than [`Config`]: the log filter (main.rs).
const READ_ELSEWHERE: &[&str] = &["RUST_LOG"];

#[test]
fn the_documentation_lists_exactly_the_settings_read() {
    let mut read: std::collections::BTreeSet<String> = Config::names_read()
        .into_iter()
        .map(str::to_string)
        .collect();
    read.extend(READ_ELSEWHERE.iter().map(|s| s.to_string()));
    let mut docs = documented("docs/configuration.md");
    docs.extend(documented("docs/security.md"));
    let missing: Vec<_> = read.difference(&docs).collect();
    let stale: Vec<_> = docs.difference(&read).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/configuration.md (and the limits table of docs/security.md): not documented {missing:?}, documented but not read {stale:?}"
    );
    // .env.example names each setting once, set or commented out (`# NAME=`).
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".env.example"),
    )
    .unwrap();
    let listed: std::collections::BTreeSet<String> = example
        .lines()
        .map(|l| l.trim_start_matches('#').trim())
        .filter_map(|l| l.split_once('=').map(|(name, _)| name))
        .filter(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
        })
        .map(str::to_string)
        .collect();
    let missing: Vec<_> = read.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&read).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        ".env.example: not listed {missing:?}, listed but not read {stale:?}"
    );
}
