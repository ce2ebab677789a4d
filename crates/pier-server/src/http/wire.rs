//! Wire shapes of the official API: every key always present, `null` for absent strings, `0` for
//! absent timestamps, `[]` for empty arrays (spec §4, §5, §9.8). Keys come out sorted, as the
//! real service sends them.

use pier_store::{CancelEntry, Customer, Page, Payment};
use serde::Serialize;
use serde_json::{json, Value};

/// The Payment object as the official API sends it, serialized straight from the row (the hot
/// lookups skip building a `Value`). Fields in alphabetical order, like the real service.
#[derive(Serialize)]
pub struct PaymentWire<'a> {
    amount: i64,
    apply_num: &'a Option<String>,
    bank_code: &'a Option<String>,
    bank_name: &'a Option<String>,
    buyer_addr: &'a Option<String>,
    buyer_email: &'a Option<String>,
    buyer_name: &'a Option<String>,
    buyer_postcode: &'a Option<String>,
    buyer_tel: &'a Option<String>,
    cancel_amount: i64,
    cancel_history: Vec<CancelWire<'a>>,
    cancel_reason: &'a Option<String>,
    cancel_receipt_urls: Vec<&'a str>,
    cancelled_at: i64,
    card_code: &'a Option<String>,
    card_issuer_code: &'a Option<String>,
    card_issuer_name: &'a Option<String>,
    card_name: &'a Option<String>,
    card_number: &'a Option<String>,
    card_publisher_code: Option<&'a str>,
    card_publisher_name: Option<&'a str>,
    card_quota: i64,
    card_type: Option<i64>,
    cash_receipt_issued: bool,
    channel: &'a Option<String>,
    currency: &'a str,
    custom_data: &'a Option<String>,
    customer_uid: &'a Option<String>,
    customer_uid_usage: &'a Option<String>,
    deposit_history: [(); 0],
    emb_pg_provider: &'a Option<String>,
    escrow: bool,
    fail_reason: &'a Option<String>,
    failed_at: i64,
    imp_uid: &'a str,
    merchant_uid: &'a str,
    name: &'a Option<String>,
    paid_at: i64,
    pay_method: &'a Option<String>,
    pg_id: &'a Option<String>,
    pg_provider: &'a Option<String>,
    pg_tid: &'a Option<String>,
    promotion: Option<()>,
    receipt_url: &'a Option<String>,
    sandbox: bool,
    started_at: i64,
    status: &'a str,
    user_agent: &'a Option<String>,
    vbank_code: &'a Option<String>,
    vbank_date: i64,
    vbank_holder: &'a Option<String>,
    vbank_issued_at: i64,
    vbank_name: &'a Option<String>,
    vbank_num: &'a Option<String>,
}

#[derive(Serialize)]
pub struct CancelWire<'a> {
    amount: i64,
    cancellation_id: &'a str,
    cancelled_at: i64,
    pg_tid: &'a Option<String>,
    reason: &'a Option<String>,
    receipt_url: &'a Option<String>,
}

impl<'a> From<&'a CancelEntry> for CancelWire<'a> {
    fn from(c: &'a CancelEntry) -> Self {
        Self {
            amount: c.amount,
            cancellation_id: &c.cancellation_id,
            cancelled_at: c.cancelled_at,
            pg_tid: &c.pg_tid,
            reason: &c.reason,
            receipt_url: &c.receipt_url,
        }
    }
}

pub fn payment_wire(p: &Payment) -> PaymentWire<'_> {
    PaymentWire {
        amount: p.amount,
        apply_num: &p.apply_num,
        bank_code: &p.bank_code,
        bank_name: &p.bank_name,
        buyer_addr: &p.buyer_addr,
        buyer_email: &p.buyer_email,
        buyer_name: &p.buyer_name,
        buyer_postcode: &p.buyer_postcode,
        buyer_tel: &p.buyer_tel,
        cancel_amount: p.cancel_amount,
        cancel_history: p.cancel_history.iter().map(CancelWire::from).collect(),
        cancel_reason: &p.cancel_reason,
        cancel_receipt_urls: p
            .cancel_history
            .iter()
            .filter_map(|c| c.receipt_url.as_deref())
            .collect(),
        cancelled_at: p.cancelled_at,
        card_code: &p.card_code,
        card_issuer_code: &p.card_code,
        card_issuer_name: &p.card_name,
        card_name: &p.card_name,
        card_number: &p.card_number,
        card_publisher_code: None,
        card_publisher_name: None,
        card_quota: p.card_quota,
        card_type: p.card_type,
        cash_receipt_issued: p.cash_receipt_issued,
        channel: &p.channel,
        currency: &p.currency,
        custom_data: &p.custom_data,
        customer_uid: &p.customer_uid,
        customer_uid_usage: &p.customer_uid_usage,
        deposit_history: [],
        emb_pg_provider: &p.emb_pg_provider,
        escrow: p.escrow,
        fail_reason: &p.fail_reason,
        failed_at: p.failed_at,
        imp_uid: &p.imp_uid,
        merchant_uid: &p.merchant_uid,
        name: &p.name,
        paid_at: p.paid_at,
        pay_method: &p.pay_method,
        pg_id: &p.pg_id,
        pg_provider: &p.pg_provider,
        pg_tid: &p.pg_tid,
        promotion: None,
        receipt_url: &p.receipt_url,
        sandbox: p.sandbox,
        started_at: p.started_at,
        status: p.status.as_str(),
        user_agent: &p.user_agent,
        vbank_code: &p.vbank_code,
        vbank_date: p.vbank_date,
        vbank_holder: &p.vbank_holder,
        vbank_issued_at: p.vbank_issued_at,
        vbank_name: &p.vbank_name,
        vbank_num: &p.vbank_num,
    }
}

/// The Payment object as a `Value`, for responses that add to it.
pub fn payment(p: &Payment) -> Value {
    serde_json::to_value(payment_wire(p)).unwrap_or(Value::Null)
}

pub fn payments(ps: &[Payment]) -> Vec<PaymentWire<'_>> {
    ps.iter().map(payment_wire).collect()
}

/// `Paged<T>`: `{total, previous, next, list}`, page numbers 1-based, 0 when none.
#[derive(Serialize)]
pub struct Paged<S> {
    pub total: i64,
    pub previous: i64,
    pub next: i64,
    pub list: Vec<S>,
}

pub fn paged<'a, T, S: Serialize>(
    page: &'a Page<T>,
    page_no: i64,
    limit: i64,
    f: impl Fn(&'a T) -> S,
) -> Paged<S> {
    Paged {
        total: page.total,
        previous: if page_no > 1 { page_no - 1 } else { 0 },
        next: if page_no * limit < page.total {
            page_no + 1
        } else {
            0
        },
        list: page.items.iter().map(f).collect(),
    }
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
