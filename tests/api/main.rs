//! One integration test binary: the real app over HTTP, a file per feature.

mod accounts;
mod fixtures;
mod helpers;
mod polls;
mod security;
mod two_factor;
mod vonage;
