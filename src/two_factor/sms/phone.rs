//! Phone numbers: parsed and validated with libphonenumber's rules, kept as E.164.

use phonenumber::{country, Mode};

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

    #[test]
    fn masks_all_but_last_four() {
        let n = PhoneNumber::parse("+447911123456", None).unwrap();
        assert_eq!(n.masked(), "+44 •••• ••3456");
    }
}
