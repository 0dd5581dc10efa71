//! The `pollstr` command line: every command migrates first; errors are messages, not panics.

use std::io::Write;
use std::process::{Output, Stdio};

use crate::helpers::pollstr_command;

fn run(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let url = format!("sqlite://{}", dir.join("cli.db").display());
    let mut child = pollstr_command(dir, &[("DATABASE_URL", &url)])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn migrate_loaddata_dumpdata_createuser() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(run(d, &["migrate"], None).status.success());
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/all.json");
    let o = run(d, &["loaddata", seed], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Installed 16 object(s) from 1 fixture(s)"),
        "{}",
        stderr(&o)
    );
    let o = run(d, &["dumpdata"], None);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("\"What is your favorite kind of dog?\"")
            && out.contains("\"model\": \"auth.user\"")
    );

    let o = run(
        d,
        &["createuser", "alice", "--password-stdin"],
        Some("Xk3!pq9z#Lm\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(
        d,
        &["createuser", "ALICE", "--password-stdin"],
        Some("Xk3!pq9z#Lm\n"),
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("A user with that username already exists."),
        "{}",
        stderr(&o)
    );
    let o = run(d, &["createuser", "bob", "--password-stdin"], Some("123\n"));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("too short") && stderr(&o).contains("entirely numeric"),
        "{}",
        stderr(&o)
    );
    let o = run(
        d,
        &["createuser", "b o b", "--password-stdin"],
        Some("Xk3!pq9z#Lm\n"),
    );
    assert!(stderr(&o).contains("Enter a valid username"));
}

#[test]
fn errors_are_messages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = d.join("bad.json");
    std::fs::write(
        &bad,
        r#"[{"model":"polls.choice","pk":1,"fields":{"question":9,"choice_text":"x","votes":0}}]"#,
    )
    .unwrap();
    let o = run(d, &["loaddata", bad.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("entry 1 (polls.choice pk 1): question 9 does not exist"),
        "{}",
        stderr(&o)
    );
    let o = run(d, &["loaddata", "missing.json"], None);
    assert!(
        stderr(&o).contains("cannot read missing.json"),
        "{}",
        stderr(&o)
    );
    let o = run(d, &["frobnicate"], None);
    assert!(!o.status.success() && stderr(&o).contains("unrecognized subcommand"));
    let o = pollstr_command(d, &[("DATABASE_URL", "mysql://nope")])
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("DATABASE_URL must start with sqlite: or postgres://"),
        "{}",
        stderr(&o)
    );
    let o = pollstr_command(d, &[("SMS_LIMIT_PER_USER", "lots")])
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("setting SMS_LIMIT_PER_USER"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_in_flight_finish() {
    use std::time::Duration;
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    // A slow Verify API keeps a request in flight while the server is told to stop.
    let api = MockServer::start().await;
    Mock::given(path("/json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"status": "0", "request_id": "r1"}))
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("stop.db").display());
    let uri = api.uri();
    let server = crate::scaling::Instance::start(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("NEXMO_API_KEY", "k"),
            ("NEXMO_API_SECRET", "s"),
            ("VERIFY_BACKEND", "vonage"),
            ("NEXMO_VERIFY_URL", &uri),
        ],
    );
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let b = crate::helpers::Browser {
        base: server.base.clone(),
        client: reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        jar,
    };
    b.login("test", "test1234").await;
    let token = b.get("/2fa/").await.csrf().unwrap();
    let client = b.client.clone();
    let send = tokio::spawn({
        let url = b.url("/2fa/create/");
        async move {
            client
                .post(url)
                .form(&[("number", "+44 7911 123456"), ("csrf_token", &token)])
                .send()
                .await
                .map(|r| r.status())
        }
    });
    while api.received_requests().await.unwrap_or_default().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = server.pid().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(
        send.await.unwrap().unwrap(),
        reqwest::StatusCode::SEE_OTHER,
        "the request in flight finished"
    );
    let status = server.wait();
    assert!(status.success(), "clean exit: {status:?}");
}

/// A server other machines can reach: no quiet fall-back to printing codes in the log, and no
/// demo user test / test1234 in its empty database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_server_has_safe_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("public.db").display());
    let out = pollstr_command(
        dir.path(),
        &[("DATABASE_URL", &url), ("POLLSTR_ADDR", "0.0.0.0:0")],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("setting VERIFY_BACKEND") && err.contains("VERIFY_BACKEND=console"),
        "{err}"
    );

    // Chosen explicitly, the console provider runs; the empty database stays empty.
    let server = crate::scaling::Instance::start_at(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("VERIFY_BACKEND", "console"),
            (
                "POLLSTR_SECRET_KEY",
                &pollstr::crypto::SecretKey::generate().encode(),
            ),
            // Plain HTTP in the test: cookies without the Secure flag.
            ("SESSION_SECURE", "false"),
            ("WEBAUTHN_RP_ID", "polls.example.com"),
            ("WEBAUTHN_ORIGIN", "https://polls.example.com"),
        ],
        "0.0.0.0:0",
    );
    let base = server.base.replace("0.0.0.0", "127.0.0.1");
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let b = crate::helpers::Browser {
        base,
        client: reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        jar,
    };
    let page = b
        .submit(
            "/login/",
            "/login/",
            &[("username", "test"), ("password", "test1234")],
        )
        .await;
    assert!(page.has("didn't match"), "{}", page.text());
    assert!(b.get("/polls/").await.has("No polls are available."));
}

/// Runs a `serve` that must refuse to start: one that serves instead is stopped after a
/// minute, and the test fails (it does not hang).
fn refuses_to_start(mut cmd: std::process::Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            assert!(!out.status.success(), "{}", stderr(&out));
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!("serve started instead of refusing: {}", stderr(&out));
}

/// Behind a proxy on the same machine (nginx forwarding to 127.0.0.1, `TRUSTED_PROXIES` set),
/// the server is production: no development key made, no quiet fall-back to printing codes,
/// `Secure` cookies, and no demo user test / test1234 even when the demo polls are asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_behind_a_proxy_is_production() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("proxied.db").display());
    let proxied = [
        ("DATABASE_URL", url.as_str()),
        ("POLLSTR_ADDR", "127.0.0.1:0"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ];
    let out = refuses_to_start(pollstr_command(dir.path(), &proxied));
    let err = stderr(&out);
    assert!(
        err.contains("setting VERIFY_BACKEND") && err.contains("TRUSTED_PROXIES is set"),
        "{err}"
    );
    let console = [&proxied[..], &[("VERIFY_BACKEND", "console")]].concat();
    let out = refuses_to_start(pollstr_command(dir.path(), &console));
    let err = stderr(&out);
    assert!(
        err.contains("setting POLLSTR_SECRET_KEY") && err.contains("TRUSTED_PROXIES is set"),
        "{err}"
    );
    assert!(!dir.path().join(".pollstr-secret-key").exists());

    let key = pollstr::crypto::SecretKey::generate().encode();
    let keyed = [
        ("DATABASE_URL", url.as_str()),
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("VERIFY_BACKEND", "console"),
        ("POLLSTR_SECRET_KEY", key.as_str()),
        ("POLLSTR_SEED_DEMO", "true"),
        ("WEBAUTHN_RP_ID", "polls.example.com"),
        ("WEBAUTHN_ORIGIN", "https://polls.example.com"),
    ];
    let server = crate::scaling::Instance::start(dir.path(), &keyed);
    let res = reqwest::get(format!("{}/login/", server.base))
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let o = pollstr_command(dir.path(), &[("DATABASE_URL", &url)])
        .arg("dumpdata")
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&o.stdout);
    assert!(
        dump.contains("\"What is your favorite kind of dog?\""),
        "{dump}"
    );
    assert!(!dump.contains("\"auth.user\""), "{dump}");
    assert!(!dir.path().join(".pollstr-secret-key").exists());
}
