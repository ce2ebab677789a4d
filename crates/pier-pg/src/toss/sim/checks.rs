//! Request fields checked as Toss checks them, before anything is processed.

use super::answer::Outcome;
use super::{MAX_INSTALLMENT_MONTHS, MAX_ORDER_NAME_CHARS, MIN_CARD_AMOUNT};
use crate::testpg::cards::{self, Behaviour};
use crate::CardData;
use pier_domain::{Birth, CardNumber, Expiry, Pwd2Digit};

pub(super) fn check_order(order_id: &str, order_name: &str, amount: i64) -> Result<(), Outcome> {
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

pub(super) fn check_plan(plan: Option<i64>) -> Result<i64, Outcome> {
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

pub(super) fn check_tax_free(tax_free: Option<i64>, amount: i64) -> Result<i64, Outcome> {
    match tax_free.unwrap_or(0) {
        t if (0..=amount).contains(&t) => Ok(t),
        _ => Err(Outcome::invalid("잘못된 요청입니다. (taxFreeAmount)")),
    }
}

/// The order side of a card charge (key-in or billing key), checked in Toss's order: the order,
/// the minimum card amount, then the installment plan and the tax-free amount. `(plan, tax_free)`.
pub(super) fn check_card_charge(
    order_id: &str,
    order_name: &str,
    amount: i64,
    plan: Option<i64>,
    tax_free: Option<i64>,
) -> Result<(i64, i64), Outcome> {
    check_order(order_id, order_name, amount)?;
    if amount < MIN_CARD_AMOUNT {
        return Err(Outcome::bad(
            "BELOW_MINIMUM_AMOUNT",
            "신용카드는 결제금액이 100원 이상부터 결제가 가능합니다.",
        ));
    }
    match (check_plan(plan), check_tax_free(tax_free, amount)) {
        (Ok(p), Ok(t)) => Ok((p, t)),
        (Err(o), _) | (_, Err(o)) => Err(o),
    }
}

/// The card fields of key-in and billing issuance, checked as Toss would before any attempt.
pub(super) fn check_card(
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

pub(super) fn card_type_name(card_type: i64) -> &'static str {
    if card_type == 1 {
        "체크"
    } else {
        "신용"
    }
}

pub(super) fn owner_type(card: &CardData) -> &'static str {
    if card.birth.as_ref().is_some_and(Birth::is_business) {
        "법인"
    } else {
        "개인"
    }
}
