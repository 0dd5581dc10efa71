//! The database: SQLite (embedded default) or PostgreSQL (many instances), chosen from the URL.
//!
//! Queries are written once, with `$1` placeholders that both backends accept, and run through
//! [`with_db!`], which compiles the same code once per backend. Each backend has its own
//! migrations folder; the two stay in step, one file per change on each side. What cannot be
//! one text for both (a lock, a transaction's start) is a named method in `backend.rs`.
//!
//! `with_db!` is used only here and in the features' `store` files (`polls/store.rs`,
//! `sms/store/`, …): the SQL of a feature is in its store, and the rest of the code calls it.
//! `backup.rs` (SQLite's `VACUUM INTO` and `integrity_check`) is SQLite's alone.

mod backend;
pub mod backup;
pub mod cache;
pub mod lane;
pub mod session_store;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use session_store::AppSessionStore;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Advisory lock key held while migrating PostgreSQL ("pollstr" in ASCII).
const MIGRATION_LOCK: i64 = 0x0070_6f6c_6c73_7472;

/// A pooled PostgreSQL connection idle for longer than this is pinged before it is lent.
pub(crate) const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// A pool on one of the two backends.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool (or transaction) of either backend.
/// The body is compiled once per backend, so it must be valid for both.
#[macro_export]
macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Pool settings taken from `Config`.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl Db {
    /// Opens a pool for `url` (`sqlite://file.db` or `postgres://…`). A SQLite file is created if
    /// missing and runs in WAL mode.
    pub async fn connect(url: &str, settings: &PoolSettings) -> anyhow::Result<Db> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            // sqlx pings a connection before lending it and again when it comes back: two extra
            // round trips per query. The ping on return stays (it finds a connection that broke
            // during its query, and drops it); the one before lending is kept only for
            // connections that have sat idle, which may have died meanwhile (a database
            // restart): a busy connection was just checked on its return.
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.connect_timeout)
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for > PING_IDLE_AFTER {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(opts)
                .await?;
            Ok(Db::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            // No ping before each use: an embedded database's connection cannot have gone away,
            // and the ping is a round trip to the connection's worker thread on every query.
            let pool = SqlitePoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.connect_timeout)
                .test_before_acquire(false)
                .connect_with(opts)
                .await?;
            Ok(Db::Sqlite(pool))
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite: or postgres://, got {url:?}")
        }
    }

    /// Applies the app's migrations and the session store's table.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(p) => {
                SQLITE_MIGRATIONS.run(p).await?;
                self.session_store().migrate().await?;
            }
            Db::Postgres(p) => {
                // Several instances may start at once: one migrates at a time, the others wait
                // (the session store's `CREATE SCHEMA IF NOT EXISTS` is not safe concurrently).
                let mut lock = p.acquire().await?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(MIGRATION_LOCK)
                    .execute(&mut *lock)
                    .await?;
                let result = match POSTGRES_MIGRATIONS.run(&mut *lock).await {
                    Ok(()) => self
                        .session_store()
                        .migrate()
                        .await
                        .map_err(anyhow::Error::from),
                    Err(e) => Err(e.into()),
                };
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(MIGRATION_LOCK)
                    .execute(&mut *lock)
                    .await?;
                result?;
            }
        }
        Ok(())
    }

    pub fn session_store(&self) -> AppSessionStore {
        AppSessionStore::new(self)
    }

    /// Does the database answer, with every migration this build knows applied? (`/readyz`:
    /// an instance of a newer build waits while an older one still migrates.)
    pub async fn migrations_current(&self) -> bool {
        let newest = match self {
            Db::Sqlite(_) => &SQLITE_MIGRATIONS,
            Db::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0);
        let applied: sqlx::Result<i64> = with_db!(self, p => sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success"
        )
        .fetch_one(p)
        .await);
        applied.is_ok_and(|v| v >= newest)
    }

    /// The pool's connections: (open, idle).
    pub fn pool_use(&self) -> (u32, usize) {
        with_db!(self, p => (p.size(), p.num_idle()))
    }

    /// `SELECT 1`: does the database answer?
    pub async fn ping(&self) -> bool {
        with_db!(self, p => sqlx::query("SELECT 1").execute(p).await.is_ok())
    }
}

/// True when `e` is a unique-constraint violation (on either backend).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Seconds since the Unix epoch: the one time format stored in the database.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
