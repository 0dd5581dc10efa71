//! The deployment in `deploy/`, tested as shipped: Debian's nginx started on loopback with
//! `deploy/nginx-pollstr.conf` itself (only its ports and paths substituted) and a certificate
//! made now, two `pollstr serve` processes on one PostgreSQL database behind it, and a voter
//! over HTTPS: HTTP is sent to HTTPS, cookies are `Secure`, the per-address limits count the
//! client's own address (not nginx's, and not one the client claims in `X-Forwarded-For`), and
//! SIGTERM to one instance while votes go on loses no acknowledged vote. Also
//! `systemd-analyze verify` on `deploy/pollstr.service`.
//!
//! nginx, openssl and systemd-analyze are optional here: without them the test says so and
//! passes, unless POLLSTR_DEPLOY_REQUIRED is set (CI sets it, and installs them).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use reqwest::{redirect, StatusCode};

use crate::helpers::*;

const HOST: &str = "polls.example.com";
/// How many polls the voter votes on while one instance stops.
const POLLS: usize = 40;

fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

/// The tool's path, or `None` after a notice (a failure when POLLSTR_DEPLOY_REQUIRED is set).
fn tool(name: &str) -> Option<PathBuf> {
    let found = [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ]
    .iter()
    .map(|d| Path::new(d).join(name))
    .find(|p| p.exists());
    if found.is_none() {
        let required = std::env::var("POLLSTR_DEPLOY_REQUIRED").is_ok_and(|v| !v.is_empty());
        assert!(
            !required,
            "{name} is not installed and POLLSTR_DEPLOY_REQUIRED is set"
        );
        eprintln!("notice: {name} is not installed: the deployment test is skipped (apt-get install nginx-light openssl systemd)");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process stopped when the test ends: SIGTERM, so that nginx's master stops its
/// workers too (killed outright, it would leave them running, holding the test's output open).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
        }
        let _ = self.0.wait();
    }
}

#[test]
fn the_systemd_unit_verifies() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("pollstr.env");
    std::fs::write(&env, "").unwrap();
    let unit = std::fs::read_to_string(deploy_file("pollstr.service"))
        .unwrap()
        .replace("/usr/local/bin/pollstr", env!("CARGO_BIN_EXE_pollstr"))
        .replace("/etc/pollstr/pollstr.env", env.to_str().unwrap());
    let path = dir.path().join("pollstr.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("pollstr.service:"), "{said}");
}

/// The nginx configuration as shipped, with this test's ports and paths.
fn nginx_config(dir: &Path, http: u16, https: u16, instances: [u16; 2]) -> PathBuf {
    let shipped = std::fs::read_to_string(deploy_file("nginx-pollstr.conf")).unwrap();
    let cert_dir = format!("/etc/letsencrypt/live/{HOST}");
    let site = shipped
        .replace("    listen [::]:80;\n", "")
        .replace("    listen [::]:443 ssl http2;\n", "")
        .replace("listen 80;", &format!("listen 127.0.0.1:{http};"))
        .replace(
            "listen 443 ssl http2;",
            &format!("listen 127.0.0.1:{https} ssl http2;"),
        )
        .replace(&cert_dir, dir.to_str().unwrap())
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{}", instances[0]))
        .replace("127.0.0.1:8001", &format!("127.0.0.1:{}", instances[1]));
    for (was, now) in [("listen 80;", http), ("listen 443", https)] {
        assert!(!site.contains(was), "{was} left in the config ({now})");
    }
    std::fs::write(dir.join("pollstr.conf"), site).unwrap();
    let d = dir.display();
    let main = format!(
        "user root;\nworker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         include {d}/pollstr.conf;\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, main).unwrap();
    path
}

/// A certificate authority made now (`ca.pem`, the client's only root) and the site's
/// certificate signed by it (`fullchain.pem`, `privkey.pem`): TLS clients refuse a CA
/// certificate used as a site's own.
fn certificate(openssl: &Path, dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new(openssl)
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("site.ext"),
        format!(
            "subjectAltName=DNS:{HOST}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    run(&[
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
    ]
    .iter()
    .copied()
    .chain([
        "-subj",
        "/CN=Pollstr test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ])
    .collect::<Vec<_>>());
    let subject = format!("/CN={HOST}");
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", &subject]
        .iter()
        .copied()
        .chain(["-keyout", "privkey.pem", "-out", "site.csr"])
        .collect::<Vec<_>>());
    run(&[
        "x509",
        "-req",
        "-in",
        "site.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "site.ext",
        "-out",
        "fullchain.pem",
    ]);
}

/// `pollstr serve` on `port`, production settings behind a proxy on loopback.
fn instance(dir: &Path, url: &str, port: u16, name: &str) -> Running {
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = pollstr_command(
        dir,
        &[
            ("DATABASE_URL", url),
            ("POLLSTR_ADDR", &addr),
            ("POLLSTR_ENV", "production"),
            ("POLLSTR_SECRET_KEY", &"5e".repeat(32)),
            ("VERIFY_BACKEND", "console"),
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
            ("CSRF_TRUSTED_ORIGINS", &format!("https://{HOST}")),
            ("WEBAUTHN_RP_ID", HOST),
            ("WEBAUTHN_ORIGIN", &format!("https://{HOST}")),
            ("SIGNUP_LIMIT_PER_IP", "2/1h"),
            ("SHUTDOWN_DRAIN", "1s"),
        ],
    )
    .arg("serve")
    .stdout(Stdio::null())
    .stderr(Stdio::from(log))
    .spawn()
    .unwrap();
    Running(child)
}

async fn wait_until_up(url: &str, child: &mut Running, log: &Path) {
    let probe = reqwest::Client::new();
    loop {
        if let Ok(res) = probe.get(url).send().await {
            if res.status() == StatusCode::OK {
                return;
            }
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!(
                "{url}: stopped ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A browser that reaches nginx from `from` (another loopback address than nginx's own), with
/// the test's certificate as its only trusted root.
fn browser(dir: &Path, https: u16, from: [u8; 4]) -> Browser {
    let pem = std::fs::read(dir.join("ca.pem")).unwrap();
    let jar = Arc::new(reqwest::cookie::Jar::default());
    Browser {
        base: format!("https://{HOST}:{https}"),
        client: reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(redirect::Policy::none())
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .resolve(HOST, SocketAddr::from(([127, 0, 0, 1], https)))
            .local_address(IpAddr::from(from))
            .build()
            .unwrap(),
        jar,
    }
}

/// The code the console provider logged in either instance for the number ending `tail`.
fn logged_code(dir: &Path, tail: &str) -> String {
    let mut found = None;
    for name in ["a", "b"] {
        let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        for line in log.lines() {
            if let Some((_, rest)) = line.split_once(&format!("{tail} is ")) {
                found = Some(rest.chars().take(6).collect());
            }
        }
    }
    found.expect("a code in the instances' logs")
}

/// Polls 101… with two choices each, and the voter (the seed user, password test1234).
fn fixture() -> String {
    let mut entries = vec![SEED_USER
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()];
    for i in 0..POLLS {
        let q = 101 + i;
        entries.push(format!(
            r#"{{"model":"polls.question","pk":{q},"fields":{{"question_text":"Poll {q}?","pub_date":"2020-01-01T00:00:00Z"}}}}"#
        ));
        for c in 0..2 {
            let pk = 1000 + q * 2 + c;
            entries.push(format!(
                r#"{{"model":"polls.choice","pk":{pk},"fields":{{"question":{q},"choice_text":"Choice {c}","votes":0}}}}"#
            ));
        }
    }
    format!("[{}]", entries.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pollstr_postgres),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn a_voter_through_nginx_over_https() {
    let (Some(nginx), Some(openssl)) = (tool("nginx"), tool("openssl")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = fresh_database(Backend::Postgres, &dir).await;
    let data = d.join("data.json");
    std::fs::write(&data, fixture()).unwrap();
    let loaded = pollstr_command(d, &[("DATABASE_URL", &url)])
        .arg("loaddata")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    certificate(&openssl, d);
    let ports = [free_port(), free_port()];
    let (http, https) = (free_port(), free_port());
    let mut a = instance(d, &url, ports[0], "a");
    wait_until_up(
        &format!("http://127.0.0.1:{}/readyz", ports[0]),
        &mut a,
        &d.join("a.log"),
    )
    .await;
    let mut b = instance(d, &url, ports[1], "b");
    wait_until_up(
        &format!("http://127.0.0.1:{}/readyz", ports[1]),
        &mut b,
        &d.join("b.log"),
    )
    .await;
    let conf = nginx_config(d, http, https, ports);
    let test = Command::new(&nginx)
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(d)
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );
    let mut proxy = Running(
        Command::new(&nginx)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(d)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let voter = browser(d, https, [127, 0, 0, 2]);
    // Up when it accepts connections; then the first request through TLS must succeed.
    while tokio::net::TcpStream::connect(("127.0.0.1", https))
        .await
        .is_err()
    {
        if let Some(status) = proxy.0.try_wait().unwrap() {
            panic!(
                "nginx stopped ({status}): {}",
                std::fs::read_to_string(d.join("error.log")).unwrap_or_default()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if let Err(e) = voter.client.get(voter.url("/login/")).send().await {
        panic!("through nginx: {e:?}");
    }

    // Plain HTTP is sent to HTTPS; the probes are not public.
    let plain = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{http}/polls/"))
        .header("host", HOST)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::MOVED_PERMANENTLY);
    let to = plain.headers()["location"].to_str().unwrap();
    assert!(to.starts_with(&format!("https://{HOST}")), "{to}");
    assert_eq!(voter.get("/readyz").await.status, StatusCode::NOT_FOUND);

    // Signs in over HTTPS: the session cookie is Secure.
    let login = voter
        .submit(
            "/login/",
            "/login/",
            &[("username", "test"), ("password", "test1234")],
        )
        .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.text());
    let cookies: Vec<&str> = login
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(!cookies.is_empty());
    for c in &cookies {
        assert!(c.contains("Secure"), "{c}");
    }
    let sent = voter
        .submit("/2fa/", "/2fa/create/", &[("number", PHONE)])
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    let code = logged_code(d, "3456");
    let done = voter
        .submit(
            sent.location.as_deref().unwrap(),
            "/2fa/confirm/",
            &[("code", &code)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());

    // The audit trail and the limits see 127.0.0.2, the client, not nginx's 127.0.0.1, and not
    // what a client claims.
    let db = pollstr::db::Db::connect(&url, &Default::default())
        .await
        .unwrap();
    let pollstr::db::Db::Postgres(pool) = &db else {
        unreachable!()
    };
    let ips: Vec<String> = sqlx::query_scalar("SELECT DISTINCT ip FROM security_events")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(ips, vec!["127.0.0.2".to_string()]);
    // SIGNUP_LIMIT_PER_IP=2/1h: two sign-ups from 127.0.0.3, then refused whatever it claims;
    // 127.0.0.4 still signs up (the limit is not nginx's one address).
    for (n, claim) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .iter()
        .enumerate()
    {
        // A new browser (a new session) each time, from the same address.
        let signer = browser(d, https, [127, 0, 0, 3]);
        let form = signer.get("/register/").await;
        let csrf = form.csrf().unwrap();
        let name = format!("signer{n}");
        let res = signer
            .post_with_headers(
                "/register/",
                &[
                    ("username", name.as_str()),
                    ("password1", STRONG),
                    ("password2", STRONG),
                    ("csrf_token", &csrf),
                ],
                &[("x-forwarded-for", claim)],
            )
            .await;
        let expected = if n < 2 {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(res.status, expected, "sign-up {n}: {}", res.text());
    }
    let other = browser(d, https, [127, 0, 0, 4]);
    assert_eq!(
        other.register("elsewhere").await.status,
        StatusCode::SEE_OTHER
    );

    // Votes on every poll; instance a is told to stop after the first ten. Every vote
    // acknowledged (303) is in the database afterwards.
    let mut acknowledged = Vec::new();
    let mut stopped = None;
    for i in 0..POLLS {
        if i == 10 {
            let pid = a.0.id().to_string();
            assert!(Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success());
            stopped = Some(pid);
        }
        let q = 101 + i;
        let page = voter.get(&format!("/polls/{q}/")).await;
        assert_eq!(page.status, StatusCode::OK, "poll {q}");
        let csrf = page.csrf().unwrap();
        let choice = (1000 + q * 2).to_string();
        let vote = voter
            .post_raw(
                &format!("/polls/{q}/vote/"),
                &[("choice", &choice), ("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(vote.status, StatusCode::SEE_OTHER, "vote on poll {q}");
        acknowledged.push(q as i64);
    }
    assert!(stopped.is_some());
    let exited = tokio::task::spawn_blocking(move || {
        let status = a.0.wait();
        (status, a)
    })
    .await
    .unwrap();
    assert!(exited.0.unwrap().success());
    let voted: Vec<i64> = sqlx::query_scalar(
        "SELECT question_id FROM votes v JOIN users u ON u.id = v.user_id \
         WHERE u.username = 'test' AND question_id > 100 ORDER BY question_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(voted, acknowledged);
    // Instance b served the votes after a stopped.
    let b_log = std::fs::read_to_string(d.join("b.log")).unwrap();
    assert!(!b_log.is_empty());
    let a_log = std::fs::read_to_string(d.join("a.log")).unwrap();
    assert!(
        a_log.contains("shut down: every request and vote finished"),
        "{a_log}"
    );
    drop(b);
    drop(proxy);
    pool.close().await;
}
