//! Card data as the merchant sends it. These values pass through Pier on their way to the PG and
//! are never stored or logged: each type's `Debug` is redacted, and none implements `Serialize`.

use crate::FieldError;
use std::fmt;

/// A card number: 14 to 16 digits once dashes and spaces are removed.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let mut digits = String::with_capacity(16);
        for c in raw.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '-' | ' ' => {}
                _ => {
                    return Err(FieldError::new(
                        "card_number",
                        "must contain only digits, dashes and spaces",
                    ))
                }
            }
        }
        if !(14..=16).contains(&digits.len()) {
            return Err(FieldError::new("card_number", "must have 14 to 16 digits"));
        }
        Ok(Self(digits))
    }

    /// The digits, for the PG connector only.
    pub fn digits(&self) -> &str {
        &self.0
    }

    pub fn bin(&self) -> &str {
        &self.0[..6]
    }

    /// The Korean masking of 16-digit numbers as i'mport shows them: digits 9 to 12 hidden
    /// (`53611234****1234`). Shorter numbers (15-digit AMEX, 14-digit Diners) show at most the
    /// first 6 and last 4 digits (PCI DSS 3.4.1): showing 8 + 4 of 15 would leave 3 unknown.
    pub fn masked(&self) -> String {
        let d = &self.0;
        let hide_to = d.len() - 4;
        let show = if d.len() >= 16 { 8 } else { 6 };
        let mut out = String::with_capacity(d.len());
        out.push_str(&d[..show]);
        for _ in show..hide_to {
            out.push('*');
        }
        out.push_str(&d[hide_to..]);
        out
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber({})", self.masked())
    }
}

/// Card expiry. The wire form is `YYYY-MM`; the official Java client sends `YYYYMM`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub year: i32,
    pub month: u32,
}

impl Expiry {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let compact: String = raw.chars().filter(|c| *c != '-' && *c != '/').collect();
        let bad = || FieldError::new("expiry", "must be YYYY-MM or YYYYMM");
        if compact.len() != 6 || !compact.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        if raw.contains('-') && raw.find('-') != Some(4) {
            return Err(bad());
        }
        let year: i32 = compact[..4].parse().map_err(|_| bad())?;
        let month: u32 = compact[4..].parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || !(2000..=2099).contains(&year) {
            return Err(bad());
        }
        Ok(Self { year, month })
    }

    /// An expiry is valid through the last day of its month.
    pub fn is_expired_at(&self, now_unix: i64) -> bool {
        use chrono::Datelike;
        let now = chrono::DateTime::from_timestamp(now_unix, 0).unwrap_or_default();
        (self.year, self.month) < (now.year(), now.month())
    }
}

impl fmt::Debug for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Expiry(**-**)")
    }
}

/// Birth date `YYMMDD` of a personal card, or the 10-digit business number of a corporate card.
#[derive(Clone, PartialEq, Eq)]
pub struct Birth(String);

impl Birth {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let d: String = raw.chars().filter(|c| *c != '-').collect();
        if !d.chars().all(|c| c.is_ascii_digit()) || !(d.len() == 6 || d.len() == 10) {
            return Err(FieldError::new(
                "birth",
                "must be 6 digits (YYMMDD) or a 10-digit business registration number",
            ));
        }
        if d.len() == 6 && d != "000000" {
            let month: u32 = d[2..4].parse().unwrap_or(0);
            let day: u32 = d[4..6].parse().unwrap_or(0);
            if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
                return Err(FieldError::new("birth", "is not a valid YYMMDD date"));
            }
        }
        Ok(Self(d))
    }

    pub fn digits(&self) -> &str {
        &self.0
    }

    pub fn is_business(&self) -> bool {
        self.0.len() == 10
    }
}

impl fmt::Debug for Birth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Birth(******)")
    }
}

/// The first two digits of the card password.
#[derive(Clone, PartialEq, Eq)]
pub struct Pwd2Digit(String);

impl Pwd2Digit {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.len() != 2 || !raw.chars().all(|c| c.is_ascii_digit()) {
            return Err(FieldError::new("pwd_2digit", "must be exactly 2 digits"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pwd2Digit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pwd2Digit(**)")
    }
}

/// `card.detail` of `request_pay`: which issuers the window offers. Entries apply in order, later
/// ones overriding earlier ones; `*` sets the baseline for every issuer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CardFilter {
    pub rules: Vec<(String, bool)>,
}

impl CardFilter {
    pub fn allows(&self, card_code: &str) -> bool {
        let mut allowed = true;
        for (code, enabled) in &self.rules {
            if code == "*" || code == card_code {
                allowed = *enabled;
            }
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn card_numbers() {
        let c = CardNumber::parse("5361-1234-5678-1234").unwrap();
        assert_eq!(c.digits(), "5361123456781234");
        assert_eq!(c.masked(), "53611234****1234");
        assert_eq!(format!("{c:?}"), "CardNumber(53611234****1234)");
        assert_eq!(
            CardNumber::parse("376012345678901").unwrap().masked(),
            "376012*****8901"
        );
        assert_eq!(
            CardNumber::parse("36123456789012").unwrap().masked(),
            "361234****9012"
        );
        assert!(CardNumber::parse("1234").is_err());
        assert!(CardNumber::parse("1234-5678-9012-345a").is_err());
        assert!(CardNumber::parse("12345678901234567").is_err());
    }

    #[test]
    fn expiry_forms() {
        assert_eq!(
            Expiry::parse("2030-12").unwrap(),
            Expiry {
                year: 2030,
                month: 12
            }
        );
        assert_eq!(
            Expiry::parse("203012").unwrap(),
            Expiry {
                year: 2030,
                month: 12
            }
        );
        assert!(Expiry::parse("2030-13").is_err());
        assert!(Expiry::parse("12/30").is_err());
        assert!(Expiry::parse("20301").is_err());
        // 2024-06-15
        assert!(Expiry::parse("2024-05")
            .unwrap()
            .is_expired_at(1_718_409_600));
        assert!(!Expiry::parse("2024-06")
            .unwrap()
            .is_expired_at(1_718_409_600));
    }

    #[test]
    fn birth_and_pwd() {
        assert!(Birth::parse("880101").is_ok());
        assert!(Birth::parse("1234567890").unwrap().is_business());
        assert!(Birth::parse("881301").is_err());
        assert!(Birth::parse("12345").is_err());
        assert!(Pwd2Digit::parse("12").is_ok());
        assert!(Pwd2Digit::parse("123").is_err());
        assert_eq!(
            format!("{:?}", Birth::parse("880101").unwrap()),
            "Birth(******)"
        );
    }

    #[test]
    fn card_filter_precedence() {
        let white = CardFilter {
            rules: vec![("*".into(), false), ("366".into(), true)],
        };
        assert!(white.allows("366"));
        assert!(!white.allows("361"));
        let black = CardFilter {
            rules: vec![("366".into(), false)],
        };
        assert!(!black.allows("366"));
        assert!(black.allows("361"));
        assert!(CardFilter::default().allows("381"));
    }

    proptest! {
        #[test]
        fn card_parse_never_panics(s in ".{0,40}") {
            let _ = CardNumber::parse(&s);
            let _ = Expiry::parse(&s);
            let _ = Birth::parse(&s);
        }

        #[test]
        fn masked_hides_middle(d in "[0-9]{14,16}") {
            let c = CardNumber::parse(&d).unwrap();
            let m = c.masked();
            prop_assert_eq!(m.len(), d.len());
            let show = if d.len() == 16 { 8 } else { 6 };
            prop_assert_eq!(&m[..show], &d[..show]);
            prop_assert!(m[show..d.len()-4].chars().all(|c| c == '*'));
            prop_assert_eq!(&m[d.len()-4..], &d[d.len()-4..]);
        }
    }
}
