//! The test harness: the real app on a random port with a fresh database (a SQLite file, or a
//! fresh PostgreSQL database when TEST_DATABASE_URL is set), a cookie-keeping client that reads
//! forms like a browser, and the console provider's codes as the phone.

use std::collections::HashMap;
use std::sync::{Arc, Once};

use pollstr::app::{self, AppState};
use pollstr::config::Config;
use pollstr::config::VonageConfig;
use pollstr::db::Db;
use pollstr::polls::cache::PollCache;
use pollstr::two_factor::sms::console::ConsoleVerifier;
use pollstr::two_factor::sms::vonage_v2::VonageV2Verifier;
use pollstr::two_factor::sms::Verifier;
use reqwest::{redirect, Response, StatusCode};
use scraper::{Html, Selector};
use tokio::sync::{mpsc, Mutex};

/// The tutorial's Django fixture (three polls, twelve choices, the user test): the demo data that
/// `fixtures/all.json` ships and `cargo run` loads.
pub const SEED: &str = pollstr::fixtures::DEMO;
pub const SEED_USER: &str = r#"[{"model":"auth.user","pk":1,"fields":{"password":"pbkdf2_sha256$24000$rk8toKlZt2vr$dsOOeY/jjjwYLqkmaT5gcRYSrtFabI+eZVgbPylP9EA=","username":"test","is_active":true}}]"#;
/// A password that passes every rule.
pub const STRONG: &str = "Xk3!pq9z#Lm";
pub const PHONE: &str = "+44 7911 123456";
pub const PHONE_E164: &str = "+447911123456";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend from `async fn name(backend: Backend)`. The PostgreSQL ones are
/// reported as ignored unless TEST_DATABASE_URL was set when the tests were built (build.rs).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::helpers::Backend::Sqlite).await } )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(pollstr_postgres), ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)")]
            async fn $name() { super::$name($crate::helpers::Backend::Postgres).await }
        )* }
    };
}

/// Which Verify provider a test's app talks to when the test does not give one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// The console provider, in the app's own database.
    Console,
    /// The real Verify v2 client against the stateful fake in `fake_verify_v2`.
    FakeVerifyV2,
}

tokio::task_local! {
    /// Set by [`each_provider!`] around a test; [`Provider::Console`] when unset.
    pub static PROVIDER: Provider;
}

/// Like [`both_backends!`], and each test once more on both backends with the Verify v2 client
/// talking to the fake v2 server (`verify_v2::sqlite::…`, `verify_v2::postgres::…`).
#[macro_export]
macro_rules! each_provider {
    ($($name:ident),* $(,)?) => {
        $crate::both_backends!($($name),*);
        mod verify_v2 {
            mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() {
                $crate::helpers::PROVIDER.scope($crate::helpers::Provider::FakeVerifyV2, super::super::$name($crate::helpers::Backend::Sqlite)).await
            } )* }
            mod postgres { $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(pollstr_postgres), ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)")]
                async fn $name() {
                    $crate::helpers::PROVIDER.scope($crate::helpers::Provider::FakeVerifyV2, super::super::$name($crate::helpers::Backend::Postgres)).await
                }
            )* }
        }
    };
}

/// The PostgreSQL server for tests, from TEST_DATABASE_URL. A PostgreSQL test is only run when it
/// was set at build time (`pollstr_postgres`), so its absence now is a failure, not a skip.
pub fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .expect("TEST_DATABASE_URL names the PostgreSQL server for this test")
}

/// A fresh, empty database URL for one test.
pub async fn fresh_database(backend: Backend, dir: &tempfile::TempDir) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("test.db").display()),
        Backend::Postgres => {
            let base = postgres_url();
            let name = format!("pollstr_test_{}", uuid_like());
            let admin = Db::connect(&base, &Default::default())
                .await
                .expect("connect to TEST_DATABASE_URL");
            if let Db::Postgres(p) = &admin {
                drop_leftovers(p).await;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(p)
                    .await
                    .expect("create database");
                p.close().await;
            }
            let (head, _) = base.rsplit_once('/').expect("database URL has a path");
            let tail = base
                .split_once('?')
                .map(|(_, q)| format!("?{q}"))
                .unwrap_or_default();
            format!("{head}/{name}{tail}")
        }
    }
}

/// Drops the test databases of earlier runs, once per test process.
async fn drop_leftovers(pool: &sqlx::PgPool) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let old: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE datname LIKE 'pollstr_test_%' \
             AND datname NOT IN (SELECT datname FROM pg_stat_activity WHERE datname IS NOT NULL)",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default();
        for name in old {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                .execute(pool)
                .await;
        }
    })
    .await;
}

fn uuid_like() -> String {
    use rand::Rng;
    let mut r = rand::rng();
    (0..16)
        .map(|_| format!("{:x}", r.random_range(0..16u8)))
        .collect()
}

pub fn test_config(database_url: &str) -> Config {
    let url = database_url.to_string();
    let mut config = Config::from_lookup(move |k| match k {
        "DATABASE_URL" => Some(url.clone()),
        "POLLSTR_SEED_DEMO" => Some("false".into()),
        _ => None,
    })
    .expect("test config");
    // One key for every instance of a test, as a deployment shares one.
    config.secret_key = pollstr::crypto::SecretKey::parse(&"5e".repeat(32));
    config
}

pub struct TestApp {
    pub addr: String,
    pub db: Db,
    pub database_url: String,
    /// The app's poll cache, cleared when a test loads a fixture behind the app's back.
    pub polls: Arc<PollCache>,
    pub codes: Mutex<mpsc::UnboundedReceiver<(String, String)>>,
    /// The provider the app was given when the test gave none.
    pub provider: Provider,
    /// The app's state (its parts: the vote writer, …).
    pub state: AppState,
    /// `http://…/metrics` on the app's metrics listener, when the test set `metrics_addr`.
    pub metrics: Option<String>,
    /// Tells the server to stop, as SIGTERM does (`app::serve_until`).
    pub stop: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    /// The server's task: it ends once the server has drained and finished.
    pub serving: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub _dir: tempfile::TempDir,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}, None).await
}

/// Starts the app; `tweak` edits the configuration, `verifier` replaces the console provider.
pub async fn spawn_app_with(
    backend: Backend,
    tweak: impl FnOnce(&mut Config),
    verifier: Option<Arc<dyn Verifier>>,
) -> TestApp {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database(backend, &dir).await;
    let mut config = test_config(&url);

    tweak(&mut config);
    let db = app::connect(&config).await.expect("database");
    let (tx, rx) = mpsc::unbounded_channel();
    let provider = PROVIDER.try_with(|p| *p).unwrap_or(Provider::Console);
    let verifier: Arc<dyn Verifier> = match verifier {
        Some(v) => v,
        None => match provider {
            Provider::Console => {
                Arc::new(ConsoleVerifier::with_outbox(db.clone(), tx).with_settings(&config.verify))
            }
            Provider::FakeVerifyV2 => {
                let base_url = crate::fake_verify_v2::start(tx).await;
                Arc::new(
                    VonageV2Verifier::new(
                        VonageConfig {
                            api_key: crate::fake_verify_v2::KEY.into(),
                            api_secret: crate::fake_verify_v2::SECRET.into(),
                            brand: "Pollstr".into(),
                            base_url,
                            timeout: std::time::Duration::from_secs(10),
                        },
                        None,
                        config.verify.clone(),
                    )
                    .expect("the v2 client"),
                )
            }
        },
    };
    let state = app::new_state(db.clone(), config, verifier);
    let polls = state.part::<Arc<PollCache>>().clone();
    let (addr, stop, serving) = serve_in_background(state.clone()).await;
    let metrics = match state.config.metrics_addr {
        Some(_) => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/metrics", listener.local_addr().unwrap());
            let (limits, router) = (
                state.config.http.clone(),
                app::metrics_router(state.clone()),
            );
            tokio::spawn(async move {
                pollstr::server::serve(listener, router, &limits, std::future::pending()).await
            });
            Some(url)
        }
        None => None,
    };
    TestApp {
        addr,
        metrics,
        state,
        stop: std::sync::Mutex::new(Some(stop)),
        serving: Mutex::new(Some(serving)),
        polls,
        db,
        database_url: url,
        codes: Mutex::new(rx),
        provider,
        _dir: dir,
    }
}

/// Serves the app on a random port until told to stop (or the sender is dropped); returns its
/// base URL, the sender, and the server's task.
async fn serve_in_background(
    state: AppState,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        app::serve_until(listener, state, async {
            let _ = stopped.await;
        })
        .await
    });
    (format!("http://{addr}"), stop, serving)
}

/// Another app instance on an existing database; returns its base URL.
pub async fn spawn_on(_backend: Backend, database_url: &str) -> String {
    let config = test_config(database_url);
    let db = app::connect(&config).await.expect("database");
    let state = app::new_state(db.clone(), config, Arc::new(ConsoleVerifier::new(db)));
    let (addr, stop, _) = serve_in_background(state).await;
    // Serves for the rest of the test process.
    std::mem::forget(stop);
    addr
}

/// The `pollstr` binary with a clean environment, run in `dir` (so no `.env` is read).
pub fn pollstr_command(dir: &std::path::Path, env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pollstr"));
    cmd.current_dir(dir)
        .env_clear()
        .env("RUST_LOG", "pollstr=info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            tracing_subscriber::fmt()
                .with_env_filter("pollstr=debug")
                .init();
        }
    });
}

/// A test's PostgreSQL database goes with the test (`drop_leftovers` catches the rest: those
/// of tests that made one without a `TestApp`, or of a run that was killed).
impl Drop for TestApp {
    fn drop(&mut self) {
        let (Ok(base), true) = (std::env::var("TEST_DATABASE_URL"), self.db.is_postgres()) else {
            return;
        };
        let Some(name) = self
            .database_url
            .rsplit('/')
            .next()
            .and_then(|tail| tail.split('?').next())
            .filter(|n| n.starts_with("pollstr_test_"))
            .map(str::to_string)
        else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(Db::Postgres(admin)) = Db::connect(&base, &Default::default()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&admin)
                        .await;
                    admin.close().await;
                }
            })
        });
        let _ = dropped.join();
    }
}

impl TestApp {
    pub async fn load(&self, json: &str) {
        pollstr::fixtures::load(&self.db, &[("fixture".into(), json.into())])
            .await
            .expect("load fixture");
        // As `pollstr serve` would see it a moment later (its cache lives for a second).
        self.polls.clear();
    }

    pub async fn seeded(backend: Backend) -> TestApp {
        let app = spawn_app(backend).await;
        app.load(SEED).await;
        app
    }

    /// A new browser: its own cookie jar.
    pub fn browser(&self) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        Browser {
            base: self.addr.clone(),
            client: reqwest::Client::builder()
                .cookie_provider(jar.clone())
                .redirect(redirect::Policy::none())
                .build()
                .expect("client"),
            jar,
        }
    }

    /// The next code the console provider "sent" to `number` (E.164).
    pub async fn code_for(&self, number: &str) -> String {
        let mut rx = self.codes.lock().await;
        loop {
            let (to, code) = rx.try_recv().expect("no code was sent");
            if to == number {
                return code;
            }
        }
    }

    pub fn no_code_sent(&self) -> bool {
        self.codes
            .try_lock()
            .map(|mut rx| rx.try_recv().is_err())
            .unwrap_or(false)
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        match &self.db {
            Db::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(p)
                .await
                .expect(sql),
            Db::Postgres(p) => sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(p)
                .await
                .expect(sql),
        }
    }

    /// Runs a statement behind the app's back (as a manual edit or another tool would).
    pub async fn execute(&self, sql: &str) {
        match &self.db {
            Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Loads the seed's user and returns a verified browser (for apps built without the seed).
    pub async fn verified_browser_with_seed_user(&self) -> Browser {
        let user: String = SEED_USER.into();
        self.load(&user).await;
        self.verified_browser().await
    }

    /// A browser logged in as `test` with its phone verified.
    pub async fn verified_browser(&self) -> Browser {
        let b = self.browser();
        b.login("test", "test1234").await;
        b.verify_phone(self, PHONE).await;
        b
    }
}

#[derive(Clone)]
pub struct Browser {
    pub base: String,
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
}

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    pub async fn from(res: Response) -> Page {
        let status = res.status();
        let headers = res.headers().clone();
        let location = headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = res.text().await.unwrap_or_default();
        Page {
            status,
            location,
            body,
            headers,
        }
    }

    pub fn text(&self) -> String {
        let doc = Html::parse_document(&self.body);
        doc.root_element().text().collect::<Vec<_>>().join(" ")
    }

    pub fn has(&self, needle: &str) -> bool {
        self.text()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains(needle)
    }

    /// The fields of the form posting to `action`, as a browser would send them by default.
    pub fn form(&self, action: &str) -> Option<Vec<(String, String)>> {
        let doc = Html::parse_document(&self.body);
        let sel = Selector::parse(&format!("form[action=\"{action}\"]")).unwrap();
        let inputs = Selector::parse("input").unwrap();
        let form = doc.select(&sel).next()?;
        let mut fields: Vec<(String, String)> = form
            .select(&inputs)
            .filter_map(|i| {
                let name = i.value().attr("name")?;
                let ty = i.value().attr("type").unwrap_or("text");
                if (ty == "radio" || ty == "checkbox") && i.value().attr("checked").is_none() {
                    return None;
                }
                Some((
                    name.to_string(),
                    i.value().attr("value").unwrap_or("").to_string(),
                ))
            })
            .collect();
        // A select sends its selected option, else its first.
        let selects = Selector::parse("select[name]").unwrap();
        let options = Selector::parse("option").unwrap();
        for s in form.select(&selects) {
            let all: Vec<_> = s.select(&options).collect();
            let chosen = all
                .iter()
                .find(|o| o.value().attr("selected").is_some())
                .or(all.first());
            if let (Some(name), Some(o)) = (s.value().attr("name"), chosen) {
                let value = o.value().attr("value").unwrap_or("").to_string();
                fields.push((name.to_string(), value));
            }
        }
        Some(fields)
    }

    /// The `Retry-After` header in seconds, if the answer has one.
    pub fn retry_after(&self) -> Option<u64> {
        self.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    }

    pub fn csrf(&self) -> Option<String> {
        let doc = Html::parse_document(&self.body);
        let sel = Selector::parse("input[name=csrf_token]").unwrap();
        doc.select(&sel)
            .next()
            .and_then(|i| i.value().attr("value"))
            .map(str::to_string)
    }
}

impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Page {
        Page::from(self.client.get(self.url(path)).send().await.expect("GET")).await
    }

    /// Follows redirects (like a browser) and returns the final page and its path.
    pub async fn follow(&self, mut page: Page) -> (String, Page) {
        let mut path = String::new();
        for _ in 0..10 {
            match page.location.clone() {
                Some(loc) if page.status.is_redirection() => {
                    path = loc.clone();
                    page = self.get(&loc).await;
                }
                _ => break,
            }
        }
        (path, page)
    }

    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_with_headers(path, fields, &[]).await
    }

    /// POSTs `fields` with extra request headers (`Origin`, `Referer`, …).
    pub async fn post_with_headers(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut request = self.client.post(self.url(path)).form(fields);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Page::from(request.send().await.expect("POST")).await
    }

    /// Opens `page_path`, fills the form that posts to `action` with `fields` (over its own
    /// hidden fields), and submits it.
    pub async fn submit(&self, page_path: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let page = self.get(page_path).await;
        let mut form: HashMap<String, String> = page
            .form(action)
            .unwrap_or_else(|| panic!("no form posting to {action} on {page_path}: {}", page.body))
            .into_iter()
            .collect();
        for (k, v) in fields {
            form.insert(k.to_string(), v.to_string());
        }
        let pairs: Vec<(String, String)> = form.into_iter().collect();
        Page::from(
            self.client
                .post(self.url(action))
                .form(&pairs)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    /// Opens `page_path` once, then posts its form to `action` `n` times at once, the `i`-th
    /// time with `fields(i)` over the form's own fields (a burst, as an attacker sends it).
    pub async fn burst(
        &self,
        page_path: &str,
        action: &str,
        n: usize,
        fields: impl Fn(usize) -> Vec<(&'static str, String)>,
    ) -> Vec<Page> {
        let page = self.get(page_path).await;
        let form: HashMap<String, String> = page
            .form(action)
            .unwrap_or_else(|| panic!("no form posting to {action} on {page_path}: {}", page.body))
            .into_iter()
            .collect();
        let mut sent = Vec::new();
        for i in 0..n {
            let mut form = form.clone();
            for (k, v) in fields(i) {
                form.insert(k.to_string(), v);
            }
            let request = self.client.post(self.url(action)).form(&form);
            sent.push(tokio::spawn(async move { request.send().await }));
        }
        let mut pages = Vec::new();
        for s in sent {
            pages.push(Page::from(s.await.unwrap().expect("POST")).await);
        }
        pages
    }

    /// Submits the login form with `next`; the answer is not checked.
    pub async fn login_next(&self, username: &str, password: &str, next: &str) -> Page {
        self.submit(
            "/login/",
            "/login/",
            &[
                ("username", username),
                ("password", password),
                ("next", next),
            ],
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Page {
        let page = self
            .submit(
                "/login/",
                "/login/",
                &[("username", username), ("password", password)],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "login failed: {}",
            page.text()
        );
        page
    }

    /// Signs up (and so logs in) as `username` with the password [`STRONG`].
    pub async fn register(&self, username: &str) -> Page {
        self.submit(
            "/register/",
            "/register/",
            &[
                ("username", username),
                ("password1", STRONG),
                ("password2", STRONG),
            ],
        )
        .await
    }

    /// Sends a code to `number` and types it in.
    pub async fn verify_phone(&self, app: &TestApp, number: &str) -> Page {
        let sent = self
            .submit("/2fa/", "/2fa/create/", &[("number", number)])
            .await;
        assert_eq!(
            sent.status,
            StatusCode::SEE_OTHER,
            "send failed: {}",
            sent.text()
        );
        let e164 = pollstr::two_factor::sms::phone::PhoneNumber::parse(number, None).unwrap();
        let code = app.code_for(e164.e164()).await;
        let done = self
            .submit(
                sent.location.as_deref().unwrap(),
                "/2fa/confirm/",
                &[("code", &code)],
            )
            .await;
        assert_eq!(
            done.status,
            StatusCode::SEE_OTHER,
            "confirm failed: {}",
            done.text()
        );
        done
    }

    /// The session cookie's value, as the browser would send it.
    pub fn session_cookie(&self) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let url: reqwest::Url = self.base.parse().ok()?;
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|c| c.strip_prefix("pollstr_session="))
            .map(str::to_string)
    }

    /// A client that sends exactly this cookie header (a copied cookie, in another browser).
    pub fn with_cookie(&self, session: &str) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "cookie",
            format!("pollstr_session={session}")
                .parse()
                .expect("header"),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .redirect(redirect::Policy::none())
            .build()
            .expect("client")
    }
}

impl TestApp {
    /// The seeded app with room for many phone verifications from one address (tests that need
    /// many voters).
    pub async fn seeded_for_many_voters(backend: Backend) -> TestApp {
        let app = spawn_app_with(
            backend,
            |c| {
                c.limits.sms_per_ip = pollstr::limits::Limit::parse_list("1000/1h").unwrap();
            },
            None,
        )
        .await;
        app.load(SEED).await;
        app
    }

    /// `n` more users, `{prefix}0`…, each signed in with their phone (`+44 7400 {series}{i:05}`,
    /// a series per test file so that numbers never clash) proven.
    pub async fn phone_voters(&self, prefix: &str, series: u32, n: usize) -> Vec<Browser> {
        let hash = pollstr::users::password::hash("s3cret-pass!".into())
            .await
            .unwrap();
        let mut browsers = Vec::new();
        for i in 0..n {
            let name = format!("{prefix}{i}");
            pollstr::users::create(&self.db, &name, &hash)
                .await
                .unwrap();
            let b = self.browser();
            b.login(&name, "s3cret-pass!").await;
            b.verify_phone(self, &format!("+44 7400 {series}{i:05}"))
                .await;
            browsers.push(b);
        }
        browsers
    }

    /// Makes `username` staff (as `pollstr createuser --staff` or an admin would).
    pub async fn make_staff(&self, username: &str) {
        self.execute(&format!(
            "UPDATE users SET is_staff = TRUE WHERE username = '{username}'"
        ))
        .await;
    }

    /// The seed's `test` made staff, signed in with both factors (the login puts the session in
    /// sudo mode for `SUDO_WINDOW`).
    pub async fn staff_browser(&self) -> Browser {
        self.make_staff("test").await;
        self.verified_browser().await
    }
}

impl Browser {
    /// POSTs a `multipart/form-data` body: `fields`, then `file` as (field, file name, bytes).
    pub async fn post_multipart(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        file: Option<(&str, &str, &[u8])>,
    ) -> Page {
        let boundary = "----pollstr-test-boundary-7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        if let Some((name, file_name, bytes)) = file {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/json\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        Page::from(
            self.client
                .post(self.url(path))
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }
}
