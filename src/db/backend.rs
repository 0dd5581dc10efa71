//! What differs between SQLite and PostgreSQL, named: the few statements and choices that cannot
//! be one text for both. Code outside `db/` asks for these by name instead of checking which
//! backend it runs on, so a difference between the backends is written once, here.

use sqlx::PgPool;

use super::Db;

impl Db {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// True on SQLite: the database is a file of this process, so this server is its only
    /// writer. PostgreSQL may be shared by several servers.
    pub fn is_embedded(&self) -> bool {
        matches!(self, Db::Sqlite(_))
    }

    /// The PostgreSQL pool, for what only PostgreSQL offers (connections kept aside for the
    /// poll pages' reads, statements over arrays). None on SQLite.
    pub fn as_postgres(&self) -> Option<&PgPool> {
        match self {
            Db::Postgres(pool) => Some(pool),
            Db::Sqlite(_) => None,
        }
    }

    /// The statement that begins a transaction that will write. On SQLite, IMMEDIATE takes the
    /// write lock at BEGIN: a deferred transaction that reads, then writes, fails at once
    /// ("database is locked", no waiting) if another connection wrote in between.
    pub fn begin_write(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "BEGIN IMMEDIATE",
            Db::Postgres(_) => "BEGIN",
        }
    }

    /// Locks the row of `table` whose `id` is `$1` until the transaction ends, so that a
    /// writer whose foreign key points at it (a vote for a choice) waits. PostgreSQL:
    /// `SELECT … FOR UPDATE`, the lock the foreign key's check waits for. None on SQLite, where
    /// a transaction that has written, or began with [`Db::begin_write`], holds the database's
    /// one write lock already.
    pub fn lock_row(&self, table: &str) -> Option<String> {
        match self {
            Db::Sqlite(_) => None,
            Db::Postgres(_) => Some(format!("SELECT id FROM {table} WHERE id = $1 FOR UPDATE")),
        }
    }

    /// Holds `table` still until the transaction ends: writes to it wait, reads go on.
    /// PostgreSQL: a SHARE lock, which waits for the writes in progress. None on SQLite, where
    /// a transaction begun with [`Db::begin_write`] holds the write lock already.
    pub fn hold_table(&self, table: &str) -> Option<String> {
        match self {
            Db::Sqlite(_) => None,
            Db::Postgres(_) => Some(format!("LOCK TABLE {table} IN SHARE MODE")),
        }
    }

    /// Serialises the transactions that name the same key (`$1`, text) until they end, without
    /// a row to lock. PostgreSQL: an advisory lock on the key's hash (take several in sorted
    /// order). None on SQLite, where a transaction begun with [`Db::begin_write`] holds the
    /// one write lock already.
    pub fn lock_key(&self) -> Option<&'static str> {
        match self {
            Db::Sqlite(_) => None,
            Db::Postgres(_) => Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"),
        }
    }

    /// The column that names a row of a table without a key of its own (`limit_events`):
    /// SQLite's `rowid`; PostgreSQL has none, so migrations/postgres/0004 added `id`.
    pub fn row_id(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "rowid",
            Db::Postgres(_) => "id",
        }
    }

    /// The shard a vote's kept count goes to, as SQL over a `votes` row: PostgreSQL spreads a
    /// choice's count over 16 rows so that concurrent voters do not queue on one row's lock;
    /// SQLite has one writer at a time and keeps one row (migrations/*/0003_vote_counts.sql).
    pub fn vote_shard(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "0",
            Db::Postgres(_) => "user_id % 16",
        }
    }
}
