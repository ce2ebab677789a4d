//! Scheduled payments: `/subscribe/payments/schedule…`, `/subscribe/payments/unschedule`,
//! `/subscribe/customers/{customer_uid}/schedules` (spec §3.7, §5.2).

use super::error::{ApiError, ApiResult, Envelope};
use super::params::{Body, Params, Query};
use super::payments::{paging, MAX_PAGE_LIMIT};
use super::subscribe::{card_data, order_input};
use super::{wire, AppState, Merchant};
use crate::engine::schedules::ScheduleItem;
use axum::extract::{Path, State};
use axum::Extension;
use pier_domain::CustomerUid;
use pier_store::{Schedule, ScheduleQuery, ScheduleStatus};
use serde_json::{json, Value};

/// Items one registration may carry.
pub const MAX_SCHEDULE_ITEMS: usize = 200;
/// merchant_uids one unschedule may name.
pub const MAX_UNSCHEDULE_IDS: usize = 1000;
/// Widest `schedule_from`..`schedule_to` window of the time-window search (spec §9.9: ~3 months).
pub const MAX_WINDOW_SECS: i64 = 93 * 24 * 3600;

/// ScheduleResult (spec §5.2): `customer_uid`, `merchant_uid`, `schedule_at`, `amount` never
/// null; `payment_status` null before execution; `executed_at`/`revoked_at` 0 until they happen.
pub fn schedule(s: &Schedule) -> Value {
    json!({
        "customer_uid": s.customer_uid,
        "merchant_uid": s.merchant_uid,
        "imp_uid": s.imp_uid,
        "pg_provider": s.pg_provider,
        "pg_id": s.pg_id,
        "customer_id": s.customer_id,
        "schedule_at": s.schedule_at,
        "executed_at": s.executed_at,
        "revoked_at": s.revoked_at,
        "amount": s.amount,
        "currency": s.currency,
        "name": s.name,
        "buyer_name": s.buyer_name,
        "buyer_email": s.buyer_email,
        "buyer_tel": s.buyer_tel,
        "buyer_addr": s.buyer_addr,
        "buyer_postcode": s.buyer_postcode,
        "custom_data": s.custom_data,
        "schedule_status": s.schedule_status,
        "payment_status": s.payment_status,
        "fail_reason": s.fail_reason,
        "promotion_id": Value::Null,
    })
}

fn schedules(list: &[Schedule]) -> Value {
    Value::Array(list.iter().map(schedule).collect())
}

fn schedule_at(p: &Params) -> ApiResult<i64> {
    let at = p
        .int_opt("schedule_at")?
        .ok_or_else(|| ApiError::bad_request("schedule_at is required"))?;
    if at <= 0 {
        return Err(ApiError::bad_request(
            "schedule_at must be a positive unix time in seconds",
        ));
    }
    // Clients that send milliseconds (JAVA converts, others may not) would schedule for the
    // year 50000: refuse rather than never run.
    if at > 32_503_680_000 {
        return Err(ApiError::bad_request(
            "schedule_at must be unix time in seconds (not milliseconds)",
        ));
    }
    Ok(at)
}

pub async fn create(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let customer_uid = CustomerUid::parse(&p.str_req("customer_uid", 80)?)?;
    let raw = p
        .array_opt("schedules")?
        .ok_or_else(|| ApiError::bad_request("schedules is required"))?;
    if raw.is_empty() {
        return Err(ApiError::bad_request("schedules must not be empty"));
    }
    if raw.len() > MAX_SCHEDULE_ITEMS {
        return Err(ApiError::bad_request(format!(
            "schedules: at most {MAX_SCHEDULE_ITEMS} items per request"
        )));
    }
    let mut items = Vec::with_capacity(raw.len());
    for (i, v) in raw.iter().enumerate() {
        let item = p
            .nested(v)
            .ok_or_else(|| ApiError::bad_request(format!("schedules[{i}] must be an object")))?;
        let prefix = |e: ApiError| ApiError {
            message: format!("schedules[{i}]: {}", e.message),
            ..e
        };
        let order = order_input(&item).map_err(prefix)?;
        let at = schedule_at(&item).map_err(prefix)?;
        items.push(ScheduleItem {
            order,
            schedule_at: at,
        });
    }
    let card = if p.has("card_number") {
        Some(card_data(&p, engine.now())?)
    } else {
        None
    };
    let pg = p.str_opt("pg", 80)?;
    let list = engine
        .create_schedules(
            &m,
            customer_uid,
            card,
            pg.as_deref(),
            p.str_opt("customer_id", 100)?,
            items,
        )
        .await?;
    Ok(Envelope::ok(schedules(&list)))
}

pub async fn unschedule(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let customer_uid = p.str_opt("customer_uid", 80)?;
    let uids = p.str_list("merchant_uid", MAX_UNSCHEDULE_IDS)?;
    let list = engine
        .unschedule(&m, customer_uid.as_deref(), &uids)
        .await?;
    Ok(Envelope::ok(schedules(&list)))
}

/// First present of several spellings of one query parameter.
fn int_any(q: &Params, keys: &[&'static str]) -> ApiResult<Option<i64>> {
    for k in keys {
        if let Some(v) = q.int_opt(k)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

fn status_any(q: &Params) -> ApiResult<Option<ScheduleStatus>> {
    let mut raw = None;
    for k in ["schedule_status", "schedule-status"] {
        if let Some(v) = q.str_opt(k, 20)? {
            raw = Some(v);
            break;
        }
    }
    match raw.as_deref() {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|()| {
            ApiError::bad_request(format!(
                "schedule_status must be one of {} (got {v:?})",
                ScheduleStatus::ALL.map(ScheduleStatus::as_str).join(", ")
            ))
        }),
    }
}

fn oldest_first(q: &Params) -> ApiResult<bool> {
    match q.str_opt("sorting", 20)?.as_deref() {
        None | Some("-scheduled") => Ok(false),
        Some("scheduled") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "sorting must be scheduled (oldest first) or -scheduled (newest first), got {other:?}"
        ))),
    }
}

fn limit_of(q: &Params) -> ApiResult<(i64, i64)> {
    let (page, limit) = paging(q)?;
    debug_assert!(limit <= MAX_PAGE_LIMIT);
    Ok((page, limit))
}

pub async fn list(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Query(q): Query,
) -> ApiResult<Envelope<Value>> {
    let from = int_any(&q, &["schedule_from", "from"])?
        .ok_or_else(|| ApiError::bad_request("schedule_from is required"))?;
    let to = int_any(&q, &["schedule_to", "to"])?
        .ok_or_else(|| ApiError::bad_request("schedule_to is required"))?;
    if to <= from {
        return Err(ApiError::bad_request(
            "schedule_to must be later than schedule_from",
        ));
    }
    if to.saturating_sub(from) > MAX_WINDOW_SECS {
        return Err(ApiError::bad_request(
            "the schedule_from..schedule_to window may span at most 93 days",
        ));
    }
    let (page, limit) = limit_of(&q)?;
    let sq = ScheduleQuery {
        customer_uid: None,
        from: Some(from),
        to: Some(to),
        status: status_any(&q)?,
        oldest_first: oldest_first(&q)?,
        offset: (page - 1) * limit,
        limit,
    };
    let res = engine.list_schedules(&m, &sq).await?;
    Ok(Envelope::ok(serde_json::json!(wire::paged(
        &res, page, limit, schedule
    ))))
}

pub async fn by_customer(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(customer_uid): Path<String>,
    Query(q): Query,
) -> ApiResult<Envelope<Value>> {
    let from = int_any(&q, &["from", "schedule_from"])?;
    let to = int_any(&q, &["to", "schedule_to"])?;
    let (page, limit) = limit_of(&q)?;
    let sq = ScheduleQuery {
        customer_uid: Some(&customer_uid),
        from: from.filter(|v| *v > 0),
        to: to.filter(|v| *v > 0),
        status: status_any(&q)?,
        oldest_first: oldest_first(&q)?,
        offset: (page - 1) * limit,
        limit,
    };
    let res = engine.list_schedules(&m, &sq).await?;
    Ok(Envelope::ok(serde_json::json!(wire::paged(
        &res, page, limit, schedule
    ))))
}

pub async fn get_one(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(merchant_uid): Path<String>,
) -> ApiResult<Envelope<Value>> {
    Ok(Envelope::ok(schedule(
        &engine.get_schedule(&m, &merchant_uid).await?,
    )))
}

pub async fn update(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(merchant_uid): Path<String>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let at = schedule_at(&p)?;
    Ok(Envelope::ok(schedule(
        &engine.move_schedule(&m, &merchant_uid, at).await?,
    )))
}

pub async fn reschedule(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(merchant_uid): Path<String>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let at = schedule_at(&p)?;
    Ok(Envelope::ok(schedule(
        &engine.reschedule(&m, &merchant_uid, at).await?,
    )))
}

pub async fn retry(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(merchant_uid): Path<String>,
) -> ApiResult<Envelope<Value>> {
    let p = engine.retry_schedule(&m, &merchant_uid).await?;
    Ok(Envelope::ok(wire::payment(&p)))
}
