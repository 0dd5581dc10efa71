//! One integration test binary: the real app over HTTP, a file per feature.

mod account;
mod accounts;
mod admin;
mod bursts;
mod call_me;
mod cli;
mod counts;
mod events;
mod fake_verify_v2;
mod fixtures;
mod helpers;
mod lane;
mod networks;
mod page_reads;
mod password_change;
mod polls;
mod races;
mod scaling;
mod security;
mod slow_clients;
mod sms_guard;
mod totp;
mod two_factor;
mod usernames;
mod vonage;
mod vonage_v2;
