//! The typed getter every setting is read through: each getter names its setting in the error
//! it returns (a bad value stops start-up with `setting NAME: what it should be`), so no reader
//! writes that by hand. It also remembers every name asked for, which is how the test in
//! `tests.rs` knows the settings the code reads and checks that `docs/configuration.md` and
//! `.env.example` list exactly those.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use super::{err, parse_duration, ConfigError};
use crate::limits::Limit;

pub(super) type Result<T> = std::result::Result<T, ConfigError>;

pub(super) struct Env<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    read: RefCell<BTreeSet<&'static str>>,
}

impl<'a> Env<'a> {
    pub fn new(get: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Env {
            get,
            read: RefCell::new(BTreeSet::new()),
        }
    }

    /// Every setting asked for so far.
    #[cfg(test)]
    pub fn names(&self) -> BTreeSet<&'static str> {
        self.read.borrow().clone()
    }

    /// The value as given, if any.
    pub fn raw(&self, name: &'static str) -> Option<String> {
        self.read.borrow_mut().insert(name);
        (self.get)(name)
    }

    pub fn text(&self, name: &'static str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_string())
    }

    /// A value turned into `T` by `parse`, or the error `expected` when it does not parse.
    pub fn parsed<T>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
        expected: impl FnOnce(&str) -> String,
    ) -> Result<Option<T>> {
        match self.raw(name) {
            Some(v) => parse(&v).map(Some).ok_or_else(|| err(name, expected(&v))),
            None => Ok(None),
        }
    }

    /// A duration ("15m", "1d"); `example` is what the error suggests ("use e.g. 10s").
    pub fn duration(
        &self,
        name: &'static str,
        default: Duration,
        example: &str,
    ) -> Result<Duration> {
        Ok(self
            .parsed(name, parse_duration, |_| example.to_string())?
            .unwrap_or(default))
    }

    /// A duration from `min` to `max` seconds, else `expected`.
    pub fn duration_within(
        &self,
        name: &'static str,
        default: Duration,
        (min, max): (u64, u64),
        expected: &str,
    ) -> Result<Duration> {
        let within = |v: &str| parse_duration(v).filter(|d| (min..=max).contains(&d.as_secs()));
        Ok(self
            .parsed(name, within, |_| expected.to_string())?
            .unwrap_or(default))
    }

    /// A number in `range`, else `expected`.
    pub fn number<T: FromStr + PartialOrd>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
        expected: &str,
    ) -> Result<T> {
        let parse = |v: &str| v.trim().parse::<T>().ok().filter(|n| range.contains(n));
        Ok(self
            .parsed(name, parse, |_| expected.to_string())?
            .unwrap_or(default))
    }

    /// `true`/`false` (also 1/0, yes/no, on/off).
    pub fn flag(&self, name: &'static str) -> Result<Option<bool>> {
        self.parsed(name, parse_bool, |_| "use true or false".into())
    }

    /// A list of limits, `COUNT/WINDOW[,COUNT/WINDOW]`.
    pub fn limits(&self, name: &'static str, default: &str) -> Result<Vec<Limit>> {
        Limit::parse_list(&self.text(name, default)).map_err(|m| err(name, m))
    }

    /// A comma-separated list, each item turned into `T` by `item` (or its error message).
    pub fn list<T>(
        &self,
        name: &'static str,
        item: impl Fn(&str) -> std::result::Result<T, String>,
    ) -> Result<Vec<T>> {
        let Some(v) = self.raw(name) else {
            return Ok(Vec::new());
        };
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| item(s).map_err(|m| err(name, m)))
            .collect()
    }
}

pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}
