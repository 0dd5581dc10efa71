//! The user records, under the pages that use them (`accounts`, the second factors): their
//! SQL (`store`, re-exported here), their passwords (`password`), their names and password
//! rules (`validation`), checking a signed-in user's current password (`current_password`), and
//! password-reset links (`reset`), email addresses (`email`), and security notifications to
//! them (`notify`).

pub mod current_password;
pub mod email;
pub mod notify;
pub mod password;
pub mod reset;
mod store;
pub mod validation;

pub use store::{
    create, end_sessions, fill_username_keys, find, find_by_username, set_password,
    touch_last_login, CreateUserError, User,
};
