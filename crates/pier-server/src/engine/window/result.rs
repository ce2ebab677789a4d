//! The result a window records for its attempt: what the payment was when the window ended,
//! and why it failed. Kept with the checkout row, so a repeated return shows the same result
//! and what the browser sees is what was recorded. The callback object (spec §3) the browser
//! gets is built from it in `http/window_result.rs`.
//!
//! Stored as JSON in `checkout_sessions.result`. Its field names are the callback's, so a row
//! recorded before the result was typed (the whole callback object) reads as one of these: the
//! keys only the callback has (`imp_success`, `pg_type`) are ignored.

use pier_domain::PaymentStatus;
use pier_store::{CheckoutSession, Payment};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowResult {
    /// Paid, or a virtual account issued, and no error.
    pub success: bool,
    pub imp_uid: String,
    pub merchant_uid: String,
    pub status: PaymentStatus,
    pub pay_method: Option<String>,
    /// The amount when the payment is paid, else 0.
    pub paid_amount: i64,
    pub currency: String,
    pub name: Option<String>,
    pub pg_provider: Option<String>,
    pub pg_tid: Option<String>,
    pub buyer_name: Option<String>,
    pub buyer_email: Option<String>,
    pub buyer_tel: Option<String>,
    pub buyer_addr: Option<String>,
    pub buyer_postcode: Option<String>,
    pub custom_data: Option<String>,
    pub paid_at: i64,
    pub receipt_url: Option<String>,
    pub apply_num: Option<String>,
    pub card_name: Option<String>,
    pub card_number: Option<String>,
    pub card_quota: i64,
    pub bank_name: Option<String>,
    pub vbank_num: Option<String>,
    pub vbank_name: Option<String>,
    pub vbank_holder: Option<String>,
    pub vbank_date: i64,
    /// Both set for a failure (a window code of `codes` or the PG's own), both `None` otherwise.
    pub error_code: Option<String>,
    pub error_msg: Option<String>,
}

impl WindowResult {
    /// The result of a recorded payment; `error` (code, message) for a failure.
    pub fn of(p: &Payment, error: Option<(&str, &str)>) -> Self {
        let vbank_issued = p.status == PaymentStatus::Ready && p.vbank_num.is_some();
        let paid = p.status == PaymentStatus::Paid;
        Self {
            success: error.is_none() && (paid || vbank_issued),
            imp_uid: p.imp_uid.clone(),
            merchant_uid: p.merchant_uid.clone(),
            status: p.status,
            pay_method: p.pay_method.clone(),
            paid_amount: if paid { p.amount } else { 0 },
            currency: p.currency.clone(),
            name: p.name.clone(),
            pg_provider: p.pg_provider.clone(),
            pg_tid: p.pg_tid.clone(),
            buyer_name: p.buyer_name.clone(),
            buyer_email: p.buyer_email.clone(),
            buyer_tel: p.buyer_tel.clone(),
            buyer_addr: p.buyer_addr.clone(),
            buyer_postcode: p.buyer_postcode.clone(),
            custom_data: p.custom_data.clone(),
            paid_at: p.paid_at,
            receipt_url: p.receipt_url.clone(),
            apply_num: p.apply_num.clone(),
            card_name: p.card_name.clone(),
            card_number: p.card_number.clone(),
            card_quota: p.card_quota,
            bank_name: p.bank_name.clone(),
            vbank_num: p.vbank_num.clone(),
            vbank_name: p.vbank_name.clone(),
            vbank_holder: p.vbank_holder.clone(),
            vbank_date: p.vbank_date,
            error_code: error.map(|(c, _)| c.to_owned()),
            error_msg: error.map(|(_, m)| m.to_owned()),
        }
    }

    /// The result recorded with a checkout row, if the window has ended.
    pub fn recorded(c: &CheckoutSession) -> Option<Self> {
        c.result
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
    }

    /// The text stored in the checkout row.
    pub(crate) fn stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
