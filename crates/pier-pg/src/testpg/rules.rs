//! What the PG checks and decides around its ledger: the bounds of a request, the issuer's
//! verdict on a charge, the refusals, and the answer to a charge it already processed. Plain
//! functions of their inputs: no engine, no state.

use super::cards::{self, Behaviour, Decline, Issuer};
use super::ledger::{OrderRec, OrderState, PayMethod};
use crate::{Approval, BillingKey, Mid, Order, PgError};

/// Amounts above this are refused before any attempt (everything is bounded).
pub const MAX_AMOUNT_KRW: i64 = 10_000_000_000;
/// Longest id (order id, merchant_uid, customer_uid, cancellation id) the PG accepts.
const MAX_ID_CHARS: usize = 128;
const MAX_TEXT_CHARS: usize = 1_000;

/// A connector-facing failure: a PG answer, or no answer at all (the timeout and lost-response
/// cards). Each transport turns `NoAnswer` into its own silence: the in-process connector waits
/// out its deadline, pgsim holds the HTTP request open.
#[derive(Debug)]
pub(crate) enum Fail {
    Pg(PgError),
    NoAnswer,
}

impl From<PgError> for Fail {
    fn from(e: PgError) -> Self {
        Fail::Pg(e)
    }
}

pub(crate) type EngineResult<T> = Result<T, Fail>;

/// What the issuer decided about one charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not processed and not answered.
    Hang,
    Decline(Decline),
    /// Approved; with `lose_answer` the answer never leaves the PG.
    Approve {
        lose_answer: bool,
    },
}

pub(crate) fn verdict(behaviour: Behaviour, holder: Option<Decline>, with_key: bool) -> Verdict {
    match (behaviour, holder) {
        (Behaviour::Timeout, _) => Verdict::Hang,
        (Behaviour::Decline { decline, .. }, _) => Verdict::Decline(decline),
        (Behaviour::KeyChargesDecline { decline }, _) if with_key => Verdict::Decline(decline),
        (_, Some(decline)) => Verdict::Decline(decline),
        (Behaviour::LoseResponse, None) => Verdict::Approve { lose_answer: true },
        _ => Verdict::Approve { lose_answer: false },
    }
}

/// Why a billing key cannot be issued for this card, if it cannot.
pub(crate) fn issue_refusal(behaviour: Behaviour, holder: Option<Decline>) -> Option<PgError> {
    match behaviour {
        Behaviour::InvalidNumber => Some(cards::invalid_number()),
        Behaviour::Decline {
            decline,
            issue_ok: false,
        } => Some(decline.issue_rejected()),
        Behaviour::IssueFails => Some(cards::NO_RECURRING.issue_rejected()),
        _ => holder.map(Decline::issue_rejected),
    }
}

/// The card facts a charge reports back.
#[derive(Clone, Debug)]
pub(crate) struct CardFacts {
    pub code: String,
    pub name: String,
    pub masked: String,
    pub card_type: i64,
}

impl CardFacts {
    pub fn new(issuer: Issuer, masked: String) -> Self {
        Self {
            code: issuer.card_code.to_owned(),
            name: issuer.card_name().to_owned(),
            masked,
            card_type: issuer.card_type,
        }
    }

    pub(crate) fn from_key(key: &BillingKey) -> Self {
        Self {
            code: key.card_code.clone().unwrap_or_default(),
            name: key.card_name.clone().unwrap_or_default(),
            masked: key.card_number.clone().unwrap_or_default(),
            card_type: key.card_type.unwrap_or(0),
        }
    }
}

/// What is being charged, beyond the order.
pub(crate) struct ChargeSpec {
    pub method: PayMethod,
    pub card: Option<CardFacts>,
    pub bank_code: Option<String>,
    pub quota: i64,
    /// The billing key charged (or issued together with this payment).
    pub billing_key: Option<String>,
    /// Report `billing_key` in the approval (window billing with a first payment).
    pub report_key: bool,
}

pub(crate) fn rejected(code: &str, message: impl Into<String>) -> PgError {
    PgError::Rejected {
        code: code.into(),
        message: message.into(),
    }
}

pub(crate) fn check_id(field: &str, value: &str) -> Result<(), PgError> {
    if value.trim().is_empty() || value.chars().count() > MAX_ID_CHARS {
        return Err(rejected(
            "INVALID_REQUEST",
            format!("{field}: must be 1 to {MAX_ID_CHARS} characters"),
        ));
    }
    Ok(())
}

pub(crate) fn check_text(field: &str, value: Option<&str>) -> Result<(), PgError> {
    match value {
        Some(v) if v.chars().count() > MAX_TEXT_CHARS => Err(rejected(
            "INVALID_REQUEST",
            format!("{field}: must be at most {MAX_TEXT_CHARS} characters"),
        )),
        _ => Ok(()),
    }
}

/// Checks every order carries before the PG looks at it. `allow_zero` only for window billing-key
/// issuance, the one place an amount of 0 exists.
pub(crate) fn check_order(order: &Order, allow_zero: bool) -> Result<(), PgError> {
    check_id("order_id", &order.order_id)?;
    check_id("merchant_uid", &order.merchant_uid)?;
    check_text("name", order.name.as_deref())?;
    check_text("buyer_name", order.buyer_name.as_deref())?;
    let min = if allow_zero { 0 } else { 1 };
    if !(min..=MAX_AMOUNT_KRW).contains(&order.amount_krw) {
        return Err(rejected("INVALID_AMOUNT", "결제금액이 올바르지 않습니다."));
    }
    if !(0..=order.amount_krw).contains(&order.tax_free_krw) {
        return Err(rejected(
            "INVALID_TAX_FREE",
            "면세금액이 올바르지 않습니다.",
        ));
    }
    Ok(())
}

pub(crate) fn duplicate_order() -> PgError {
    rejected("DUPLICATE_ORDER_ID", "이미 사용된 주문번호입니다.")
}

pub(crate) fn unknown_key() -> PgError {
    rejected("UNKNOWN_BILLING_KEY", "등록되지 않은 빌링키입니다.")
}

pub(crate) fn cancel_exceeds() -> PgError {
    PgError::Declined {
        code: "CANCEL_AMOUNT_EXCEEDED".into(),
        message:
            "결제취소에 실패하였습니다.(requested cancel amount is bigger than cancelable amount)"
                .into(),
    }
}

/// The answer to a charge whose `order_id` the PG already processed: the same answer again, never
/// a second charge. A different order under the same id is refused.
pub(crate) fn replay_charge(rec: &OrderRec, mid: &Mid, order: &Order) -> Result<Approval, PgError> {
    if rec.mid != mid.0
        || rec.merchant_uid != order.merchant_uid
        || rec.amount_krw != order.amount_krw
        || rec.method == PayMethod::Vbank
    {
        return Err(duplicate_order());
    }
    match (&rec.state, &rec.approval) {
        (OrderState::Approved, Some(approval)) => Ok(approval.clone()),
        (OrderState::Declined { code, message }, _) => Err(PgError::Declined {
            code: code.clone(),
            message: message.clone(),
        }),
        (OrderState::Voided, _) => Err(rejected("ORDER_VOIDED", "망취소된 거래입니다.")),
        _ => Err(duplicate_order()),
    }
}
