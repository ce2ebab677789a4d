//! Rows as the engine sees them. Plain data; the rules live in the engine.

pub use pier_domain::{
    CertificationStatus, CheckoutState, DeliveryState, PaymentStatus, RefundState, RunState,
    ScheduleStatus,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merchant {
    pub imp_code: String,
    pub name: String,
    pub imp_key: String,
    /// HMAC-SHA256 of the secret under the server key, hex. The secret itself is never stored.
    pub secret_hash: String,
    pub webhook_url: Option<String>,
    pub webhook_format: String,
    pub webhook_secret: Option<String>,
    pub allowed_origins: Option<String>,
    pub is_demo: bool,
    pub created_at: i64,
}

/// `Debug` leaves out the sealed secret; `Serialize` skips it.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    pub id: String,
    pub merchant_id: String,
    pub pg_provider: String,
    pub mid: String,
    pub is_default: bool,
    pub sandbox: bool,
    /// `inprocess`, the base URL of a pgsim, or `direct` (a PG Pier calls at `api_base`).
    pub target: String,
    pub created_at: i64,
    /// The PG's API base URL, for PGs Pier calls directly (`tosspayments`).
    pub api_base: Option<String>,
    /// The PG's public client key (Toss `ck`), if the PG has one.
    pub client_key: Option<String>,
    /// The PG's secret key as the engine sealed it (AES-256-GCM, `v1:` + base64); the store
    /// never sees it in the clear.
    #[serde(skip)]
    pub secret_sealed: Option<String>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.id)
            .field("merchant_id", &self.merchant_id)
            .field("pg_provider", &self.pg_provider)
            .field("mid", &self.mid)
            .field("is_default", &self.is_default)
            .field("sandbox", &self.sandbox)
            .field("target", &self.target)
            .field("created_at", &self.created_at)
            .field("api_base", &self.api_base)
            .field("client_key", &self.client_key)
            .field(
                "secret_sealed",
                &self.secret_sealed.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// Keyed hash of the token (the token itself is never stored).
    pub token_hash: String,
    /// Random value the server mints the token from (useless without the server key).
    pub nonce: String,
    pub merchant_id: String,
    pub imp_key: String,
    pub expired_at: i64,
    pub created_at: i64,
}

/// Where the PG call of an attempt stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PgState {
    /// No PG call yet (window opened, vbank waiting).
    None,
    /// Persisted before the call; the call is under way.
    InFlight,
    /// The call's outcome is unknown; the reconciler owns it.
    Unknown,
    /// The PG's answer is recorded.
    Settled,
}

impl PgState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::InFlight => "in_flight",
            Self::Unknown => "unknown",
            Self::Settled => "settled",
        }
    }
    pub fn parse(s: &str) -> Self {
        match s {
            "in_flight" => Self::InFlight,
            "unknown" => Self::Unknown,
            "settled" => Self::Settled,
            _ => Self::None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CancelEntry {
    pub cancellation_id: String,
    pub pg_tid: Option<String>,
    pub amount: i64,
    pub cancelled_at: i64,
    pub reason: Option<String>,
    pub receipt_url: Option<String>,
}

/// A payment attempt: every field of the wire's Payment object, plus Pier's bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub imp_uid: String,
    pub merchant_id: String,
    pub merchant_uid: String,
    pub uid_lock: bool,
    pub pg_state: PgState,
    pub told_failed: bool,
    pub reconcile_attempts: i64,
    pub next_reconcile_at: i64,
    pub channel_id: Option<String>,
    pub pay_method: Option<String>,
    pub channel: Option<String>,
    pub pg_provider: Option<String>,
    pub emb_pg_provider: Option<String>,
    pub pg_tid: Option<String>,
    pub pg_id: Option<String>,
    pub sandbox: bool,
    pub escrow: bool,
    pub apply_num: Option<String>,
    pub bank_code: Option<String>,
    pub bank_name: Option<String>,
    pub card_code: Option<String>,
    pub card_name: Option<String>,
    pub card_quota: i64,
    pub card_number: Option<String>,
    pub card_type: Option<i64>,
    pub vbank_code: Option<String>,
    pub vbank_name: Option<String>,
    pub vbank_num: Option<String>,
    pub vbank_holder: Option<String>,
    pub vbank_date: i64,
    pub vbank_issued_at: i64,
    pub name: Option<String>,
    pub amount: i64,
    pub cancel_amount: i64,
    pub cancel_reserved: i64,
    pub tax_free: i64,
    pub vat_amount: Option<i64>,
    pub currency: String,
    pub buyer_name: Option<String>,
    pub buyer_email: Option<String>,
    pub buyer_tel: Option<String>,
    pub buyer_addr: Option<String>,
    pub buyer_postcode: Option<String>,
    pub custom_data: Option<String>,
    pub user_agent: Option<String>,
    /// JSON array of webhook targets given with the request.
    pub notice_url: Option<String>,
    pub status: PaymentStatus,
    pub started_at: i64,
    pub paid_at: i64,
    pub failed_at: i64,
    pub cancelled_at: i64,
    pub updated_at: i64,
    pub fail_reason: Option<String>,
    pub cancel_reason: Option<String>,
    pub receipt_url: Option<String>,
    pub cash_receipt_issued: bool,
    pub customer_uid: Option<String>,
    pub customer_uid_usage: Option<String>,
    /// Filled on reads; written through the cancel path only.
    pub cancel_history: Vec<CancelEntry>,
}

impl Payment {
    /// A new attempt with every optional field empty.
    pub fn new(
        imp_uid: String,
        merchant_id: String,
        merchant_uid: String,
        amount: i64,
        now: i64,
    ) -> Self {
        Self {
            imp_uid,
            merchant_id,
            merchant_uid,
            uid_lock: false,
            pg_state: PgState::None,
            told_failed: false,
            reconcile_attempts: 0,
            next_reconcile_at: 0,
            channel_id: None,
            pay_method: None,
            channel: None,
            pg_provider: None,
            emb_pg_provider: None,
            pg_tid: None,
            pg_id: None,
            sandbox: false,
            escrow: false,
            apply_num: None,
            bank_code: None,
            bank_name: None,
            card_code: None,
            card_name: None,
            card_quota: 0,
            card_number: None,
            card_type: None,
            vbank_code: None,
            vbank_name: None,
            vbank_num: None,
            vbank_holder: None,
            vbank_date: 0,
            vbank_issued_at: 0,
            name: None,
            amount,
            cancel_amount: 0,
            cancel_reserved: 0,
            tax_free: 0,
            vat_amount: None,
            currency: "KRW".into(),
            buyer_name: None,
            buyer_email: None,
            buyer_tel: None,
            buyer_addr: None,
            buyer_postcode: None,
            custom_data: None,
            user_agent: None,
            notice_url: None,
            status: PaymentStatus::Ready,
            started_at: now,
            paid_at: 0,
            failed_at: 0,
            cancelled_at: 0,
            updated_at: now,
            fail_reason: None,
            cancel_reason: None,
            receipt_url: None,
            cash_receipt_issued: false,
            customer_uid: None,
            customer_uid_usage: None,
            cancel_history: Vec::new(),
        }
    }
}

/// What the PG said about an attempt, to be recorded on a `ready` row.
#[derive(Clone, Debug)]
pub enum Settlement {
    Paid {
        pg_tid: String,
        apply_num: Option<String>,
        paid_at: i64,
        card_code: Option<String>,
        card_name: Option<String>,
        card_number: Option<String>,
        card_type: Option<i64>,
        card_quota: i64,
        bank_code: Option<String>,
        bank_name: Option<String>,
        receipt_url: Option<String>,
    },
    Failed {
        reason: String,
        failed_at: i64,
    },
    /// The PG's answer is unknown: keep the row `ready` and the merchant_uid locked for the
    /// reconciler, and remember whether the client was told it failed.
    Unknown {
        told_failed: bool,
        next_reconcile_at: i64,
    },
}

/// A webhook announcement, written in the same transaction as the change it announces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEvent {
    pub id: String,
    pub merchant_id: String,
    pub imp_uid: String,
    pub merchant_uid: String,
    /// The payment status the webhook announces.
    pub status: PaymentStatus,
    pub cancellation_id: Option<String>,
    /// JSON array of target URLs; empty = the merchant's configured URL.
    pub notice_urls: Option<String>,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Customer {
    pub merchant_id: String,
    pub customer_uid: String,
    pub channel_id: String,
    pub pg_provider: String,
    pub pg_id: String,
    pub sandbox: bool,
    pub billing_key: String,
    pub customer_id: Option<String>,
    pub card_name: Option<String>,
    pub card_code: Option<String>,
    pub card_number: Option<String>,
    pub card_type: Option<i64>,
    pub customer_name: Option<String>,
    pub customer_tel: Option<String>,
    pub customer_email: Option<String>,
    pub customer_addr: Option<String>,
    pub customer_postcode: Option<String>,
    pub inserted: i64,
    pub updated: i64,
}

/// Sort orders of the lookup endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sorting {
    Started { desc: bool },
    Paid { desc: bool },
    Updated { desc: bool },
}

impl Sorting {
    pub fn parse(s: &str) -> Option<Self> {
        let (desc, key) = match s.strip_prefix('-') {
            Some(k) => (true, k),
            None => (false, s),
        };
        Some(match key {
            "started" => Self::Started { desc },
            "paid" => Self::Paid { desc },
            "updated" => Self::Updated { desc },
            _ => return None,
        })
    }

    pub(crate) fn order_by(self) -> &'static str {
        match self {
            Self::Started { desc: true } => "started_at DESC, imp_uid DESC",
            Self::Started { desc: false } => "started_at ASC, imp_uid ASC",
            Self::Paid { desc: true } => "paid_at DESC, imp_uid DESC",
            Self::Paid { desc: false } => "paid_at ASC, imp_uid ASC",
            Self::Updated { desc: true } => "updated_at DESC, imp_uid DESC",
            Self::Updated { desc: false } => "updated_at ASC, imp_uid ASC",
        }
    }
}

impl Default for Sorting {
    fn default() -> Self {
        Self::Started { desc: true }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub total: i64,
    pub items: Vec<T>,
}
