//! What a session holds, in one typed place: each key with the type of its value. Handlers read
//! and write a session only through these keys, so a key's name and type cannot drift apart
//! between the module that writes it and the one that reads it.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tower_sessions::session::Error;
use tower_sessions::Session;

/// A session key and the type of its value.
pub struct Key<T> {
    name: &'static str,
    value: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Key<T> {
    const fn new(name: &'static str) -> Self {
        Key {
            name,
            value: PhantomData,
        }
    }

    pub const fn name(&self) -> &'static str {
        self.name
    }

    pub async fn get(&self, session: &Session) -> Result<Option<T>, Error> {
        session.get(self.name).await
    }

    pub async fn insert(&self, session: &Session, value: T) -> Result<(), Error> {
        session.insert(self.name, value).await
    }

    pub async fn remove(&self, session: &Session) -> Result<(), Error> {
        session.remove::<T>(self.name).await.map(|_| ())
    }
}

/// The signed-in user (the session store reads its `id` and `epoch`: `db::session_store`).
pub const USER: Key<SessionUser> = Key::new("user");
/// The second factor this session has passed (`two_factor::gate`).
pub const VERIFIED: Key<Verified> = Key::new("2fa_verified");
/// The SMS code this session is waiting on (`two_factor::sms`).
pub const SMS_PENDING: Key<SmsPending> = Key::new("2fa_pending");
/// The authenticator secret being set up, sealed (`two_factor::totp`).
pub const TOTP_SETUP: Key<String> = Key::new("totp_setup");
/// A passkey being added: its ceremony state (`two_factor::passkeys::manage`).
pub const PASSKEY_ADD: Key<Ceremony<webauthn_rs::prelude::PasskeyRegistration>> =
    Key::new("passkey_add");
/// A passkey asked for as the second factor (`two_factor::passkeys::login`).
pub const PASSKEY_CHECK: Key<Ceremony<webauthn_rs::prelude::PasskeyAuthentication>> =
    Key::new("passkey_check");
/// A passkey asked for instead of the password (`two_factor::passkeys::signin`).
pub const PASSKEY_SIGNIN: Key<Ceremony<webauthn_rs::prelude::DiscoverableAuthentication>> =
    Key::new("passkey_signin");
/// When the password was last given in this session, Unix seconds (`two_factor::gate`'s
/// sudo mode).
pub const PASSWORD_AT: Key<i64> = Key::new("password_at");
/// Where and when this session was signed in (the account page lists sessions with it).
pub const DEVICE: Key<Device> = Key::new("device");
/// The CSRF token of a signed-in session (`web::csrf`).
pub const CSRF: Key<String> = Key::new("csrf");
/// Messages for the next page (`web::flash`).
pub const FLASH: Key<Vec<Flash>> = Key::new("flash");
/// When the session was last saved for being in use, Unix seconds (`web::keep_alive`).
pub const SEEN: Key<i64> = Key::new("seen");

/// The logged-in user, as kept in the session.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionUser {
    pub id: i64,
    pub username: String,
    /// The user's session epoch when the session began (`users::end_sessions`).
    #[serde(default)]
    pub epoch: i64,
}

pub async fn current_user(session: &Session) -> Result<Option<SessionUser>, Error> {
    let user = USER.get(session).await?;
    if let Some(u) = &user {
        crate::logging::note_user(u.id);
    }
    Ok(user)
}

/// Where and when a session was signed in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Device {
    /// "Firefox on Linux".
    pub label: String,
    pub ip: String,
    pub since: i64,
}

impl Device {
    /// The device noted in a stored session (`db::session_store::of_user`), if any.
    pub fn of(record: &tower_sessions::session::Record) -> Option<Device> {
        let value = record.data.get(DEVICE.name())?;
        serde_json::from_value(value.clone()).ok()
    }
}

/// Proof that this session's user passed the second factor, and when.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Verified {
    pub user_id: i64,
    pub at: i64,
}

/// A WebAuthn ceremony's state, kept only here (server-side, never in a cookie or a form) and
/// taken out when its answer comes: each is answered once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ceremony<T> {
    pub state: T,
    /// When it began, Unix seconds (an older one than `passkeys::STATE_LIFETIME` is refused).
    pub at: i64,
    /// The user's handle, for a passkey being added (the authenticator keeps it).
    #[serde(default)]
    pub user_handle: String,
    /// The request the page carries (JSON): the same page shown again (a reload, a second tab)
    /// carries the same request while it is fresh, instead of replacing it.
    #[serde(default)]
    pub options: String,
}

/// The Verify request this session is waiting on. The number is not the user's until the code
/// is checked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SmsPending {
    pub request_id: String,
    pub number: String,
    /// The user's proven number when the code was sent (none: they had none): the only one the
    /// new number may replace when its code comes back.
    #[serde(default)]
    pub replaces: Option<String>,
    /// Where the request is in the provider's workflow (0: its first channel).
    #[serde(default)]
    pub channel: usize,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Success,
    Warning,
    Error,
}

/// A message shown once on the next page.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Flash {
    pub level: Level,
    pub text: String,
}

impl Flash {
    pub fn css(&self) -> &'static str {
        match self.level {
            Level::Info => "info",
            Level::Success => "success",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}
