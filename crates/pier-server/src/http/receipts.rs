//! Cash receipts: `POST`/`GET`/`DELETE /receipts/{imp_uid}` and
//! `POST`/`GET`/`DELETE /receipts/external/{merchant_uid}` (OAS `ReceiptAnnotation`,
//! `ExternalReceiptAnnotation`, plus `status`: `issued` | `cancelled`).
//!
//! `identifier` is personal data: it is validated and masked by the engine, never echoed.
//! Buyer and company fields some PGs need are checked for length and not kept.

use super::error::{ApiResult, Envelope};
use super::params::{Body, Params};
use super::{AppState, Merchant};
use crate::engine::receipts::{ReceiptInput, IDENTIFIER_MAX_CHARS};
use axum::extract::{Path, State};
use axum::Extension;
use pier_domain::MerchantUid;
use pier_store::CashReceipt;
use serde_json::{json, Value};

fn receipt_json(r: &CashReceipt, external: bool) -> Value {
    let mut v = json!({
        "receipt_tid": r.receipt_tid,
        "apply_num": r.apply_num,
        "type": r.receipt_type,
        "amount": r.amount,
        "vat": r.vat,
        "receipt_url": r.receipt_url,
        "applied_at": r.applied_at,
        "cancelled_at": r.cancelled_at,
        "status": r.status,
    });
    if external {
        v["merchant_uid"] = json!(r.merchant_uid);
    } else {
        v["imp_uid"] = json!(r.imp_uid);
    }
    v
}

fn input(p: &Params) -> ApiResult<ReceiptInput> {
    // Accepted for the PGs that need them (OAS), length-checked, not stored.
    for (k, max) in [
        ("buyer_name", 16),
        ("buyer_email", 64),
        ("buyer_tel", 16),
        ("company_tel", 16),
        ("company_name", 40),
        ("corp_reg_no", 16),
        ("channel_key", 55),
    ] {
        p.str_opt(k, max)?;
    }
    if let Some(t) = p.str_opt("product_type", 8)? {
        if t != "real" && t != "digital" {
            return Err(super::error::ApiError::bad_request(
                "product_type must be real or digital",
            ));
        }
    }
    // `vat` is the deprecated spelling of `vat_amount` (OAS).
    let vat_amount = match p.money_opt("vat_amount")? {
        Some(v) => Some(v),
        None => p.money_opt("vat")?,
    };
    Ok(ReceiptInput {
        identifier: p.str_req("identifier", IDENTIFIER_MAX_CHARS)?,
        identifier_type: p.str_opt("identifier_type", 8)?,
        receipt_type: p.str_opt("type", 8)?,
        tax_free: p.money_opt("tax_free")?,
        vat_amount,
        amount: None,
        name: None,
        pay_method: None,
    })
}

pub async fn issue(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(imp_uid): Path<String>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let i = input(&p)?;
    let r = engine.issue_payment_receipt(&m, &imp_uid, i).await?;
    Ok(Envelope::ok(receipt_json(&r, false)))
}

pub async fn get_one(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(imp_uid): Path<String>,
) -> ApiResult<Envelope<Value>> {
    let r = engine.get_payment_receipt(&m, &imp_uid).await?;
    Ok(Envelope::ok(receipt_json(&r, false)))
}

pub async fn cancel(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(imp_uid): Path<String>,
) -> ApiResult<Envelope<Value>> {
    let r = engine.cancel_payment_receipt(&m, &imp_uid).await?;
    Ok(Envelope::ok(receipt_json(&r, false)))
}

pub async fn issue_external(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(merchant_uid): Path<String>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let uid = MerchantUid::parse(&merchant_uid)?;
    let mut i = input(&p)?;
    // An integer greater than 0 (a JSON string or fraction is refused).
    i.amount = Some(p.amount_req("amount")?.krw());
    i.name = p.str_opt("name", 40)?;
    i.pay_method = p.str_opt("pay_method", 8)?;
    if let Some(pm) = &i.pay_method {
        if pm != "trans" && pm != "vbank" {
            return Err(super::error::ApiError::bad_request(
                "pay_method must be trans or vbank",
            ));
        }
    }
    let r = engine.issue_external_receipt(&m, uid.as_str(), i).await?;
    Ok(Envelope::ok(receipt_json(&r, true)))
}

pub async fn get_external(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(merchant_uid): Path<String>,
) -> ApiResult<Envelope<Value>> {
    let r = engine.get_external_receipt(&m, &merchant_uid).await?;
    Ok(Envelope::ok(receipt_json(&r, true)))
}

pub async fn cancel_external(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(merchant_uid): Path<String>,
) -> ApiResult<Envelope<Value>> {
    let r = engine.cancel_external_receipt(&m, &merchant_uid).await?;
    Ok(Envelope::ok(receipt_json(&r, true)))
}
