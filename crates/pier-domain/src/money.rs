//! Money: KRW as an integer. No floats anywhere near an amount.

use crate::FieldError;
use std::fmt;

/// A positive amount in KRW. The largest accepted value keeps every sum of a payment's
/// cancels far from `i64` overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

impl Amount {
    pub const MAX_KRW: i64 = 1_000_000_000_000;

    pub fn new(krw: i64, field: &'static str) -> Result<Self, FieldError> {
        if krw <= 0 {
            return Err(FieldError::new(field, "must be an integer greater than 0"));
        }
        if krw > Self::MAX_KRW {
            return Err(FieldError::new(
                field,
                format!("must be at most {}", Self::MAX_KRW),
            ));
        }
        Ok(Self(krw))
    }

    pub fn krw(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} KRW", self.0)
    }
}

/// VAT the way the i'mport API computes it when the merchant does not: one eleventh of the
/// taxable part, rounded down.
pub fn default_vat(amount_krw: i64, tax_free_krw: i64) -> i64 {
    (amount_krw - tax_free_krw).max(0) / 11
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert!(Amount::new(0, "amount").is_err());
        assert!(Amount::new(-5, "amount").is_err());
        assert_eq!(Amount::new(1000, "amount").unwrap().krw(), 1000);
        assert!(Amount::new(Amount::MAX_KRW + 1, "amount").is_err());
        assert_eq!(default_vat(11_000, 0), 1000);
        assert_eq!(default_vat(11_000, 11_000), 0);
    }
}
