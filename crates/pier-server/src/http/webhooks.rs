//! Pier's own webhook endpoints: the delivery log (`GET /webhooks/deliveries`) and manual
//! redelivery (`POST /webhooks/{event_id}/redeliver`). Both are tenant-scoped by the token.

use super::error::{ApiResult, Envelope};
use super::params::Query;
use super::payments::paging;
use super::{wire, AppState, Merchant};
use axum::extract::{Path, State};
use axum::Extension;
use pier_store::Delivery;
use serde_json::{json, Value};

fn delivery(d: &Delivery) -> Value {
    json!({
        "id": d.id,
        "event_id": d.event_id,
        "imp_uid": d.imp_uid,
        "merchant_uid": d.merchant_uid,
        "status": d.status,
        "url": d.url,
        "attempt": d.attempt,
        "status_code": d.status_code,
        "latency_ms": d.latency_ms,
        "error": d.error,
        "at": d.at,
    })
}

pub async fn deliveries(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Query(q): Query,
) -> ApiResult<Envelope<Value>> {
    let (page, limit) = paging(&q)?;
    let imp_uid = q.str_opt("imp_uid", 40)?;
    let res = engine
        .webhook_deliveries(&m, imp_uid.as_deref(), (page - 1) * limit, limit)
        .await?;
    Ok(Envelope::ok(serde_json::json!(wire::paged(
        &res, page, limit, delivery
    ))))
}

pub async fn redeliver(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(event_id): Path<String>,
) -> ApiResult<Envelope<Value>> {
    let row = engine.redeliver(&m, &event_id).await?;
    Ok(Envelope::ok(json!({
        "event_id": row.event.id,
        "imp_uid": row.event.imp_uid,
        "merchant_uid": row.event.merchant_uid,
        "status": row.event.status,
        "state": row.state,
        "next_attempt_at": row.next_attempt_at,
    })))
}
