//! The PG layer: what Pier asks of a payment gateway, and the gateways Pier ships.
//!
//! `Pg` is the connector trait. A connector holds no per-payment state: every call carries what
//! the PG needs, and the PG's own ledger is the truth about money. Two connectors ship:
//! `testpg::InProcess` (the simulated acquirer called directly, zero network) and
//! `pgsim::Client` (the same engine behind `pier pgsim`, over HTTP, with injectable faults).
//!
//! Outcomes are three-valued on purpose. `Ok` is a known approval, `Err(PgError::Declined)` and
//! `Err(PgError::Rejected)` are known refusals, and `Err(PgError::Unknown)` means the request may or
//! may not have reached the PG (timeout, reset, 5xx, unreadable answer): the caller must never
//! treat it as a failure, only record it for the reconciler.

use async_trait::async_trait;
use pier_domain::{Birth, CardNumber, Expiry, Pwd2Digit};
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub mod pgsim;
pub mod testpg;
pub mod toss;
mod transport;

/// Which merchant account at the PG a call is for (the channel's MID).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mid(pub String);

impl Mid {
    pub fn new(mid: impl Into<String>) -> Self {
        Self(mid.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Card data for one call. Passed by value to the connector and dropped there.
#[derive(Clone, Debug)]
pub struct CardData {
    pub number: CardNumber,
    pub expiry: Expiry,
    pub birth: Option<Birth>,
    pub pwd_2digit: Option<Pwd2Digit>,
}

/// The order as the PG sees it. `order_id` is Pier's `imp_uid` of the attempt: unique per attempt,
/// so an inquiry or a net-cancel names exactly one attempt. `merchant_uid` is carried for the
/// PG's ledger (double-charge checks compare by it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub merchant_uid: String,
    pub amount_krw: i64,
    pub tax_free_krw: i64,
    pub name: Option<String>,
    pub buyer_name: Option<String>,
    /// Installment months; 0 = lump sum.
    pub card_quota: i64,
}

/// A known approval.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Approval {
    pub pg_tid: String,
    pub apply_num: Option<String>,
    pub approved_at: i64,
    pub amount_krw: i64,
    pub card_code: Option<String>,
    pub card_name: Option<String>,
    /// Masked the Korean way (digits 9–12 hidden).
    pub card_number: Option<String>,
    /// 0 credit, 1 check.
    pub card_type: Option<i64>,
    /// Installment months actually applied (0 below 50,000 KRW).
    pub card_quota: i64,
    pub bank_code: Option<String>,
    pub bank_name: Option<String>,
    pub receipt_url: Option<String>,
    /// Set when a billing key was issued in the same call (window billing with a first payment).
    pub billing_key: Option<String>,
}

/// A billing key issued by the PG, and the card facts it may reveal.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct BillingKey {
    pub billing_key: String,
    pub card_code: Option<String>,
    pub card_name: Option<String>,
    pub card_number: Option<String>,
    pub card_type: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CancelRequest {
    pub order_id: String,
    /// The PG transaction being cancelled.
    pub pg_tid: String,
    pub amount_krw: i64,
    pub tax_free_krw: i64,
    pub reason: Option<String>,
    /// Pier's id for this cancel; the PG treats a repeated id as the same cancel (idempotent).
    pub cancellation_id: String,
    /// Where the money of a paid virtual account goes back (the buyer's own account; card and
    /// transfer refunds return by the way they came). `None` for every other method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_account: Option<RefundAccount>,
}

/// A bank account a refund is paid to. `Debug` shows the bank only: the number and the holder
/// are personal data.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefundAccount {
    /// i'mport's (KFTC) bank code, e.g. `088` 신한.
    pub bank_code: String,
    pub account_number: String,
    pub holder: String,
}

impl std::fmt::Debug for RefundAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefundAccount")
            .field("bank_code", &self.bank_code)
            .field("account_number", &"<redacted>")
            .field("holder", &"<redacted>")
            .finish()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CancelOutcome {
    /// The PG's id of the cancel transaction.
    pub pg_cancel_tid: String,
    pub cancelled_at: i64,
    pub amount_krw: i64,
    pub receipt_url: Option<String>,
}

/// What the PG thinks happened to an order.
// Boxing `Approval` would change the public shape for a value that only lives for one call.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Inquiry {
    /// The PG never saw the order (or saw it and refused: nothing to settle).
    NotFound,
    Declined {
        code: String,
        message: String,
    },
    Approved(Approval),
    /// Approved, then voided by a net-cancel or fully cancelled.
    Voided {
        pg_tid: String,
    },
}

/// Virtual account issuance.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VbankRequest {
    pub order: Order,
    pub bank_code: String,
    pub due_unix: i64,
    pub holder: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct VbankIssued {
    pub pg_tid: String,
    pub bank_code: String,
    pub bank_name: String,
    pub account_num: String,
    pub holder: String,
    pub due_unix: i64,
    pub issued_at: i64,
}

/// Start of a window (authenticated) payment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthBegin {
    pub order: Order,
    /// `card`, `trans`, `phone` or `vbank`.
    pub pay_method: String,
    /// Issue a billing key too (`customer_uid` given to `request_pay`).
    pub issue_billing_key: bool,
    /// Where the PG's window sends the browser back with the authentication result.
    pub return_url: String,
    /// `request_pay`'s display options, for PGs that take them at the start of the window
    /// (Toss). Absent (default) for the test PG, which reads them from its window URL.
    #[serde(default)]
    pub display: WindowDisplay,
}

/// `card.detail` and `display.card_quota` of `request_pay`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WindowDisplay {
    /// `(card_code, enabled)` in order (`*` = every card).
    pub card_detail: Vec<(String, bool)>,
    /// Installment months offered; `None` = the PG's default list.
    pub card_quota: Option<Vec<i64>>,
}

/// A PG window opened by the PG's own script in the buyer's browser rather than by a URL (Toss's
/// SDK): Pier serves a page that loads `script_url`, calls `init(init_arg)` (a global the
/// script defines), then `method(...args)` on what it returned. If that call fails in the
/// browser (the buyer closed the PG's layer), the page goes to `fail_url`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrowserCall {
    pub script_url: String,
    pub init: String,
    pub init_arg: String,
    pub method: String,
    pub args: Vec<serde_json::Value>,
    pub fail_url: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthSession {
    /// Where the buyer's browser goes to authenticate.
    pub redirect_url: String,
    pub auth_session_id: String,
    /// Set when the window is opened by the PG's script (`BrowserCall`); `redirect_url` is then
    /// informational only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_call: Option<BrowserCall>,
}

/// What the PG's window brought back to `return_url`, read by the channel's connector from the
/// parameters of the return (`Pg::read_return`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WindowReturn {
    /// The buyer authenticated; `token` goes to `complete_auth` as `auth_token`.
    Authenticated { token: String },
    /// The buyer cancelled or closed the window.
    Cancelled,
    /// The PG's window refused (e.g. a card company refusal during authentication).
    Failed { code: String, message: String },
}

/// Authentication result, as posted back by the PG's window to `return_url`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthComplete {
    pub order: Order,
    pub auth_session_id: String,
    /// The one-time token the PG window handed back.
    pub auth_token: String,
    /// Every other parameter the PG's window sent back (bounded by the HTTP layer), for PGs
    /// whose return carries more than a token (Toss: `paymentKey`, `orderId`, `amount`).
    #[serde(default)]
    pub params: Vec<(String, String)>,
}

/// What a completed window authentication produced.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuthOutcome {
    /// A payment (card, trans, phone); `Approval::billing_key` is set when a key was issued too.
    Paid(Approval),
    /// Billing key only (window billing with amount 0).
    BillingKeyOnly(BillingKey),
    /// A virtual account was issued; the payment stays `ready` until the deposit.
    Vbank(VbankIssued),
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum PgError {
    /// The issuer or PG refused after a real attempt: record a failed payment.
    #[error("[{code}] {message}")]
    Declined { code: String, message: String },
    /// Refused before any attempt (card data invalid, unknown billing key…): no payment happened.
    #[error("[{code}] {message}")]
    Rejected { code: String, message: String },
    /// The outcome is not known. Never treat this as a failure.
    #[error("PG outcome unknown: {0}")]
    Unknown(String),
    /// The PG could not be reached at all: nothing was sent, so nothing happened.
    #[error("PG unreachable: {0}")]
    Unreachable(String),
}

pub type PgResult<T> = Result<T, PgError>;

/// Something the PG tells Pier on its own initiative, not as the answer to a call.
///
/// The in-process test PG hands these out through `testpg::Engine::subscribe`; pgsim POSTs them as
/// JSON to its `notify_url`. Delivery is at-least-once at best and may be lost (a lagging
/// subscriber, Pier down), so a receiver must be idempotent and must not rely on them alone: an
/// `inquire` of a waiting virtual account answers `Approved` once the money is in.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PgEvent {
    /// Money arrived on a virtual account issued for `order_id`.
    VbankDeposited {
        mid: Mid,
        order_id: String,
        merchant_uid: String,
        amount_krw: i64,
        /// The PG transaction of the virtual account (the `pg_tid` of `VbankIssued`).
        pg_tid: String,
        deposited_at: i64,
    },
}

/// Per-call deadline default; every connector call is bounded.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

#[async_trait]
pub trait Pg: Send + Sync + 'static {
    /// Approve a keyed (card data) payment.
    async fn approve_keyed(&self, mid: &Mid, order: &Order, card: CardData) -> PgResult<Approval>;
    /// Issue a billing key from card data.
    async fn issue_billing_key(
        &self,
        mid: &Mid,
        customer_uid: &str,
        card: CardData,
    ) -> PgResult<BillingKey>;
    async fn delete_billing_key(&self, mid: &Mid, billing_key: &str) -> PgResult<()>;
    async fn pay_with_key(&self, mid: &Mid, order: &Order, billing_key: &str)
        -> PgResult<Approval>;
    /// Full or partial cancel of an approved transaction.
    async fn cancel(&self, mid: &Mid, req: &CancelRequest) -> PgResult<CancelOutcome>;
    async fn inquire(&self, mid: &Mid, order_id: &str) -> PgResult<Inquiry>;
    /// The inquiry of a payment whose PG transaction id (`pg_tid`) Pier already holds, by that
    /// id where the PG looks payments up by it; the payment found must be `order_id`'s, or the
    /// answer is `Rejected`. The default asks by order id.
    async fn inquire_tid(&self, mid: &Mid, order_id: &str, pg_tid: &str) -> PgResult<Inquiry> {
        let _ = pg_tid;
        self.inquire(mid, order_id).await
    }
    /// Void an approval whose response was lost. Idempotent; voiding an unknown order is Ok.
    async fn net_cancel(&self, mid: &Mid, order_id: &str) -> PgResult<()>;
    /// How long after an attempt began this PG may still act on a request Pier gave up on, when
    /// its `net_cancel` cannot void an order id it has not seen. Until then the reconciler does
    /// not trust "not found": the request may still be on its way and would be approved for an
    /// attempt Pier had failed. Zero (the default) where `net_cancel` voids unseen order ids, so
    /// that a late request is refused when it arrives (the test PG, pgsim).
    fn unseen_order_grace(&self) -> Duration {
        Duration::ZERO
    }
    async fn issue_vbank(&self, mid: &Mid, req: &VbankRequest) -> PgResult<VbankIssued>;
    /// Begin the window flow: where does the buyer's browser go?
    async fn begin_auth(&self, mid: &Mid, req: &AuthBegin) -> PgResult<AuthSession>;
    /// Approve server-to-server after the buyer authenticated in the PG window.
    async fn complete_auth(&self, mid: &Mid, req: &AuthComplete) -> PgResult<AuthOutcome>;
    /// Reads a return to `return_url` that carries the PG's own parameters instead of Pier's
    /// `auth_token` / `cancel` (those are read by the HTTP layer). The default (the test PG,
    /// pgsim) knows no other parameters: a return without a token is a cancel.
    fn read_return(&self, _params: &[(String, String)]) -> WindowReturn {
        WindowReturn::Cancelled
    }
    /// A test PG's simulated transfer into the virtual account of `order_id` (`amount_krw`
    /// `None`: the amount due). A real PG has no such call: the default refuses, nothing moves.
    async fn simulate_deposit(
        &self,
        _order_id: &str,
        _amount_krw: Option<i64>,
    ) -> PgResult<PgEvent> {
        Err(PgError::Rejected {
            code: "NOT_A_TEST_PG".into(),
            message: "deposits can be simulated only on a test PG".into(),
        })
    }
}
