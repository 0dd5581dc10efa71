//! What handlers and layers reach: the database, the settings, the session store, and one value
//! per feature that keeps something for the life of the server (the poll cache, the vote
//! writer, the hash queue, the Verify provider), registered by `app` at start-up and found by
//! type ([`AppState::part`]). This module imports no feature, so features depend on it and not
//! on each other or on `app`.

use std::any::Any;
use std::sync::Arc;

use crate::config::Config;
use crate::db::{AppSessionStore, Db};

/// Axum clones the state for every request and layer, so it is one `Arc` (one reference count
/// to bump, not one per field).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub db: Db,
    pub config: Arc<Config>,
    /// The session store the session layer uses (cached on SQLite).
    pub sessions: AppSessionStore,
    parts: Parts,
}

/// The features' values, one per type.
#[derive(Default)]
pub struct Parts(Vec<Box<dyn Any + Send + Sync>>);

impl Parts {
    /// Adds `value`; a second value of one type replaces the first.
    pub fn with<T: Any + Send + Sync>(mut self, value: T) -> Parts {
        self.0.retain(|p| !p.is::<T>());
        self.0.push(Box::new(value));
        self
    }

    fn get<T: Any>(&self) -> Option<&T> {
        self.0.iter().find_map(|p| p.downcast_ref::<T>())
    }
}

impl AppState {
    pub fn new(db: Db, config: Config, sessions: AppSessionStore, parts: Parts) -> AppState {
        AppState(Arc::new(Shared {
            db,
            config: Arc::new(config),
            sessions,
            parts,
        }))
    }

    /// The feature value of type `T`. Every part a handler asks for is registered by
    /// `app::new_state`; a missing one is a wiring mistake, caught by every test.
    pub fn part<T: Any>(&self) -> &T {
        self.0.parts.get::<T>().unwrap_or_else(|| {
            panic!(
                "no {} in the app state (app::new_state registers the parts)",
                std::any::type_name::<T>()
            )
        })
    }

    /// The feature value of type `T`, if this server has one.
    pub fn try_part<T: Any>(&self) -> Option<&T> {
        self.0.parts.get::<T>()
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Parts;

    #[test]
    fn parts_are_found_by_type() {
        let parts = Parts::default().with(7u32).with("text").with(9u32);
        assert_eq!(parts.get::<u32>(), Some(&9));
        assert_eq!(parts.get::<&str>(), Some(&"text"));
        assert_eq!(parts.get::<u64>(), None);
    }
}
