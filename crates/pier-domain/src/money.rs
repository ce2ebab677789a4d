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

    /// What remains of a payment of `total` KRW once `spent` KRW of it are cancelled (or held
    /// for a cancel): `None` when nothing remains — never a silent zero or negative balance.
    pub fn remaining(total: i64, spent: i64) -> Option<Self> {
        let left = total.checked_sub(spent)?;
        (left > 0 && left <= Self::MAX_KRW).then_some(Self(left))
    }

    /// `self` less `spent` KRW, `None` when nothing would remain.
    pub fn checked_sub_krw(self, spent: i64) -> Option<Self> {
        Self::remaining(self.0, spent)
    }

    /// Whether a part of the amount (its tax-free part, its VAT) fits in it.
    pub fn covers(self, part: AmountPart) -> bool {
        part.0 <= self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} KRW", self.0)
    }
}

/// A part of an amount that may be 0: the tax-free part or the VAT of a payment, a cancel or
/// a receipt. Between 0 and `Amount::MAX_KRW` KRW.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AmountPart(i64);

impl AmountPart {
    pub const ZERO: Self = Self(0);

    pub fn new(krw: i64, field: &'static str) -> Result<Self, FieldError> {
        if krw < 0 {
            return Err(FieldError::new(field, "must not be negative"));
        }
        if krw > Amount::MAX_KRW {
            return Err(FieldError::new(
                field,
                format!("must be at most {}", Amount::MAX_KRW),
            ));
        }
        Ok(Self(krw))
    }

    pub fn krw(self) -> i64 {
        self.0
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

    #[test]
    fn parts_and_remainders() {
        assert_eq!(AmountPart::new(0, "tax_free").unwrap(), AmountPart::ZERO);
        assert!(AmountPart::new(-1, "tax_free").is_err());
        assert!(AmountPart::new(Amount::MAX_KRW + 1, "vat_amount").is_err());
        let a = Amount::new(1000, "amount").unwrap();
        assert!(a.covers(AmountPart::new(1000, "tax_free").unwrap()));
        assert!(!a.covers(AmountPart::new(1001, "tax_free").unwrap()));
        assert_eq!(Amount::remaining(1000, 400).map(Amount::krw), Some(600));
        assert_eq!(Amount::remaining(1000, 1000), None);
        assert_eq!(Amount::remaining(1000, 1001), None);
        assert_eq!(Amount::remaining(i64::MIN, 1), None);
        assert_eq!(a.checked_sub_krw(999).map(Amount::krw), Some(1));
        assert_eq!(a.checked_sub_krw(1000), None);
    }
}
