//! The SMS factor's SQL, one file per table it owns: `numbers` (proven numbers), `requests`
//! (who started each Verify request), `sends` (the pumping guard's sends and pauses) and
//! `console` (the console provider's requests). The rest of `sms/` calls these; `with_db!`
//! appears nowhere else in it.

pub mod console;
pub mod numbers;
pub mod requests;
pub mod sends;
