//! A few PostgreSQL connections kept aside for the hottest read (a verified poll page), lent
//! without sqlx's ping on return.
//!
//! sqlx's pool pings every connection when it comes back (a round trip), to find one that a
//! cancelled or failed query left broken. For a page that costs one query, that ping doubles
//! the round trips. The lane keeps up to half the pool's connections checked out and lends
//! them itself: a connection is put back only by [`Held::done`], after its query completed;
//! one whose query failed or was cancelled (its future dropped) goes back to the pool as sqlx
//! would return it, ping and all. A connection idle for over a second is pinged before it is
//! lent, as the pool does ([`super::PING_IDLE_AFTER`]). The other half of the pool stays for
//! everything else, so the lane cannot starve a login or a vote.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::Instant;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use tokio::sync::{Semaphore, SemaphorePermit};

#[derive(Debug)]
pub struct Lane {
    pool: PgPool,
    /// Connections of the lane not lent right now, with when each came back.
    idle: Mutex<Vec<(PoolConnection<Postgres>, Instant)>>,
    /// One permit per connection the lane may hold: a borrower waits for one, as in a pool.
    permits: Semaphore,
    max: usize,
}

/// A connection lent by the lane. Give it back with [`Held::done`] once its query completed;
/// dropped otherwise, it goes back to the pool through sqlx's checks.
pub struct Held<'a> {
    conn: Option<PoolConnection<Postgres>>,
    lane: &'a Lane,
    _permit: SemaphorePermit<'a>,
}

impl Lane {
    /// A lane of up to half of `pool_size` connections of `pool`; none for a pool of fewer than two
    /// (the lane would leave nothing for the rest).
    pub fn new(pool: PgPool, pool_size: u32) -> Option<Lane> {
        (pool_size >= 2).then(|| Lane {
            pool,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new((pool_size / 2) as usize),
            max: (pool_size / 2) as usize,
        })
    }

    /// A connection: one of the lane's idle ones (pinged first if it sat for over a second),
    /// else a new one from the pool, which then stays with the lane.
    pub async fn acquire(&self) -> sqlx::Result<Held<'_>> {
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the lane's semaphore is never closed");
        loop {
            let next = self.idle.lock().expect("lane lock").pop();
            let Some((mut conn, since)) = next else { break };
            if since.elapsed() > super::PING_IDLE_AFTER && conn.ping().await.is_err() {
                // Broken while it sat: closed by the pool, and replaced.
                continue;
            }
            return Ok(Held {
                conn: Some(conn),
                lane: self,
                _permit: permit,
            });
        }
        Ok(Held {
            conn: Some(self.pool.acquire().await?),
            lane: self,
            _permit: permit,
        })
    }

    /// How many connections the lane may hold.
    pub fn size(&self) -> usize {
        self.max
    }

    /// How many connections sit idle in the lane.
    pub fn idle(&self) -> usize {
        self.idle.lock().expect("lane lock").len()
    }
}

impl Held<'_> {
    /// The query completed: the connection is ready for the next one, and goes back to the lane
    /// without a ping. (Dropped instead, a `Held` returns its connection to the pool, which
    /// pings it and closes it if it is broken.)
    pub fn done(mut self) {
        if let Some(conn) = self.conn.take() {
            self.lane
                .idle
                .lock()
                .expect("lane lock")
                .push((conn, Instant::now()));
        }
    }
}

impl Deref for Held<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("a held connection")
    }
}

impl DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a held connection")
    }
}
