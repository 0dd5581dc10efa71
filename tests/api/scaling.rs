//! Many instances on one PostgreSQL: real `pollstr serve` processes sharing sessions, limits and
//! votes; instances started at the same moment (the migration lock); the SQLite → PostgreSQL move;
//! trusted proxies; a database outage.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pollstr::limits::Limit;
use reqwest::StatusCode;

use crate::helpers::{
    fresh_database, pollstr_command, spawn_app_with, Backend, Browser, TestApp, SEED,
};

/// A `pollstr serve` child process; its log lines are kept (the console provider prints codes).
pub struct Instance {
    child: Child,
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    pub fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Instance {
        Instance::start_at(dir, env, "127.0.0.1:0")
    }

    /// Starts an instance listening on `addr`.
    pub fn start_at(dir: &std::path::Path, env: &[(&str, &str)], addr: &str) -> Instance {
        let mut child = pollstr_command(dir, env)
            .env("POLLSTR_ADDR", addr)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start pollstr");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on ") {
                    let _ = tx.send(line[i + "listening on ".len()..].trim().to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        // Start-up includes migrations; a process that dies says so through the closed channel.
        let base = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("pollstr did not start: {:?}", log.lock().unwrap()));
        Instance { child, base, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit by itself.
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }

    /// The last code this instance printed for the masked number. The line is written before
    /// the page answers, but read from the process's stderr by another thread: it is waited for
    /// (for at most 10 s).
    async fn code_for(&self, masked: &str) -> Option<String> {
        let needle = format!("code for {masked} is ");
        for _ in 0..1000 {
            let found = self.log.lock().unwrap().iter().rev().find_map(|l| {
                l.find(&needle).map(|i| {
                    l[i + needle.len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
            });
            if found.is_some() {
                return found;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        None
    }
}

fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn browser_on(base: &str, jar: &Arc<reqwest::cookie::Jar>) -> Browser {
    Browser {
        base: base.to_string(),
        client: reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        jar: jar.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pollstr_postgres),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn two_instances_share_sessions_limits_and_votes() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Postgres, &dir).await;
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("SMS_LIMIT_PER_IP", "1000/1h"),
        ("SMS_LIMIT_PER_USER", "3/10m"),
    ];
    let a = Instance::start(dir.path(), &env);
    let b = Instance::start(dir.path(), &env);
    assert_ne!(a.base, b.base);
    // Both share one cookie jar: the same browser, whichever instance the balancer picks.
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let (on_a, on_b) = (browser_on(&a.base, &jar), browser_on(&b.base, &jar));
    // The cookie is set per host+port; copy it across like a balancer's single origin would.
    let login_page = on_a.get("/login/?next=/polls/1/").await;
    let copy = |from: &Browser, to: &Browser| {
        if let Some(c) = from.session_cookie() {
            let url: reqwest::Url = to.base.parse().unwrap();
            to.jar
                .add_cookie_str(&format!("pollstr_session={c}; Path=/"), &url);
        }
    };
    copy(&on_a, &on_b);
    let token = login_page.csrf().unwrap();
    let res = on_b
        .post_raw(
            "/login/",
            &[
                ("username", "test"),
                ("password", "test1234"),
                ("next", "/polls/1/"),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(
        res.location.as_deref(),
        Some("/polls/1/"),
        "login on B with A's form"
    );
    copy(&on_b, &on_a);
    assert_eq!(
        on_a.get("/polls/1/").await.location.as_deref(),
        Some("/2fa/?next=/polls/1/")
    );
    let sent = on_a
        .submit(
            "/2fa/?next=/polls/1/",
            "/2fa/create/",
            &[("number", "+44 7911 123456")],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    let code = a
        .code_for("+44 •••• ••3456")
        .await
        .expect("A printed the code");
    let done = on_b
        .submit(
            "/2fa/verify/?next=/polls/1/",
            "/2fa/confirm/",
            &[("code", &code)],
        )
        .await;
    assert_eq!(
        done.location.as_deref(),
        Some("/polls/1/"),
        "{}",
        done.text()
    );
    copy(&on_b, &on_a);
    // B has read the poll before the vote; on PostgreSQL it must not answer from memory.
    assert!(on_b.get("/polls/1/results/").await.has("0 votes in total."));
    let voted = on_a
        .submit("/polls/1/", "/polls/1/vote/", &[("choice", "2")])
        .await;
    assert_eq!(voted.location.as_deref(), Some("/polls/1/results/"));
    assert!(on_b
        .get("/polls/1/results/")
        .await
        .has("A golden retriever (your vote) 1 vote"));

    // A send limit reached through A holds on B: two more sends on A (3 in all), the 4th on B.
    for n in ["+44 7400 600001", "+44 7400 600002"] {
        let page = on_a
            .submit(
                "/2fa/?change=1",
                "/2fa/create/",
                &[("number", n), ("password", "test1234")],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
    }
    let page = on_b
        .submit(
            "/2fa/?change=1",
            "/2fa/create/",
            &[("number", "+44 7400 600003"), ("password", "test1234")],
        )
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);

    // Concurrent voters spread over both instances: exact counts.
    let db = pollstr::db::Db::connect(&url, &Default::default())
        .await
        .unwrap();
    let voters = 8;
    let mut tasks = Vec::new();
    for i in 0..voters {
        let name = format!("voter{i}");
        let hash = pollstr::users::password::hash("s3cret-pass!".into())
            .await
            .unwrap();
        pollstr::users::create(&db, &name, &hash).await.unwrap();
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let x = browser_on(&first.base, &jar);
        let y = browser_on(&second.base, &jar);
        x.login(&name, "s3cret-pass!").await;
        copy(&x, &y);
        let number = format!("+44 7400 7{i:05}");
        let sent = y
            .submit("/2fa/", "/2fa/create/", &[("number", &number)])
            .await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER);
        let masked = pollstr::two_factor::sms::phone::PhoneNumber::parse(&number, None)
            .unwrap()
            .masked();
        let code = second.code_for(&masked).await.expect("code printed");
        let done = x
            .submit("/2fa/verify/", "/2fa/confirm/", &[("code", &code)])
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER);
        copy(&x, &y);
        tasks.push(tokio::spawn(async move {
            let csrf = x.get("/polls/2/").await.csrf().unwrap();
            let mut last = 0;
            for round in 0..6 {
                let via = if round % 2 == 0 { &x } else { &y };
                let choice = 5 + (i + round) % 4;
                let page = via
                    .post_raw(
                        "/polls/2/vote/",
                        &[("choice", &choice.to_string()), ("csrf_token", &csrf)],
                    )
                    .await;
                assert_eq!(page.status, StatusCode::SEE_OTHER);
                last = choice;
            }
            last
        }));
    }
    let mut expected = std::collections::HashMap::new();
    for t in tasks {
        *expected.entry(t.await.unwrap()).or_insert(0i64) += 1;
    }
    // A logout on A ends the session on B at once.
    assert_eq!(on_b.get("/polls/1/").await.status, StatusCode::OK);
    on_a.submit("/polls/", "/logout/", &[]).await;
    assert_eq!(
        on_b.get("/polls/1/").await.location.as_deref(),
        Some("/login/?next=/polls/1/")
    );
    if let pollstr::db::Db::Postgres(p) = &db {
        for choice in 5..=8usize {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM votes WHERE choice_id = $1")
                .bind(choice as i64)
                .fetch_one(p)
                .await
                .unwrap();
            assert_eq!(
                n,
                expected.get(&choice).copied().unwrap_or(0),
                "choice {choice}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pollstr_postgres),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn sqlite_to_postgres_keeps_passwords_numbers_and_votes() {
    // Users of the SQLite install: the seed user votes with a verified phone.
    let old = TestApp::seeded(Backend::Sqlite).await;
    let b = old.verified_browser().await;
    b.submit("/polls/3/", "/polls/3/vote/", &[("choice", "12")])
        .await;
    let before = b.get("/polls/3/results/").await;
    // Unicode names, which used to fold differently on the two backends.
    for name in ["Émile", "Ирина", "Straße"] {
        let page = old.browser().register(name).await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "{name}: {}",
            page.text()
        );
    }

    // The documented step: dumpdata from SQLite, loaddata into PostgreSQL, with the CLI.
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.json");
    let out = pollstr_command(dir.path(), &[("DATABASE_URL", &old.database_url)])
        .args(["dumpdata", "--output"])
        .arg(&dump)
        .output()
        .unwrap();
    succeeded(&out);
    let pg = fresh_database(Backend::Postgres, &dir).await;
    let out = pollstr_command(dir.path(), &[("DATABASE_URL", &pg)])
        .arg("loaddata")
        .arg(&dump)
        .output()
        .unwrap();
    succeeded(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Installed"));

    let new_base = crate::helpers::spawn_on(Backend::Postgres, &pg).await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let nb = browser_on(&new_base, &jar);
    for name in ["ÉMILE", "ирина", "STRASSE"] {
        browser_on(&new_base, &Arc::new(reqwest::cookie::Jar::default()))
            .login(name, crate::helpers::STRONG)
            .await;
    }
    nb.login("test", "test1234").await;
    // The proven number came along: it is offered masked, no number to type.
    assert!(nb.get("/2fa/").await.has("+44 •••• ••3456"));
    let sent = nb.submit("/2fa/", "/2fa/create/", &[]).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    let db = pollstr::db::Db::connect(&pg, &Default::default())
        .await
        .unwrap();
    let view = pollstr::polls::queries::poll_view(&db, 3, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.choices.iter().map(|c| c.votes).sum::<i64>(), 1);
    assert_eq!(view.mine, Some(12), "the user's vote came along");
    assert!(
        before.has("It's rabbit huntung season! (your vote) 1 vote"),
        "{}",
        before.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_decide_whose_address_counts() {
    // Behind a trusted proxy, each forwarded client has its own per-IP budget.
    let app = spawn_app_with(
        Backend::Sqlite,
        |c| {
            c.limits.sms_per_ip = Limit::parse_list("1/1h").unwrap();
            c.limits.sms_per_user = Limit::parse_list("100/1h").unwrap();
            c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        },
        None,
    )
    .await;
    app.load(SEED).await;
    let send_as = |ip: &'static str, number: &'static str| {
        let b = app.browser();
        async move {
            b.login("test", "test1234").await;
            let page = b.get("/2fa/").await;
            let token = page.csrf().unwrap();
            b.client
                .post(b.url("/2fa/create/"))
                .header("x-forwarded-for", ip)
                .form(&[("number", number), ("csrf_token", &token)])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        send_as("203.0.113.1", "+44 7400 800001").await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        send_as("203.0.113.2", "+44 7400 800002").await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        send_as("203.0.113.1", "+44 7400 800003").await,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Without trusted proxies a spoofed header changes nothing: everyone here is 127.0.0.1.
    let app = spawn_app_with(
        Backend::Sqlite,
        |c| {
            c.limits.sms_per_ip = Limit::parse_list("1/1h").unwrap();
            c.limits.sms_per_user = Limit::parse_list("100/1h").unwrap();
        },
        None,
    )
    .await;
    app.load(SEED).await;
    let b = app.browser();
    b.login("test", "test1234").await;
    for (i, ip) in ["203.0.113.1", "203.0.113.2"].iter().enumerate() {
        let token = b.get("/2fa/").await.csrf().unwrap();
        let number = format!("+44 7400 80001{i}");
        let status = b
            .client
            .post(b.url("/2fa/create/"))
            .header("x-forwarded-for", *ip)
            .form(&[("number", number.as_str()), ("csrf_token", &token)])
            .send()
            .await
            .unwrap()
            .status();
        let want = if i == 0 {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(status, want, "{ip}");
    }
}

/// A TCP relay to PostgreSQL that the test can cut and restore.
struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: SocketAddr, addr: SocketAddr) -> Relay {
        let mut r = Relay {
            addr,
            target,
            tasks: Vec::new(),
            conns: Arc::new(Mutex::new(Vec::new())),
        };
        r.up().await;
        r
    }

    async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let (target, conns) = (self.target, self.conns.clone());
        self.tasks.push(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let h = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(h);
            }
        }));
    }

    fn down(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

/// An app with the demo polls on a fresh PostgreSQL database that it reaches through a
/// [`Relay`], so that a test can take the database away (`relay.down()`) and back.
async fn seeded_app_behind_a_relay() -> (TestApp, Relay) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Postgres, &dir).await;
    let parsed: reqwest::Url = url.parse().unwrap();
    let pg: SocketAddr = format!(
        "{}:{}",
        parsed.host_str().unwrap().replace("localhost", "127.0.0.1"),
        parsed.port().unwrap_or(5432)
    )
    .parse()
    .unwrap();
    let relay = Relay::start(pg, "127.0.0.1:0".parse().unwrap()).await;
    let mut via = parsed.clone();
    via.set_host(Some("127.0.0.1")).unwrap();
    via.set_port(Some(relay.addr.port())).unwrap();
    let app = spawn_app_with(
        Backend::Postgres,
        |c| {
            c.database_url = via.to_string();
            c.database_connect_timeout = Duration::from_secs(1);
        },
        None,
    )
    .await;
    app.load(SEED).await;
    (app, relay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pollstr_postgres),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn database_outage_is_503_and_recovers() {
    let (app, mut relay) = seeded_app_behind_a_relay().await;
    let b = app.browser();
    assert_eq!(b.get("/polls/").await.status, StatusCode::OK);
    relay.down();
    // The list read a moment ago is still served from memory (polls::cache); what is not
    // cached needs the database.
    assert_eq!(b.get("/polls/").await.status, StatusCode::OK);
    let page = b.get("/polls/?page=2").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.has("Pollstr is briefly unavailable"));
    assert_eq!(
        b.get("/healthz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Not ready, but alive: an orchestrator must not restart it for the database's outage.
    assert_eq!(
        b.get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(b.get("/livez").await.status, StatusCode::OK);
    // The login form needs no database (its CSRF token is in a cookie); logging in does.
    let form = b.get("/login/").await;
    assert_eq!(form.status, StatusCode::OK);
    let token = form.csrf().unwrap();
    let login = [
        ("username", "test"),
        ("password", "test1234"),
        ("csrf_token", token.as_str()),
    ];
    let page = b.post_raw("/login/", &login).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.has("Pollstr is briefly unavailable"));
    relay.up().await;
    // Back by itself: the pool reconnects (a dead pooled connection may fail one request).
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..5 {
        status = b.get("/polls/?page=2").await.status;
        if status == StatusCode::NOT_FOUND {
            break;
        }
    }
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        b.post_raw("/login/", &login).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(b.get("/healthz").await.status, StatusCode::OK);
}

/// The vote writer through a database outage: the votes waiting when the database went away are
/// answered "unavailable" (the 503 page), and once it is back the same writer takes votes again.
/// A current-thread runtime: the writer runs only once the three votes are queued (one batch).
#[tokio::test]
#[cfg_attr(
    not(pollstr_postgres),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn the_vote_writer_answers_an_outage_and_recovers() {
    use pollstr::error::AppError;
    use pollstr::polls::{cache::PollCache, vote_queue::VoteQueue};
    let (app, mut relay) = seeded_app_behind_a_relay().await;
    let user = app
        .scalar("SELECT id FROM users WHERE username = 'test'")
        .await;
    let queue = VoteQueue::start(
        app.db.clone(),
        Arc::new(PollCache::new(false)),
        pollstr::telemetry::Telemetry::off(),
    );
    relay.down();
    let (a, b, c) = tokio::join!(
        queue.cast(user, 1, 1),
        queue.cast(user, 1, 2),
        queue.cast(user, 2, 5),
    );
    for answer in [a, b, c] {
        assert!(
            matches!(answer, Err(AppError::Unavailable(_))),
            "{answer:?}"
        );
    }
    relay.up().await;
    // Back by itself (a dead pooled connection may fail one more vote).
    let mut counted = None;
    for _ in 0..5 {
        if let Ok(c) = queue.cast(user, 1, 3).await {
            counted = Some(c);
            break;
        }
    }
    assert_eq!(counted, Some(true));
    let sql = format!("SELECT choice_id FROM votes WHERE user_id = {user} AND question_id = 1");
    assert_eq!(app.scalar(&sql).await, 3);
}

/// Instances started at the same moment on a fresh database (every replica of a deployment
/// restarted at once): each migrates, one at a time under the migration lock (the others find
/// the work done), all of them serve, and each migration is applied once. Three rounds of four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pollstr_postgres),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn instances_started_together_migrate_once() {
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count() as i64;
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_database(Backend::Postgres, &dir).await;
        // Concurrent on one task: the migration's future is not `Send`, and the waiting is the
        // database's, not this process's.
        let started = tokio::join!(
            crate::helpers::spawn_on(Backend::Postgres, &url),
            crate::helpers::spawn_on(Backend::Postgres, &url),
            crate::helpers::spawn_on(Backend::Postgres, &url),
            crate::helpers::spawn_on(Backend::Postgres, &url),
        );
        let client = reqwest::Client::new();
        for base in [started.0, started.1, started.2, started.3] {
            for path in ["/healthz", "/login/"] {
                let res = client.get(format!("{base}{path}")).send().await.unwrap();
                assert_eq!(res.status(), StatusCode::OK, "round {round}: {path}");
            }
        }
        let Ok(pollstr::db::Db::Postgres(pool)) =
            pollstr::db::Db::connect(&url, &Default::default()).await
        else {
            panic!("round {round}: connect");
        };
        let (applied, distinct): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(DISTINCT version) FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            (applied, distinct),
            (migrations, migrations),
            "round {round}"
        );
        let sessions: i64 =
            sqlx::query_scalar(r#"SELECT COUNT(*) FROM "tower_sessions"."session""#)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(sessions, 0, "round {round}");
        pool.close().await;
    }
}
