//! A bounded in-process cache of database reads that a concurrent write cannot make stale.
//!
//! The race it closes: a reader misses, reads the row, and is about to store it when a writer
//! commits a change and updates the cache; the reader's older copy would then win. Every write
//! bumps a generation; a reader takes the generation before it reads the database and stores
//! its copy only if no write came since (and takes it out again if one came while storing).
//! Writers update the database first and the cache after, so a failed write leaves the cache as
//! the database is.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

use moka::sync::Cache;

pub struct GuardedCache<K, V> {
    cache: Cache<K, V>,
    generation: AtomicU64,
}

/// The cache's generation, taken before a read of the database.
#[derive(Clone, Copy, Debug)]
pub struct Generation(u64);

impl<K, V> GuardedCache<K, V>
where
    K: Hash + Eq + Send + Sync + Clone + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new(cache: Cache<K, V>) -> Self {
        GuardedCache {
            cache,
            generation: AtomicU64::new(0),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.cache.get(key)
    }

    pub fn generation(&self) -> Generation {
        Generation(self.generation.load(Ordering::Acquire))
    }

    /// Stores what a reader read under `g`, unless a write came since.
    pub fn fill(&self, g: Generation, key: K, value: V) {
        if !self.unchanged(g) {
            return;
        }
        self.cache.insert(key.clone(), value);
        if !self.unchanged(g) {
            self.cache.invalidate(&key);
        }
    }

    /// A write of `key` committed to the database: this is its value now.
    pub fn set(&self, key: K, value: V) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.insert(key, value);
    }

    /// `key` changed (or is about to change) in the database: read it again on next use.
    pub fn invalidate(&self, key: &K) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate(key);
    }

    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
    }

    fn unchanged(&self, g: Generation) -> bool {
        self.generation.load(Ordering::Acquire) == g.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> GuardedCache<i64, &'static str> {
        GuardedCache::new(Cache::new(16))
    }

    #[test]
    fn a_fill_read_before_a_write_is_dropped() {
        let c = cache();
        let g = c.generation();
        // The reader read "old"; meanwhile a writer committed "new".
        c.set(1, "new");
        c.fill(g, 1, "old");
        assert_eq!(c.get(&1), Some("new"));
        // After an invalidation too: the next reader goes to the database.
        let g = c.generation();
        c.invalidate(&1);
        c.fill(g, 1, "old");
        assert_eq!(c.get(&1), None);
    }

    #[test]
    fn a_fill_with_no_write_since_is_kept() {
        let c = cache();
        let g = c.generation();
        c.fill(g, 1, "row");
        assert_eq!(c.get(&1), Some("row"));
        c.clear();
        assert_eq!(c.get(&1), None);
    }
}
