//! The SMS pumping guard. Fraudsters make a site send codes to premium numbers whose revenue
//! they share; the provider bills the site. Before any call to the provider a send must go to
//! a person's phone (a mobile number, never premium-rate, shared-cost or another service
//! number: see [`PhoneNumber::not_a_phone`]), in an allowed destination country (a number of
//! no country only when `SMS_ALLOWED_COUNTRIES` lists [`NON_GEOGRAPHIC`]) that is not paused,
//! and within that country's and that number range's budget (counted with the other limits). Every verification that goes out is
//! recorded here with its destination; a confirmed code marks it. When a country's share of
//! codes confirmed falls under `SMS_MIN_CONVERSION` after enough sends, its sends pause for
//! `SMS_PAUSE`, a warning is logged and a security event recorded. `pollstr sms-report` shows
//! the figures.

use std::time::Duration;

use super::phone::{PhoneNumber, NON_GEOGRAPHIC};
use crate::config::Config;
use crate::db::{self, Db};
use crate::events::{self, Kind};
use crate::limits::{Check, Scope};
use crate::with_db;

/// Where a code goes, as the guard counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// ISO 3166 code of the number's country (`GB`), [`NON_GEOGRAPHIC`] for a number of no
    /// country, or `??` when libphonenumber knows none.
    pub country: String,
    /// The number without its last four digits (`+44791112`): a block of 10,000 numbers, the
    /// size of the ranges premium-rate fraud rents.
    pub prefix: String,
    /// What the number is when it is not a person's phone (`premium-rate`).
    pub not_a_phone: Option<&'static str>,
}

impl Destination {
    pub fn of(number: &PhoneNumber) -> Destination {
        let country = number.region().unwrap_or_else(|| "??".into());
        let digits = number.digits();
        let keep = digits.len().saturating_sub(4).max(1);
        Destination {
            country,
            prefix: format!("+{}", &digits[..keep]),
            not_a_phone: number.not_a_phone(),
        }
    }

    /// The budgets this send is counted against, beside the other send limits.
    pub fn budgets<'a>(&'a self, config: &'a Config) -> [Check<'a>; 2] {
        [
            (
                Scope::SmsPerCountry,
                self.country.as_str(),
                config.limits.sms_per_country.as_slice(),
            ),
            (
                Scope::SmsPerPrefix,
                self.prefix.as_str(),
                config.limits.sms_per_prefix.as_slice(),
            ),
        ]
    }
}

/// Whether a code may go to a destination, before limits and the provider.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Not a person's phone (`premium-rate`, …), or a number of no country not listed: no code
    /// goes there, whatever the other settings.
    CannotReceive(&'static str),
    /// The country is not in `SMS_ALLOWED_COUNTRIES`.
    CountryNotAllowed,
    /// The country's sends are paused until this Unix time.
    Paused {
        until: i64,
    },
}

/// Whether a code may go to `to` now: a person's phone, in an allowed country (a number of no
/// country only when listed by name: the empty list means every country, not every range),
/// not paused, and (judged now, see [`review`]) not falling short of the minimum conversion.
/// It is asked before every send, "Call me instead" and a user's proven number included, so
/// a number stored before a rule tightened is held to it too.
pub async fn admit(db: &Db, config: &Config, to: &Destination) -> sqlx::Result<Admission> {
    if let Some(kind) = to.not_a_phone {
        return Ok(Admission::CannotReceive(kind));
    }
    let guard = &config.sms_guard;
    let listed = guard.allowed_countries.contains(&to.country);
    let of_no_country = to.country == NON_GEOGRAPHIC || to.country == "??";
    if of_no_country && !listed {
        return Ok(Admission::CannotReceive("satellite and other non-country"));
    }
    if !listed && !guard.allowed_countries.is_empty() {
        return Ok(Admission::CountryNotAllowed);
    }
    let until = with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT paused_until FROM sms_pauses WHERE country = $1 AND paused_until > $2",
    )
    .bind(&to.country)
    .bind(db::now())
    .fetch_optional(p)
    .await)?;
    if let Some(until) = until {
        return Ok(Admission::Paused { until });
    }
    Ok(match review(db, config, &to.country).await? {
        Some(until) => Admission::Paused { until },
        None => Admission::Allowed,
    })
}

/// A verification went out (a new request, not a running one continued).
pub async fn record_send(db: &Db, request_id: &str, to: &Destination) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query(
        "INSERT INTO sms_sends (request_id, country, prefix, sent_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(request_id)
    .bind(&to.country)
    .bind(&to.prefix)
    .bind(db::now())
    .execute(p)
    .await
    .map(|_| ()))
}

/// The request's code went out again by its next channel.
pub async fn record_next_channel(db: &Db, request_id: &str) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query("UPDATE sms_sends SET channels = channels + 1 WHERE request_id = $1")
        .bind(request_id)
        .execute(p)
        .await
        .map(|_| ()))
}

/// The request's code was confirmed.
pub async fn record_confirmed(db: &Db, request_id: &str) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query(
        "UPDATE sms_sends SET confirmed_at = $2 WHERE request_id = $1 AND confirmed_at IS NULL",
    )
    .bind(request_id)
    .bind(db::now())
    .execute(p)
    .await
    .map(|_| ()))
}

/// What the provider reported of a request (a signed callback); returns the request's country
/// when the request is ours.
pub async fn record_outcome(
    db: &Db,
    request_id: &str,
    outcome: &str,
) -> sqlx::Result<Option<String>> {
    with_db!(db, p => sqlx::query_scalar::<_, String>(
        "UPDATE sms_sends SET outcome = $2, outcome_at = $3 WHERE request_id = $1 RETURNING country",
    )
    .bind(request_id)
    .bind(outcome)
    .bind(db::now())
    .fetch_optional(p)
    .await)
}

/// How long a code may still be typed after its request went out: after that, a send that was
/// not confirmed counts as not converted.
pub fn settle_after(config: &Config) -> Duration {
    config.verify.channel_timeout * config.verify.workflow.len() as u32 + Duration::from_secs(60)
}

/// Judges a country's conversion over the window (since its last pause ended, if later): the
/// sends that are settled (confirmed, reported on by a callback, or older than
/// [`settle_after`]) against those confirmed. Pauses the country when it falls short, and
/// returns the end of the pause now in force, if any; of many instances judging at once, one
/// makes the pause and records it.
pub async fn review(db: &Db, config: &Config, country: &str) -> sqlx::Result<Option<i64>> {
    let guard = &config.sms_guard;
    if guard.min_conversion <= 0.0 {
        return Ok(None);
    }
    let now = db::now();
    let last_pause = with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT paused_until FROM sms_pauses WHERE country = $1",
    )
    .bind(country)
    .fetch_optional(p)
    .await)?;
    if let Some(until) = last_pause.filter(|until| *until > now) {
        return Ok(Some(until));
    }
    let since = (now - guard.conversion_window.as_secs() as i64).max(last_pause.unwrap_or(0));
    let settled_before = now - settle_after(config).as_secs() as i64;
    let (settled, confirmed): (i64, i64) = with_db!(db, p => sqlx::query_as(
        "SELECT COUNT(*), COUNT(confirmed_at) FROM sms_sends \
         WHERE country = $1 AND sent_at > $2 \
           AND (confirmed_at IS NOT NULL OR outcome IS NOT NULL OR sent_at <= $3)",
    )
    .bind(country)
    .bind(since)
    .bind(settled_before)
    .fetch_one(p)
    .await)?;
    if settled < guard.conversion_min_sends as i64
        || confirmed as f64 >= guard.min_conversion * settled as f64
    {
        return Ok(None);
    }
    let until = now + guard.pause.as_secs() as i64;
    let reason = format!(
        "{confirmed} of {settled} codes confirmed ({}%), under the minimum of {}%",
        percent(confirmed, settled),
        (guard.min_conversion * 100.0).round()
    );
    let made = with_db!(db, p => sqlx::query(
        "INSERT INTO sms_pauses (country, paused_until, reason) VALUES ($1, $2, $3) \
         ON CONFLICT (country) DO UPDATE SET paused_until = excluded.paused_until, reason = excluded.reason \
         WHERE sms_pauses.paused_until <= $4",
    )
    .bind(country)
    .bind(until)
    .bind(&reason)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    if made == 0 {
        // Another instance paused it a moment ago (and recorded it).
        return Ok(Some(with_db!(db, p => sqlx::query_scalar::<_, i64>(
                "SELECT paused_until FROM sms_pauses WHERE country = $1",
            )
            .bind(country)
            .fetch_one(p)
            .await)?));
    }
    let detail = format!(
        "codes to {country} paused until {}: {reason}",
        events::format_time(until)
    );
    tracing::warn!(country, %reason, "SMS pumping guard: sends to a country paused");
    events::record(db, Kind::SmsCountryPaused, None, "", &detail).await?;
    Ok(Some(until))
}

/// Lifts a country's pause (`pollstr sms-resume`); whether one was running.
pub async fn resume(db: &Db, country: &str) -> sqlx::Result<bool> {
    let now = db::now();
    let done = with_db!(db, p => sqlx::query(
        "UPDATE sms_pauses SET paused_until = $2 WHERE country = $1 AND paused_until > $2",
    )
    .bind(country)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Forgets sends older than `keep`.
pub async fn prune(db: &Db, keep: Duration) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query("DELETE FROM sms_sends WHERE sent_at < $1")
        .bind(db::now() - keep.as_secs() as i64)
        .execute(p)
        .await
        .map(|_| ()))
}

fn percent(part: i64, whole: i64) -> i64 {
    if whole == 0 {
        0
    } else {
        (part * 100 + whole / 2) / whole
    }
}

/// One line of the report: a country or a prefix.
#[derive(Debug, sqlx::FromRow)]
pub struct ReportRow {
    pub key: String,
    pub sends: i64,
    pub confirmed: i64,
    /// Sends a callback reported as failed, rejected or expired.
    pub undelivered: i64,
    pub calls: i64,
}

#[derive(Debug, sqlx::FromRow)]
pub struct PauseRow {
    pub country: String,
    pub paused_until: i64,
    pub reason: String,
}

#[derive(Debug)]
pub struct Report {
    pub since: i64,
    pub countries: Vec<ReportRow>,
    pub prefixes: Vec<ReportRow>,
    pub paused: Vec<PauseRow>,
}

/// Sends, confirmations and conversion per country and prefix since `since` (Unix seconds),
/// and the pauses running now.
pub async fn report(db: &Db, since: i64) -> sqlx::Result<Report> {
    let by = |column: &str| {
        format!(
            "SELECT {column} AS key, COUNT(*) AS sends, COUNT(confirmed_at) AS confirmed, \
             COUNT(CASE WHEN outcome IN ('failed', 'rejected', 'expired') THEN 1 END) AS undelivered, \
             CAST(COALESCE(SUM(channels - 1), 0) AS BIGINT) AS calls \
             FROM sms_sends WHERE sent_at >= $1 GROUP BY {column} ORDER BY sends DESC, key LIMIT 200"
        )
    };
    let (countries_sql, prefixes_sql) = (by("country"), by("prefix"));
    let countries = with_db!(db, p => sqlx::query_as::<_, ReportRow>(&countries_sql)
        .bind(since)
        .fetch_all(p)
        .await)?;
    let prefixes = with_db!(db, p => sqlx::query_as::<_, ReportRow>(&prefixes_sql)
        .bind(since)
        .fetch_all(p)
        .await)?;
    let paused = with_db!(db, p => sqlx::query_as::<_, PauseRow>(
        "SELECT country, paused_until, reason FROM sms_pauses WHERE paused_until > $1 ORDER BY country",
    )
    .bind(db::now())
    .fetch_all(p)
    .await)?;
    Ok(Report {
        since,
        countries,
        prefixes,
        paused,
    })
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Codes sent since {}", events::format_time(self.since))?;
        for (title, rows) in [("country", &self.countries), ("prefix", &self.prefixes)] {
            writeln!(f)?;
            writeln!(
                f,
                "{title:<14} {:>8} {:>10} {:>11} {:>12} {:>6}",
                "sends", "confirmed", "conversion", "undelivered", "calls"
            )?;
            if rows.is_empty() {
                writeln!(f, "(none)")?;
            }
            for r in rows.iter() {
                writeln!(
                    f,
                    "{:<14} {:>8} {:>10} {:>10}% {:>12} {:>6}",
                    r.key,
                    r.sends,
                    r.confirmed,
                    percent(r.confirmed, r.sends),
                    r.undelivered,
                    r.calls
                )?;
            }
        }
        writeln!(f)?;
        if self.paused.is_empty() {
            writeln!(f, "Paused: none")?;
        }
        for p in &self.paused {
            writeln!(
                f,
                "Paused: {} until {} ({})",
                p.country,
                events::format_time(p.paused_until),
                p.reason
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_by_country_and_block() {
        let n = PhoneNumber::parse("+44 7400 123456", None).unwrap();
        let d = Destination::of(&n);
        assert_eq!(d.country, "GB");
        assert_eq!(d.prefix, "+44740012");
        // libphonenumber knows the Crown Dependencies' ranges apart.
        let gg = PhoneNumber::parse("+44 7911 123456", None).unwrap();
        assert_eq!(Destination::of(&gg).country, "GG");
        let us = PhoneNumber::parse("+1 201 555 0123", None).unwrap();
        assert_eq!(Destination::of(&us).country, "US");
        assert_eq!(Destination::of(&us).prefix, "+1201555");
        assert_eq!(Destination::of(&us).not_a_phone, None);
        let satellite = PhoneNumber::parse("+881 612 345 678", None).unwrap();
        assert_eq!(Destination::of(&satellite).country, NON_GEOGRAPHIC);
        let premium = PhoneNumber::parse("+1 900 234 5678", None).unwrap();
        assert_eq!(Destination::of(&premium).not_a_phone, Some("premium-rate"));
    }

    #[test]
    fn percentages_round() {
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(2, 3), 67);
        assert_eq!(percent(0, 0), 0);
    }
}
