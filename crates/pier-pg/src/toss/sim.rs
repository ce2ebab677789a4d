//! A protocol simulator of the Toss Payments v1 endpoints the connector calls, in memory.
//!
//! What it holds to, so that a connector bug fails a test instead of a live payment:
//!
//! - auth: `Authorization: Basic base64(secretKey + ":")` with the configured key, else 401
//!   `UNAUTHORIZED_KEY` in Toss's `{code, message}` shape;
//! - fields: request bodies are parsed strictly (unknown, missing or mistyped fields are 400
//!   `INVALID_REQUEST`, naming the field but never echoing a value);
//! - `Idempotency-Key` (at most 300 characters): the same key with the same body answers the
//!   stored answer again without processing anything; the same key with another body is refused;
//! - money: payments by `paymentKey` and `orderId` (one payment per order id), `balanceAmount`
//!   and the `cancels` list, billing keys with the `customerKey` they were issued for;
//! - cards: the test PG's card table (`testpg::cards`: same numbers, same behaviours, same
//!   issuers), answered with Toss's codes (`docs/connectors/tosspayments.md` lists them);
//! - faults: pgsim's knobs (`pgsim::Faults`: latency, timeouts, 5xx, answers lost after
//!   processing, down), set at construction or with `PUT /admin/faults`.
//!
//! The admin routes (`/admin/...`) are unauthenticated and never subject to faults: mount the
//! simulator only on loopback or a trusted test network. It keeps no card number, birth date or
//! password: a billing key remembers only the card's behaviour, issuer and masked number.

use super::codes;
use super::connector::{kst, mask_card_number};
use super::wire::{
    self, BillingAuth, BillingCard, Cancel, Payment, PaymentCard, Receipt, TossError,
    VirtualAccount,
};
use crate::pgsim::{faults, FaultControl, Faults, InvalidFaults};
use crate::testpg::cards::{self, Behaviour, Decline, Issuer};
use crate::CardData;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use pier_domain::{Birth, CardNumber, Expiry, Pwd2Digit};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

#[path = "sim_window.rs"]
mod window;

/// Requests are a few hundred bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Toss: an `Idempotency-Key` is at most 300 characters (idempotency guide).
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 300;
/// The simulator is for tests and chaos runs: past this many payments (or stored answers) it
/// answers 500 instead of growing without bound. ~1 KB each: about 1 GB at the cap.
const MAX_RECORDS: usize = 1_000_000;
/// Toss: card payments start at 100 KRW (error code `BELOW_MINIMUM_AMOUNT`).
const MIN_CARD_AMOUNT: i64 = 100;
/// orderName up to 100 characters, cancelReason up to 200, installments 2 to 12 months: the
/// connector's limits (docs/connectors/tosspayments.md lists them under "to verify").
const MAX_ORDER_NAME_CHARS: usize = 100;
const MAX_CANCEL_REASON_CHARS: usize = 200;
const MAX_INSTALLMENT_MONTHS: i64 = 12;
/// Toss: a virtual account is valid 7 days by default and at most 30 (virtual-account guide).
const DEFAULT_VBANK_HOURS: i64 = 7 * 24;
const MAX_VBANK_HOURS: i64 = 30 * 24;
/// The API version the simulator's objects claim (the one in the reference examples).
const VERSION: &str = "2022-11-16";

/// How to build a simulator. `Debug` hides the secret key.
#[derive(Clone)]
pub struct SimConfig {
    /// The one secret key the simulator accepts.
    pub secret_key: String,
    /// The `mId` written into every object.
    pub mid: String,
    /// Where receipts are said to live (`{base}/receipt/{paymentKey}`).
    pub base_url: String,
    pub faults: Faults,
    /// Refuse card requests without `customerIdentityNumber` (a contract option at Toss; on by
    /// default because Korean keyed payments normally carry the holder's birth date).
    pub require_identity: bool,
    /// Seed of the fault RNG (same seed, same request order: same faults).
    pub seed: u64,
    /// The client key the payment window accepts (`None`: any `test_ck_`/`live_ck_` key).
    pub client_key: Option<String>,
    /// Where deposits are announced (`PAYMENT_STATUS_CHANGED`, Toss's webhook shape), e.g.
    /// Pier's `/pg/tosspayments/{channel_id}/webhook`. `None`: no webhooks.
    pub webhook_url: Option<String>,
}

impl SimConfig {
    pub fn new(secret_key: impl Into<String>) -> Self {
        Self {
            secret_key: secret_key.into(),
            mid: "tosspayments_sim".into(),
            base_url: "http://127.0.0.1".into(),
            faults: Faults::default(),
            require_identity: true,
            seed: 0,
            client_key: None,
            webhook_url: None,
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("secret_key", &"<redacted>")
            .field("mid", &self.mid)
            .field("base_url", &self.base_url)
            .field("faults", &self.faults)
            .field("require_identity", &self.require_identity)
            .field("seed", &self.seed)
            .field("client_key", &self.client_key)
            .field("webhook_url", &self.webhook_url)
            .finish()
    }
}

/// One simulator: cheap to clone, all clones share the books.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    /// The whole expected `Authorization` header value.
    auth: String,
    mid: String,
    base_url: String,
    require_identity: bool,
    faults: FaultControl,
    books: Mutex<Books>,
    client_key: Option<String>,
    webhook_url: Mutex<Option<String>>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("mid", &self.inner.mid)
            .field("faults", &self.inner.faults)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Books {
    seq: u64,
    payments: HashMap<String, Payment>,
    by_order: HashMap<String, String>,
    billing: HashMap<String, BillingRec>,
    idempotent: HashMap<String, Stored>,
    /// Order ids of every charge processed with an approval, in order (a double charge shows as a
    /// repeated id).
    approved_charges: Vec<String>,
    /// Payments authenticated in the window and not yet confirmed, by `paymentKey`.
    pending: HashMap<String, window::Pending>,
    /// Billing authorizations of the window not yet issued, by `authKey`.
    auth_keys: HashMap<String, window::PendingBilling>,
}

struct BillingRec {
    customer_key: String,
    behaviour: Behaviour,
    issuer: Issuer,
    masked: String,
    owner_type: &'static str,
}

struct Stored {
    digest: [u8; 32],
    status: StatusCode,
    body: Vec<u8>,
}

/// What a handler decided, and what becomes of its answer.
struct Outcome {
    status: StatusCode,
    body: Vec<u8>,
    after: After,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    Answer,
    /// Not processed and never answered (the test PG's timeout card).
    Hang,
    /// Processed (and stored under its idempotency key), then the answer is lost.
    Lose,
}

impl Outcome {
    fn ok<T: Serialize>(value: &T) -> Self {
        Self {
            status: StatusCode::OK,
            body: serde_json::to_vec(value).unwrap_or_default(),
            after: After::Answer,
        }
    }

    fn err(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let e = TossError {
            code: code.into(),
            message: message.into(),
        };
        Self {
            status,
            body: serde_json::to_vec(&e).unwrap_or_default(),
            after: After::Answer,
        }
    }

    fn bad(code: &str, message: impl Into<String>) -> Self {
        Self::err(StatusCode::BAD_REQUEST, code, message)
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::bad("INVALID_REQUEST", message)
    }

    fn declined(d: Decline) -> Self {
        let code = if d == cards::LOST_OR_STOLEN {
            "INVALID_CARD_LOST_OR_STOLEN"
        } else if d == cards::SUSPENDED {
            "INVALID_STOPPED_CARD"
        } else {
            "REJECT_CARD_COMPANY"
        };
        Self::bad(code, d.message)
    }

    fn hang() -> Self {
        Self {
            status: StatusCode::GATEWAY_TIMEOUT,
            body: Vec::new(),
            after: After::Hang,
        }
    }

    fn lost(mut self) -> Self {
        self.after = After::Lose;
        self
    }

    fn into_response(self) -> Response {
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.body,
        )
            .into_response()
    }
}

fn now_kst() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::Utc::now().with_timezone(&kst())
}

fn ts(t: chrono::DateTime<chrono::FixedOffset>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// Parse a request body strictly; the error names a field at most, never a value.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Outcome> {
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        if text.starts_with("unknown field") || text.starts_with("missing field") {
            let field = text.split('`').nth(1).unwrap_or("?");
            let what = if text.starts_with("unknown") {
                "알 수 없는 필드"
            } else {
                "필수 필드 누락"
            };
            Outcome::invalid(format!("잘못된 요청입니다. ({what}: {field})"))
        } else {
            Outcome::invalid(format!(
                "잘못된 요청입니다. (line {} column {})",
                e.line(),
                e.column()
            ))
        }
    })
}

fn check_order(order_id: &str, order_name: &str, amount: i64) -> Result<(), Outcome> {
    let id_ok = (6..=64).contains(&order_id.len())
        && order_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !id_ok {
        return Err(Outcome::invalid("잘못된 요청입니다. (orderId)"));
    }
    if order_name.trim().is_empty() || order_name.chars().count() > MAX_ORDER_NAME_CHARS {
        return Err(Outcome::invalid("잘못된 요청입니다. (orderName)"));
    }
    if amount <= 0 {
        return Err(Outcome::invalid("잘못된 요청입니다. (amount)"));
    }
    Ok(())
}

fn check_plan(plan: Option<i64>) -> Result<i64, Outcome> {
    match plan {
        None => Ok(0),
        Some(p) if p > MAX_INSTALLMENT_MONTHS => Err(Outcome::bad(
            "EXCEED_MAX_CARD_INSTALLMENT_PLAN",
            "설정 가능한 최대 할부 개월 수를 초과했습니다.",
        )),
        Some(p) if p < 2 => Err(Outcome::invalid("잘못된 요청입니다. (cardInstallmentPlan)")),
        Some(p) => Ok(p),
    }
}

fn check_tax_free(tax_free: Option<i64>, amount: i64) -> Result<i64, Outcome> {
    match tax_free.unwrap_or(0) {
        t if (0..=amount).contains(&t) => Ok(t),
        _ => Err(Outcome::invalid("잘못된 요청입니다. (taxFreeAmount)")),
    }
}

/// The card fields of key-in and billing issuance, checked as Toss would before any attempt.
fn check_card(
    number: &str,
    year: &str,
    month: &str,
    identity: Option<&str>,
    require_identity: bool,
    password: Option<&str>,
) -> Result<(CardData, Behaviour), Outcome> {
    let invalid_number = || Outcome::bad("INVALID_CARD_NUMBER", "카드번호를 다시 확인해주세요.");
    if number.len() > 20 {
        return Err(invalid_number());
    }
    let number = CardNumber::parse(number).map_err(|_| invalid_number())?;
    let bad_expiry = || {
        Outcome::bad(
            "INVALID_CARD_EXPIRATION",
            "카드 정보를 다시 확인해주세요. (유효기간)",
        )
    };
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(year) || !two_digits(month) {
        return Err(bad_expiry());
    }
    let expiry = Expiry::parse(&format!("20{year}-{month}")).map_err(|_| bad_expiry())?;
    if expiry.is_expired_at(chrono::Utc::now().timestamp()) {
        return Err(bad_expiry());
    }
    let bad_identity = || Outcome::invalid("잘못된 요청입니다. (customerIdentityNumber)");
    let birth = match identity {
        Some(i) => Some(Birth::parse(i).map_err(|_| bad_identity())?),
        None if require_identity => return Err(bad_identity()),
        None => None,
    };
    let pwd_2digit = password
        .map(Pwd2Digit::parse)
        .transpose()
        .map_err(|_| Outcome::invalid("잘못된 요청입니다. (cardPassword)"))?;
    let behaviour = cards::behaviour_of(&number);
    if behaviour == Behaviour::InvalidNumber {
        return Err(invalid_number());
    }
    Ok((
        CardData {
            number,
            expiry,
            birth,
            pwd_2digit,
        },
        behaviour,
    ))
}

fn card_type_name(card_type: i64) -> &'static str {
    if card_type == 1 {
        "체크"
    } else {
        "신용"
    }
}

fn owner_type(card: &CardData) -> &'static str {
    if card.birth.as_ref().is_some_and(Birth::is_business) {
        "법인"
    } else {
        "개인"
    }
}

/// What a charge needs once its card side is settled.
struct Charge<'a> {
    order_id: &'a str,
    order_name: &'a str,
    amount: i64,
    tax_free: i64,
    plan: i64,
    issuer: Issuer,
    masked: String,
    owner_type: &'static str,
    billing: bool,
}

impl Books {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn full(&self) -> bool {
        self.payments.len() >= MAX_RECORDS
            || self.idempotent.len() >= MAX_RECORDS
            || self.approved_charges.len() >= MAX_RECORDS
    }

    fn new_key(&mut self, prefix: &str, salt: &str) -> (u64, String) {
        let seq = self.next();
        let h = hex::encode(Sha256::digest(format!("{seq}\0{salt}").as_bytes()));
        (seq, format!("{prefix}{seq:010}{}", &h[..24]))
    }

    fn insert(&mut self, p: Payment) {
        self.by_order
            .insert(p.order_id.clone(), p.payment_key.clone());
        self.payments.insert(p.payment_key.clone(), p);
    }

    fn base_payment(
        &mut self,
        sim: &Inner,
        order_id: &str,
        order_name: &str,
        amount: i64,
        tax_free: i64,
    ) -> Payment {
        let (_, payment_key) = self.new_key("tsim", order_id);
        let now = ts(now_kst());
        let taxable = amount - tax_free;
        let vat = taxable / 11;
        Payment {
            m_id: sim.mid.clone(),
            version: VERSION.into(),
            last_transaction_key: Some(format!("txn_{}", &payment_key[4..])),
            receipt: Some(Receipt {
                url: Some(format!("{}/receipt/{payment_key}", sim.base_url)),
            }),
            payment_key,
            order_id: order_id.into(),
            order_name: order_name.into(),
            currency: "KRW".into(),
            requested_at: Some(now),
            total_amount: amount,
            balance_amount: amount,
            supplied_amount: taxable - vat,
            vat,
            tax_free_amount: tax_free,
            ..Payment::default()
        }
    }

    /// Record a charge: approved, or aborted with the issuer's refusal (so that an inquiry of the
    /// order shows the refusal).
    fn charge(&mut self, sim: &Inner, c: Charge<'_>, refusal: Option<Decline>) -> Outcome {
        let mut p = self.base_payment(sim, c.order_id, c.order_name, c.amount, c.tax_free);
        p.method = Some("카드".into());
        p.kind = Some(if c.billing { "BILLING" } else { "NORMAL" }.into());
        let toss_code = codes::toss_card_of_kftc(c.issuer.card_code).map(str::to_owned);
        let quota = match cards::applied_quota(c.amount, c.plan) {
            Ok(q) => q,
            Err(_) => return Outcome::invalid("잘못된 요청입니다. (cardInstallmentPlan)"),
        };
        if let Some(d) = refusal {
            p.status = "ABORTED".into();
            p.balance_amount = 0;
            let answer = Outcome::declined(d);
            p.failure = serde_json::from_slice(&answer.body).ok();
            self.insert(p);
            return answer;
        }
        let seq = self.seq;
        p.card = Some(PaymentCard {
            amount: c.amount,
            company: None,
            issuer_code: toss_code.clone(),
            acquirer_code: toss_code,
            number: Some(c.masked),
            installment_plan_months: quota,
            approve_no: Some(format!("{:08}", seq % 100_000_000)),
            use_card_point: false,
            card_type: Some(card_type_name(c.issuer.card_type).into()),
            owner_type: Some(c.owner_type.into()),
            acquire_status: Some("READY".into()),
            is_interest_free: false,
            receipt_url: None,
        });
        p.status = "DONE".into();
        p.approved_at = p.requested_at.clone();
        self.approved_charges.push(c.order_id.to_owned());
        let answer = Outcome::ok(&p);
        self.insert(p);
        answer
    }

    fn key_in(&mut self, sim: &Inner, body: &[u8]) -> Outcome {
        let req: wire::KeyInRequest = match parse(body) {
            Ok(r) => r,
            Err(o) => return o,
        };
        if let Err(o) = check_order(&req.order_id, &req.order_name, req.amount) {
            return o;
        }
        if req.amount < MIN_CARD_AMOUNT {
            return Outcome::bad(
                "BELOW_MINIMUM_AMOUNT",
                "신용카드는 결제금액이 100원 이상부터 결제가 가능합니다.",
            );
        }
        let (plan, tax_free) = match (
            check_plan(req.card_installment_plan),
            check_tax_free(req.tax_free_amount, req.amount),
        ) {
            (Ok(p), Ok(t)) => (p, t),
            (Err(o), _) | (_, Err(o)) => return o,
        };
        if self.by_order.contains_key(&req.order_id) {
            return duplicated_order();
        }
        let (card, behaviour) = match check_card(
            &req.card_number,
            &req.card_expiration_year,
            &req.card_expiration_month,
            req.customer_identity_number.as_deref(),
            sim.require_identity,
            req.card_password.as_deref(),
        ) {
            Ok(v) => v,
            Err(o) => return o,
        };
        if behaviour == Behaviour::Timeout {
            return Outcome::hang();
        }
        let refusal = match behaviour {
            Behaviour::Decline { decline, .. } => Some(decline),
            _ => cards::holder_check(&card, behaviour),
        };
        let charge = Charge {
            order_id: &req.order_id,
            order_name: &req.order_name,
            amount: req.amount,
            tax_free,
            plan,
            issuer: cards::issuer_of(&card.number),
            masked: mask_card_number(card.number.digits()),
            owner_type: owner_type(&card),
            billing: false,
        };
        let answer = self.charge(sim, charge, refusal);
        if behaviour == Behaviour::LoseResponse {
            answer.lost()
        } else {
            answer
        }
    }

    fn billing_auth(&mut self, sim: &Inner, body: &[u8]) -> Outcome {
        let req: wire::BillingAuthRequest = match parse(body) {
            Ok(r) => r,
            Err(o) => return o,
        };
        // customerKey of letters, digits and - _ = . @, 2 to 300 characters (the character set
        // is from Toss's SDK reference; the length is listed under "to verify").
        let key_ok = (2..=300).contains(&req.customer_key.len())
            && req
                .customer_key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_=.@".contains(&b));
        if !key_ok {
            return Outcome::invalid("잘못된 요청입니다. (customerKey)");
        }
        let (card, behaviour) = match check_card(
            &req.card_number,
            &req.card_expiration_year,
            &req.card_expiration_month,
            req.customer_identity_number.as_deref(),
            sim.require_identity,
            req.card_password.as_deref(),
        ) {
            Ok(v) => v,
            Err(o) => return o,
        };
        let refusal = match behaviour {
            Behaviour::Decline {
                decline,
                issue_ok: false,
            } => Some(decline),
            Behaviour::IssueFails => Some(cards::NO_RECURRING),
            _ => cards::holder_check(&card, behaviour),
        };
        if let Some(d) = refusal {
            return Outcome::declined(d);
        }
        let issuer = cards::issuer_of(&card.number);
        let masked = mask_card_number(card.number.digits());
        let (_, billing_key) = self.new_key("bk_", &req.customer_key);
        let toss_code = codes::toss_card_of_kftc(issuer.card_code).map(str::to_owned);
        let auth = BillingAuth {
            m_id: sim.mid.clone(),
            customer_key: req.customer_key.clone(),
            authenticated_at: Some(ts(now_kst())),
            method: Some("카드".into()),
            billing_key: billing_key.clone(),
            card_company: None,
            card_number: Some(masked.clone()),
            card: Some(BillingCard {
                company: None,
                issuer_code: toss_code.clone(),
                acquirer_code: toss_code,
                number: Some(masked.clone()),
                card_type: Some(card_type_name(issuer.card_type).into()),
                owner_type: Some(owner_type(&card).into()),
            }),
        };
        self.billing.insert(
            billing_key,
            BillingRec {
                customer_key: req.customer_key,
                behaviour,
                issuer,
                masked,
                owner_type: owner_type(&card),
            },
        );
        Outcome::ok(&auth)
    }

    fn billing_pay(&mut self, sim: &Inner, billing_key: &str, body: &[u8]) -> Outcome {
        let req: wire::BillingPayRequest = match parse(body) {
            Ok(r) => r,
            Err(o) => return o,
        };
        if let Err(o) = check_order(&req.order_id, &req.order_name, req.amount) {
            return o;
        }
        if req.amount < MIN_CARD_AMOUNT {
            return Outcome::bad(
                "BELOW_MINIMUM_AMOUNT",
                "신용카드는 결제금액이 100원 이상부터 결제가 가능합니다.",
            );
        }
        let (plan, tax_free) = match (
            check_plan(req.card_installment_plan),
            check_tax_free(req.tax_free_amount, req.amount),
        ) {
            (Ok(p), Ok(t)) => (p, t),
            (Err(o), _) | (_, Err(o)) => return o,
        };
        let Some(rec) = self.billing.get(billing_key) else {
            return Outcome::err(
                StatusCode::NOT_FOUND,
                "NOT_FOUND_BILLING_KEY",
                "존재하지 않는 빌링키 입니다.",
            );
        };
        if rec.customer_key != req.customer_key {
            return Outcome::bad(
                "NOT_MATCHES_CUSTOMER_KEY",
                "빌링 인증 고객키와 결제 요청 고객키가 일치하지 않습니다.",
            );
        }
        if self.by_order.contains_key(&req.order_id) {
            return duplicated_order();
        }
        let behaviour = rec.behaviour;
        let refusal = match behaviour {
            Behaviour::Timeout => return Outcome::hang(),
            Behaviour::Decline { decline, .. } | Behaviour::KeyChargesDecline { decline } => {
                Some(decline)
            }
            _ => None,
        };
        let charge = Charge {
            order_id: &req.order_id,
            order_name: &req.order_name,
            amount: req.amount,
            tax_free,
            plan,
            issuer: rec.issuer,
            masked: rec.masked.clone(),
            owner_type: rec.owner_type,
            billing: true,
        };
        let answer = self.charge(sim, charge, refusal);
        if behaviour == Behaviour::LoseResponse {
            answer.lost()
        } else {
            answer
        }
    }

    fn cancel(&mut self, payment_key: &str, body: &[u8]) -> Outcome {
        let req: wire::CancelBody = match parse(body) {
            Ok(r) => r,
            Err(o) => return o,
        };
        let reason_len = req.cancel_reason.chars().count();
        if req.cancel_reason.trim().is_empty() || reason_len > MAX_CANCEL_REASON_CHARS {
            return Outcome::invalid("잘못된 요청입니다. (cancelReason)");
        }
        let seq = self.next();
        let Some(p) = self.payments.get_mut(payment_key) else {
            return not_found_payment();
        };
        // An issued virtual account nobody has paid into yet is closed by a cancel, whole and
        // without a refund account (nothing was deposited; community answer, source T): its
        // status becomes CANCELED and a later deposit is refused.
        let waiting = p.status == "WAITING_FOR_DEPOSIT";
        match p.status.as_str() {
            "DONE" | "PARTIAL_CANCELED" | "WAITING_FOR_DEPOSIT" => {}
            "CANCELED" => {
                return Outcome::bad("ALREADY_CANCELED_PAYMENT", "이미 취소된 결제 입니다.")
            }
            _ => return Outcome::bad("NOT_CANCELABLE_PAYMENT", "취소 할 수 없는 결제 입니다."),
        }
        if waiting && req.cancel_amount.is_some_and(|a| a != p.balance_amount) {
            return Outcome::bad("NOT_CANCELABLE_AMOUNT", "취소 할 수 없는 금액 입니다.");
        }
        // A paid virtual account is refunded by transfer to an account the merchant names
        // (cancel guide, source E; community answers, sources R and S): Toss refuses without one.
        if p.method.as_deref() == Some("가상계좌") && !waiting {
            let Some(r) = &req.refund_receive_account else {
                return Outcome::invalid("잘못된 요청입니다. (refundReceiveAccount)");
            };
            if codes::kftc_bank_of_toss(&r.bank).is_none() {
                return Outcome::invalid("잘못된 요청입니다. (refundReceiveAccount.bank)");
            }
            let digits = r.account_number.len();
            if !(6..=20).contains(&digits) || !r.account_number.bytes().all(|b| b.is_ascii_digit())
            {
                return Outcome::bad(
                    "INVALID_REFUND_ACCOUNT_NUMBER",
                    "잘못된 환불 계좌번호입니다.",
                );
            }
            if r.holder_name.trim().is_empty() {
                return Outcome::bad(
                    "INVALID_REFUND_ACCOUNT_INFO",
                    "환불 계좌번호와 예금주명이 일치하지 않습니다.",
                );
            }
        }
        let amount = req.cancel_amount.unwrap_or(p.balance_amount);
        if amount <= 0 || amount > p.balance_amount {
            return Outcome::bad("NOT_CANCELABLE_AMOUNT", "취소 할 수 없는 금액 입니다.");
        }
        let tax_free_left = p.tax_free_amount
            - p.cancels
                .iter()
                .flatten()
                .map(|c| c.tax_free_amount)
                .sum::<i64>();
        let tax_free = req.tax_free_amount.unwrap_or(0);
        if tax_free < 0 || tax_free > amount || tax_free > tax_free_left {
            return Outcome::bad("NOT_CANCELABLE_AMOUNT", "취소 할 수 없는 금액 입니다.");
        }
        p.balance_amount -= amount;
        p.status = if p.balance_amount == 0 {
            "CANCELED"
        } else {
            "PARTIAL_CANCELED"
        }
        .into();
        let transaction_key = format!("ctx_{seq:010}_{}", &p.payment_key);
        p.last_transaction_key = Some(transaction_key.clone());
        p.cancels.get_or_insert_with(Vec::new).push(Cancel {
            transaction_key: Some(transaction_key),
            cancel_reason: Some(req.cancel_reason),
            canceled_at: Some(ts(now_kst())),
            cancel_amount: amount,
            tax_free_amount: tax_free,
            refundable_amount: p.balance_amount,
            cancel_status: Some("DONE".into()),
        });
        Outcome::ok(p)
    }

    fn virtual_account(&mut self, sim: &Inner, body: &[u8]) -> Outcome {
        let req: wire::VirtualAccountRequest = match parse(body) {
            Ok(r) => r,
            Err(o) => return o,
        };
        if let Err(o) = check_order(&req.order_id, &req.order_name, req.amount) {
            return o;
        }
        let tax_free = match check_tax_free(req.tax_free_amount, req.amount) {
            Ok(t) => t,
            Err(o) => return o,
        };
        if req.customer_name.trim().is_empty() {
            return Outcome::invalid("잘못된 요청입니다. (customerName)");
        }
        let Some(bank_kftc) =
            codes::kftc_bank_of_toss(&req.bank).filter(|_| codes::is_vbank_issuer(&req.bank))
        else {
            return Outcome::bad("INVALID_BANK", "유효하지 않은 은행입니다.");
        };
        let now = now_kst();
        let due = match (&req.due_date, req.valid_hours) {
            (Some(_), Some(_)) => {
                return Outcome::invalid("잘못된 요청입니다. (dueDate, validHours)")
            }
            (None, None) => now + chrono::Duration::hours(DEFAULT_VBANK_HOURS),
            (None, Some(h)) if (1..=MAX_VBANK_HOURS).contains(&h) => {
                now + chrono::Duration::hours(h)
            }
            (None, Some(_)) => return Outcome::invalid("잘못된 요청입니다. (validHours)"),
            (Some(d), None) => match chrono::DateTime::parse_from_rfc3339(d) {
                Ok(d) if d > now && d <= now + chrono::Duration::hours(MAX_VBANK_HOURS) => d,
                _ => return Outcome::invalid("잘못된 요청입니다. (dueDate)"),
            },
        };
        if self.by_order.contains_key(&req.order_id) {
            return duplicated_order();
        }
        let mut p = self.base_payment(sim, &req.order_id, &req.order_name, req.amount, tax_free);
        let seq = self.seq;
        p.method = Some("가상계좌".into());
        p.kind = Some("NORMAL".into());
        p.status = "WAITING_FOR_DEPOSIT".into();
        p.virtual_account = Some(VirtualAccount {
            account_type: Some("일반".into()),
            account_number: format!("{}{:012}", bank_kftc, seq),
            bank_code: Some(req.bank.clone()),
            bank: None,
            customer_name: Some(req.customer_name.clone()),
            due_date: Some(ts(due)),
            expired: false,
            settlement_status: Some("INCOMPLETED".into()),
            refund_status: Some("NONE".into()),
        });
        let answer = Outcome::ok(&p);
        self.insert(p);
        answer
    }
}

fn duplicated_order() -> Outcome {
    Outcome::bad(
        "DUPLICATED_ORDER_ID",
        "이미 승인 및 취소가 진행된 중복된 주문번호 입니다. 다른 주문번호로 진행해주세요.",
    )
}

fn not_found_payment() -> Outcome {
    Outcome::err(
        StatusCode::NOT_FOUND,
        "NOT_FOUND_PAYMENT",
        "존재하지 않는 결제 정보 입니다.",
    )
}

impl Sim {
    pub fn new(config: SimConfig) -> Result<Self, InvalidFaults> {
        let faults = FaultControl::new(config.faults, config.seed)?;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:", config.secret_key));
        Ok(Self {
            inner: Arc::new(Inner {
                auth: format!("Basic {encoded}"),
                mid: config.mid,
                base_url: config.base_url.trim_end_matches('/').to_owned(),
                require_identity: config.require_identity,
                faults,
                books: Mutex::new(Books::default()),
                client_key: config.client_key,
                webhook_url: Mutex::new(config.webhook_url),
            }),
        })
    }

    /// Where deposits are announced from now on (`SimConfig::webhook_url`).
    pub fn set_webhook_url(&self, url: Option<String>) {
        *self
            .inner
            .webhook_url
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = url;
    }

    /// The live fault knobs (the same ones `PUT /admin/faults` changes).
    pub fn faults(&self) -> &FaultControl {
        &self.inner.faults
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.inner.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The payment of an order, as `GET /v1/payments/orders/{orderId}` would show it.
    pub fn payment_of_order(&self, order_id: &str) -> Option<Payment> {
        let books = self.books();
        let key = books.by_order.get(order_id)?;
        books.payments.get(key).cloned()
    }

    /// How many billing keys Toss holds. Toss documents no way to delete one, so nothing ever
    /// lowers this: a key Pier deleted stays here (docs/connectors/tosspayments.md).
    pub fn billing_keys(&self) -> usize {
        self.books().billing.len()
    }

    /// How many charges were processed with an approval for an order (more than 1 is a double
    /// charge).
    pub fn approved_charges(&self, order_id: &str) -> usize {
        self.books()
            .approved_charges
            .iter()
            .filter(|o| *o == order_id)
            .count()
    }

    /// Money arrives on the virtual account of `order_id`: the payment becomes `DONE`.
    pub fn deposit(&self, order_id: &str) -> bool {
        let mut books = self.books();
        let Some(key) = books.by_order.get(order_id).cloned() else {
            return false;
        };
        match books.payments.get_mut(&key) {
            Some(p) if p.status == "WAITING_FOR_DEPOSIT" => {
                p.status = "DONE".into();
                p.approved_at = Some(ts(now_kst()));
                if let Some(va) = p.virtual_account.as_mut() {
                    va.settlement_status = Some("COMPLETED".into());
                }
                let announced = p.clone();
                drop(books);
                self.announce(&announced);
                true
            }
            _ => false,
        }
    }

    /// Every Toss endpoint the connector uses (behind auth and faults), the admin routes and
    /// `/healthz`.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route(wire::KEY_IN, post(key_in))
            .route(wire::BILLING_AUTH_CARD, post(billing_auth))
            .route("/v1/billing/{billing_key}", post(billing_pay))
            .route("/v1/payments/{payment_key}/cancel", post(cancel))
            .route("/v1/payments/orders/{order_id}", get(by_order))
            .route("/v1/payments/{payment_key}", get(by_key))
            .route(wire::VIRTUAL_ACCOUNTS, post(virtual_account))
            .route(wire::CONFIRM, post(window::confirm))
            .route(wire::BILLING_AUTH_ISSUE, post(window::billing_issue))
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                authorize,
            ))
            .route_layer(axum::middleware::from_fn_with_state(
                self.inner.faults.clone(),
                faults::inject,
            ));
        let admin = Router::new()
            .route("/admin/faults", get(get_faults).put(put_faults))
            .route("/admin/orders/{order_id}", get(admin_order))
            .route("/admin/orders/{order_id}/deposit", put(admin_deposit))
            .route("/admin/webhook", put(window::put_webhook))
            .route("/admin/ledger", get(window::ledger))
            .route("/healthz", get(|| async { "ok" }))
            .route("/v1/payment", get(window::sdk_js))
            .route("/sim/window", get(window::page).post(window::submit));
        api.merge(admin)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.clone())
    }

    /// One POST: idempotency, then the handler under the books' lock, then the answer's fate.
    async fn post(
        &self,
        route: &str,
        headers: &HeaderMap,
        body: &[u8],
        handle: impl FnOnce(&mut Books, &Inner) -> Outcome,
    ) -> Response {
        let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
            None => None,
            Some(Ok(k)) if !k.is_empty() && k.chars().count() <= MAX_IDEMPOTENCY_KEY_CHARS => {
                Some(k.to_owned())
            }
            Some(_) => {
                return Outcome::invalid("잘못된 요청입니다. (Idempotency-Key)").into_response()
            }
        };
        let mut h = Sha256::new();
        h.update(route.as_bytes());
        h.update([0]);
        h.update(body);
        let digest: [u8; 32] = h.finalize().into();
        let outcome = {
            let mut books = self.books();
            if let Some(stored) = key.as_ref().and_then(|k| books.idempotent.get(k)) {
                // A replay is answered, never re-processed and never lost again.
                return if stored.digest == digest {
                    (
                        stored.status,
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        stored.body.clone(),
                    )
                        .into_response()
                } else {
                    Outcome::err(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "IDEMPOTENCY_KEY_REUSED",
                        "같은 멱등키로 다른 요청을 보낼 수 없습니다.",
                    )
                    .into_response()
                };
            }
            if books.full() {
                return Outcome::err(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "FAILED_INTERNAL_SYSTEM_PROCESSING",
                    "simulator record limit reached",
                )
                .into_response();
            }
            let outcome = handle(&mut books, &self.inner);
            if let (Some(k), After::Answer | After::Lose) = (key, outcome.after) {
                books.idempotent.insert(
                    k,
                    Stored {
                        digest,
                        status: outcome.status,
                        body: outcome.body.clone(),
                    },
                );
            }
            outcome
        };
        match outcome.after {
            After::Answer => outcome.into_response(),
            After::Hang | After::Lose => {
                self.inner.faults.hang().await;
                StatusCode::GATEWAY_TIMEOUT.into_response()
            }
        }
    }
}

/// 401 in Toss's shape unless the request carries the configured secret key.
async fn authorize(State(sim): State<Sim>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let ok = given.is_some_and(|g| {
        // Constant-time comparison: the simulator may run where timing is observable.
        let (a, b) = (g.as_bytes(), sim.inner.auth.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    });
    if ok {
        next.run(req).await
    } else {
        Outcome::err(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED_KEY",
            "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.",
        )
        .into_response()
    }
}

async fn key_in(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    sim.post(wire::KEY_IN, &headers, &body, |b, s| b.key_in(s, &body))
        .await
}

async fn billing_auth(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    sim.post(wire::BILLING_AUTH_CARD, &headers, &body, |b, s| {
        b.billing_auth(s, &body)
    })
    .await
}

async fn billing_pay(
    State(sim): State<Sim>,
    Path(billing_key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("/v1/billing/{billing_key}");
    sim.post(&route, &headers, &body, |b, s| {
        b.billing_pay(s, &billing_key, &body)
    })
    .await
}

async fn cancel(
    State(sim): State<Sim>,
    Path(payment_key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("/v1/payments/{payment_key}/cancel");
    sim.post(&route, &headers, &body, |b, _| {
        b.cancel(&payment_key, &body)
    })
    .await
}

async fn virtual_account(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    sim.post(wire::VIRTUAL_ACCOUNTS, &headers, &body, |b, s| {
        b.virtual_account(s, &body)
    })
    .await
}

async fn by_order(State(sim): State<Sim>, Path(order_id): Path<String>) -> Response {
    match sim.payment_of_order(&order_id) {
        Some(p) => Outcome::ok(&p).into_response(),
        None => not_found_payment().into_response(),
    }
}

async fn by_key(State(sim): State<Sim>, Path(payment_key): Path<String>) -> Response {
    let found = sim.books().payments.get(&payment_key).cloned();
    match found {
        Some(p) => Outcome::ok(&p).into_response(),
        None => not_found_payment().into_response(),
    }
}

async fn get_faults(State(sim): State<Sim>) -> Response {
    Json(sim.inner.faults.get()).into_response()
}

async fn put_faults(State(sim): State<Sim>, body: Bytes) -> Response {
    let faults: Faults = match parse(&body) {
        Ok(f) => f,
        Err(o) => return o.into_response(),
    };
    match sim.inner.faults.set(faults) {
        Ok(()) => Json(faults).into_response(),
        Err(e) => Outcome::invalid(e.0).into_response(),
    }
}

async fn admin_order(State(sim): State<Sim>, Path(order_id): Path<String>) -> Response {
    by_order(State(sim), Path(order_id)).await
}

async fn admin_deposit(State(sim): State<Sim>, Path(order_id): Path<String>) -> Response {
    if sim.deposit(&order_id) {
        by_order(State(sim), Path(order_id)).await
    } else {
        Outcome::bad(
            "NOT_WAITING_FOR_DEPOSIT",
            "no virtual account waiting for a deposit",
        )
        .into_response()
    }
}

/// Serve `sim` on `listener` until `shutdown` resolves. Held requests are let go at shutdown.
pub async fn serve(
    sim: Sim,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let faults = sim.inner.faults.clone();
    axum::serve(listener, sim.router())
        .with_graceful_shutdown(async move {
            shutdown.await;
            faults.release_hangs();
        })
        .await
}
