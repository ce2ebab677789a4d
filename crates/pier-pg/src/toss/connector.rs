//! `Connector`: the `Pg` trait over Toss Payments core API v1.
//!
//! How answers map onto Pier's three-valued outcome:
//!
//! - 2xx with a readable Payment: the documented meaning of its `status`;
//! - the connection could not be made: nothing was sent, `Unreachable`;
//! - the deadline passed, the connection broke after sending, a 5xx, a 408/409 (Toss is still
//!   working on the same `Idempotency-Key`), an unreadable answer, or `PROVIDER_ERROR`: the
//!   request may have been processed, `Unknown`;
//! - a documented card refusal (`CARD_REFUSALS`): `Declined`;
//! - any other 4xx (bad request, bad key, unknown payment…): `Rejected`.
//!
//! Every POST carries an `Idempotency-Key` derived from the operation and Pier's own id for it
//! (the attempt's `order_id`, the `cancellation_id`), so the same call retried after an unknown
//! answer is the same request to Toss, which answers it again without processing it twice.

use super::wire::{self, BillingAuth, Payment, TossError};
use super::{codes, LIVE_API_BASE};
use crate::transport::{classify_transport, read_bounded, MAX_CONNECT_TIMEOUT};
use crate::{
    Approval, AuthBegin, AuthComplete, AuthOutcome, AuthSession, BillingKey, CancelOutcome,
    CancelRequest, CardData, Inquiry, Mid, Order, Pg, PgError, PgResult, VbankIssued, VbankRequest,
    WindowReturn, DEFAULT_DEADLINE,
};
use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::fmt;
use std::time::Duration;

/// Toss: `orderName` at most 100 and `cancelReason` at most 200 characters, installment plans 2
/// to 12 months (listed under "to verify" in docs/connectors/tosspayments.md: not on a page read).
const MAX_ORDER_NAME_CHARS: usize = 100;
const MAX_CANCEL_REASON_CHARS: usize = 200;
const MAX_INSTALLMENT_MONTHS: i64 = 12;
/// Sent when Pier has no reason: Toss requires `cancelReason`.
const DEFAULT_CANCEL_REASON: &str = "가맹점 요청";

/// Toss error codes that are an issuer's refusal after a real attempt (error-codes reference).
const CARD_REFUSALS: &[&str] = &[
    "REJECT_CARD_COMPANY",
    "REJECT_CARD_PAYMENT",
    "INVALID_REJECT_CARD",
    "INVALID_STOPPED_CARD",
    "INVALID_CARD_LOST_OR_STOLEN",
    "RESTRICTED_CARD",
    "EXCEED_MAX_DAILY_PAYMENT_COUNT",
    "EXCEED_MAX_PAYMENT_AMOUNT",
    "EXCEED_MAX_AMOUNT",
    "NOT_AVAILABLE_PAYMENT",
    "INVALID_PASSWORD",
    "NOT_SUPPORTED_INSTALLMENT_PLAN_CARD_OR_MERCHANT",
    "NOT_ALLOWED_POINT_USE",
];

/// 4xx codes that say "temporary, try again": the attempt may have reached the issuer.
const TEMPORARY: &[&str] = &["PROVIDER_ERROR"];

/// Codes a charge gets when its order id was already used: the payment may be ours (a retry past
/// the idempotency window), so the connector asks by order id before refusing.
const ORDER_TAKEN: &[&str] = &["ALREADY_PROCESSED_PAYMENT", "DUPLICATED_ORDER_ID"];

/// What a Toss connector needs. `Debug` hides the secret key.
#[derive(Clone)]
pub struct Config {
    /// `LIVE_API_BASE`, or the simulator's address in tests.
    pub api_base: String,
    /// `test_sk_…` or `live_sk_…`.
    pub secret_key: String,
    /// Every call (connect, send, full answer read) completes within this or is `Unknown`.
    pub deadline: Duration,
}

impl Config {
    pub fn new(secret_key: impl Into<String>) -> Self {
        Self {
            api_base: LIVE_API_BASE.to_owned(),
            secret_key: secret_key.into(),
            deadline: DEFAULT_DEADLINE,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("api_base", &self.api_base)
            .field("secret_key", &"<redacted>")
            .field("deadline", &self.deadline)
            .finish()
    }
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid Toss API base URL: {0}")]
    BaseUrl(String),
    #[error("invalid Toss secret key: {0}")]
    SecretKey(String),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// The `tosspayments` connector. Holds no per-payment state. `Debug` hides the secret key.
#[derive(Clone)]
pub struct Connector {
    http: reqwest::Client,
    base: Url,
    /// `Basic base64(secretKey + ":")`, marked sensitive so that no HTTP-level logging shows it.
    auth: HeaderValue,
    /// SHA-256 of the secret key: keys the derivation of `customerKey`s (never sent).
    pub(super) key_salt: [u8; 32],
    deadline: Duration,
    /// The channel's client key (`test_ck_…`), public: the payment window's SDK takes it.
    pub(super) client_key: Option<String>,
    /// Where Toss's browser SDK is loaded from (`{sdk_base}/v1/payment`): Toss's script host for
    /// the live API base, else the API base itself (the simulator serves both).
    pub(super) sdk_base: String,
    /// `Pg::unseen_order_grace`: `UNSEEN_ORDER_GRACE`, or `PIER_TOSS_UNSEEN_ORDER_GRACE_SECS`.
    unseen_order_grace: Duration,
}

/// How long after an attempt began a Toss "not found" is trusted. Toss has no void for an order
/// id it has not seen, so a charge request that reaches Toss after the reconciler's inquiry would
/// still be approved. Pier stops sending at its deadline (5 s by default); no Toss page read here
/// says how long Toss may take to act on a request it received, so the grace is generous: 24
/// deadlines, and twice the 60 s after which HTTP front ends commonly abandon a request they have
/// not answered. The cost is only that a buyer's merchant_uid stays "in progress" that long after
/// an answer lost before Toss saw the request.
pub const UNSEEN_ORDER_GRACE: Duration = Duration::from_secs(120);

/// The grace from `PIER_TOSS_UNSEEN_ORDER_GRACE_SECS` (whole seconds), else the default. The
/// chaos harness shortens it: its simulator never acts on a request after the deadline.
fn unseen_order_grace_from_env() -> Duration {
    std::env::var("PIER_TOSS_UNSEEN_ORDER_GRACE_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(UNSEEN_ORDER_GRACE, Duration::from_secs)
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("base", &self.base.as_str())
            .field("secret_key", &"<redacted>")
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Connector {
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let base = Url::parse(&config.api_base)
            .map_err(|e| ConfigError::BaseUrl(format!("{}: {e}", config.api_base)))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(ConfigError::BaseUrl(format!(
                "{}: must be an http(s) URL",
                config.api_base
            )));
        }
        if base.cannot_be_a_base() || base.query().is_some() {
            return Err(ConfigError::BaseUrl(format!(
                "{}: must be a plain base URL",
                config.api_base
            )));
        }
        let key = &config.secret_key;
        if key.is_empty() || key.contains(':') || !key.chars().all(|c| c.is_ascii_graphic()) {
            // Never echo the key itself.
            return Err(ConfigError::SecretKey(
                "must be non-empty printable ASCII without ':'".into(),
            ));
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
        let mut auth = HeaderValue::from_str(&format!("Basic {encoded}"))
            .map_err(|_| ConfigError::SecretKey("not usable in a header".into()))?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(config.deadline.min(MAX_CONNECT_TIMEOUT))
            .tcp_nodelay(true)
            // Outbound proxies are not supported yet: an ambient HTTP_PROXY must not silently
            // reroute card data.
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ConfigError::Http(e.to_string()))?;
        let sdk_base = if config.api_base.trim_end_matches('/') == LIVE_API_BASE {
            super::LIVE_SDK_BASE.to_owned()
        } else {
            base.as_str().trim_end_matches('/').to_owned()
        };
        Ok(Self {
            http,
            base,
            auth,
            key_salt: Sha256::digest(key.as_bytes()).into(),
            deadline: config.deadline,
            client_key: None,
            sdk_base,
            unseen_order_grace: unseen_order_grace_from_env(),
        })
    }

    /// The same connector with the channel's client key (needed by the payment window only).
    /// A key that is empty or not printable ASCII is ignored (the window then answers
    /// `NO_CLIENT_KEY`).
    pub fn with_client_key(mut self, client_key: Option<&str>) -> Self {
        self.client_key = client_key
            .filter(|k| !k.is_empty() && k.len() <= 200 && k.chars().all(|c| c.is_ascii_graphic()))
            .map(str::to_owned);
        self
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    fn url(&self, segments: &[&str]) -> PgResult<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| PgError::Unreachable("the API base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// One exchange within the deadline: the status and the raw answer.
    pub(super) async fn exchange(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Vec<u8>>,
        idempotency: Option<&str>,
    ) -> PgResult<(StatusCode, Vec<u8>)> {
        let url = self.url(segments)?;
        let what = format!("{method} /{}", segments.join("/"));
        let mut req = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.auth.clone());
        if let Some(body) = body {
            req = req.header(CONTENT_TYPE, "application/json").body(body);
        }
        if let Some(key) = idempotency {
            req = req.header("Idempotency-Key", key);
        }
        let run = async {
            let resp = req.send().await.map_err(classify_transport)?;
            let status = resp.status();
            let bytes = read_bounded(resp, "Toss").await?;
            Ok((status, bytes))
        };
        match tokio::time::timeout(self.deadline, run).await {
            Ok(answer) => answer,
            Err(_) => Err(PgError::Unknown(format!(
                "no answer from Toss within {} ms ({what})",
                self.deadline.as_millis()
            ))),
        }
    }

    pub(super) async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: Vec<u8>,
        idempotency: &str,
    ) -> PgResult<T> {
        let (status, bytes) = self
            .exchange(Method::POST, segments, Some(body), Some(idempotency))
            .await?;
        decode(status, &bytes)
    }

    /// `GET /v1/payments/orders/{orderId}`: `None` when Toss has no payment for it.
    pub(super) async fn payment_by_order(&self, order_id: &str) -> PgResult<Option<Payment>> {
        let (status, bytes) = self
            .exchange(
                Method::GET,
                &["v1", "payments", "orders", order_id],
                None,
                None,
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            if let Ok(err) = serde_json::from_slice::<TossError>(&bytes) {
                if err.code.starts_with("NOT_FOUND") {
                    return Ok(None);
                }
            }
        }
        decode(status, &bytes).map(Some)
    }

    /// `GET /v1/payments/{paymentKey}`: `None` when Toss has no payment with that key.
    pub(super) async fn payment_by_key(&self, payment_key: &str) -> PgResult<Option<Payment>> {
        let (status, bytes) = self
            .exchange(Method::GET, &["v1", "payments", payment_key], None, None)
            .await?;
        if status == StatusCode::NOT_FOUND {
            if let Ok(err) = serde_json::from_slice::<TossError>(&bytes) {
                if err.code.starts_with("NOT_FOUND") {
                    return Ok(None);
                }
            }
        }
        decode(status, &bytes).map(Some)
    }

    /// A charge (key-in or billing) answered; on "order id already used", look the order up.
    async fn charge(
        &self,
        segments: &[&str],
        body: Vec<u8>,
        idempotency: &str,
        order_id: &str,
    ) -> PgResult<Approval> {
        match self.post::<Payment>(segments, body, idempotency).await {
            Ok(payment) => approval_of_charge(&payment, order_id),
            Err(PgError::Rejected { code, message }) if ORDER_TAKEN.contains(&code.as_str()) => {
                match self.inquire_order(order_id).await? {
                    Inquiry::Approved(approval) => Ok(approval),
                    _ => Err(PgError::Rejected { code, message }),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn inquire_order(&self, order_id: &str) -> PgResult<Inquiry> {
        match self.payment_by_order(order_id).await? {
            None => Ok(Inquiry::NotFound),
            Some(payment) => inquiry_of(&payment),
        }
    }

    /// The `customerKey` Pier uses at Toss for a customer: unguessable (Toss asks for random
    /// values, and i'mport `customer_uid`s are often e-mails or counters) yet stable, so a retried
    /// issuance names the same customer. Keyed by the secret key, scoped by the channel's MID.
    pub(super) fn customer_key(&self, mid: &Mid, customer_uid: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.key_salt);
        h.update(mid.as_str().as_bytes());
        h.update([0]);
        h.update(customer_uid.as_bytes());
        // 40 hex digits (160 bits): well inside Toss's customerKey length limit.
        format!("pier_{}", &hex::encode(h.finalize())[..40])
    }
}

/// `Idempotency-Key` of a call: a hash of the operation, the MID and Pier's id for the call
/// (`order_id` or `cancellation_id`), so it is the same on every retry of the same call and
/// different for anything else. 64 hex digits: under Toss's 300-character limit, and it reveals
/// nothing of the ids.
pub fn idempotency_key(operation: &str, mid: &Mid, id: &str) -> String {
    let mut h = Sha256::new();
    for part in [operation, mid.as_str(), id] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A card number as Pier shows it: at most the first 6 and the last 4 digits visible, every other
/// digit `*`, whatever masking the PG applied (Toss masks differently across API versions).
pub fn mask_card_number(raw: &str) -> String {
    let n = raw.chars().count();
    raw.chars()
        .enumerate()
        .map(|(i, c)| {
            if c.is_ascii_digit() && i >= 6 && i + 4 < n {
                '*'
            } else {
                c
            }
        })
        .collect()
}

/// An answer, by status: 2xx must decode as `T`; anything else is classified (module doc).
fn decode<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> PgResult<T> {
    if status.is_success() {
        return serde_json::from_slice(bytes)
            .map_err(|e| PgError::Unknown(format!("unreadable Toss answer ({status}): {e}")));
    }
    let err = serde_json::from_slice::<TossError>(bytes).ok();
    Err(classify(status, err))
}

/// Toss's `{code, message}` (or its absence) to Pier's outcome.
pub(crate) fn classify(status: StatusCode, err: Option<TossError>) -> PgError {
    let unknown = |detail: String| PgError::Unknown(format!("Toss answered {status}: {detail}"));
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::CONFLICT
    {
        return unknown(err.map_or_else(|| "no error object".into(), |e| e.code));
    }
    let Some(err) = err else {
        // A 4xx without Toss's error object: refused by something in front of the API.
        return PgError::Rejected {
            code: format!("HTTP_{}", status.as_u16()),
            message: format!("Toss answered {status} without an error object"),
        };
    };
    if TEMPORARY.contains(&err.code.as_str()) {
        return unknown(format!("{} {}", err.code, err.message));
    }
    if CARD_REFUSALS.contains(&err.code.as_str()) {
        return PgError::Declined {
            code: err.code,
            message: err.message,
        };
    }
    PgError::Rejected {
        code: err.code,
        message: err.message,
    }
}

pub(super) fn unix_of(ts: Option<&str>) -> Option<i64> {
    ts.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
}

pub(super) fn approval_of(p: &Payment) -> Approval {
    let card = p.card.as_ref();
    // A bank transfer names its bank (Toss's code, read through the same bank table).
    let bank_code = p
        .transfer
        .as_ref()
        .and_then(|t| t.bank_code.as_deref())
        .and_then(codes::kftc_bank_of_toss);
    let card_code = card
        .and_then(|c| c.issuer_code.as_deref())
        .and_then(codes::kftc_card_of_toss);
    Approval {
        pg_tid: p.payment_key.clone(),
        apply_num: card.and_then(|c| c.approve_no.clone()),
        approved_at: unix_of(p.approved_at.as_deref()).unwrap_or_default(),
        amount_krw: p.total_amount,
        card_code: card_code.map(str::to_owned),
        card_name: card_code
            .and_then(pier_domain::codes::card_name)
            .map(str::to_owned),
        card_number: card.and_then(|c| c.number.as_deref()).map(mask_card_number),
        card_type: card.and_then(|c| match c.card_type.as_deref() {
            Some("신용") => Some(0),
            Some("체크") => Some(1),
            _ => None,
        }),
        card_quota: card.map_or(0, |c| c.installment_plan_months),
        bank_code: bank_code.map(str::to_owned),
        bank_name: bank_code
            .and_then(pier_domain::codes::bank_name)
            .map(str::to_owned),
        receipt_url: p
            .receipt
            .as_ref()
            .and_then(|r| r.url.clone())
            .or_else(|| card.and_then(|c| c.receipt_url.clone()))
            .or_else(|| p.mobile_phone.as_ref().and_then(|m| m.receipt_url.clone())),
        billing_key: None,
    }
}

/// The answer to a charge: only `DONE` for our order is an approval.
pub(super) fn approval_of_charge(p: &Payment, order_id: &str) -> PgResult<Approval> {
    if p.order_id != order_id || p.payment_key.is_empty() {
        return Err(PgError::Unknown(format!(
            "Toss answered a charge of {order_id} with a payment of another order"
        )));
    }
    match p.status.as_str() {
        "DONE" => Ok(approval_of(p)),
        "ABORTED" | "EXPIRED" => {
            let f = p.failure.clone().unwrap_or_else(|| TossError {
                code: p.status.clone(),
                message: "결제가 승인되지 않았습니다.".into(),
            });
            Err(PgError::Declined {
                code: f.code,
                message: f.message,
            })
        }
        other => Err(PgError::Unknown(format!(
            "Toss answered a charge with status {other}"
        ))),
    }
}

/// A Payment as Pier's `Inquiry` (trait doc): cancelled in full is `Voided`; a waiting virtual
/// account has moved no money yet, so it is `NotFound` until its deposit.
fn inquiry_of(p: &Payment) -> PgResult<Inquiry> {
    Ok(match p.status.as_str() {
        "DONE" | "PARTIAL_CANCELED" => Inquiry::Approved(approval_of(p)),
        "CANCELED" => Inquiry::Voided {
            pg_tid: p.payment_key.clone(),
        },
        "ABORTED" | "EXPIRED" => {
            let f = p.failure.clone().unwrap_or_default();
            Inquiry::Declined {
                code: if f.code.is_empty() {
                    p.status.clone()
                } else {
                    f.code
                },
                message: f.message,
            }
        }
        // The buyer authenticated in the window and Pier's confirm has not been processed (yet):
        // a confirm whose answer was lost may still be, so this is no answer, not "never
        // seen". Toss ends it within 10 minutes either way (`DONE`, or `ABORTED`/`EXPIRED`:
        // https://docs.tosspayments.com/en/webhooks), so the reconciler's next looks settle it;
        // calling it not-found would let it fail an attempt Toss then approves.
        "IN_PROGRESS" => {
            return Err(PgError::Unknown(
                "Toss still has the payment in progress (authenticated, not yet confirmed)".into(),
            ))
        }
        "READY" | "WAITING_FOR_DEPOSIT" => Inquiry::NotFound,
        other => {
            return Err(PgError::Unknown(format!(
                "Toss payment in an unknown status {other}"
            )))
        }
    })
}

/// A paymentKey as a path segment: Toss's are at most 200 characters of letters, digits, '-' and
/// '_' (they are generated by Toss; anything else did not come from it).
fn check_payment_key(key: &str) -> PgResult<()> {
    let ok = (1..=200).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PgError::Rejected {
            code: "INVALID_PAYMENT_KEY".into(),
            message: "not a Toss paymentKey".into(),
        })
    }
}

pub(super) fn check_order_id(order_id: &str) -> PgResult<()> {
    // Toss: 6 to 64 characters of letters, digits, '-' and '_' (key-in guide, `orderId`).
    let ok = (6..=64).contains(&order_id.len())
        && order_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PgError::Rejected {
            code: "INVALID_ORDER_ID".into(),
            message: "Toss orderId must be 6-64 letters, digits, '-' or '_'".into(),
        })
    }
}

pub(super) fn order_name(order: &Order) -> String {
    let name = order
        .name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(&order.merchant_uid);
    name.chars().take(MAX_ORDER_NAME_CHARS).collect()
}

fn installment(order: &Order) -> PgResult<Option<i64>> {
    match order.card_quota {
        0 | 1 => Ok(None),
        q @ 2..=MAX_INSTALLMENT_MONTHS => Ok(Some(q)),
        _ => Err(PgError::Rejected {
            code: "INVALID_QUOTA".into(),
            message: format!("Toss card installments are 2 to {MAX_INSTALLMENT_MONTHS} months"),
        }),
    }
}

pub(super) fn tax_free(amount: i64) -> Option<i64> {
    (amount > 0).then_some(amount)
}

/// The card fields Toss takes, as strings: `YY`, `MM`, and the birth date (or business number)
/// when Pier has one. Both Toss guides let a merchant's contract make it required.
fn card_fields(card: &CardData) -> (String, String, Option<String>) {
    (
        format!("{:02}", card.expiry.year % 100),
        format!("{:02}", card.expiry.month),
        card.birth.as_ref().map(|b| b.digits().to_owned()),
    )
}

pub(super) fn encode<T: serde::Serialize>(body: &T) -> PgResult<Vec<u8>> {
    // Encoding our own types cannot fail; if it did, nothing was sent.
    serde_json::to_vec(body)
        .map_err(|e| PgError::Unreachable(format!("cannot encode the request: {e}")))
}

/// A billing-key issuance answer as Pier's `BillingKey` (`customerKey:billingKey`).
pub(super) fn billing_key_of(auth: &BillingAuth, customer_key: &str) -> PgResult<BillingKey> {
    if auth.billing_key.is_empty() || auth.customer_key != customer_key {
        return Err(PgError::Unknown(
            "Toss answered a billing-key issuance without our key".into(),
        ));
    }
    let card = auth.card.as_ref();
    let card_code = card
        .and_then(|c| c.issuer_code.as_deref())
        .and_then(codes::kftc_card_of_toss);
    Ok(BillingKey {
        billing_key: format!("{customer_key}:{}", auth.billing_key),
        card_code: card_code.map(str::to_owned),
        card_name: card_code
            .and_then(pier_domain::codes::card_name)
            .map(str::to_owned),
        card_number: card
            .and_then(|c| c.number.as_deref())
            .or(auth.card_number.as_deref())
            .map(mask_card_number),
        card_type: card.and_then(|c| match c.card_type.as_deref() {
            Some("신용") => Some(0),
            Some("체크") => Some(1),
            _ => None,
        }),
    })
}

/// `customerKey:billingKey`, the billing key as Pier stores it (see `pay_with_key`).
fn split_billing_key(stored: &str) -> PgResult<(&str, &str)> {
    match stored.split_once(':') {
        Some((c, b)) if !c.is_empty() && !b.is_empty() => Ok((c, b)),
        _ => Err(PgError::Rejected {
            code: "INVALID_BILLING_KEY".into(),
            message: "not a billing key issued through the Toss connector".into(),
        }),
    }
}

#[async_trait]
impl Pg for Connector {
    async fn approve_keyed(&self, mid: &Mid, order: &Order, card: CardData) -> PgResult<Approval> {
        check_order_id(&order.order_id)?;
        let (year, month, identity) = card_fields(&card);
        let body = encode(&wire::KeyInRequest {
            amount: order.amount_krw,
            order_id: order.order_id.clone(),
            order_name: order_name(order),
            card_number: card.number.digits().to_owned(),
            card_expiration_year: year,
            card_expiration_month: month,
            customer_identity_number: identity,
            card_password: card.pwd_2digit.as_ref().map(|p| p.digits().to_owned()),
            card_installment_plan: installment(order)?,
            tax_free_amount: tax_free(order.tax_free_krw),
        })?;
        drop(card);
        let key = idempotency_key("approve_keyed", mid, &order.order_id);
        self.charge(&["v1", "payments", "key-in"], body, &key, &order.order_id)
            .await
    }

    /// The key Pier stores is `customerKey:billingKey`: Toss charges a billing key only together
    /// with the `customerKey` it was issued for, and the trait hands `pay_with_key` nothing but
    /// the stored key. Toss's `customerKey` allows no ':' (letters, digits, `-_=.@`), so the
    /// first ':' splits the two unambiguously.
    async fn issue_billing_key(
        &self,
        mid: &Mid,
        customer_uid: &str,
        card: CardData,
    ) -> PgResult<BillingKey> {
        let (year, month, identity) = card_fields(&card);
        let customer_key = self.customer_key(mid, customer_uid);
        let body = encode(&wire::BillingAuthRequest {
            customer_key: customer_key.clone(),
            card_number: card.number.digits().to_owned(),
            card_expiration_year: year,
            card_expiration_month: month,
            customer_identity_number: identity,
            card_password: card.pwd_2digit.as_ref().map(|p| p.digits().to_owned()),
        })?;
        drop(card);
        // The same customer may register another card later: the key covers the request too, so
        // only a retry of this very registration is "the same request".
        let digest = hex::encode(Sha256::digest(&body));
        let key = idempotency_key(
            "issue_billing_key",
            mid,
            &format!("{customer_uid}\0{digest}"),
        );
        let auth: BillingAuth = match self
            .post(&["v1", "billing", "authorizations", "card"], body, &key)
            .await
        {
            Ok(auth) => auth,
            // No key and nothing charged: an issuer's refusal of the card is a refusal of the
            // registration (as the test PG reports it).
            Err(PgError::Declined { code, message }) => {
                return Err(PgError::Rejected { code, message })
            }
            Err(e) => return Err(e),
        };
        billing_key_of(&auth, &customer_key)
    }

    /// Toss's v1 reference pages read for this connector document no way to delete a billing
    /// key: Pier forgets it (its own record is what `pay_with_key` needs) and Toss keeps it.
    async fn delete_billing_key(&self, _mid: &Mid, billing_key: &str) -> PgResult<()> {
        split_billing_key(billing_key).map(|_| ())
    }

    async fn pay_with_key(
        &self,
        mid: &Mid,
        order: &Order,
        billing_key: &str,
    ) -> PgResult<Approval> {
        check_order_id(&order.order_id)?;
        let (customer_key, toss_key) = split_billing_key(billing_key)?;
        let body = encode(&wire::BillingPayRequest {
            customer_key: customer_key.to_owned(),
            amount: order.amount_krw,
            order_id: order.order_id.clone(),
            order_name: order_name(order),
            customer_name: order.buyer_name.clone(),
            tax_free_amount: tax_free(order.tax_free_krw),
            card_installment_plan: installment(order)?,
        })?;
        let key = idempotency_key("pay_with_key", mid, &order.order_id);
        self.charge(&["v1", "billing", toss_key], body, &key, &order.order_id)
            .await
    }

    async fn cancel(&self, mid: &Mid, req: &CancelRequest) -> PgResult<CancelOutcome> {
        if req.amount_krw <= 0 {
            return Err(PgError::Rejected {
                code: "INVALID_CANCEL_AMOUNT".into(),
                message: "the cancel amount must be positive".into(),
            });
        }
        let reason: String = req
            .reason
            .as_deref()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or(DEFAULT_CANCEL_REASON)
            .chars()
            .take(MAX_CANCEL_REASON_CHARS)
            .collect();
        let refund_receive_account = match &req.refund_account {
            None => None,
            Some(r) => Some(wire::RefundReceiveAccount {
                bank: codes::toss_bank_of_kftc(&r.bank_code)
                    .ok_or_else(|| PgError::Rejected {
                        code: "INVALID_REFUND_BANK".into(),
                        message: format!(
                            "토스페이먼츠가 환불할 수 없는 은행입니다. (bank {} has no Toss bank code)",
                            r.bank_code
                        ),
                    })?
                    .to_owned(),
                // Toss takes the number as digits.
                account_number: r.account_number.chars().filter(char::is_ascii_digit).collect(),
                holder_name: r.holder.clone(),
            }),
        };
        let body = encode(&wire::CancelBody {
            cancel_reason: reason,
            cancel_amount: Some(req.amount_krw),
            tax_free_amount: tax_free(req.tax_free_krw),
            refund_receive_account,
        })?;
        let key = idempotency_key("cancel", mid, &req.cancellation_id);
        let p: Payment = self
            .post(&["v1", "payments", &req.pg_tid, "cancel"], body, &key)
            .await?;
        // Toss appends each cancel to `cancels`; the answer to ours ends with ours.
        let Some(last) = p.cancels.as_ref().and_then(|c| c.last()) else {
            return Err(PgError::Unknown(
                "Toss answered a cancel without a cancel record".into(),
            ));
        };
        if p.payment_key != req.pg_tid || last.cancel_amount != req.amount_krw {
            return Err(PgError::Unknown(
                "Toss answered a cancel that is not ours".into(),
            ));
        }
        Ok(CancelOutcome {
            pg_cancel_tid: last
                .transaction_key
                .clone()
                .unwrap_or_else(|| p.last_transaction_key.clone().unwrap_or_default()),
            cancelled_at: unix_of(last.canceled_at.as_deref()).unwrap_or_default(),
            amount_krw: last.cancel_amount,
            receipt_url: p.receipt.as_ref().and_then(|r| r.url.clone()),
        })
    }

    async fn inquire(&self, _mid: &Mid, order_id: &str) -> PgResult<Inquiry> {
        check_order_id(order_id)?;
        self.inquire_order(order_id).await
    }

    /// By paymentKey (Toss's `pg_tid`): the payment Pier recorded, checked to be the order's.
    async fn inquire_tid(&self, _mid: &Mid, order_id: &str, pg_tid: &str) -> PgResult<Inquiry> {
        check_order_id(order_id)?;
        check_payment_key(pg_tid)?;
        match self.payment_by_key(pg_tid).await? {
            None => Ok(Inquiry::NotFound),
            Some(p) if p.order_id != order_id => Err(PgError::Rejected {
                code: "ORDER_MISMATCH".into(),
                message: format!("Toss's payment {pg_tid} is not order {order_id}'s"),
            }),
            Some(p) => inquiry_of(&p),
        }
    }

    fn unseen_order_grace(&self) -> Duration {
        self.unseen_order_grace
    }

    /// Toss has no separate void: look the order up and cancel what is left of it, under an
    /// idempotency key of its own so that repeated net-cancels are one cancel.
    async fn net_cancel(&self, mid: &Mid, order_id: &str) -> PgResult<()> {
        check_order_id(order_id)?;
        let Some(p) = self.payment_by_order(order_id).await? else {
            return Ok(());
        };
        // WAITING_FOR_DEPOSIT: a virtual account issued for an attempt Pier fails must be closed,
        // or a buyer could still pay into it.
        if !matches!(
            p.status.as_str(),
            "DONE" | "PARTIAL_CANCELED" | "WAITING_FOR_DEPOSIT"
        ) || p.balance_amount <= 0
        {
            return Ok(());
        }
        let body = encode(&wire::CancelBody {
            cancel_reason: "승인 응답 유실로 인한 망취소".into(),
            cancel_amount: None,
            tax_free_amount: None,
            // A net cancel voids an approval nobody was told of: never a deposited account.
            refund_receive_account: None,
        })?;
        let key = idempotency_key("net_cancel", mid, order_id);
        match self
            .post::<Payment>(&["v1", "payments", &p.payment_key, "cancel"], body, &key)
            .await
        {
            Ok(_) => Ok(()),
            Err(PgError::Rejected { code, .. }) if code == "ALREADY_CANCELED_PAYMENT" => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn issue_vbank(&self, mid: &Mid, req: &VbankRequest) -> PgResult<VbankIssued> {
        let order = &req.order;
        check_order_id(&order.order_id)?;
        let bank =
            codes::toss_vbank_issuer_of_kftc(&req.bank_code).ok_or_else(|| PgError::Rejected {
                code: "INVALID_BANK".into(),
                message: format!("Toss issues no virtual account at bank {}", req.bank_code),
            })?;
        let due = chrono::DateTime::from_timestamp(req.due_unix, 0)
            .ok_or_else(|| PgError::Rejected {
                code: "INVALID_DUE".into(),
                message: "the deposit deadline is not a valid time".into(),
            })?
            .with_timezone(&kst());
        let customer = req
            .holder
            .clone()
            .or_else(|| order.buyer_name.clone())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "구매자".into());
        let body = encode(&wire::VirtualAccountRequest {
            amount: order.amount_krw,
            order_id: order.order_id.clone(),
            order_name: order_name(order),
            customer_name: customer,
            bank: bank.to_owned(),
            due_date: Some(due.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)),
            valid_hours: None,
            tax_free_amount: tax_free(order.tax_free_krw),
        })?;
        let key = idempotency_key("issue_vbank", mid, &order.order_id);
        let p: Payment = self.post(&["v1", "virtual-accounts"], body, &key).await?;
        let Some(va) = p
            .virtual_account
            .as_ref()
            .filter(|_| p.order_id == order.order_id)
        else {
            return Err(PgError::Unknown(
                "Toss answered a virtual-account issuance without the account".into(),
            ));
        };
        let bank_code = va
            .bank_code
            .as_deref()
            .and_then(codes::kftc_bank_of_toss)
            .unwrap_or(&req.bank_code);
        Ok(VbankIssued {
            pg_tid: p.payment_key.clone(),
            bank_code: bank_code.to_owned(),
            bank_name: pier_domain::codes::bank_name(bank_code)
                .unwrap_or_default()
                .to_owned(),
            account_num: va.account_number.clone(),
            holder: va.customer_name.clone().unwrap_or_default(),
            due_unix: unix_of(va.due_date.as_deref()).unwrap_or(req.due_unix),
            issued_at: unix_of(p.requested_at.as_deref()).unwrap_or_default(),
        })
    }

    async fn begin_auth(&self, mid: &Mid, req: &AuthBegin) -> PgResult<AuthSession> {
        self.window_begin(mid, req)
    }

    async fn complete_auth(&self, mid: &Mid, req: &AuthComplete) -> PgResult<AuthOutcome> {
        self.window_complete(mid, req).await
    }

    fn read_return(&self, params: &[(String, String)]) -> WindowReturn {
        super::window::read_return(params)
    }
}

/// Korea Standard Time, the offset Toss writes its timestamps in.
pub(crate) fn kst() -> chrono::FixedOffset {
    // `east_opt` only fails beyond ±24 h; +9 h is a constant within it.
    chrono::FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_shows_at_most_six_and_four() {
        assert_eq!(mask_card_number("4330123412341234"), "433012******1234");
        assert_eq!(mask_card_number("433012******1234"), "433012******1234");
        assert_eq!(mask_card_number("12341234****123*"), "123412******123*");
        assert_eq!(mask_card_number("378282246310005"), "378282*****0005");
    }

    #[test]
    fn idempotency_keys_are_stable_and_distinct() {
        let mid = Mid::new("m");
        let a = idempotency_key("approve_keyed", &mid, "imp_1");
        assert_eq!(a, idempotency_key("approve_keyed", &mid, "imp_1"));
        assert_ne!(a, idempotency_key("pay_with_key", &mid, "imp_1"));
        assert_ne!(a, idempotency_key("approve_keyed", &mid, "imp_2"));
        assert_ne!(a, idempotency_key("approve_keyed", &Mid::new("n"), "imp_1"));
        assert!(a.len() <= 300);
    }

    #[test]
    fn errors_map_to_the_three_outcomes() {
        let e = |code: &str| {
            Some(TossError {
                code: code.into(),
                message: "m".into(),
            })
        };
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, e("REJECT_CARD_COMPANY")),
            PgError::Declined { .. }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, e("INVALID_CARD_NUMBER")),
            PgError::Rejected { .. }
        ));
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, e("UNAUTHORIZED_KEY")),
            PgError::Rejected { .. }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, e("PROVIDER_ERROR")),
            PgError::Unknown(_)
        ));
        assert!(matches!(
            classify(
                StatusCode::INTERNAL_SERVER_ERROR,
                e("FAILED_INTERNAL_SYSTEM_PROCESSING")
            ),
            PgError::Unknown(_)
        ));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, None),
            PgError::Unknown(_)
        ));
        assert!(matches!(
            classify(StatusCode::CONFLICT, e("IDEMPOTENT_REQUEST_PROCESSING")),
            PgError::Unknown(_)
        ));
    }

    /// A Payment written with the field names and value shapes of Toss's cancel-guide example
    /// (source E): a card payment fully cancelled, in the 2022-11-16 version.
    #[test]
    fn reads_a_payment_shaped_like_tosss_example() {
        let json = serde_json::json!({
            "mId": "tosspayments", "version": "2022-11-16",
            "lastTransactionKey": "T2", "paymentKey": "pk_1", "orderId": "order_123456",
            "orderName": "티셔츠", "currency": "KRW", "method": "카드", "status": "CANCELED",
            "requestedAt": "2022-01-01T11:31:29+09:00",
            "approvedAt": "2022-01-01T11:31:51+09:00",
            "useEscrow": false, "cultureExpense": false,
            "card": {
                "issuerCode": "33", "acquirerCode": "31", "number": "12341234****123*",
                "installmentPlanMonths": 0, "isInterestFree": false, "interestPayer": null,
                "approveNo": "00000000", "useCardPoint": false, "cardType": "신용",
                "ownerType": "개인", "acquireStatus": "READY"
            },
            "virtualAccount": null, "transfer": null, "mobilePhone": null,
            "cancels": [{
                "cancelReason": "고객 요청", "canceledAt": "2022-01-01T11:32:04+09:00",
                "cancelAmount": 10000, "taxFreeAmount": 0, "taxExemptionAmount": 0,
                "refundableAmount": 0, "transactionKey": "T2", "cancelStatus": "DONE"
            }],
            "receipt": {"url": "https://dashboard.tosspayments.com/receipt"},
            "totalAmount": 10000, "balanceAmount": 0, "suppliedAmount": 0, "vat": 0,
            "taxFreeAmount": 0, "taxExemptionAmount": 0
        });
        let p: Payment = serde_json::from_value(json).unwrap();
        assert_eq!(
            inquiry_of(&p).unwrap(),
            Inquiry::Voided {
                pg_tid: "pk_1".into()
            }
        );
        let a = approval_of(&p);
        assert_eq!(a.card_code.as_deref(), Some("041"), "33 is 우리");
        assert_eq!(a.card_number.as_deref(), Some("123412******123*"));
        assert_eq!(a.apply_num.as_deref(), Some("00000000"));
        assert_eq!(a.approved_at, 1_641_004_311);
        assert_eq!(a.card_type, Some(0));
        assert_eq!(
            a.receipt_url.as_deref(),
            Some("https://dashboard.tosspayments.com/receipt")
        );
        // The same payment partly cancelled is still an approval.
        let mut partial = p.clone();
        partial.status = "PARTIAL_CANCELED".into();
        assert!(matches!(inquiry_of(&partial), Ok(Inquiry::Approved(_))));
        let mut waiting = p;
        waiting.status = "WAITING_FOR_DEPOSIT".into();
        assert_eq!(inquiry_of(&waiting).unwrap(), Inquiry::NotFound);
    }

    #[test]
    fn a_payment_in_progress_is_no_answer_yet() {
        let mut p: Payment = serde_json::from_value(serde_json::json!({
            "paymentKey": "pk_2", "orderId": "imp_123456789012", "status": "IN_PROGRESS",
            "totalAmount": 1000, "balanceAmount": 1000
        }))
        .unwrap();
        assert!(matches!(inquiry_of(&p), Err(PgError::Unknown(_))));
        p.status = "READY".into();
        assert_eq!(inquiry_of(&p).unwrap(), Inquiry::NotFound);
    }

    #[test]
    fn unreadable_answers_are_unknown() {
        assert!(matches!(
            decode::<Payment>(StatusCode::OK, b"<html>proxy</html>"),
            Err(PgError::Unknown(_))
        ));
        assert!(matches!(
            decode::<Payment>(StatusCode::OK, br#"{"paymentKey": 5}"#),
            Err(PgError::Unknown(_))
        ));
        // A 4xx without Toss's error object was refused before Toss: nothing happened.
        assert!(matches!(
            decode::<Payment>(StatusCode::NOT_FOUND, b"not found"),
            Err(PgError::Rejected { .. })
        ));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let config = Config::new("test_sk_verysecret");
        assert!(!format!("{config:?}").contains("verysecret"));
        let c = Connector::new(&config).unwrap();
        assert!(!format!("{c:?}").contains("verysecret"));
    }
}
