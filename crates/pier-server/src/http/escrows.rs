//! `POST`/`PUT`/`GET /escrows/logis/{imp_uid}`: delivery information of an escrow payment
//! (OAS `EscrowLogisAnnotation`). `sender`, `receiver` and `logis` are objects (JSON, or
//! `sender[name]=…` in a form).

use super::error::{ApiError, ApiResult, Envelope};
use super::params::{Body, Params};
use super::{AppState, Merchant};
use crate::engine::escrows::LogisInput;
use axum::extract::{Path, State};
use axum::Extension;
use pier_store::EscrowLogis;
use serde_json::{json, Value};

fn logis_json(e: &EscrowLogis) -> Value {
    json!({
        "company": e.company,
        "invoice": e.invoice,
        "sent_at": e.sent_at,
        "applied_at": e.applied_at,
    })
}

fn object(p: &Params, k: &str) -> ApiResult<Params> {
    p.raw(k)
        .and_then(|v| p.nested(v))
        .ok_or_else(|| ApiError::bad_request(format!("{k} is required (an object)")))
}

fn input(p: &Params) -> ApiResult<LogisInput> {
    // Sender and receiver: checked for shape and length (OAS field names), never kept.
    for who in ["sender", "receiver"] {
        let o = object(p, who)?;
        o.str_req("name", 40)?;
        o.str_opt("tel", 20)?;
        o.str_opt("addr", 200)?;
        o.str_opt("postcode", 10)?;
        o.str_opt("relationship", 20)?;
    }
    let l = object(p, "logis")?;
    // Courier codes (PortOne's table: "CJGLS", "EPOST", …) and invoice numbers: short, plain.
    let company = l.str_req("company", 20)?;
    let invoice = l.str_req("invoice", 40)?;
    let plain = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !plain(&company) || !plain(&invoice) {
        return Err(ApiError::bad_request(
            "logis.company and logis.invoice must be letters, digits, '-' or '_'",
        ));
    }
    let sent_at = l
        .int_opt("sent_at")?
        .ok_or_else(|| ApiError::bad_request("logis.sent_at is required (unix seconds)"))?;
    if sent_at < 0 {
        return Err(ApiError::bad_request("logis.sent_at must not be negative"));
    }
    l.str_opt("receiving_at", 20)?;
    l.str_opt("address", 200)?;
    Ok(LogisInput {
        company,
        invoice,
        sent_at,
    })
}

pub async fn register(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(imp_uid): Path<String>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let i = input(&p)?;
    let e = engine.put_escrow_logis(&m, &imp_uid, i, true).await?;
    Ok(Envelope::ok(logis_json(&e)))
}

pub async fn update(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(imp_uid): Path<String>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let i = input(&p)?;
    let e = engine.put_escrow_logis(&m, &imp_uid, i, false).await?;
    Ok(Envelope::ok(logis_json(&e)))
}

pub async fn get_one(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(imp_uid): Path<String>,
) -> ApiResult<Envelope<Value>> {
    let e = engine.get_escrow_logis(&m, &imp_uid).await?;
    Ok(Envelope::ok(logis_json(&e)))
}
