//! Pier's domain: parsed value types and pure rules, with no IO.
//!
//! A value of these types is valid by construction: each is built only through `parse`, so the
//! layers above never re-check a card number or an amount. Card data types redact themselves in
//! `Debug` so that a stray `{:?}` can never put a card number in a log line.

pub mod card;
pub mod clock;
pub mod codes;
pub mod ids;
pub mod money;
pub mod status;

pub use card::{Birth, CardFilter, CardNumber, Expiry, Pwd2Digit};
pub use clock::{Clock, ManualClock, SystemClock};
pub use ids::{CustomerUid, ImpUid, MerchantUid};
pub use money::{Amount, AmountPart};
pub use status::{
    CertificationStatus, CheckoutState, DeliveryState, PaymentStatus, RefundState, RunState,
    ScheduleStatus,
};

/// A field that failed validation. `field` is the wire name, so the message can name it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: &'static str,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}
