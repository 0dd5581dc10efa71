//! The `pollstr` command: serve (default), migrate, loaddata, dumpdata, events, recount,
//! export-results, verify-poll, backup, createuser, set-password.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pollstr::app;
use pollstr::config::Config;
use pollstr::fixtures;
use pollstr::logging::LogFormat;
use pollstr::two_factor::sms;
use pollstr::users::{self, password, validation};
use tracing_subscriber::EnvFilter;

/// mimalloc: less time in the allocator than glibc's malloc under many threads, and a smaller
/// resident set (measured in docs/benchmarks-history.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pollstr",
    version,
    about = "Polls with phone two-factor authentication"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web app on POLLSTR_ADDR (the default command).
    Serve,
    /// Apply database migrations, then exit.
    Migrate,
    /// Load Django dumpdata JSON files (all or nothing).
    Loaddata {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Write the database as Django dumpdata JSON.
    Dumpdata {
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Print security events (logins, codes, numbers, password changes, logouts), oldest first.
    Events {
        /// Only this user's events.
        #[arg(long)]
        user: Option<String>,
        /// How far back: e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1d", value_parser = since_parser)]
        since: std::time::Duration,
        /// At most this many (the newest).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// The SMS pumping guard's figures: codes sent, confirmed and conversion per destination
    /// country and number prefix, and the countries whose sends are paused.
    SmsReport {
        /// How far back: e.g. 1h, 1d, 7d.
        #[arg(long, default_value = "1d", value_parser = since_parser)]
        since: std::time::Duration,
    },
    /// Lift the pause on sends to a country (two letters, e.g. GB) before it ends.
    SmsResume { country: String },
    /// Print a new random key for POLLSTR_SECRET_KEY.
    SecretKey,
    /// Write a checked copy of the SQLite database to FILE while the site serves (on
    /// PostgreSQL: use pg_dump).
    Backup {
        /// The copy to write (must not exist).
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Recompute every choice's vote count from the vote rows; report and fix any difference.
    Recount,
    /// Set a user's password without the old one (as Django's changepassword): every session
    /// of theirs ends, their trusted browsers are forgotten; their next login still asks for
    /// the second factor. The password is asked for, or read from standard input.
    SetPassword {
        username: String,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Write a poll's results as CSV (choice, votes, share), as staff see them; a closed poll's
    /// close is recorded first, so its results are final.
    ExportResults {
        /// The poll's id.
        id: i64,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Check a closed poll's sealed result against the database: the audit file, its digest,
    /// the number of votes and the kept counts (and whether a receipt is in it). Fails, naming
    /// what differs, if anything does not match what was published.
    VerifyPoll {
        /// The poll's id.
        id: i64,
        /// A receipt shown to a voter (dashes, spaces and case do not matter).
        #[arg(long)]
        receipt: Option<String>,
    },
    /// Create a user; the password is asked for, or read from standard input.
    Createuser {
        username: String,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        /// Make the user staff: they may use the admin at /admin/.
        #[arg(long)]
        staff: bool,
    },
}

/// Where `serve` in development (`Config::is_development`) keeps the key it made when POLLSTR_SECRET_KEY is unset
/// (in the working directory, beside the SQLite file; git ignores it).
const DEVELOPMENT_KEY_FILE: &str = ".pollstr-secret-key";

/// The development key: read from [`DEVELOPMENT_KEY_FILE`], or made and written there, so that
/// `cargo run` works with nothing set and authenticators enrolled yesterday still open today.
fn development_key() -> anyhow::Result<pollstr::crypto::SecretKey> {
    use pollstr::crypto::SecretKey;
    if let Ok(text) = std::fs::read_to_string(DEVELOPMENT_KEY_FILE) {
        return SecretKey::parse(&text).ok_or_else(|| {
            anyhow::anyhow!(
                "{DEVELOPMENT_KEY_FILE} does not hold a key: delete it, or set POLLSTR_SECRET_KEY"
            )
        });
    }
    let key = SecretKey::generate();
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    std::io::Write::write_all(
        &mut file
            .open(DEVELOPMENT_KEY_FILE)
            .map_err(|e| anyhow::anyhow!("cannot write {DEVELOPMENT_KEY_FILE}: {e}"))?,
        (key.encode() + "\n").as_bytes(),
    )?;
    tracing::warn!(
        "POLLSTR_SECRET_KEY is not set: made a development key and kept it in {DEVELOPMENT_KEY_FILE}"
    );
    Ok(key)
}

fn since_parser(v: &str) -> Result<std::time::Duration, String> {
    pollstr::config::parse_duration(v).ok_or_else(|| format!("{v:?}: use e.g. 30m, 1h or 7d"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = Config::from_env();
    let format = config.as_ref().map(|c| c.log_format).unwrap_or_default();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("pollstr=info,tower_sessions=error")),
        )
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.event_format(pollstr::logging::LineFormat).init(),
        LogFormat::Json => logs.event_format(pollstr::logging::JsonFormat).init(),
    }
    let result = match config {
        Ok(config) => run(cli, config).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            app::connect(&config).await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Loaddata { files } => loaddata(&config, &files).await,
        Command::Dumpdata { output } => dumpdata(&config, output).await,
        Command::Events { user, since, limit } => events(&config, user, since, limit).await,
        Command::SmsReport { since } => {
            let db = app::connect(&config).await?;
            let from = pollstr::db::now() - since.as_secs() as i64;
            print!("{}", sms::guard::report(&db, from).await?);
            Ok(())
        }
        Command::SmsResume { country } => sms_resume(&config, &country).await,
        Command::SecretKey => {
            println!("{}", pollstr::crypto::SecretKey::generate().encode());
            Ok(())
        }
        Command::Recount => recount(&config).await,
        Command::ExportResults { id, output } => {
            let db = app::connect(&config).await?;
            let csv = pollstr::polls::export::export(&db, id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("there is no published poll {id}"))?;
            match output {
                Some(path) => std::fs::write(&path, csv)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
                None => print!("{csv}"),
            }
            Ok(())
        }
        Command::Backup { output } => {
            let db = app::connect(&config).await?;
            let done = pollstr::db::backup::backup(&db, &output).await?;
            eprintln!(
                "backup written to {} ({} bytes) and checked: integrity ok",
                output.display(),
                done.bytes
            );
            Ok(())
        }
        Command::VerifyPoll { id, receipt } => verify_poll(&config, id, receipt.as_deref()).await,
        Command::Createuser {
            username,
            password_stdin,
            staff,
        } => createuser(&config, &username, password_stdin, staff).await,
        Command::SetPassword {
            username,
            password_stdin,
        } => set_password(&config, &username, password_stdin).await,
    }
}

/// `verify-poll`: prints what it found; an error if anything differs from what was published.
async fn verify_poll(config: &Config, id: i64, receipt: Option<&str>) -> anyhow::Result<()> {
    let hash = match receipt {
        Some(r) => Some(pollstr::polls::receipt::hash_of(r).ok_or_else(|| {
            anyhow::anyhow!("{r:?} is not a receipt (32 letters A–Z and digits 2–7)")
        })?),
        None => None,
    };
    let db = app::connect(config).await?;
    let verdict = pollstr::polls::seal::verify(&db, id, hash.as_deref())
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!("poll {id} is not sealed: there is no such poll, or it has not closed")
        })?;
    for line in &verdict.lines {
        println!("{line}");
    }
    if !verdict.ok {
        anyhow::bail!("poll {id} does not match what was published");
    }
    Ok(())
}

/// `serve`: the development defaults where they apply, the demo data on an empty database.
async fn serve(mut config: Config) -> anyhow::Result<()> {
    config.check_for_serving()?;
    let development = config.is_development();
    if development && !config.addr.ip().is_loopback() {
        tracing::warn!(addr = %config.addr, "POLLSTR_ENV=development on an address other machines can reach: development defaults (a key kept on disk, the demo user test / test1234, codes in the log without keys)");
    }
    if config.secret_key.is_none() {
        // check_for_serving refused this outside development.
        config.secret_key = Some(development_key()?);
    }
    let seed = config.seed_demo;
    let addr = config.addr;
    let metrics_addr = config.metrics_addr;
    if metrics_addr.is_some_and(|m| m.port() == addr.port() || m == addr) {
        anyhow::bail!("METRICS_ADDR must not be the public address (POLLSTR_ADDR) nor share its port: the metrics are for the operator only");
    }
    let state = app::build_state(config).await?;
    if seed && fixtures::seed_demo_if_empty(&state.db, development).await? {
        if development {
            tracing::info!("empty database: loaded the demo polls and the user test / test1234");
        } else {
            tracing::info!(
                "empty database: loaded the demo polls (no demo user outside development)"
            );
        }
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("Pollstr listening on http://{}", listener.local_addr()?);
    let metrics = match metrics_addr {
        Some(m) => {
            let l = tokio::net::TcpListener::bind(m)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on METRICS_ADDR {m}: {e}"))?;
            tracing::info!("metrics on http://{}/metrics", l.local_addr()?);
            Some(l)
        }
        None => None,
    };
    app::serve(listener, metrics, state).await
}

async fn loaddata(config: &Config, files: &[PathBuf]) -> anyhow::Result<()> {
    let db = app::connect(config).await?;
    let mut texts = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
        texts.push((f.display().to_string(), text));
    }
    let report = fixtures::load(&db, &texts).await?;
    eprintln!("{}", report.summary(files.len()));
    Ok(())
}

async fn dumpdata(config: &Config, output: Option<PathBuf>) -> anyhow::Result<()> {
    let db = app::connect(config).await?;
    let json = fixtures::dump(&db).await?;
    if json.contains("\"two_factor.totpdevice\"") || json.contains("\"two_factor.recoverycode\"") {
        eprintln!("note: the dump holds authenticator secrets (sealed) and recovery codes (keyed hashes) under POLLSTR_SECRET_KEY: where it is loaded, set the same key, or those users set up their authenticator again");
    }
    match output {
        Some(path) => std::fs::write(&path, json)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
        None => print!("{json}"),
    }
    Ok(())
}

async fn events(
    config: &Config,
    user: Option<String>,
    since: std::time::Duration,
    limit: u32,
) -> anyhow::Result<()> {
    let db = app::connect(config).await?;
    let user_id = match &user {
        Some(name) => Some(
            users::find_by_username(&db, name)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user is named {name:?}"))?
                .id,
        ),
        None => None,
    };
    let from = pollstr::db::now() - since.as_secs() as i64;
    let events = pollstr::events::list(&db, user_id, from, i64::from(limit)).await?;
    let mut out = std::io::stdout().lock();
    for e in &events {
        use std::io::Write;
        writeln!(out, "{}", pollstr::events::line(e))?;
    }
    if events.is_empty() {
        eprintln!("no events");
    }
    Ok(())
}

async fn sms_resume(config: &Config, country: &str) -> anyhow::Result<()> {
    let code = country.trim().to_ascii_uppercase();
    if code.parse::<phonenumber::country::Id>().is_err() {
        anyhow::bail!("{country:?} is not a two-letter country code such as GB or US");
    }
    let db = app::connect(config).await?;
    if sms::guard::resume(&db, &code).await? {
        eprintln!("sends to {code} resume now");
    } else {
        eprintln!("sends to {code} were not paused");
    }
    Ok(())
}

async fn recount(config: &Config) -> anyhow::Result<()> {
    let db = app::connect(config).await?;
    let fixes = pollstr::polls::counts::recount(&db).await?;
    for f in &fixes {
        eprintln!(
            "choice {} (poll {}): the kept count said {}, the vote rows say {}: fixed",
            f.choice_id, f.question_id, f.kept, f.counted
        );
    }
    match fixes.len() {
        0 => eprintln!("every vote count matches the vote rows"),
        n => eprintln!("fixed the vote counts of {n} choice(s)"),
    }
    Ok(())
}

/// A new password: asked for twice on a terminal, else the first line of standard input;
/// refused unless it passes registration's rules for `username`.
fn read_new_password(username: &str, password_stdin: bool) -> anyhow::Result<String> {
    let pw = if password_stdin || !std::io::stdin().is_terminal() {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s.lines().next().unwrap_or("").to_string()
    } else {
        let a = rpassword::prompt_password("Password: ")?;
        let b = rpassword::prompt_password("Password (again): ")?;
        if a != b {
            anyhow::bail!("the two passwords didn't match");
        }
        a
    };
    let problems = validation::password_problems(&pw, username);
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join(" "));
    }
    Ok(pw)
}

async fn set_password(config: &Config, username: &str, password_stdin: bool) -> anyhow::Result<()> {
    let db = app::connect(config).await?;
    let user = users::find_by_username(&db, username)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user is named {username:?}"))?;
    let pw = read_new_password(&user.username, password_stdin)?;
    let hash = password::hash(pw).await?;
    let how = "set with pollstr set-password";
    pollstr::accounts::reset::set_password(&db, user.id, &hash, "-", how)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "set the password of {} (id {}): every session of theirs ended; their next login asks for their second factor",
        user.username, user.id
    );
    if db.is_embedded() {
        eprintln!("note: a `pollstr serve` running on this SQLite file keeps the sessions it holds in memory until it restarts: restart it to log them out at once");
    }
    Ok(())
}

async fn createuser(
    config: &Config,
    username: &str,
    password_stdin: bool,
    staff: bool,
) -> anyhow::Result<()> {
    let name = validation::Username::parse(username).map_err(anyhow::Error::msg)?;
    let pw = read_new_password(name.as_str(), password_stdin)?;
    let db = app::connect(config).await?;
    let hash = password::hash(pw).await?;
    let id = users::create(&db, name.as_str(), &hash).await?;
    if staff {
        pollstr::admin::queries::set_staff(&db, id, true).await?;
        eprintln!("created staff user {} (id {id})", name.as_str());
    } else {
        eprintln!("created user {} (id {id})", name.as_str());
    }
    Ok(())
}
