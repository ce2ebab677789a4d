//! Virtual accounts: `POST /vbanks`, `PUT`/`DELETE /vbanks/{imp_uid}` (spec §3.8), the simulated
//! deposit of test channels (`POST /testpg/vbank/deposit`), and pgsim's deposit notifications
//! (`POST /pg/pgsim/notify`).
//!
//! pgsim notifications carry the shared secret in `x-pgsim-secret`: the lowercase hex of
//! HMAC-SHA256(server key, "pier pgsim notify") (`pgsim_notify_secret`; the CLI prints it with
//! `pier pgsim-notify-secret`). Point pgsim at `http://<pier>/pg/pgsim/notify` with that secret.
//! A notification is only a hint: Pier asks the PG (`inquire`) before it marks a payment paid,
//! and only when the event's MID and amount match the account.

use super::error::{ApiError, ApiResult, Envelope};
use super::params::Body;
use super::subscribe::order_input;
use super::{wire, AppState, Merchant};
use crate::engine::vbanks::VbankInput;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Extension;
use serde_json::{json, Value};

/// The secret pgsim must send with its notifications to this server.
pub fn pgsim_notify_secret(server_key: &[u8; 32]) -> String {
    hex::encode(crate::keys::legacy_hmac_kdf(
        server_key,
        b"pier pgsim notify",
    ))
}

pub async fn issue(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let o = order_input(&p)?;
    let input = VbankInput {
        merchant_uid: o.merchant_uid,
        amount: o.amount,
        tax_free: o.tax_free,
        vat_amount: o.vat_amount,
        vbank_code: p.str_req("vbank_code", 10)?,
        vbank_due: p
            .int_opt("vbank_due")?
            .ok_or_else(|| ApiError::bad_request("vbank_due is required (unix seconds)"))?,
        vbank_holder: p.str_opt("vbank_holder", 16)?,
        name: o.name,
        buyer: o.buyer,
        custom_data: o.custom_data,
        notice_urls: o.notice_urls,
        pg: o.pg,
        escrow: p.bool_opt("escrow")?.unwrap_or(false),
    };
    let paid = engine.issue_vbank(&m, input).await?;
    Ok(Envelope::ok(wire::payment(&paid)))
}

pub async fn update(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(imp_uid): Path<String>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let amount = match p.int_opt("amount")? {
        Some(a) => Some(pier_domain::Amount::new(a, "amount")?),
        None => None,
    };
    let due = p.int_opt("vbank_due")?;
    if amount.is_none() && due.is_none() {
        return Err(ApiError::bad_request("amount or vbank_due is required"));
    }
    let imp_uid = super::payments::path_imp_uid(imp_uid)?;
    let r = engine.update_vbank(&m, &imp_uid, amount, due).await?;
    Ok(Envelope::ok(wire::payment(&r)))
}

pub async fn revoke(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(imp_uid): Path<String>,
) -> ApiResult<Envelope<Value>> {
    let imp_uid = super::payments::path_imp_uid(imp_uid)?;
    let r = engine.revoke_vbank(&m, &imp_uid).await?;
    Ok(Envelope::ok(wire::payment(&r)))
}

/// `POST /testpg/vbank/deposit` `{imp_uid, amount?}`: the buyer's transfer, simulated.
pub async fn testpg_deposit(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let imp_uid = p.str_req("imp_uid", 64)?;
    let amount = p.money_opt("amount")?;
    let r = engine.testpg_deposit(&m, &imp_uid, amount).await?;
    Ok(Envelope::ok(wire::payment(&r)))
}

/// `POST /pg/pgsim/notify`: a `PgEvent` from a pgsim, authenticated by the shared secret.
pub async fn pgsim_notify(
    State(engine): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Envelope<Value>> {
    use subtle::ConstantTimeEq;
    let expected = pgsim_notify_secret(&engine.config().server_key);
    let given = headers
        .get(pier_pg::pgsim::NOTIFY_SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(ApiError::unauthorized());
    }
    let ev: pier_pg::PgEvent = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a PG event: {e}")))?;
    let recorded = engine.on_pg_event(&ev, true).await?;
    Ok(Envelope::ok(json!({
        "recorded": recorded.is_some(),
        "imp_uid": recorded.map(|p| p.imp_uid),
    })))
}
