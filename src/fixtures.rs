//! Django `dumpdata` JSON: `loaddata` imports it, `dumpdata` writes it. Models: `polls.question`,
//! `polls.choice`, `auth.user`, `two_factor.twofactor` and (Pollstr's own) `polls.vote`.
//!
//! Loading is all-or-nothing (one transaction) and idempotent by primary key; every error names
//! the entry and the problem. The admin's upload loads under [`Accounts::AddOnly`].

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::db::{self, Db};
use crate::polls::queries::choice_votes;
use crate::two_factor::sms::phone::PhoneNumber;
use crate::users::validation::{username_key, username_skeleton};
use crate::with_db;

/// The most votes a fixture may give one choice (Django's `Choice.votes`): far above any real
/// poll, and low enough that a poll's total cannot overflow.
pub const MAX_IMPORTED_VOTES: i64 = 1_000_000_000;

/// The demo data: the seed tutorial's three polls and the user test / test1234.
pub const DEMO: &str = include_str!("../fixtures/all.json");

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("{source_name}: not valid JSON: {message}")]
    Json {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: the top level must be a list of entries")]
    NotAList { source_name: String },
    #[error("{source_name}: entry {index}{what}: {message}")]
    Entry {
        source_name: String,
        index: usize,
        what: String,
        message: String,
    },
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub questions: usize,
    pub choices: usize,
    pub users: usize,
    pub numbers: usize,
    pub votes: usize,
    /// Authenticator apps and recovery codes.
    pub factors: usize,
    /// The accounts an [`Accounts::AddOnly`] load created, as (id, username): the admin's
    /// event names them (a count alone would hide a planted account). Empty for a
    /// [`Accounts::Replace`] load, which does not look.
    pub created: Vec<(i64, String)>,
}

impl LoadReport {
    pub fn total(&self) -> usize {
        self.questions + self.choices + self.users + self.numbers + self.votes + self.factors
    }

    /// What was loaded from `files` fixture(s), as `pollstr loaddata` and the admin say it.
    pub fn summary(&self, files: usize) -> String {
        format!(
            "Installed {} object(s) from {} fixture(s): {} question(s), {} choice(s), {} user(s), {} phone number(s), {} vote(s), {} authenticator app(s) and recovery code(s)",
            self.total(),
            files,
            self.questions,
            self.choices,
            self.users,
            self.numbers,
            self.votes,
            self.factors
        )
    }
}

struct Question {
    id: i64,
    text: String,
    pub_date: i64,
}
struct Choice {
    id: i64,
    question: i64,
    text: String,
    votes: i64,
}
struct User {
    id: i64,
    username: String,
    password: String,
    email: String,
    first_name: String,
    last_name: String,
    is_superuser: bool,
    is_staff: bool,
    is_active: bool,
    date_joined: i64,
    last_login: Option<i64>,
}
struct Number {
    at: (usize, usize),
    user: i64,
    number: String,
}
struct Vote {
    at: (usize, usize),
    user: i64,
    question: i64,
    choice: i64,
}
/// An authenticator app: its secret as sealed in the database (under POLLSTR_SECRET_KEY).
struct Totp {
    at: (usize, usize),
    user: i64,
    sealed: String,
    last_step: i64,
    created_at: i64,
}
/// A recovery code as its keyed hash.
struct RecoveryCode {
    at: (usize, usize),
    user: i64,
    hash: String,
    used_at: Option<i64>,
}

#[derive(Default)]
struct Parsed {
    questions: Vec<Question>,
    choices: Vec<Choice>,
    users: Vec<User>,
    numbers: Vec<Number>,
    votes: Vec<Vote>,
    totps: Vec<Totp>,
    recovery: Vec<RecoveryCode>,
    /// The entry number of each (model, pk), for error messages.
    origin: HashMap<(&'static str, i64), (usize, usize)>,
}

struct Ctx<'a> {
    source: &'a str,
    index: usize,
    what: String,
}

impl Ctx<'_> {
    fn err(&self, message: impl Into<String>) -> FixtureError {
        FixtureError::Entry {
            source_name: self.source.to_string(),
            index: self.index,
            what: self.what.clone(),
            message: message.into(),
        }
    }
    fn field<'v>(
        &self,
        fields: &'v Map<String, Value>,
        name: &str,
    ) -> Result<&'v Value, FixtureError> {
        fields
            .get(name)
            .ok_or_else(|| self.err(format!("field {name:?} is missing")))
    }
    fn string(
        &self,
        fields: &Map<String, Value>,
        name: &str,
        max: usize,
    ) -> Result<String, FixtureError> {
        let s = self
            .field(fields, name)?
            .as_str()
            .ok_or_else(|| self.err(format!("field {name:?} must be a string")))?;
        if s.chars().count() > max {
            return Err(self.err(format!("field {name:?} is longer than {max} characters")));
        }
        Ok(s.to_string())
    }
    fn opt_string(
        &self,
        fields: &Map<String, Value>,
        name: &str,
        max: usize,
    ) -> Result<String, FixtureError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(_) => self.string(fields, name, max),
        }
    }
    fn int(&self, fields: &Map<String, Value>, name: &str) -> Result<i64, FixtureError> {
        self.field(fields, name)?
            .as_i64()
            .ok_or_else(|| self.err(format!("field {name:?} must be a whole number")))
    }
    fn boolean(
        &self,
        fields: &Map<String, Value>,
        name: &str,
        default: bool,
    ) -> Result<bool, FixtureError> {
        match fields.get(name) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.err(format!("field {name:?} must be true or false"))),
        }
    }
    fn date(&self, fields: &Map<String, Value>, name: &str) -> Result<i64, FixtureError> {
        let raw = self.string(fields, name, 64)?;
        parse_date(&raw).ok_or_else(|| {
            self.err(format!(
                "field {name:?}: {raw:?} is not a date such as 2016-07-25T12:54:24Z"
            ))
        })
    }
    fn opt_date(
        &self,
        fields: &Map<String, Value>,
        name: &str,
    ) -> Result<Option<i64>, FixtureError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.date(fields, name).map(Some),
        }
    }
}

pub fn parse_date(raw: &str) -> Option<i64> {
    if let Ok(d) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Some(d.unix_timestamp());
    }
    // Django writes naive datetimes when USE_TZ is off: read them as UTC.
    let naive = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let trimmed = raw.split('.').next().unwrap_or(raw);
    PrimitiveDateTime::parse(trimmed, &naive)
        .ok()
        .map(|d| d.assume_utc().unix_timestamp())
}

pub fn format_date(ts: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn parse(source: &str, text: &str) -> Result<Parsed, FixtureError> {
    let value: Value = serde_json::from_str(text).map_err(|e| FixtureError::Json {
        source_name: source.to_string(),
        message: if e.is_eof() {
            format!(
                "the file ends too early (truncated?) at line {}, column {}",
                e.line(),
                e.column()
            )
        } else {
            e.to_string()
        },
    })?;
    let Value::Array(entries) = value else {
        return Err(FixtureError::NotAList {
            source_name: source.to_string(),
        });
    };
    let mut out = Parsed::default();
    for (i, entry) in entries.iter().enumerate() {
        let index = i + 1;
        let mut ctx = Ctx {
            source,
            index,
            what: String::new(),
        };
        let obj = entry
            .as_object()
            .ok_or_else(|| ctx.err("an entry must be an object"))?;
        let model = obj
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| ctx.err("\"model\" is missing"))?
            .to_ascii_lowercase();
        let pk = obj.get("pk").and_then(Value::as_i64);
        ctx.what = match pk {
            Some(pk) => format!(" ({model} pk {pk})"),
            None => format!(" ({model})"),
        };
        let fields = obj
            .get("fields")
            .and_then(Value::as_object)
            .ok_or_else(|| ctx.err("\"fields\" is missing or not an object"))?;
        let need_pk = || {
            pk.filter(|p| *p > 0)
                .ok_or_else(|| ctx.err("\"pk\" must be a whole number above 0"))
        };
        let key: &'static str = match model.as_str() {
            "polls.question" => {
                out.questions.push(Question {
                    id: need_pk()?,
                    text: ctx.string(fields, "question_text", 200)?,
                    pub_date: ctx.date(fields, "pub_date")?,
                });
                "question"
            }
            "polls.choice" => {
                let votes = match fields.get("votes") {
                    None => 0,
                    Some(_) => ctx.int(fields, "votes")?,
                };
                if votes < 0 {
                    return Err(ctx.err("field \"votes\" cannot be negative"));
                }
                if votes > MAX_IMPORTED_VOTES {
                    return Err(ctx.err(format!(
                        "field \"votes\" is {votes}: at most {MAX_IMPORTED_VOTES} per choice"
                    )));
                }
                out.choices.push(Choice {
                    id: need_pk()?,
                    question: ctx.int(fields, "question")?,
                    text: ctx.string(fields, "choice_text", 200)?,
                    votes,
                });
                "choice"
            }
            "auth.user" => {
                let username = ctx.string(fields, "username", 150)?;
                // Stored as a sign-up stores it (NFKC), under the same rules.
                let username = crate::users::validation::Username::parse(&username)
                    .map_err(|m| ctx.err(format!("field \"username\": {m}")))?
                    .as_str()
                    .to_string();
                let password = ctx.string(fields, "password", 512)?;
                if password.is_empty() {
                    return Err(ctx.err("field \"password\" is empty"));
                }
                out.users.push(User {
                    id: need_pk()?,
                    username,
                    password,
                    email: ctx.opt_string(fields, "email", 254)?,
                    first_name: ctx.opt_string(fields, "first_name", 150)?,
                    last_name: ctx.opt_string(fields, "last_name", 150)?,
                    is_superuser: ctx.boolean(fields, "is_superuser", false)?,
                    is_staff: ctx.boolean(fields, "is_staff", false)?,
                    is_active: ctx.boolean(fields, "is_active", true)?,
                    date_joined: match fields.get("date_joined") {
                        None | Some(Value::Null) => db::now(),
                        Some(_) => ctx.date(fields, "date_joined")?,
                    },
                    last_login: ctx.opt_date(fields, "last_login")?,
                });
                "user"
            }
            "two_factor.twofactor" => {
                let raw = ctx.string(fields, "number", 32)?;
                let number = PhoneNumber::parse(&raw, None).map_err(|m| ctx.err(format!("field \"number\": {m}")))?;
                out.numbers.push(Number {
                    at: (0, index),
                    user: ctx.int(fields, "user")?,
                    number: number.e164().to_string(),
                });
                continue;
            }
            "two_factor.totpdevice" => {
                out.totps.push(Totp {
                    at: (0, index),
                    user: ctx.int(fields, "user")?,
                    sealed: ctx.string(fields, "secret_sealed", 200)?,
                    last_step: ctx.int(fields, "last_step")?,
                    created_at: ctx.date(fields, "created_at")?,
                });
                continue;
            }
            "two_factor.recoverycode" => {
                out.recovery.push(RecoveryCode {
                    at: (0, index),
                    user: ctx.int(fields, "user")?,
                    hash: ctx.string(fields, "code_hash", 100)?,
                    used_at: ctx.opt_date(fields, "used_at")?,
                });
                continue;
            }
            "polls.vote" => {
                out.votes.push(Vote {
                    at: (0, index),
                    user: ctx.int(fields, "user")?,
                    question: ctx.int(fields, "question")?,
                    choice: ctx.int(fields, "choice")?,
                });
                continue;
            }
            other => {
                return Err(ctx.err(format!(
                    "unknown model {other:?} (known: polls.question, polls.choice, auth.user, two_factor.twofactor, two_factor.totpdevice, two_factor.recoverycode, polls.vote)"
                )))
            }
        };
        if let Some((_, first)) = out.origin.insert((key, pk.unwrap_or(0)), (0, index)) {
            return Err(ctx.err(format!(
                "the same {key} pk already appears in entry {first}"
            )));
        }
    }
    Ok(out)
}

/// Votes written per statement by [`load`] (3 parameters each; SQLite allows 32,766).
const VOTES_PER_STATEMENT: usize = 5_000;

/// Loads fixture files into the database, all of them in one transaction.
pub async fn load(db: &Db, files: &[(String, String)]) -> Result<LoadReport, FixtureError> {
    load_with(db, files, Accounts::Replace).await
}

/// What a load may do to accounts that exist already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accounts {
    /// Replace them and their factors (`pollstr loaddata`, run on the server).
    Replace,
    /// Add new accounts only (the admin's upload: a file in a browser, perhaps a stolen
    /// session's, must not take over accounts nor plant one that outranks a sign-up). Refused:
    /// an entry that would change any stored field of an existing account, give it a second
    /// factor or change or add one of its votes; a new account with `is_staff` or
    /// `is_superuser` (staff is granted by name: `createuser --staff`, the admin's make-staff);
    /// a phone number for an account the file creates (nobody proved it).
    AddOnly,
}

/// An [`Accounts::AddOnly`] refusal: `what` would happen, and where such a file loads instead.
fn only_adds(what: &str) -> String {
    format!("{what}; the admin only adds accounts (load this file on the server with `pollstr loaddata`)")
}

const ACCOUNTS_KEPT: &str = "an existing account or its second factors would change";

/// An existing user's stored fields, in the order of [`STORED_USER_FIELDS`].
type StoredUser = (
    String,
    String,
    String,
    String,
    String,
    bool,
    bool,
    bool,
    i64,
    Option<i64>,
);

const STORED_USER_FIELDS: &str = "username, password, email, first_name, last_name, is_superuser, is_staff, is_active, date_joined, last_login";

/// The fields (as Django names them) whose stored value `u` would replace. Django's `groups`
/// and `user_permissions` are not stored (a dump writes them empty), so they change nothing.
fn changed_fields(stored: &StoredUser, u: &User) -> Vec<&'static str> {
    let (username, password, email, first, last, su, staff, active, joined, last_login) = stored;
    [
        ("username", *username != u.username),
        ("password", *password != u.password),
        ("email", *email != u.email),
        ("first_name", *first != u.first_name),
        ("last_name", *last != u.last_name),
        ("is_superuser", *su != u.is_superuser),
        ("is_staff", *staff != u.is_staff),
        ("is_active", *active != u.is_active),
        ("date_joined", *joined != u.date_joined),
        ("last_login", *last_login != u.last_login),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// [`load`], with a rule for existing accounts.
pub async fn load_with(
    db: &Db,
    files: &[(String, String)],
    accounts: Accounts,
) -> Result<LoadReport, FixtureError> {
    let mut all = Parsed::default();
    for (file, (name, text)) in files.iter().enumerate() {
        let p = parse(name, text)?;
        all.questions.extend(p.questions);
        all.choices.extend(p.choices);
        all.users.extend(p.users);
        all.numbers.extend(p.numbers.into_iter().map(|n| Number {
            at: (file, n.at.1),
            ..n
        }));
        all.votes.extend(p.votes.into_iter().map(|v| Vote {
            at: (file, v.at.1),
            ..v
        }));
        all.totps.extend(p.totps.into_iter().map(|t| Totp {
            at: (file, t.at.1),
            ..t
        }));
        all.recovery
            .extend(p.recovery.into_iter().map(|r| RecoveryCode {
                at: (file, r.at.1),
                ..r
            }));
        // A later file overrides an earlier one's entry with the same pk, as loading in order would.
        all.origin
            .extend(p.origin.into_iter().map(|(k, (_, i))| (k, (file, i))));
    }
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    let at_err = |at: (usize, usize), what: &str, message: String| FixtureError::Entry {
        source_name: names.get(at.0).copied().unwrap_or("fixture").to_string(),
        index: at.1,
        what: format!(" ({what})"),
        message,
    };
    let origin_of =
        |key: &'static str, pk: i64| all.origin.get(&(key, pk)).copied().unwrap_or((0, 0));
    let report = with_db!(db, pool => {
        // It reads (what exists), then writes.
        let mut tx = pool.begin_with(db.begin_write()).await?;
        let question_ids: HashSet<i64> = all.questions.iter().map(|q| q.id).collect();
        for q in &all.questions {
            sqlx::query(
                "INSERT INTO questions (id, question_text, pub_date) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET question_text = excluded.question_text, pub_date = excluded.pub_date",
            )
            .bind(q.id)
            .bind(&q.text)
            .bind(q.pub_date)
            .execute(&mut *tx)
            .await?;
        }
        let mut file_votes: HashMap<i64, i64> = HashMap::new();
        for v in &all.votes {
            *file_votes.entry(v.choice).or_default() += 1;
        }
        for c in &all.choices {
            if !question_ids.contains(&c.question) {
                let exists = sqlx::query_scalar::<_, i64>("SELECT id FROM questions WHERE id = $1")
                    .bind(c.question)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Err(at_err(origin_of("choice", c.id), &format!("polls.choice pk {}", c.id), format!("question {} does not exist", c.question)));
                }
            }
            // A choice with vote rows stays on its poll (a trigger also holds this).
            let moved: Option<(i64, i64)> = sqlx::query_as(
                "SELECT c.question_id, COUNT(*) FROM choices c JOIN votes v ON v.choice_id = c.id \
                 WHERE c.id = $1 AND c.question_id <> $2 GROUP BY c.question_id",
            )
            .bind(c.id)
            .bind(c.question)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((from, votes)) = moved {
                return Err(at_err(
                    origin_of("choice", c.id),
                    &format!("polls.choice pk {}", c.id),
                    format!(
                        "choice {} has {votes} vote(s) on question {from}: it cannot move to question {} (its votes would point at another poll)",
                        c.id, c.question
                    ),
                ));
            }
            let base = (c.votes - file_votes.get(&c.id).copied().unwrap_or(0)).max(0);
            sqlx::query(
                "INSERT INTO choices (id, question_id, choice_text, base_votes) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO UPDATE SET question_id = excluded.question_id, \
                 choice_text = excluded.choice_text, base_votes = excluded.base_votes",
            )
            .bind(c.id)
            .bind(c.question)
            .bind(&c.text)
            .bind(base)
            .execute(&mut *tx)
            .await?;
        }
        let mut created = Vec::new();
        if accounts == Accounts::AddOnly {
            // The accounts this file names that exist before it is loaded.
            let mut existed = HashSet::new();
            let named: HashSet<i64> = all.users.iter().map(|u| u.id)
                .chain(all.numbers.iter().map(|n| n.user))
                .chain(all.totps.iter().map(|t| t.user))
                .chain(all.recovery.iter().map(|r| r.user))
                .chain(all.votes.iter().map(|v| v.user))
                .collect();
            for id in named {
                let found = sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if found.is_some() {
                    existed.insert(id);
                }
            }
            for u in &all.users {
                let stored = sqlx::query_as::<_, StoredUser>(&format!(
                    "SELECT {STORED_USER_FIELDS} FROM users WHERE id = $1"
                ))
                .bind(u.id)
                .fetch_optional(&mut *tx)
                .await?;
                let at = origin_of("user", u.id);
                let what = format!("auth.user pk {}", u.id);
                match stored {
                    None if u.is_staff || u.is_superuser => {
                        return Err(at_err(at, &what, only_adds(
                            "a new account would have is_staff or is_superuser set, and an upload never grants staff (`pollstr createuser --staff` and the admin's make-staff action do, by name)",
                        )));
                    }
                    None => created.push((u.id, u.username.clone())),
                    Some(stored) => {
                        let changed = changed_fields(&stored, u);
                        if !changed.is_empty() {
                            return Err(at_err(at, &what, only_adds(&format!("{ACCOUNTS_KEPT} ({})", changed.join(", ")))));
                        }
                    }
                }
            }
            let new_accounts: HashSet<i64> = created.iter().map(|(id, _)| *id).collect();
            for n in &all.numbers {
                if new_accounts.contains(&n.user) {
                    return Err(at_err(n.at, "two_factor.twofactor", only_adds(&format!(
                        "user {} is created by this file, and nobody proved this number for them", n.user
                    ))));
                }
                let stored = sqlx::query_scalar::<_, String>("SELECT number FROM phone_numbers WHERE user_id = $1")
                    .bind(n.user)
                    .fetch_optional(&mut *tx)
                    .await?;
                if existed.contains(&n.user) && stored.as_deref() != Some(n.number.as_str()) {
                    return Err(at_err(n.at, "two_factor.twofactor", only_adds(ACCOUNTS_KEPT)));
                }
            }
            for t in &all.totps {
                let stored = sqlx::query_scalar::<_, String>("SELECT secret FROM totp_factors WHERE user_id = $1")
                    .bind(t.user)
                    .fetch_optional(&mut *tx)
                    .await?;
                if existed.contains(&t.user) && stored.as_deref() != Some(t.sealed.as_str()) {
                    return Err(at_err(t.at, "two_factor.totpdevice", only_adds(ACCOUNTS_KEPT)));
                }
            }
            for r in &all.recovery {
                let stored = sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND code_hash = $2",
                )
                .bind(r.user)
                .bind(&r.hash)
                .fetch_one(&mut *tx)
                .await?;
                if existed.contains(&r.user) && stored == 0 {
                    return Err(at_err(r.at, "two_factor.recoverycode", only_adds(ACCOUNTS_KEPT)));
                }
            }
            // A vote is the account's own act: an upload may bring the votes of the accounts it
            // creates, and an existing account's votes only as they stand (a dump loads back).
            for v in all.votes.iter().filter(|v| existed.contains(&v.user)) {
                let stored = sqlx::query_scalar::<_, i64>(
                    "SELECT choice_id FROM votes WHERE user_id = $1 AND question_id = $2",
                )
                .bind(v.user)
                .bind(v.question)
                .fetch_optional(&mut *tx)
                .await?;
                if stored != Some(v.choice) {
                    return Err(at_err(v.at, "polls.vote", only_adds(&format!(
                        "the vote of user {}, who exists already, on question {} would change or be added", v.user, v.question
                    ))));
                }
            }
        }
        for u in &all.users {
            let (key, skeleton) = (username_key(&u.username), username_skeleton(&u.username));
            let other: Option<(String, String)> = sqlx::query_as(
                "SELECT username, username_key FROM users WHERE (username_key = $1 OR username_skeleton = $2) AND id <> $3",
            )
            .bind(&key)
            .bind(&skeleton)
            .bind(u.id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((other, other_key)) = other {
                let problem = if other_key == key {
                    format!("username {:?} is taken by another user ({other:?})", u.username)
                } else {
                    format!("username {:?} looks too much like another user's ({other:?})", u.username)
                };
                return Err(at_err(origin_of("user", u.id), &format!("auth.user pk {}", u.id), problem));
            }
            let res = sqlx::query(
                "INSERT INTO users (id, username, password, email, first_name, last_name, is_superuser, \
                 is_staff, is_active, date_joined, last_login, username_key, username_skeleton) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (id) DO UPDATE SET username = excluded.username, password = excluded.password, \
                 username_key = excluded.username_key, username_skeleton = excluded.username_skeleton, \
                 email = excluded.email, first_name = excluded.first_name, last_name = excluded.last_name, \
                 is_superuser = excluded.is_superuser, is_staff = excluded.is_staff, is_active = excluded.is_active, \
                 date_joined = excluded.date_joined, last_login = excluded.last_login",
            )
            .bind(u.id)
            .bind(&u.username)
            .bind(&u.password)
            .bind(&u.email)
            .bind(&u.first_name)
            .bind(&u.last_name)
            .bind(u.is_superuser)
            .bind(u.is_staff)
            .bind(u.is_active)
            .bind(u.date_joined)
            .bind(u.last_login)
            .bind(&key)
            .bind(&skeleton)
            .execute(&mut *tx)
            .await;
            match res {
                Ok(_) => {}
                Err(e) if db::is_unique_violation(&e) => {
                    return Err(at_err(origin_of("user", u.id), &format!("auth.user pk {}", u.id), format!("username {:?} is taken by another user", u.username)));
                }
                Err(e) => return Err(e.into()),
            }
        }
        for n in &all.numbers {
            let exists = sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE id = $1")
                .bind(n.user)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(at_err(n.at, "two_factor.twofactor", format!("user {} does not exist", n.user)));
            }
            let res = sqlx::query(
                "INSERT INTO phone_numbers (user_id, number, verified_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id) DO UPDATE SET number = excluded.number",
            )
            .bind(n.user)
            .bind(&n.number)
            .bind(db::now())
            .execute(&mut *tx)
            .await;
            match res {
                Ok(_) => {}
                Err(e) if db::is_unique_violation(&e) => {
                    return Err(at_err(n.at, "two_factor.twofactor", format!("number {} belongs to another user", n.number)));
                }
                Err(e) => return Err(e.into()),
            }
        }
        for (at, user, what) in all
            .totps
            .iter()
            .map(|t| (t.at, t.user, "two_factor.totpdevice"))
            .chain(all.recovery.iter().map(|r| (r.at, r.user, "two_factor.recoverycode")))
        {
            let exists = sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE id = $1")
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(at_err(at, what, format!("user {user} does not exist")));
            }
        }
        for t in &all.totps {
            sqlx::query(
                "INSERT INTO totp_factors (user_id, secret, last_step, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, \
                 last_step = excluded.last_step, created_at = excluded.created_at",
            )
            .bind(t.user)
            .bind(&t.sealed)
            .bind(t.last_step)
            .bind(t.created_at)
            .execute(&mut *tx)
            .await?;
        }
        for r in &all.recovery {
            sqlx::query(
                "INSERT INTO recovery_codes (user_id, code_hash, used_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id, code_hash) DO UPDATE SET used_at = excluded.used_at",
            )
            .bind(r.user)
            .bind(&r.hash)
            .bind(r.used_at)
            .execute(&mut *tx)
            .await?;
        }
        for v in &all.votes {
            let ok = sqlx::query_scalar::<_, i64>(
                "SELECT c.id FROM choices c, users u WHERE c.id = $1 AND c.question_id = $2 AND u.id = $3",
            )
            .bind(v.choice)
            .bind(v.question)
            .bind(v.user)
            .fetch_optional(&mut *tx)
            .await?;
            if ok.is_none() {
                return Err(at_err(
                    v.at,
                    "polls.vote",
                    format!(
                        "vote of user {} for choice {} of question {}: the user, the question or the choice does not exist",
                        v.user, v.choice, v.question
                    ),
                ));
            }
        }
        // The votes in statements of many rows: each statement adjusts the kept counts once
        // (PostgreSQL's count triggers run per statement; one statement per vote would update
        // the same counter rows again and again in one transaction, which gets slower with
        // every update). A later vote of a user on a question replaces an earlier one, as
        // loading them one by one would.
        let mut last: HashMap<(i64, i64), usize> = HashMap::new();
        for (i, v) in all.votes.iter().enumerate() {
            last.insert((v.user, v.question), i);
        }
        let mut keep: Vec<usize> = last.into_values().collect();
        keep.sort_unstable();
        for chunk in keep.chunks(VOTES_PER_STATEMENT) {
            let mut sql = String::from("INSERT INTO votes (user_id, question_id, choice_id, voted_at) VALUES ");
            for i in 0..chunk.len() {
                let n = 2 + 3 * i;
                sql.push_str(&format!("{}(${}, ${}, ${}, $1)", if i > 0 { ", " } else { "" }, n, n + 1, n + 2));
            }
            sql.push_str(" ON CONFLICT (user_id, question_id) DO UPDATE SET choice_id = excluded.choice_id");
            let mut query = sqlx::query(&sql).persistent(false).bind(db::now());
            for &i in chunk {
                let v = &all.votes[i];
                query = query.bind(v.user).bind(v.question).bind(v.choice);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        LoadReport {
            questions: all.questions.len(),
            choices: all.choices.len(),
            users: all.users.len(),
            numbers: all.numbers.len(),
            votes: all.votes.len(),
            factors: all.totps.len() + all.recovery.len(),
            created,
        }
    });
    if let Db::Postgres(p) = db {
        // Explicit ids do not advance identity sequences: move them past the largest id.
        for table in ["questions", "choices", "users"] {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST((SELECT MAX(id) FROM {table}), 1))"
            ))
            .execute(p)
            .await?;
        }
    }
    Ok(report)
}

/// Writes the whole database in Django's dumpdata format (4-space indent).
pub async fn dump(db: &Db) -> Result<String, FixtureError> {
    type UserRow = (
        i64,
        String,
        String,
        String,
        String,
        String,
        bool,
        bool,
        bool,
        i64,
        Option<i64>,
    );
    let (users, questions, choices, numbers, votes, totps, recovery) = with_db!(db, p => {
        let users = sqlx::query_as::<_, UserRow>(
            "SELECT id, username, password, email, first_name, last_name, is_superuser, is_staff, is_active, \
             date_joined, last_login FROM users ORDER BY id",
        )
        .fetch_all(p)
        .await?;
        let questions = sqlx::query_as::<_, (i64, String, i64)>(
            "SELECT id, question_text, pub_date FROM questions ORDER BY id",
        )
        .fetch_all(p)
        .await?;
        let choices = sqlx::query_as::<_, (i64, i64, String, i64)>(concat!(
            "SELECT c.id, c.question_id, c.choice_text, ",
            choice_votes!(),
            " FROM choices c ORDER BY c.id",
        ))
        .fetch_all(p)
        .await?;
        let numbers = sqlx::query_as::<_, (i64, String)>("SELECT user_id, number FROM phone_numbers ORDER BY user_id")
            .fetch_all(p)
            .await?;
        let votes = sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT user_id, question_id, choice_id FROM votes ORDER BY question_id, user_id",
        )
        .fetch_all(p)
        .await?;
        let totps = sqlx::query_as::<_, (i64, String, i64, i64)>(
            "SELECT user_id, secret, last_step, created_at FROM totp_factors ORDER BY user_id",
        )
        .fetch_all(p)
        .await?;
        let recovery = sqlx::query_as::<_, (i64, String, Option<i64>)>(
            "SELECT user_id, code_hash, used_at FROM recovery_codes ORDER BY user_id, code_hash",
        )
        .fetch_all(p)
        .await?;
        (users, questions, choices, numbers, votes, totps, recovery)
    });
    let mut out: Vec<Value> = Vec::new();
    for (id, username, password, email, first, last, su, staff, active, joined, last_login) in users
    {
        out.push(json!({"model": "auth.user", "pk": id, "fields": {
            "password": password,
            "last_login": last_login.map(format_date),
            "is_superuser": su,
            "username": username,
            "first_name": first,
            "last_name": last,
            "email": email,
            "is_staff": staff,
            "is_active": active,
            "date_joined": format_date(joined),
            "groups": [],
            "user_permissions": [],
        }}));
    }
    for (id, text, pub_date) in questions {
        out.push(json!({"model": "polls.question", "pk": id, "fields": {
            "question_text": text, "pub_date": format_date(pub_date)}}));
    }
    for (id, question, text, votes) in choices {
        out.push(json!({"model": "polls.choice", "pk": id, "fields": {
            "question": question, "choice_text": text, "votes": votes}}));
    }
    for (pk, (user, number)) in numbers.into_iter().enumerate() {
        out.push(json!({"model": "two_factor.twofactor", "pk": pk + 1, "fields": {"number": number, "user": user}}));
    }
    // Secrets stay as the database keeps them: sealed, or keyed hashes (POLLSTR_SECRET_KEY).
    for (user, sealed, last_step, created_at) in totps {
        out.push(
            json!({"model": "two_factor.totpdevice", "pk": user, "fields": {
            "user": user, "secret_sealed": sealed, "last_step": last_step,
            "created_at": format_date(created_at)}}),
        );
    }
    for (pk, (user, hash, used_at)) in recovery.into_iter().enumerate() {
        out.push(
            json!({"model": "two_factor.recoverycode", "pk": pk + 1, "fields": {
            "user": user, "code_hash": hash, "used_at": used_at.map(format_date)}}),
        );
    }
    for (pk, (user, question, choice)) in votes.into_iter().enumerate() {
        out.push(json!({"model": "polls.vote", "pk": pk + 1, "fields": {
            "user": user, "question": question, "choice": choice}}));
    }
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(&out, &mut ser).map_err(|e| FixtureError::Json {
        source_name: "dump".into(),
        message: e.to_string(),
    })?;
    buf.push(b'\n');
    Ok(String::from_utf8(buf).unwrap_or_default())
}

/// Loads the demo fixture when the database has neither polls nor users (first `cargo run`):
/// the polls, and the user test / test1234 only when `with_user` (development: a fixed,
/// published password must not open an account anyone else can reach).
pub async fn seed_demo_if_empty(db: &Db, with_user: bool) -> Result<bool, FixtureError> {
    let (questions, users) = with_db!(db, p => sqlx::query_as::<_, (i64, i64)>(
        "SELECT (SELECT COUNT(*) FROM questions), (SELECT COUNT(*) FROM users)",
    )
    .fetch_one(p)
    .await)?;
    if questions > 0 || users > 0 {
        return Ok(false);
    }
    let demo = if with_user {
        DEMO.to_string()
    } else {
        demo_polls()
    };
    load(db, &[("fixtures/all.json".into(), demo)]).await?;
    Ok(true)
}

/// The demo fixture without its user.
fn demo_polls() -> String {
    let mut entries: Vec<serde_json::Value> = serde_json::from_str(DEMO).unwrap_or_default();
    entries.retain(|e| e["model"] != "auth.user");
    serde_json::Value::Array(entries).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("2016-07-25T12:54:24Z"), Some(1469451264));
        assert_eq!(parse_date("2016-07-25T12:53:18.635Z"), Some(1469451198));
        assert_eq!(parse_date("2016-07-25T12:54:24"), Some(1469451264));
        assert_eq!(parse_date("2016-07-25T14:54:24+02:00"), Some(1469451264));
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(format_date(1469451264), "2016-07-25T12:54:24Z");
    }

    #[test]
    fn demo_fixture_parses() {
        let p = parse("all.json", DEMO).unwrap();
        assert_eq!(
            (p.questions.len(), p.choices.len(), p.users.len()),
            (3, 12, 1)
        );
        let polls = parse("all.json", &demo_polls()).unwrap();
        assert_eq!(
            (
                polls.questions.len(),
                polls.choices.len(),
                polls.users.len()
            ),
            (3, 12, 0)
        );
    }

    fn err_of(text: &str) -> String {
        match parse("f.json", text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{text} parsed"),
        }
    }

    #[test]
    fn errors_name_the_entry() {
        let e = err_of(
            r#"[{"model":"polls.question","pk":1,"fields":{"pub_date":"2016-07-25T12:54:24Z"}}]"#,
        );
        assert!(
            e.contains("entry 1") && e.contains("question_text") && e.contains("missing"),
            "{e}"
        );
        let e = err_of(r#"[{"model":"polls.poll","pk":1,"fields":{}}]"#);
        assert!(e.contains("unknown model"), "{e}");
        let e = err_of(r#"[{"model":"polls.question","pk":1,"fi"#);
        assert!(e.contains("truncated"), "{e}");
        let e = err_of(
            r#"[{"model":"polls.choice","pk":1,"fields":{"question":1,"choice_text":"x","votes":-1}}]"#,
        );
        assert!(e.contains("negative"), "{e}");
    }
}
