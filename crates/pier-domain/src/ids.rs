//! Identifiers of the i'mport wire: `imp_uid` (ours), `merchant_uid` and `customer_uid`
//! (the merchant's), with the length limits of the official OpenAPI file.

use crate::FieldError;
use rand::Rng;
use std::fmt;

macro_rules! string_id {
    ($name:ident, $field:literal, $max:expr) => {
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            /// Trims nothing: the merchant's id is echoed exactly as sent.
            pub fn parse(raw: &str) -> Result<Self, FieldError> {
                Self::check(raw)?;
                Ok(Self(raw.to_owned()))
            }

            /// `parse` of an owned string (a path segment), kept without a copy.
            pub fn from_string(raw: String) -> Result<Self, FieldError> {
                Self::check(&raw)?;
                Ok(Self(raw))
            }

            fn check(raw: &str) -> Result<(), FieldError> {
                if raw.trim().is_empty() {
                    return Err(FieldError::new($field, "must not be empty"));
                }
                let n = raw.chars().count();
                if n > Self::MAX_CHARS {
                    return Err(FieldError::new(
                        $field,
                        format!("must be at most {} characters (got {n})", Self::MAX_CHARS),
                    ));
                }
                if raw.chars().any(|c| c.is_control()) {
                    return Err(FieldError::new(
                        $field,
                        "must not contain control characters",
                    ));
                }
                Ok(())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

string_id!(MerchantUid, "merchant_uid", 40);
string_id!(CustomerUid, "customer_uid", 80);
string_id!(ImpUid, "imp_uid", 32);

impl ImpUid {
    /// `imp_` and 12 random digits, the form the real service hands out.
    pub fn generate() -> Self {
        let n: u64 = rand::thread_rng().gen_range(0..1_000_000_000_000);
        Self(format!("imp_{n:012}"))
    }
}

/// A webhook event id: `evt_`, the creation time in milliseconds (12 hex digits) and 48 random
/// bits (12 more). Ids made later sort after earlier ones, so each new outbox row lands at the
/// end of the outbox's primary-key index — a batch of events dirties one page of it, not a
/// random page per event (a third of the SQLite writer's WAL frames under `again`).
pub fn event_id() -> String {
    let ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0) & 0xffff_ffff_ffff;
    let r = rand::thread_rng().gen::<u64>() & 0xffff_ffff_ffff;
    format!("evt_{ms:012x}{r:012x}")
}

/// A random token of `bytes` bytes, hex encoded (access tokens, secrets, ids).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill(&mut buf[..]);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(MerchantUid::parse(&"a".repeat(40)).is_ok());
        assert!(MerchantUid::parse(&"a".repeat(41)).is_err());
        assert!(MerchantUid::parse("").is_err());
        assert!(MerchantUid::parse("주문-1").is_ok());
        assert!(MerchantUid::from_string("a".repeat(41)).is_err());
        assert_eq!(
            ImpUid::from_string("imp_1".to_owned()).unwrap().as_str(),
            "imp_1"
        );
        assert!(ImpUid::from_string("imp\n1".to_owned()).is_err());
        assert!(CustomerUid::parse(&"c".repeat(80)).is_ok());
        assert!(CustomerUid::parse(&"c".repeat(81)).is_err());
        let imp = ImpUid::generate();
        assert_eq!(imp.as_str().len(), 16);
        assert!(imp.as_str().starts_with("imp_"));
    }

    #[test]
    fn event_ids_sort_by_time_and_differ() {
        let a = event_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = event_id();
        assert_eq!(a.len(), 28);
        assert!(a.starts_with("evt_") && a[4..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(a < b, "{a} then {b}");
        let same_ms: std::collections::HashSet<String> = (0..1000).map(|_| event_id()).collect();
        assert_eq!(same_ms.len(), 1000);
    }
}
