//! Refunds and amount pre-registration: `POST /payments/cancel`,
//! `POST`/`PUT /payments/prepare`, `GET /payments/prepare/{merchant_uid}` (spec §3.2, §3.3).

use super::error::{ApiError, ApiResult, Envelope};
use super::params::Body;
use super::{wire, AppState, Merchant};
use crate::engine::refunds::{CancelInput, RefundAccount};
use axum::extract::{Path, State};
use axum::Extension;
use pier_domain::MerchantUid;
use pier_store::Prepared;
use serde_json::{json, Value};

pub async fn cancel(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    headers: axum::http::HeaderMap,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let imp_uid = p.str_opt("imp_uid", 64)?;
    let merchant_uid = p.str_opt("merchant_uid", 40)?;
    if imp_uid.is_none() && merchant_uid.is_none() {
        return Err(ApiError::bad_request("imp_uid or merchant_uid is required"));
    }
    // 0 means the whole remaining balance, as absence does.
    let amount = match p.money_opt("amount")? {
        Some(0) | None => None,
        Some(a) => Some(pier_domain::Amount::new(a, "amount")?),
    };
    let checksum = p.money_opt("checksum")?;
    let refund_bank = p.str_opt("refund_bank", 10)?;
    let input = CancelInput {
        imp_uid,
        merchant_uid,
        amount,
        tax_free: p.part_opt("tax_free")?,
        vat_amount: p.part_opt("vat_amount")?,
        checksum,
        reason: p.str_opt("reason", 200)?,
        refund: RefundAccount {
            holder: p.str_opt("refund_holder", 32)?,
            bank: refund_bank,
            account: p.str_opt("refund_account", 30)?,
            tel: p.str_opt("refund_tel", 16)?,
        },
        enable_webhook: p.bool_opt("enable_webhook")?.unwrap_or(false),
        idempotency_key: headers
            .get(super::idempotency::HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let paid = engine.cancel_payment(&m, input).await?;
    Ok(Envelope::ok(wire::payment(&paid)))
}

fn prepared(p: &Prepared) -> Value {
    json!({"merchant_uid": p.merchant_uid, "amount": p.amount, "currency": p.currency})
}

fn prepare_fields(
    p: &super::params::Params,
) -> ApiResult<(MerchantUid, pier_domain::Amount, Option<String>)> {
    let merchant_uid = MerchantUid::from_string(p.str_req("merchant_uid", 40)?)?;
    let amount = p.amount_req("amount")?;
    let currency = p.str_opt("currency", 3)?.map(|c| c.to_ascii_uppercase());
    if let Some(c) = &currency {
        if c != "KRW" {
            return Err(ApiError::bad_request(format!(
                "currency {c} is not supported (KRW only)"
            )));
        }
    }
    Ok((merchant_uid, amount, currency))
}

pub async fn prepare_create(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let (uid, amount, currency) = prepare_fields(&p)?;
    let r = engine.prepare_create(&m, uid, amount, currency).await?;
    Ok(Envelope::ok(prepared(&r)))
}

pub async fn prepare_update(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let (uid, amount, currency) = prepare_fields(&p)?;
    let r = engine.prepare_update(&m, &uid, amount, currency).await?;
    Ok(Envelope::ok(prepared(&r)))
}

pub async fn prepare_get(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(merchant_uid): Path<String>,
) -> ApiResult<Envelope<Value>> {
    // No pre-registration has a malformed merchant_uid: answered as an unknown one always was.
    let merchant_uid = MerchantUid::from_string(merchant_uid).map_err(|_| {
        crate::engine::Error::NotFound(crate::engine::prepare::MSG_NOT_PREPARED.into())
    })?;
    let r = engine.prepare_get(&m, &merchant_uid).await?;
    Ok(Envelope::ok(prepared(&r)))
}
