//! Payment, schedule, webhook-delivery and certification statuses with the transitions the API allows: the
//! one place each transition is decided. Their strings appear only here (`as_str`), in the
//! store's SQL mapping and on the wire.

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
    pub const ALL: [PaymentStatus; 4] = [Self::Ready, Self::Paid, Self::Cancelled, Self::Failed];

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
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or(())
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a scheduled payment stands (spec §3.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleStatus {
    Scheduled,
    Executed,
    Revoked,
}

impl ScheduleStatus {
    pub const ALL: [ScheduleStatus; 3] = [Self::Scheduled, Self::Executed, Self::Revoked];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Executed => "executed",
            Self::Revoked => "revoked",
        }
    }

    /// A schedule runs once (`scheduled → executed`) or is revoked before it runs; a revoked
    /// one, or one whose payment failed, can be re-armed (`→ scheduled`; the payment's part of
    /// that rule is `rearmable`).
    pub fn can_become(self, to: ScheduleStatus) -> bool {
        use ScheduleStatus::*;
        matches!(
            (self, to),
            (Scheduled, Executed)
                | (Scheduled, Revoked)
                | (Revoked, Scheduled)
                | (Executed, Scheduled)
        )
    }

    /// Whether a schedule in `self` whose execution left `payment` may be re-armed: revoked,
    /// or executed with a failed payment (a paid one is spent).
    pub fn rearmable(self, payment: Option<PaymentStatus>) -> bool {
        self.can_become(Self::Scheduled)
            && (self != Self::Executed || payment == Some(PaymentStatus::Failed))
    }
}

impl FromStr for ScheduleStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or(())
    }
}

impl fmt::Display for ScheduleStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a webhook event's delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Due (now or at its next attempt).
    Pending,
    /// Every target answered 2xx.
    Delivered,
    /// No target to deliver to.
    Skipped,
    /// Given up after its retries.
    Dead,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 4] = [Self::Pending, Self::Delivered, Self::Skipped, Self::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Skipped => "skipped",
            Self::Dead => "dead",
        }
    }

    /// Only a pending event is attempted: it ends delivered, skipped or dead, or stays pending
    /// for a retry. Any event can be re-armed (`→ pending`, a manual redelivery).
    pub fn can_become(self, to: DeliveryState) -> bool {
        self == Self::Pending || to == Self::Pending
    }
}

impl FromStr for DeliveryState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or(())
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a `scheduled` schedule is being executed: `running` while a scheduler (or a retry)
/// holds its claim, `idle` otherwise. Only an idle schedule is moved or revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Idle,
    Running,
}

impl RunState {
    pub const ALL: [RunState; 2] = [Self::Idle, Self::Running];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Running => "running",
        }
    }
}

impl FromStr for RunState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or(())
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an identity verification stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificationStatus {
    /// A certification window is open; nothing entered yet.
    #[default]
    Window,
    /// The person was entered and a code sent.
    Requested,
    Certified,
    Failed,
    Cancelled,
}

impl CertificationStatus {
    pub const ALL: [CertificationStatus; 5] = [
        Self::Window,
        Self::Requested,
        Self::Certified,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Window => "window",
            Self::Requested => "requested",
            Self::Certified => "certified",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Not ended: a window still open or a code still awaited.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Window | Self::Requested)
    }

    /// `window → requested` (a code sent; `requested → requested` sends a new one), `requested
    /// → certified` (the right code), and an open one ends `failed` or `cancelled`.
    pub fn can_become(self, to: CertificationStatus) -> bool {
        use CertificationStatus::*;
        match to {
            Requested | Failed | Cancelled => self.is_open(),
            Certified => self == Requested,
            Window => false,
        }
    }
}

impl FromStr for CertificationStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or(())
    }
}

impl fmt::Display for CertificationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a cancel (refund) request stands at the PG. `in_flight` while its PG call runs,
/// `unknown` when the call's outcome is unknown (the refunds job asks again), then `done`
/// (cancelled at the PG) or `released` (refused: its hold on the payment is given back).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    #[default]
    InFlight,
    Unknown,
    Done,
    Released,
}

impl RefundState {
    pub const ALL: [RefundState; 4] = [Self::InFlight, Self::Unknown, Self::Done, Self::Released];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InFlight => "in_flight",
            Self::Unknown => "unknown",
            Self::Done => "done",
            Self::Released => "released",
        }
    }

    /// Only an open request (in flight or unknown) moves; `done` and `released` are final.
    pub fn can_become(self, to: RefundState) -> bool {
        matches!(self, Self::InFlight | Self::Unknown) && to != Self::InFlight
    }
}

impl FromStr for RefundState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or(())
    }
}

impl fmt::Display for RefundState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payment window's session: `open` until its result is recorded, then `done` (final).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckoutState {
    Open,
    Done,
}

impl CheckoutState {
    pub const ALL: [CheckoutState; 2] = [Self::Open, Self::Done];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Done => "done",
        }
    }

    pub fn can_become(self, to: CheckoutState) -> bool {
        self == Self::Open && to == Self::Done
    }
}

impl FromStr for CheckoutState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or(())
    }
}

impl fmt::Display for CheckoutState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::PaymentStatus::*;
    use super::{
        CertificationStatus, CheckoutState, DeliveryState, RefundState, RunState, ScheduleStatus,
    };

    #[test]
    fn strings_round_trip() {
        for s in super::PaymentStatus::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        for s in ScheduleStatus::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        for s in DeliveryState::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        for s in CertificationStatus::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        for s in RunState::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        for s in RefundState::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        for s in CheckoutState::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        assert!("done".parse::<ScheduleStatus>().is_err());
        assert!("all".parse::<super::PaymentStatus>().is_err());
    }

    #[test]
    fn schedule_transitions() {
        use ScheduleStatus::*;
        assert!(Scheduled.can_become(Executed) && Scheduled.can_become(Revoked));
        assert!(!Executed.can_become(Revoked) && !Revoked.can_become(Executed));
        assert!(Revoked.rearmable(None));
        assert!(Executed.rearmable(Some(Failed)));
        assert!(!Executed.rearmable(Some(Paid)), "a paid schedule is spent");
        assert!(
            !Scheduled.rearmable(None),
            "a pending schedule is moved, not re-armed"
        );
    }

    #[test]
    fn delivery_transitions() {
        use DeliveryState::*;
        for to in DeliveryState::ALL {
            assert!(Pending.can_become(to));
            assert!(to.can_become(Pending), "{to} can be re-armed");
        }
        assert!(!Delivered.can_become(Dead) && !Dead.can_become(Delivered));
        assert!(!Skipped.can_become(Delivered));
    }

    #[test]
    fn refund_and_checkout_transitions() {
        use RefundState::*;
        assert!(InFlight.can_become(Done) && InFlight.can_become(Released));
        assert!(InFlight.can_become(Unknown) && Unknown.can_become(Unknown));
        assert!(Unknown.can_become(Done) && !Unknown.can_become(InFlight));
        for ended in [Done, Released] {
            for to in RefundState::ALL {
                assert!(!ended.can_become(to), "{ended} is final");
            }
        }
        assert!(CheckoutState::Open.can_become(CheckoutState::Done));
        assert!(!CheckoutState::Done.can_become(CheckoutState::Open));
        assert!(!CheckoutState::Done.can_become(CheckoutState::Done));
    }

    #[test]
    fn certification_transitions() {
        use CertificationStatus::*;
        assert!(Window.can_become(Requested) && Requested.can_become(Requested));
        assert!(Requested.can_become(Certified) && !Window.can_become(Certified));
        assert!(Window.can_become(Cancelled) && Requested.can_become(Failed));
        for ended in [Certified, Failed, Cancelled] {
            for to in CertificationStatus::ALL {
                assert!(!ended.can_become(to), "{ended} is final");
            }
        }
    }

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
