//! Payment and schedule statuses with the transitions the API allows.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    Ready,
    Paid,
    Cancelled,
    Failed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }

    /// The state machine of spec §4.1. `cancelled → cancelled` is a further partial cancel;
    /// `failed → paid` is a late approval found by the reconciler.
    pub fn can_become(self, to: PaymentStatus) -> bool {
        use PaymentStatus::*;
        matches!(
            (self, to),
            (Ready, Paid)
                | (Ready, Failed)
                | (Ready, Cancelled)
                | (Paid, Cancelled)
                | (Cancelled, Cancelled)
                | (Failed, Paid)
        )
    }
}

impl FromStr for PaymentStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "ready" => Self::Ready,
            "paid" => Self::Paid,
            "cancelled" => Self::Cancelled,
            "failed" => Self::Failed,
            _ => return Err(()),
        })
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleStatus {
    Scheduled,
    Executed,
    Revoked,
}

impl ScheduleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Executed => "executed",
            Self::Revoked => "revoked",
        }
    }
}

impl FromStr for ScheduleStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "scheduled" => Self::Scheduled,
            "executed" => Self::Executed,
            "revoked" => Self::Revoked,
            _ => return Err(()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::PaymentStatus::*;

    #[test]
    fn transitions() {
        assert!(Ready.can_become(Paid));
        assert!(Paid.can_become(Cancelled));
        assert!(Cancelled.can_become(Cancelled));
        assert!(!Paid.can_become(Ready));
        assert!(!Cancelled.can_become(Paid));
        assert!(!Failed.can_become(Cancelled));
    }
}
