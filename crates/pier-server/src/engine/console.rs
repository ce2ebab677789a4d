//! The merchant console's use cases (docs/console.md): operators and their sign-in, sessions,
//! the payments an operator may see, refunds, settings and the audit log.
//!
//! Every use case takes the `Actor` a session resolved to and reads or changes only that
//! actor's merchant; what a role may do is decided here, not in the HTTP layer.
//!
//! This file holds who acts (`Role`, `Actor`), the console's numbers and texts, its in-memory
//! state and the audit row; `sign_in` the operators, passwords and sessions, `payments` what
//! an operator sees of payments (and refunds, deliveries, the audit log), `dashboard` the
//! totals, `admin` billing keys and settings.

use super::{Engine, Error, Result};
use crate::edge::buckets::KeyedBuckets;
use crate::edge::LIMITER_MAX_KEYS;
use pier_domain::ids::random_hex;
use pier_store::AuditEntry;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

mod admin;
mod dashboard;
mod payments;
mod sign_in;
pub use admin::{mask_card, BillingKey};
pub use dashboard::{Dashboard, Totals};
pub use payments::PaymentPage;
pub use sign_in::{hash_password, normalize_email};

/// A session ends after this long without a request (30 minutes, the idle limit PCI DSS 8.2.8
/// asks of consoles that show payment data).
pub const SESSION_IDLE_SECS: i64 = 30 * 60;
/// …and this long after sign-in whatever happens (a working day).
pub const SESSION_ABSOLUTE_SECS: i64 = 12 * 3600;
/// `last_seen_at` is written at most once a minute per session: a page view is then a read,
/// and the idle limit is still exact to within a minute.
pub const SESSION_TOUCH_SECS: i64 = 60;
/// Expired sessions deleted per sign-in (keeps the table bounded without a job).
const SESSION_SWEEP: i64 = 100;
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longer passwords are refused before hashing (Argon2 would take them, but a megabyte
/// "password" is a way to spend the server's CPU).
pub const MAX_PASSWORD_BYTES: usize = 256;
/// RFC 5321 bounds a path at 256 octets; an address is shorter.
pub const MAX_EMAIL_BYTES: usize = 254;
/// Failed sign-ins allowed per account and per client address before the limit answers, and
/// refilled over `SIGN_IN_PERIOD_MS`: 5 per account per 15 minutes stops guessing (a 12+
/// character password is out of reach at 480 tries a day), 20 per address leaves room for an
/// office behind one NAT address.
pub const SIGN_IN_FAILURES_PER_ACCOUNT: u32 = 5;
pub const SIGN_IN_FAILURES_PER_ADDR: u32 = 20;
pub const SIGN_IN_PERIOD_MS: u64 = 15 * 60 * 1000;
/// Rows per page of the payments list and the audit log.
pub const PAGE_SIZE: i64 = 50;
/// Longest search text and refund reason accepted.
pub const MAX_SEARCH_CHARS: usize = 100;
pub const MAX_REASON_CHARS: usize = 200;
/// Korea Standard Time (UTC+9, no daylight saving): days of the dashboard and the date filter.
pub const KST_OFFSET_SECS: i64 = 9 * 3600;
const DAY_SECS: i64 = 86_400;

/// The same answer for an unknown email and a wrong password (and a disabled operator).
pub const MSG_SIGN_IN_FAILED: &str =
    "이메일 또는 비밀번호가 올바르지 않습니다. (wrong email or password)";
pub const MSG_SIGN_IN_LIMITED: &str =
    "로그인 시도가 너무 많습니다. 잠시 후 다시 시도해주세요. (too many sign-in attempts; try again later)";
pub const MSG_FORBIDDEN: &str = "권한이 없습니다. (your role does not allow this)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::Viewer => "조회자",
            Self::Operator => "운영자",
            Self::Admin => "관리자",
        }
    }
    /// Refunds and webhook redeliveries.
    pub fn can_operate(self) -> bool {
        matches!(self, Self::Operator | Self::Admin)
    }
    /// Settings and operators.
    pub fn can_admin(self) -> bool {
        self == Self::Admin
    }
}

/// Who is acting: the operator a session resolved to.
#[derive(Clone, Debug)]
pub struct Actor {
    pub operator_id: String,
    pub email: String,
    pub merchant_id: String,
    pub role: Role,
    /// The session's CSRF token (every form carries it).
    pub csrf: String,
}

impl Actor {
    /// `Unauthorized` unless the role may refund, redeliver and change billing keys.
    pub fn must_operate(&self) -> Result<()> {
        if self.role.can_operate() {
            Ok(())
        } else {
            Err(Error::Unauthorized)
        }
    }
    /// `Unauthorized` unless the role may change settings and operators.
    pub fn must_admin(&self) -> Result<()> {
        if self.role.can_admin() {
            Ok(())
        } else {
            Err(Error::Unauthorized)
        }
    }
}

/// Sign-in limits (in memory, per instance: the bound is per instance, documented in
/// docs/console.md).
pub struct ConsoleState {
    per_account: KeyedBuckets<String>,
    per_addr: KeyedBuckets<IpAddr>,
    /// A hash to verify against when the email names no operator, so both failures cost the
    /// same time.
    dummy_hash: OnceLock<String>,
    /// The dashboard's totals of the 29 days before today, per merchant: (today's day number,
    /// computed at, totals). Today is always read live.
    past_days: dashmap::DashMap<String, (i64, i64, Arc<dashboard::PastDays>)>,
}

impl Default for ConsoleState {
    fn default() -> Self {
        Self {
            per_account: KeyedBuckets::new(
                SIGN_IN_FAILURES_PER_ACCOUNT,
                SIGN_IN_PERIOD_MS,
                SIGN_IN_FAILURES_PER_ACCOUNT,
                LIMITER_MAX_KEYS,
            ),
            per_addr: KeyedBuckets::new(
                SIGN_IN_FAILURES_PER_ADDR,
                SIGN_IN_PERIOD_MS,
                SIGN_IN_FAILURES_PER_ADDR,
                LIMITER_MAX_KEYS,
            ),
            dummy_hash: OnceLock::new(),
            past_days: dashmap::DashMap::new(),
        }
    }
}

/// Midnight KST of a `YYYY-MM-DD` date, as unix seconds.
pub fn kst_day_start(date: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").ok()?;
    let utc = d.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    Some(utc - KST_OFFSET_SECS)
}

/// `YYYY-MM-DD HH:MM:SS` in KST ("-" for 0).
pub fn kst_time(unix: i64) -> String {
    if unix <= 0 {
        return "-".into();
    }
    chrono::DateTime::from_timestamp(unix + KST_OFFSET_SECS, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// `MM-DD` of a day number (days since the epoch, KST).
pub fn kst_day_label(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * DAY_SECS, 0)
        .map(|t| t.format("%m-%d").to_string())
        .unwrap_or_default()
}

impl Engine {
    async fn audit(&self, a: &Actor, action: &str, target: Option<&str>, detail: Option<String>) {
        let e = AuditEntry {
            id: format!("aud_{}", random_hex(12)),
            merchant_id: a.merchant_id.clone(),
            operator_id: a.operator_id.clone(),
            actor: a.email.clone(),
            action: action.to_owned(),
            target: target.map(str::to_owned),
            detail,
            at: self.now(),
        };
        // The change is made; an audit row that cannot be written is logged loudly rather than
        // reported as a failed change (which would invite a second refund).
        if let Err(err) = self.store.insert_audit(&e).await {
            tracing::error!(error = %err, action, "audit entry not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        assert!(!Role::Viewer.can_operate());
        assert!(Role::Operator.can_operate() && !Role::Operator.can_admin());
        assert!(Role::Admin.can_admin());
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn dates() {
        // 2026-01-01 00:00 KST = 2025-12-31 15:00 UTC.
        assert_eq!(kst_day_start("2026-01-01"), Some(1_767_225_600 - 9 * 3600));
        assert_eq!(kst_day_start("2026-13-01"), None);
        assert_eq!(kst_time(1_767_225_600), "2026-01-01 09:00:00");
    }
}
