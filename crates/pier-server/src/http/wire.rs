//! Wire shapes of the official API: every key always present, `null` for absent strings, `0` for
//! absent timestamps, `[]` for empty arrays (spec §4, §5, §9.8). Keys come out sorted, as the
//! real service sends them.

use pier_store::{Customer, Page, Payment};
use serde_json::{json, Value};

pub fn payment(p: &Payment) -> Value {
    let history: Vec<Value> = p
        .cancel_history
        .iter()
        .map(|c| {
            json!({
                "pg_tid": c.pg_tid,
                "amount": c.amount,
                "cancelled_at": c.cancelled_at,
                "reason": c.reason,
                "receipt_url": c.receipt_url,
                "cancellation_id": c.cancellation_id,
            })
        })
        .collect();
    let receipts: Vec<Value> = p
        .cancel_history
        .iter()
        .filter_map(|c| c.receipt_url.clone())
        .map(Value::String)
        .collect();
    json!({
        "imp_uid": p.imp_uid,
        "merchant_uid": p.merchant_uid,
        "pay_method": p.pay_method,
        "channel": p.channel,
        "pg_provider": p.pg_provider,
        "emb_pg_provider": p.emb_pg_provider,
        "pg_tid": p.pg_tid,
        "pg_id": p.pg_id,
        "escrow": p.escrow,
        "apply_num": p.apply_num,
        "bank_code": p.bank_code,
        "bank_name": p.bank_name,
        "card_code": p.card_code,
        "card_name": p.card_name,
        "card_issuer_code": p.card_code,
        "card_issuer_name": p.card_name,
        "card_publisher_code": Value::Null,
        "card_publisher_name": Value::Null,
        "card_quota": p.card_quota,
        "card_number": p.card_number,
        "card_type": p.card_type,
        "vbank_code": p.vbank_code,
        "vbank_name": p.vbank_name,
        "vbank_num": p.vbank_num,
        "vbank_holder": p.vbank_holder,
        "vbank_date": p.vbank_date,
        "vbank_issued_at": p.vbank_issued_at,
        "name": p.name,
        "amount": p.amount,
        "cancel_amount": p.cancel_amount,
        "currency": p.currency,
        "buyer_name": p.buyer_name,
        "buyer_email": p.buyer_email,
        "buyer_tel": p.buyer_tel,
        "buyer_addr": p.buyer_addr,
        "buyer_postcode": p.buyer_postcode,
        "custom_data": p.custom_data,
        "user_agent": p.user_agent,
        "status": p.status,
        "started_at": p.started_at,
        "paid_at": p.paid_at,
        "failed_at": p.failed_at,
        "cancelled_at": p.cancelled_at,
        "fail_reason": p.fail_reason,
        "cancel_reason": p.cancel_reason,
        "receipt_url": p.receipt_url,
        "cancel_history": history,
        "cancel_receipt_urls": receipts,
        "cash_receipt_issued": p.cash_receipt_issued,
        "customer_uid": p.customer_uid,
        "customer_uid_usage": p.customer_uid_usage,
        "sandbox": p.sandbox,
        "deposit_history": Vec::<Value>::new(),
        "promotion": Value::Null,
    })
}

pub fn payments(ps: &[Payment]) -> Value {
    Value::Array(ps.iter().map(payment).collect())
}

/// `Paged<T>`: `{total, previous, next, list}`, page numbers 1-based, 0 when none.
pub fn paged<T>(page: &Page<T>, page_no: i64, limit: i64, f: impl Fn(&T) -> Value) -> Value {
    let previous = if page_no > 1 { page_no - 1 } else { 0 };
    let next = if page_no * limit < page.total {
        page_no + 1
    } else {
        0
    };
    json!({
        "total": page.total,
        "previous": previous,
        "next": next,
        "list": page.items.iter().map(f).collect::<Vec<_>>(),
    })
}

pub fn customer(c: &Customer) -> Value {
    json!({
        "customer_uid": c.customer_uid,
        "pg_provider": c.pg_provider,
        "pg_id": c.pg_id,
        "sandbox": c.sandbox,
        "customer_id": c.customer_id,
        "card_name": c.card_name,
        "card_code": c.card_code,
        "card_issuer_code": c.card_code,
        "card_issuer_name": c.card_name,
        "card_publisher_code": Value::Null,
        "card_publisher_name": Value::Null,
        "card_number": c.card_number,
        "card_type": c.card_type,
        "customer_name": c.customer_name,
        "customer_tel": c.customer_tel,
        "customer_email": c.customer_email,
        "customer_addr": c.customer_addr,
        "customer_postcode": c.customer_postcode,
        "inserted": c.inserted,
        "updated": c.updated,
    })
}
