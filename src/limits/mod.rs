//! Abuse limits: each SMS costs money, codes and passwords can be guessed, and each sign-up costs
//! a password hash and makes an account. A limit is `COUNT/WINDOW`; the events are rows in the
//! database, so limits hold across restarts and across instances. A per-address limit counts the
//! subject `web::client::limit_subject` gives (an IPv6 client by its network). The SQL is in
//! `store.rs`.

mod store;

use std::time::Duration;

use crate::db::Db;
use crate::duration::parse_duration;
use crate::state::AppState;
use crate::telemetry::Telemetry;

pub use store::prune;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub count: i64,
    pub window: Duration,
}

impl Limit {
    /// `3/10m,10/1d` → two limits. Windows take s, m, h or d.
    pub fn parse_list(raw: &str) -> Result<Vec<Limit>, String> {
        let limits: Vec<Limit> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|part| {
                let (count, window) = part
                    .split_once('/')
                    .ok_or_else(|| format!("{part:?}: use COUNT/WINDOW, e.g. 3/10m"))?;
                let count: i64 = count
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{part:?}: the count must be a whole number above 0"))?;
                let window = parse_duration(window).ok_or_else(|| {
                    format!("{part:?}: the window must be like 30s, 10m, 1h or 1d")
                })?;
                Ok(Limit { count, window })
            })
            .collect::<Result<_, String>>()?;
        if limits.is_empty() {
            return Err("at least one COUNT/WINDOW is needed".into());
        }
        Ok(limits)
    }
}

/// What the limits are counted on.
#[derive(Clone, Copy, Debug)]
pub enum Scope {
    SmsPerUser,
    SmsPerNumber,
    SmsPerIp,
    SmsPerCountry,
    SmsPerPrefix,
    WrongCodePerUser,
    FailedLoginPerIp,
    FailedLoginPerUsername,
    SignupPerIp,
    ResetPerIp,
    ResetPerUser,
    /// Reset links mailed to one address (several accounts may share it).
    ResetPerEmail,
    ConfirmPerUser,
    ConfirmPerEmail,
    /// A once-marker: the mail about a login whose second factor failed five times.
    FactorAlert,
}

impl Scope {
    /// Its name in `limit_events` and in the metrics' `limit` label.
    pub fn name(self) -> &'static str {
        match self {
            Scope::SmsPerUser => "sms_user",
            Scope::SmsPerNumber => "sms_number",
            Scope::SmsPerIp => "sms_ip",
            Scope::SmsPerCountry => "sms_country",
            Scope::SmsPerPrefix => "sms_prefix",
            Scope::WrongCodePerUser => "code_user",
            Scope::FailedLoginPerIp => "login_ip",
            Scope::FailedLoginPerUsername => "login_username",
            Scope::SignupPerIp => "signup_ip",
            Scope::ResetPerIp => "reset_ip",
            Scope::ResetPerUser => "reset_user",
            Scope::ResetPerEmail => "reset_email",
            Scope::ConfirmPerUser => "confirm_user",
            Scope::ConfirmPerEmail => "confirm_email",
            Scope::FactorAlert => "factor_alert",
        }
    }
}

/// What one reservation is counted against: a scope, its subject and the limits that apply.
pub type Check<'a> = (Scope, &'a str, &'a [Limit]);

/// Attempts counted before the work they guard (a password hash, an SMS, a code check). Checking
/// the counts and recording the attempt happen in one transaction, under a lock per subject
/// (SQLite: its write lock; PostgreSQL: an advisory lock per scope and subject, taken in order),
/// so that requests sent together cannot all pass the check before any of them is recorded.
#[derive(Debug)]
#[must_use = "an attempt that turned out not to count is released"]
pub struct Reservation {
    ids: Vec<i64>,
}

/// Counts one attempt against every check, or none when any limit is reached: then the seconds
/// to wait (the longest of the limits reached), and each limit reached counts a refusal in the
/// metrics (`pollstr_limit_refusals_total{limit}`).
pub async fn reserve(
    state: &AppState,
    checks: &[Check<'_>],
) -> sqlx::Result<Result<Reservation, u64>> {
    let db = &state.db;
    let mut keys: Vec<String> = checks
        .iter()
        .map(|(scope, subject, _)| format!("{}:{subject}", scope.name()))
        .collect();
    keys.sort();
    keys.dedup();
    Ok(match store::reserve(db, &keys, checks).await? {
        Ok(ids) => Ok(Reservation { ids }),
        Err((wait, over)) => {
            let telemetry = state.part::<Telemetry>();
            for scope in over {
                telemetry.count(
                    "pollstr_limit_refusals_total",
                    &[("limit", scope.name().into())],
                );
            }
            Err(wait)
        }
    })
}

/// Takes back a reserved attempt that turned out not to count.
pub async fn release(db: &Db, reservation: Reservation) -> sqlx::Result<()> {
    store::delete(db, &reservation.ids).await
}

/// "3 minutes", "1 hour", "45 seconds".
pub fn human_wait(secs: u64) -> String {
    let (n, unit) = if secs >= 7200 {
        (secs.div_ceil(3600), "hour")
    } else if secs >= 120 {
        (secs.div_ceil(60), "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        let l = Limit::parse_list("3/10m, 10/1d").unwrap();
        assert_eq!(
            l[0],
            Limit {
                count: 3,
                window: Duration::from_secs(600)
            }
        );
        assert_eq!(l[1].window, Duration::from_secs(86400));
        for bad in ["", "3", "0/1m", "x/1m", "3/1w", "3/"] {
            assert!(Limit::parse_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn waits_read_well() {
        assert_eq!(human_wait(1), "1 second");
        assert_eq!(human_wait(90), "90 seconds");
        assert_eq!(human_wait(600), "10 minutes");
        assert_eq!(human_wait(86400), "24 hours");
    }
}
