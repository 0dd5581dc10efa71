//! Pollstr: polls behind a password and a phone verified through Vonage Verify.
//!
//! Where things live: `polls` (the poll pages and their queries), `accounts` (login, logout,
//! register, password hashing), `two_factor` (the verified layer and the Verify providers),
//! `admin` (the staff admin under /admin/), `web` (what every page shares: CSRF, flash
//! messages, safe `next`, templates), `db` (the SQLite/PostgreSQL choice), `fixtures` (Django
//! dumpdata import/export), `app` (state, router), `server` (the HTTP server and its limits),
//! `config` (settings), `error` (error pages), `events` (the audit trail), `logging` (log lines
//! that name their request), `health` (liveness and readiness), `telemetry` (Prometheus
//! metrics).

pub mod accounts;
pub mod admin;
pub mod app;
pub mod config;
pub mod crypto;
pub mod db;
pub mod duration;
pub mod error;
pub mod events;
pub mod fixtures;
pub mod health;
pub mod limits;
pub mod logging;
pub mod mail;
pub mod page;
pub mod polls;
pub mod server;
pub mod session;
pub mod state;
pub mod telemetry;
pub mod two_factor;
pub mod users;
pub mod web;
