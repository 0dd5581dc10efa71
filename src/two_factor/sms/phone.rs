//! Phone numbers: parsed and validated with libphonenumber's rules, kept as E.164; and what
//! kind of line a number is, since only a person's phone may be sent a code (a premium-rate or
//! shared-cost number earns whoever rents it money for every code and call it gets).

use phonenumber::metadata::DATABASE;
use phonenumber::{country, Mode, Type};

/// libphonenumber's region of the numbers of no country (satellite phones such as +881 and
/// +870, international networks such as +882 and +883): codes go to them only when
/// `SMS_ALLOWED_COUNTRIES` names it.
pub const NON_GEOGRAPHIC: &str = "001";

/// A valid phone number in E.164 form (`+447911123456`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses international input (`+44 7911 123456`, `0044…`), or national input when a
    /// default region is set.
    pub fn parse(raw: &str, default_region: Option<country::Id>) -> Result<PhoneNumber, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("Enter your phone number.".into());
        }
        if s.len() > 32
            || !s
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        {
            return Err("Enter a phone number using digits, in international format such as +44 7911 123456.".into());
        }
        let normalized = match s.strip_prefix("00") {
            Some(rest) => format!("+{rest}"),
            None => s.to_string(),
        };
        let region = if normalized.starts_with('+') {
            None
        } else {
            default_region
        };
        if region.is_none() && !normalized.starts_with('+') {
            return Err(
                "Enter the number in international format, starting with + and the country code."
                    .into(),
            );
        }
        let parsed = phonenumber::parse(region, &normalized).map_err(|_| {
            "That does not look like a phone number. Check it and try again.".to_string()
        })?;
        if !parsed.is_valid() {
            return Err("That is not a valid phone number. Check it and try again.".into());
        }
        Ok(PhoneNumber(parsed.format().mode(Mode::E164).to_string()))
    }

    /// Trusts a value that came out of the database (it was parsed before it was stored).
    pub fn from_stored(e164: String) -> PhoneNumber {
        PhoneNumber(e164)
    }

    fn parsed(&self) -> Option<phonenumber::PhoneNumber> {
        phonenumber::parse(None, &self.0).ok()
    }

    /// The region whose numbering plan holds the number: an ISO 3166 code (`GB`, or `GG` for
    /// Guernsey's +44 7911), or [`NON_GEOGRAPHIC`].
    pub fn region(&self) -> Option<String> {
        let parsed = self.parsed()?;
        parsed.metadata(&DATABASE).map(|m| m.id().to_string())
    }

    /// Why this number cannot be a person's phone (`"premium-rate"`), or `None` when it can:
    /// a mobile number, or "fixed line or mobile" where the plan cannot tell them apart (the
    /// United States, Canada). Every other kind is refused, a plain fixed line included: it
    /// cannot take a text message, and the plans' other kinds are services, not people.
    pub fn not_a_phone(&self) -> Option<&'static str> {
        let kind = self
            .parsed()
            .map_or(Type::Unknown, |n| n.number_type(&DATABASE));
        match kind {
            Type::Mobile | Type::FixedLineOrMobile => None,
            Type::PremiumRate => Some("premium-rate"),
            Type::SharedCost => Some("shared-cost"),
            Type::TollFree => Some("toll-free"),
            Type::PersonalNumber => Some("personal (forwarding)"),
            Type::Voip => Some("internet (VoIP)"),
            Type::Pager => Some("pager"),
            Type::Uan => Some("company (UAN)"),
            Type::Voicemail => Some("voicemail"),
            Type::FixedLine => Some("landline"),
            _ => Some("special-service"),
        }
    }

    pub fn e164(&self) -> &str {
        &self.0
    }

    /// What the Verify API wants: E.164 digits without the `+`.
    pub fn digits(&self) -> &str {
        self.0.trim_start_matches('+')
    }

    /// `+44 •••• ••3456`: enough for the owner to recognise, not enough to copy.
    pub fn masked(&self) -> String {
        let pretty = phonenumber::parse(None, &self.0)
            .map(|n| n.format().mode(Mode::International).to_string())
            .unwrap_or_else(|_| self.0.clone());
        let (cc, rest) = match pretty.split_once(' ') {
            Some((cc, rest)) => (cc.to_string(), rest.to_string()),
            None => (String::new(), pretty.clone()),
        };
        let total = rest.chars().filter(char::is_ascii_digit).count();
        let mut seen = 0;
        let masked: String = rest
            .chars()
            .map(|c| {
                if c.is_ascii_digit() {
                    seen += 1;
                    if seen + 4 > total {
                        c
                    } else {
                        '•'
                    }
                } else {
                    c
                }
            })
            .collect();
        format!("{cc} {masked}").trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn international_and_national() {
        let n = PhoneNumber::parse("+44 7911 123456", None).unwrap();
        assert_eq!(n.e164(), "+447911123456");
        assert_eq!(n.digits(), "447911123456");
        assert_eq!(PhoneNumber::parse("0044 7911 123456", None).unwrap(), n);
        assert_eq!(
            PhoneNumber::parse("07911 123456", Some(country::Id::GB)).unwrap(),
            n
        );
        assert!(PhoneNumber::parse("07911 123456", None).is_err());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "abc",
            "+1",
            "+44 12",
            "<script>",
            "+999 123456789",
            &"1".repeat(40),
        ] {
            assert!(PhoneNumber::parse(bad, None).is_err(), "{bad}");
        }
    }

    fn kind(raw: &str) -> Option<&'static str> {
        PhoneNumber::parse(raw, None).unwrap().not_a_phone()
    }

    #[test]
    fn only_a_persons_phone_takes_codes() {
        for refused in [
            ("+44 909 879 0000", "premium-rate"),
            // libphonenumber counts the UK's 087 revenue-sharing range as premium rate.
            ("+44 871 234 5678", "premium-rate"),
            ("+34 901 123 456", "shared-cost"),
            ("+1 900 234 5678", "premium-rate"),
            ("+44 800 123 4567", "toll-free"),
            ("+44 70 1234 5678", "personal (forwarding)"),
            ("+44 56 1234 5678", "internet (VoIP)"),
            ("+44 20 7946 0000", "landline"),
            ("+44 55 1234 5678", "company (UAN)"),
        ] {
            assert_eq!(kind(refused.0), Some(refused.1), "{}", refused.0);
        }
        // The numbers the tests use, and the usual kinds of a person's phone.
        for accepted in [
            "+44 7400 123456",
            "+44 7911 123456",
            "+1 201 555 0123",
            "+353 85 123 4567",
            "+33 6 12 34 56 78",
        ] {
            assert_eq!(kind(accepted), None, "{accepted}");
        }
    }

    #[test]
    fn regions_and_numbers_of_no_country() {
        let region = |raw: &str| PhoneNumber::parse(raw, None).unwrap().region();
        assert_eq!(region("+44 7400 123456").as_deref(), Some("GB"));
        assert_eq!(region("+44 7911 123456").as_deref(), Some("GG"));
        assert_eq!(region("+1 201 555 0123").as_deref(), Some("US"));
        for no_country in [
            "+881 612 345 678",
            "+870 301 234 567",
            "+882 342 1234",
            "+883 510 012 345",
        ] {
            assert_eq!(
                region(no_country).as_deref(),
                Some(NON_GEOGRAPHIC),
                "{no_country}"
            );
        }
        // Satellite phones are mobiles: their country, not their kind, holds them back.
        assert_eq!(kind("+881 612 345 678"), None);
    }

    #[test]
    fn masks_all_but_last_four() {
        let n = PhoneNumber::parse("+447911123456", None).unwrap();
        assert_eq!(n.masked(), "+44 •••• ••3456");
    }
}
