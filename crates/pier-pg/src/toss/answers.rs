//! What the connector reads: Toss's Payment and billing authorization as Pier's `Approval`,
//! `Inquiry` and `BillingKey`, with card numbers masked as Pier shows them.

use super::codes;
use super::wire::{BillingAuth, Payment, TossError};
use crate::{Approval, BillingKey, Inquiry, PgError, PgResult};

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
        card_type: card.and_then(|c| card_type_of(c.card_type.as_deref())),
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

/// Toss's card type as i'mport's `card_type`: 0 credit (신용), 1 check (체크), else unknown.
fn card_type_of(name: Option<&str>) -> Option<i64> {
    match name {
        Some("신용") => Some(0),
        Some("체크") => Some(1),
        _ => None,
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
        "ABORTED" | "EXPIRED" => Err(declined_of(p)),
        other => Err(PgError::Unknown(format!(
            "Toss answered a charge with status {other}"
        ))),
    }
}

/// An aborted or expired payment as Pier's `Declined`: its `failure`, else its status.
pub(super) fn declined_of(p: &Payment) -> PgError {
    let f = p.failure.clone().unwrap_or_else(|| TossError {
        code: p.status.clone(),
        message: "결제가 승인되지 않았습니다.".into(),
    });
    PgError::Declined {
        code: f.code,
        message: f.message,
    }
}

/// A Payment as Pier's `Inquiry` (trait doc): cancelled in full is `Voided`; a waiting virtual
/// account has moved no money yet, so it is `NotFound` until its deposit.
pub(super) fn inquiry_of(p: &Payment) -> PgResult<Inquiry> {
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
        card_type: card.and_then(|c| card_type_of(c.card_type.as_deref())),
    })
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
}
