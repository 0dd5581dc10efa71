//! The SMS pumping guard. Fraudsters make a site send codes to premium numbers whose revenue
//! they share; the provider bills the site. Before any call to the provider a send must go to
//! a person's phone (a mobile number, never premium-rate, shared-cost or another service
//! number: see [`PhoneNumber::not_a_phone`]), in an allowed destination country (a number of
//! no country only when `SMS_ALLOWED_COUNTRIES` lists [`NON_GEOGRAPHIC`]) that is not paused,
//! and within that country's and that number range's budget (counted with the other limits). Every verification that goes out is
//! recorded here with its destination; a confirmed code marks it. When a country's share of
//! codes confirmed falls under `SMS_MIN_CONVERSION` after enough sends, its sends pause for
//! `SMS_PAUSE`, a warning is logged and a security event recorded. `pollstr sms-report` shows
//! the figures. Its SQL is in `store/sends.rs`.

use std::time::Duration;

use super::phone::{PhoneNumber, NON_GEOGRAPHIC};
use crate::config::Config;
use crate::db::{self, Db};
use crate::events::{self, Kind};
use crate::limits::{Check, Scope};
use crate::state::AppState;
use crate::telemetry::Telemetry;

use super::store::sends;
pub use super::store::sends::{
    prune, record_confirmed, record_next_channel, record_outcome, PauseRow, ReportRow,
};

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
pub async fn admit(state: &AppState, to: &Destination) -> sqlx::Result<Admission> {
    let (db, config) = (&state.db, &state.config);
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
    let until = sends::paused_until(db, &to.country).await?;
    if let Some(until) = until {
        return Ok(Admission::Paused { until });
    }
    Ok(match review(state, &to.country).await? {
        Some(until) => Admission::Paused { until },
        None => Admission::Allowed,
    })
}

/// A verification went out (a new request, not a running one continued).
pub async fn record_send(db: &Db, request_id: &str, to: &Destination) -> sqlx::Result<()> {
    sends::record_send(db, request_id, &to.country, &to.prefix).await
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
/// makes the pause and records it (and counts it: `pollstr_sms_countries_paused_total{country}`).
pub async fn review(state: &AppState, country: &str) -> sqlx::Result<Option<i64>> {
    let (db, config) = (&state.db, &state.config);
    let guard = &config.sms_guard;
    if guard.min_conversion <= 0.0 {
        return Ok(None);
    }
    let now = db::now();
    let last_pause = sends::last_pause(db, country).await?;
    if let Some(until) = last_pause.filter(|until| *until > now) {
        return Ok(Some(until));
    }
    let since = (now - guard.conversion_window.as_secs() as i64).max(last_pause.unwrap_or(0));
    let settled_before = now - settle_after(config).as_secs() as i64;
    let (settled, confirmed) =
        sends::settled_and_confirmed(db, country, since, settled_before).await?;
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
    if !sends::pause(db, country, until, &reason, now).await? {
        // Another instance paused it a moment ago (and recorded it).
        let until = sends::last_pause(db, country).await?;
        return Ok(Some(until.ok_or(sqlx::Error::RowNotFound)?));
    }
    let detail = format!(
        "codes to {country} paused until {}: {reason}",
        events::format_time(until)
    );
    tracing::warn!(country, %reason, "SMS pumping guard: sends to a country paused");
    let label = if country == "??" { "unknown" } else { country };
    state.part::<Telemetry>().count(
        "pollstr_sms_countries_paused_total",
        &[("country", label.to_string().into())],
    );
    events::record(db, Kind::SmsCountryPaused, None, "", &detail).await?;
    Ok(Some(until))
}

/// Lifts a country's pause (`pollstr sms-resume`); whether one was running.
pub async fn resume(db: &Db, country: &str) -> sqlx::Result<bool> {
    sends::lift_pause(db, country, db::now()).await
}

fn percent(part: i64, whole: i64) -> i64 {
    if whole == 0 {
        0
    } else {
        (part * 100 + whole / 2) / whole
    }
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
    let countries = sends::sends_by(db, "country", since).await?;
    let prefixes = sends::sends_by(db, "prefix", since).await?;
    let paused = sends::running_pauses(db).await?;
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
