//! The abuse limits' settings (`*_LIMIT_*`, `IPV6_LIMIT_PREFIX`): each a list of
//! `COUNT/WINDOW`, with defaults that say who they let through (docs/security.md#limits).

use std::time::Duration;

use super::env::{Env, Result};
use crate::limits::Limit;

/// Abuse limits on code sends and code checks.
#[derive(Clone, Debug)]
pub struct Limits {
    pub sms_per_user: Vec<Limit>,
    pub sms_per_number: Vec<Limit>,
    pub sms_per_ip: Vec<Limit>,
    /// Budgets per destination country and per number prefix (the SMS pumping guard).
    pub sms_per_country: Vec<Limit>,
    pub sms_per_prefix: Vec<Limit>,
    pub code_per_user: Vec<Limit>,
    pub login_per_ip: Vec<Limit>,
    pub login_per_username: Vec<Limit>,
    /// Sign-ups that reach the password hash, per client address.
    pub signup_per_ip: Vec<Limit>,
    /// Self-service reset requests (`/password-reset/`), per client address: counted whatever
    /// was typed, before anything is looked up.
    pub reset_per_ip: Vec<Limit>,
    /// Reset links mailed, per account and per address mailed to (the same counts).
    pub reset_per_user: Vec<Limit>,
    /// Confirmation links mailed, per account and per address mailed to (the same counts).
    pub confirm_per_user: Vec<Limit>,
    /// The length of the network an IPv6 client is counted by in every per-address limit
    /// (`IPV6_LIMIT_PREFIX`): one subscriber gets a whole /64, so counting each address would
    /// hand it 2^64 budgets (`web::client::limit_subject`).
    pub ipv6_prefix: u8,
}

impl Limits {
    /// The longest window of any limit: how long a limit event must be kept.
    pub fn longest_window(&self) -> Duration {
        [
            &self.sms_per_user,
            &self.sms_per_number,
            &self.sms_per_ip,
            &self.sms_per_country,
            &self.sms_per_prefix,
            &self.code_per_user,
            &self.login_per_ip,
            &self.login_per_username,
            &self.signup_per_ip,
            &self.reset_per_ip,
            &self.reset_per_user,
            &self.confirm_per_user,
        ]
        .into_iter()
        .flatten()
        .map(|l| l.window)
        .max()
        .unwrap_or(Duration::from_secs(86400))
    }
}

pub(super) fn read(env: &Env) -> Result<Limits> {
    Ok(Limits {
        sms_per_user: env.limits("SMS_LIMIT_PER_USER", "3/10m,10/1d")?,
        sms_per_number: env.limits("SMS_LIMIT_PER_NUMBER", "3/10m")?,
        sms_per_ip: env.limits("SMS_LIMIT_PER_IP", "20/1h")?,
        sms_per_country: env.limits("SMS_LIMIT_PER_COUNTRY", "1000/1d")?,
        sms_per_prefix: env.limits("SMS_LIMIT_PER_PREFIX", "100/1d")?,
        code_per_user: env.limits("CODE_LIMIT_PER_USER", "5/15m")?,
        login_per_ip: env.limits("LOGIN_LIMIT_PER_IP", "20/15m")?,
        login_per_username: env.limits("LOGIN_LIMIT_PER_USERNAME", "100/1h")?,
        // A household, an office or a classroom behind one NAT signs up a few people at
        // once; 20 an hour lets that through, and holds one address to 100 accounts a day
        // (a flood made 1,316 a minute without it).
        signup_per_ip: env.limits("SIGNUP_LIMIT_PER_IP", "20/1h,100/1d")?,
        // A person who forgot a password asks once, maybe twice more when the mail is slow;
        // ten an hour leaves room for a household or an office behind one address, and holds
        // one address to 30 reset mails a day whoever it names (docs/configuration.md).
        reset_per_ip: env.limits("RESET_LIMIT_PER_IP", "10/1h,30/1d")?,
        // A link works for RESET_LINK_TTL (1 hour) and each new one voids the older: three an
        // hour covers a slow or filtered mail; six a day caps what a stranger can send to a
        // mailbox by naming its account.
        reset_per_user: env.limits("RESET_LIMIT_PER_USER", "3/1h,6/1d")?,
        // Typing an address and fixing a typo: five an hour; ten a day caps how many mails
        // one account (or many accounts naming one address) can send to someone else's box.
        confirm_per_user: env.limits("CONFIRM_LIMIT_PER_USER", "5/1h,10/1d")?,
        ipv6_prefix: env.number(
            "IPV6_LIMIT_PREFIX",
            64,
            0..=128,
            "a prefix length from 0 to 128, e.g. 64",
        )?,
    })
}
