//! Payment lookups: `/payments/{imp_uid}`, `/payments?imp_uid[]=…`, `/payments/find…`,
//! `/payments/findAll…`, `/payments/status/{status}` (spec §3.1).

use super::error::{ApiError, ApiResult, Envelope};
use super::params::{Params, Query};
use super::{wire, AppState, Merchant};
use crate::engine::lookup::MSG_NO_PAYMENT;
use crate::engine::Error;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use pier_domain::{ImpUid, MerchantUid};
use pier_store::{PaymentQuery, PaymentStatus, Sorting};

pub const MAX_PAGE_LIMIT: i64 = 1000;
pub const DEFAULT_PAGE_LIMIT: i64 = 20;
/// Ids one multi-lookup may name.
pub const MAX_MULTI_IDS: usize = 100;

/// `page` (1-based) and `limit` (1..=1000) → (page, limit, offset).
pub fn paging(q: &Params) -> ApiResult<(i64, i64)> {
    let page = q.int_opt("page")?.unwrap_or(1);
    let limit = q.int_opt("limit")?.unwrap_or(DEFAULT_PAGE_LIMIT);
    if !(1..=1_000_000).contains(&page) {
        return Err(ApiError::bad_request("page must be an integer from 1"));
    }
    if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be from 1 to {MAX_PAGE_LIMIT}"
        )));
    }
    Ok((page, limit))
}

pub fn sorting(q: &Params) -> ApiResult<Sorting> {
    match q.str_opt("sorting", 20)? {
        None => Ok(Sorting::default()),
        Some(s) => Sorting::parse(&s).ok_or_else(|| {
            ApiError::bad_request(
                "sorting must be one of -started, started, -paid, paid, -updated, updated",
            )
        }),
    }
}

/// An id from the path. No payment has a malformed one, so it is answered as the lookup of an
/// unknown id always was: not found.
pub(crate) fn path_imp_uid(raw: String) -> Result<ImpUid, Error> {
    ImpUid::from_string(raw).map_err(|_| Error::NotFound(MSG_NO_PAYMENT.into()))
}

fn path_merchant_uid(raw: String) -> Result<MerchantUid, Error> {
    MerchantUid::from_string(raw).map_err(|_| Error::NotFound(MSG_NO_PAYMENT.into()))
}

/// The wire's payment_status filter: a status, or (where allowed) `all` for none.
fn status_filter(s: &str, allow_all: bool) -> ApiResult<Option<PaymentStatus>> {
    match s.parse::<PaymentStatus>() {
        Ok(st) => Ok(Some(st)),
        Err(()) if allow_all && s == "all" => Ok(None),
        Err(()) => Err(ApiError::bad_request(format!(
            "payment_status must be one of {}{}",
            PaymentStatus::ALL.map(PaymentStatus::as_str).join(", "),
            if allow_all { ", all" } else { "" }
        ))),
    }
}

pub async fn get_one(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(imp_uid): Path<String>,
) -> ApiResult<Response> {
    // Test-channel payments are shown without include_sandbox: every Pier channel is a test
    // channel today, and a client that cannot see its payments is no use.
    let imp_uid = path_imp_uid(imp_uid)?;
    let p = engine.payment(&m, &imp_uid).await?;
    Ok(Envelope::ok(wire::payment_wire(&p)).into_response())
}

pub async fn get_many(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Query(q): Query,
) -> ApiResult<Response> {
    let imp_uids = q.str_list("imp_uid", MAX_MULTI_IDS)?;
    let merchant_uids = q.str_list("merchant_uid", MAX_MULTI_IDS)?;
    let asked = imp_uids.len() + merchant_uids.len();
    if asked == 0 {
        return Err(ApiError::bad_request(
            "imp_uid[] or merchant_uid[] is required",
        ));
    }
    if asked > MAX_MULTI_IDS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_MULTI_IDS} ids per request"
        )));
    }
    let found = engine.payments_many(&m, &imp_uids, &merchant_uids).await?;
    let hits = imp_uids
        .iter()
        .filter(|u| found.iter().any(|p| &p.imp_uid == *u))
        .count()
        + merchant_uids
            .iter()
            .filter(|u| found.iter().any(|p| &p.merchant_uid == *u))
            .count();
    if found.is_empty() {
        return Err(ApiError::not_found(MSG_NO_PAYMENT));
    }
    let status = if hits < asked {
        StatusCode::MULTI_STATUS
    } else {
        StatusCode::OK
    };
    Ok(Envelope(status, wire::payments(&found)).into_response())
}

async fn find_inner(
    engine: AppState,
    m: String,
    merchant_uid: String,
    status: Option<String>,
    q: Params,
) -> ApiResult<Response> {
    let st = match status.as_deref() {
        None | Some("") => None,
        Some(s) => status_filter(s, false)?,
    };
    let pq = PaymentQuery {
        status: st,
        sorting: sorting(&q)?,
        offset: 0,
        limit: 1,
    };
    let merchant_uid = path_merchant_uid(merchant_uid)?;
    let p = engine.find_payment(&m, &merchant_uid, pq).await?;
    Ok(Envelope::ok(wire::payment_wire(&p)).into_response())
}

pub async fn find(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(merchant_uid): Path<String>,
    Query(q): Query,
) -> ApiResult<Response> {
    find_inner(engine, m, merchant_uid, None, q).await
}

pub async fn find_with_status(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path((merchant_uid, status)): Path<(String, String)>,
    Query(q): Query,
) -> ApiResult<Response> {
    find_inner(engine, m, merchant_uid, Some(status), q).await
}

async fn find_all_inner(
    engine: AppState,
    m: String,
    merchant_uid: String,
    status: Option<String>,
    q: Params,
) -> ApiResult<Response> {
    let st = match status.as_deref() {
        None | Some("") => None,
        Some(s) => status_filter(s, false)?,
    };
    let (page, limit) = paging(&q)?;
    let pq = PaymentQuery {
        status: st,
        sorting: sorting(&q)?,
        offset: (page - 1) * limit,
        limit,
    };
    let merchant_uid = path_merchant_uid(merchant_uid)?;
    let res = engine.find_all_payments(&m, &merchant_uid, pq).await?;
    Ok(Envelope::ok(wire::paged(&res, page, limit, wire::payment_wire)).into_response())
}

pub async fn find_all(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(merchant_uid): Path<String>,
    Query(q): Query,
) -> ApiResult<Response> {
    find_all_inner(engine, m, merchant_uid, None, q).await
}

pub async fn find_all_with_status(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path((merchant_uid, status)): Path<(String, String)>,
    Query(q): Query,
) -> ApiResult<Response> {
    find_all_inner(engine, m, merchant_uid, Some(status), q).await
}

pub async fn by_status(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(status): Path<String>,
    Query(q): Query,
) -> ApiResult<Response> {
    let st = status_filter(&status, true)?;
    let (page, limit) = paging(&q)?;
    let from = q.int_opt("from")?.filter(|v| *v > 0);
    let to = q.int_opt("to")?.filter(|v| *v > 0);
    let pq = PaymentQuery {
        status: st,
        sorting: sorting(&q)?,
        offset: (page - 1) * limit,
        limit,
    };
    let res = engine.payments_by_status(&m, from, to, pq).await?;
    Ok(Envelope::ok(wire::paged(&res, page, limit, wire::payment_wire)).into_response())
}
