//! One session store type for both backends, so the session layer is not generic. On SQLite,
//! where one server process owns the database, sessions are also kept in memory.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::sync::Cache;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use super::cache::GuardedCache;
use super::Db;
use crate::with_db;

/// Sessions kept in memory on SQLite (the least recently used beyond this are read again).
const CACHED_SESSIONS: u64 = 10_000;

/// The user a session record belongs to ([`crate::session::USER`]), and the session epoch it
/// was started under: the store writes the row's `user_id` from it and refuses a session whose
/// user's sessions were ended since (see [`insert`]).
fn owner(record: &Record) -> Option<(i64, i64)> {
    let user = record.data.get(crate::session::USER.name())?;
    let id = user.get("id")?.as_i64()?;
    let epoch = user.get("epoch").and_then(|e| e.as_i64()).unwrap_or(0);
    Some((id, epoch))
}

#[derive(Clone, Debug)]
pub enum AppSessionStore {
    Sqlite(SqliteStore, Db),
    /// SQLite, with every session this process reads or writes kept in memory too. Only for a
    /// store that no other process writes: one `pollstr serve` on a SQLite file.
    CachedSqlite(Arc<CachedStore>),
    Postgres(PostgresStore, Db),
}

impl AppSessionStore {
    pub fn new(db: &Db) -> Self {
        match db {
            Db::Sqlite(p) => AppSessionStore::Sqlite(SqliteStore::new(p.clone()), db.clone()),
            Db::Postgres(p) => AppSessionStore::Postgres(PostgresStore::new(p.clone()), db.clone()),
        }
    }

    /// The store a server uses: cached on SQLite (this process is the only one that writes
    /// sessions), uncached on PostgreSQL (another instance may log the session out).
    pub fn for_server(db: &Db) -> Self {
        match db {
            Db::Sqlite(p) => AppSessionStore::CachedSqlite(Arc::new(CachedStore {
                store: SqliteStore::new(p.clone()),
                db: db.clone(),
                cache: GuardedCache::new(
                    Cache::builder()
                        .max_capacity(CACHED_SESSIONS)
                        .expire_after(UntilExpiry)
                        .build(),
                ),
            })),
            Db::Postgres(_) => AppSessionStore::new(db),
        }
    }

    /// Forgets the sessions kept in memory (SQLite), after rows were deleted behind the store's
    /// back (a user's sessions ended).
    pub fn forget_cached(&self) {
        if let AppSessionStore::CachedSqlite(s) = self {
            s.cache.clear();
        }
    }

    pub async fn migrate(&self) -> sqlx::Result<()> {
        match self {
            AppSessionStore::Sqlite(s, _) => s.migrate().await,
            AppSessionStore::CachedSqlite(s) => s.store.migrate().await,
            AppSessionStore::Postgres(s, _) => s.migrate().await,
        }
    }
}

/// The SQLite store with a write-through cache in front: a page view with a session needs no
/// query once the session is cached. The database is written first, so a failed write leaves
/// the cache as the database is; [`GuardedCache`] keeps a read that raced with a write (a
/// logout, say) from putting the old session back.
pub struct CachedStore {
    store: SqliteStore,
    db: Db,
    cache: GuardedCache<Id, Record>,
}

// Not derived: a record holds the session's data (its CSRF token).
impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionStore for CachedStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        if insert(&self.db, record).await? {
            self.cache.set(record.id, record.clone());
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.cache.invalidate(&record.id);
        if update(&self.db, record).await? {
            self.cache.set(record.id, record.clone());
        }
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        if let Some(record) = self.cache.get(id) {
            // An entry leaves the cache when its session expires; this covers the instant between.
            return Ok((record.expiry_date > OffsetDateTime::now_utc()).then_some(record));
        }
        let g = self.cache.generation();
        let record = self.store.load(id).await?;
        if let Some(r) = &record {
            self.cache.fill(g, *id, r.clone());
        }
        Ok(record)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.cache.invalidate(id);
        self.store.delete(id).await?;
        self.cache.invalidate(id);
        Ok(())
    }
}

/// Writes a new session under a fresh id. A signed-in session is written only while its user's
/// session epoch is the one it was started under: a login or verification that finishes just
/// after the user's sessions were ended ([`end_user_sessions`]) writes nothing, and its cookie
/// names no session. On PostgreSQL the user's row is locked (`FOR SHARE`) until the insert
/// commits, so the insert and [`end_user_sessions`] cannot interleave; on SQLite one statement
/// does both, under its write lock. True if the session was written.
async fn insert(db: &Db, record: &mut Record) -> session_store::Result<bool> {
    let backend = |e: sqlx::Error| session_store::Error::Backend(e.to_string());
    let (user, epoch) = match owner(record) {
        Some((u, e)) => (Some(u), e),
        None => (None, 0),
    };
    loop {
        record.id = Id::default();
        let data =
            rmp_serde::to_vec(&*record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let written = match db {
            Db::Sqlite(p) => sqlx::query(
                "INSERT INTO tower_sessions (id, data, expiry_date, user_id) \
                 SELECT $1, $2, $3, $4 WHERE $4 IS NULL \
                 OR EXISTS (SELECT 1 FROM users WHERE id = $4 AND session_epoch = $5) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(record.id.to_string())
            .bind(&data)
            .bind(record.expiry_date)
            .bind(user)
            .bind(epoch)
            .execute(p)
            .await
            .map_err(backend)?
            .rows_affected(),
            Db::Postgres(p) => {
                let mut tx = p.begin().await.map_err(backend)?;
                if let Some(user) = user {
                    let current: Option<i64> = sqlx::query_scalar(
                        "SELECT session_epoch FROM users WHERE id = $1 FOR SHARE",
                    )
                    .bind(user)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
                    if current != Some(epoch) {
                        return Ok(false);
                    }
                }
                let n = sqlx::query(
                    r#"INSERT INTO "tower_sessions"."session" (id, data, expiry_date, user_id)
                       VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING"#,
                )
                .bind(record.id.to_string())
                .bind(&data)
                .bind(record.expiry_date)
                .bind(user)
                .execute(&mut *tx)
                .await
                .map_err(backend)?
                .rows_affected();
                tx.commit().await.map_err(backend)?;
                n
            }
        };
        if written == 1 {
            return Ok(true);
        }
        // Nothing written: an id already taken (try another), or a user whose sessions ended.
        if let (Some(user), Db::Sqlite(p)) = (user, db) {
            let current: Option<i64> =
                sqlx::query_scalar("SELECT session_epoch FROM users WHERE id = $1")
                    .bind(user)
                    .fetch_optional(p)
                    .await
                    .map_err(backend)?;
            if current != Some(epoch) {
                return Ok(false);
            }
        }
    }
}

/// The records of a user's sessions (for the account page), each with its id.
pub async fn of_user(db: &Db, user: i64) -> sqlx::Result<Vec<Record>> {
    let sql = format!("SELECT data FROM {} WHERE user_id = $1", table(db));
    let rows: Vec<Vec<u8>> = with_db!(db, p => sqlx::query_scalar(&sql)
        .bind(user)
        .fetch_all(p)
        .await)?;
    Ok(rows.iter().filter_map(|data| decode(data).ok()).collect())
}

/// The table sessions are rows of (tower-sessions' own, with `user_id` added by migration 0009).
pub fn table(db: &Db) -> &'static str {
    match db {
        Db::Sqlite(_) => "tower_sessions",
        Db::Postgres(_) => r#""tower_sessions"."session""#,
    }
}

/// Saves a session that exists: only an update, never an insert (new sessions go through
/// `create`). A request that was still running when its session was deleted (a logout, a
/// password change) would otherwise write the session back when it ends, logged in as before.
/// True if the session was there to update.
async fn update(db: &Db, record: &Record) -> session_store::Result<bool> {
    let data =
        rmp_serde::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
    let sql = format!(
        "UPDATE {} SET data = $1, expiry_date = $2 WHERE id = $3",
        table(db)
    );
    let updated = with_db!(db, p => sqlx::query(&sql)
        .bind(&data)
        .bind(record.expiry_date)
        .bind(record.id.to_string())
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .map_err(|e| session_store::Error::Backend(e.to_string()))?;
    Ok(updated > 0)
}

tokio::task_local! {
    /// A session row read together with a page's own data, in one round trip
    /// (`polls::prefetch`): the first load of that id in the request answers with it.
    static PREFETCHED: RefCell<Option<(Id, Option<Record>)>>;
}

/// Runs `f` (the rest of a request) with the session `id` already read: `record` as the
/// PostgreSQL store would have loaded it (`None`: no such session, or expired). Only the
/// first load of that id takes it; any later load reads the database.
pub async fn with_prefetched<F: std::future::Future>(
    id: Id,
    record: Option<Record>,
    f: F,
) -> F::Output {
    PREFETCHED.scope(RefCell::new(Some((id, record))), f).await
}

fn take_prefetched(id: &Id) -> Option<Option<Record>> {
    PREFETCHED
        .try_with(|p| {
            let mut p = p.borrow_mut();
            match p.as_ref() {
                Some((prefetched, _)) if prefetched == id => p.take().map(|(_, r)| r),
                _ => None,
            }
        })
        .ok()
        .flatten()
}

/// A session row's `data`, decoded as the store does.
pub fn decode(data: &[u8]) -> session_store::Result<Record> {
    rmp_serde::from_slice(data).map_err(|e| session_store::Error::Decode(e.to_string()))
}

/// Each cached session leaves the cache when it expires.
struct UntilExpiry;

impl UntilExpiry {
    fn left(record: &Record) -> Duration {
        let left = record.expiry_date - OffsetDateTime::now_utc();
        left.try_into().unwrap_or(Duration::ZERO)
    }
}

impl moka::Expiry<Id, Record> for UntilExpiry {
    fn expire_after_create(&self, _: &Id, record: &Record, _: Instant) -> Option<Duration> {
        Some(Self::left(record))
    }

    fn expire_after_update(
        &self,
        _: &Id,
        record: &Record,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(Self::left(record))
    }
}

// Every method is delegated, `create` included: the trait's default `create` is not safe
// against id collisions.
#[async_trait]
impl SessionStore for AppSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // Always a new id: after a logout (`flush`), tower-sessions creates the next session
        // (the "logged out" message) under the id it just deleted, and a request of the old
        // session still running would then update that row, logged in as before.
        match self {
            AppSessionStore::Sqlite(_, db) | AppSessionStore::Postgres(_, db) => {
                insert(db, record).await.map(|_| ())
            }
            AppSessionStore::CachedSqlite(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            AppSessionStore::Sqlite(_, db) | AppSessionStore::Postgres(_, db) => {
                update(db, record).await.map(|_| ())
            }
            AppSessionStore::CachedSqlite(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            AppSessionStore::Sqlite(s, _) => s.load(id).await,
            AppSessionStore::CachedSqlite(s) => s.load(id).await,
            AppSessionStore::Postgres(s, _) => match take_prefetched(id) {
                Some(record) => Ok(record),
                None => s.load(id).await,
            },
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            AppSessionStore::Sqlite(s, _) => s.delete(id).await,
            AppSessionStore::CachedSqlite(s) => s.delete(id).await,
            AppSessionStore::Postgres(s, _) => s.delete(id).await,
        }
    }
}

#[async_trait]
impl ExpiredDeletion for AppSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            AppSessionStore::Sqlite(s, _) => s.delete_expired().await,
            // Expired sessions leave the cache by themselves.
            AppSessionStore::CachedSqlite(s) => s.store.delete_expired().await,
            AppSessionStore::Postgres(s, _) => s.delete_expired().await,
        }
    }
}
