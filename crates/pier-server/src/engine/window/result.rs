//! The callback object (spec §3) a window records for its attempt: kept with the checkout row,
//! so a repeated return shows the same result and what the browser sees is what was recorded.

use pier_domain::PaymentStatus;
use pier_store::Payment;
use serde_json::{json, Value};

/// The callback object (spec §3) of a recorded payment; `error` for a failure.
pub fn result_of(p: &Payment, error: Option<(&str, &str)>) -> Value {
    let vbank_issued = p.status == PaymentStatus::Ready && p.vbank_num.is_some();
    let success = error.is_none() && (p.status == PaymentStatus::Paid || vbank_issued);
    let mut r = json!({
        "success": success,
        "imp_success": success,
        "imp_uid": p.imp_uid,
        "merchant_uid": p.merchant_uid,
        "pay_method": p.pay_method,
        "paid_amount": if p.status == PaymentStatus::Paid { p.amount } else { 0 },
        "currency": p.currency,
        "status": p.status,
        "name": p.name,
        "pg_provider": p.pg_provider,
        "pg_tid": p.pg_tid,
        "pg_type": "payment",
        "buyer_name": p.buyer_name,
        "buyer_email": p.buyer_email,
        "buyer_tel": p.buyer_tel,
        "buyer_addr": p.buyer_addr,
        "buyer_postcode": p.buyer_postcode,
        "custom_data": p.custom_data,
        "paid_at": p.paid_at,
        "receipt_url": p.receipt_url,
        "apply_num": p.apply_num,
        "card_name": p.card_name,
        "card_number": p.card_number,
        "card_quota": p.card_quota,
        "bank_name": p.bank_name,
        "vbank_num": p.vbank_num,
        "vbank_name": p.vbank_name,
        "vbank_holder": p.vbank_holder,
        "vbank_date": p.vbank_date,
        "error_code": Value::Null,
        "error_msg": Value::Null,
    });
    if let Some((code, msg)) = error {
        r["error_code"] = json!(code);
        r["error_msg"] = json!(msg);
    }
    r
}
