//! Non-authenticated payments and billing keys: `/subscribe/payments/onetime`,
//! `/subscribe/payments/again`, `/subscribe/customers…` (spec §3.4–§3.6, §7, §9).

use super::error::{ApiError, ApiResult, Envelope, EnvelopeWithMessage};
use super::params::{Body, Params, Query};
use super::payments::{paging, MAX_MULTI_IDS};
use super::{wire, AppState, Merchant};
use crate::engine::charge::{AgainInput, Buyer, ChargeOutcome, OnetimeInput, OrderInput};
use crate::engine::customers::CustomerFields;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use pier_domain::{
    AmountPart, Birth, CardNumber, CustomerUid, Expiry, FieldError, MerchantUid, Pwd2Digit,
};
use pier_pg::CardData;
use pier_store::{PaymentQuery, Sorting};
use serde_json::Value;

/// Most webhook targets one request may name.
pub const MAX_NOTICE_URLS: usize = 5;

/// Card data errors are the card company's business in the i'mport contract: HTTP 200, -1.
fn card_error(e: FieldError) -> ApiError {
    let msg = if e.field == "card_number" {
        format!("유효하지않은 카드번호를 입력하셨습니다. ({e})")
    } else {
        format!("카드정보 인증에 실패하였습니다. ({e})")
    };
    ApiError::pg_refused(msg)
}

pub fn card_data(p: &Params, now: i64) -> ApiResult<CardData> {
    let number = p.str_req("card_number", 30)?;
    let expiry = p.str_req("expiry", 10)?;
    let number = CardNumber::parse(&number).map_err(card_error)?;
    let expiry = Expiry::parse(&expiry).map_err(card_error)?;
    if expiry.is_expired_at(now) {
        return Err(ApiError::pg_refused(
            "카드정보 인증에 실패하였습니다. (expiry: the card has expired)",
        ));
    }
    let birth = p
        .str_opt("birth", 12)?
        .map(|b| Birth::parse(&b))
        .transpose()
        .map_err(card_error)?;
    let pwd_2digit = p
        .str_opt("pwd_2digit", 2)?
        .map(|d| Pwd2Digit::parse(&d))
        .transpose()
        .map_err(card_error)?;
    Ok(CardData {
        number,
        expiry,
        birth,
        pwd_2digit,
    })
}

pub fn notice_urls(p: &Params) -> ApiResult<Vec<String>> {
    let urls = p.str_list("notice_url", MAX_NOTICE_URLS)?;
    for u in &urls {
        let ok = url::Url::parse(u)
            .map(|x| matches!(x.scheme(), "http" | "https"))
            .unwrap_or(false);
        if !ok || u.len() > 2000 {
            return Err(ApiError::bad_request(format!(
                "notice_url must be an http(s) URL: {u:?}"
            )));
        }
    }
    Ok(urls)
}

/// The order fields shared by onetime, again and schedules.
pub fn order_input(p: &Params) -> ApiResult<OrderInput> {
    let merchant_uid = MerchantUid::parse(&p.str_req("merchant_uid", 40)?)?;
    let amount = p.amount_req("amount")?;
    let currency = p
        .str_opt("currency", 3)?
        .unwrap_or_else(|| "KRW".into())
        .to_ascii_uppercase();
    if currency != "KRW" {
        return Err(ApiError::bad_request(format!(
            "currency {currency} is not supported (KRW only)"
        )));
    }
    let tax_free = p.part_opt("tax_free")?.unwrap_or(AmountPart::ZERO);
    if !amount.covers(tax_free) {
        return Err(ApiError::bad_request("tax_free must not exceed amount"));
    }
    let vat_amount = match p.part_opt("vat_amount")? {
        Some(v) => Some(v),
        None => p.part_opt("vat")?,
    };
    if vat_amount.is_some_and(|v| !amount.covers(v)) {
        return Err(ApiError::bad_request("vat_amount must not exceed amount"));
    }
    let quota = p.int_opt("card_quota")?.unwrap_or(0);
    if !(0..=36).contains(&quota) {
        return Err(ApiError::bad_request("card_quota must be from 0 to 36"));
    }
    Ok(OrderInput {
        merchant_uid,
        amount,
        currency,
        tax_free,
        vat_amount,
        name: p.str_opt("name", 40)?,
        buyer: Buyer {
            name: p.str_opt("buyer_name", 16)?,
            email: p.str_opt("buyer_email", 64)?,
            tel: p.str_opt("buyer_tel", 16)?,
            addr: p.str_opt("buyer_addr", 128)?,
            postcode: p.str_opt("buyer_postcode", 8)?,
        },
        // 1 month is a lump sum (spec §7).
        card_quota: if quota == 1 { 0 } else { quota },
        custom_data: p.json_text_opt("custom_data", 8 * 1024)?,
        notice_urls: notice_urls(p)?,
        pg: p.str_opt("pg", 80)?,
    })
}

fn charge_response(o: ChargeOutcome) -> Response {
    let body = wire::payment_wire(&o.payment);
    match o.declined {
        None => Envelope::ok(body).into_response(),
        Some(reason) => EnvelopeWithMessage(reason, body).into_response(),
    }
}

pub async fn onetime(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Body(p): Body,
) -> ApiResult<Response> {
    let order = order_input(&p)?;
    let customer_uid = p
        .str_opt("customer_uid", 80)?
        .map(|u| CustomerUid::parse(&u))
        .transpose()?;
    let card = card_data(&p, engine.now())?;
    let input = OnetimeInput {
        order,
        card,
        customer_uid,
        customer_id: p.str_opt("customer_id", 100)?,
    };
    Ok(charge_response(engine.onetime(&m, input).await?))
}

pub async fn again(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Body(p): Body,
) -> ApiResult<Response> {
    let customer_uid = CustomerUid::parse(&p.str_req("customer_uid", 80)?)?;
    let order = order_input(&p)?;
    let input = AgainInput {
        order,
        customer_uid,
        usage: "payment",
    };
    Ok(charge_response(engine.again(&m, input).await?))
}

pub async fn issue_customer(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(uid): Path<String>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let uid = CustomerUid::parse(&uid)?;
    let card = card_data(&p, engine.now())?;
    let fields = CustomerFields {
        customer_id: p.str_opt("customer_id", 100)?,
        name: p.str_opt("customer_name", 20)?,
        tel: p.str_opt("customer_tel", 20)?,
        email: p.str_opt("customer_email", 200)?,
        addr: p.str_opt("customer_addr", 200)?,
        postcode: p.str_opt("customer_postcode", 8)?,
    };
    let pg = p.str_opt("pg", 80)?;
    let c = engine
        .issue_customer(&m, uid, card, pg.as_deref(), fields)
        .await?;
    Ok(Envelope::ok(wire::customer(&c)))
}

pub async fn get_customer(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(uid): Path<String>,
) -> ApiResult<Envelope<Value>> {
    Ok(Envelope::ok(wire::customer(
        &engine.get_customer(&m, &uid).await?,
    )))
}

pub async fn delete_customer(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(uid): Path<String>,
) -> ApiResult<Envelope<Value>> {
    Ok(Envelope::ok(wire::customer(
        &engine.delete_customer(&m, &uid).await?,
    )))
}

pub async fn get_customers(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Query(q): Query,
) -> ApiResult<Envelope<Value>> {
    let uids = q.str_list("customer_uid", MAX_MULTI_IDS)?;
    if uids.is_empty() {
        return Err(ApiError::bad_request("customer_uid[] is required"));
    }
    let found = engine.get_customers(&m, &uids).await?;
    if found.is_empty() {
        return Err(ApiError::not_found(
            "요청하신 customer_uid로 등록된 정보를 찾을 수 없습니다.",
        ));
    }
    let hits = uids
        .iter()
        .filter(|u| found.iter().any(|c| &c.customer_uid == *u))
        .count();
    let status = if hits < uids.len() {
        StatusCode::MULTI_STATUS
    } else {
        StatusCode::OK
    };
    Ok(Envelope(
        status,
        Value::Array(found.iter().map(wire::customer).collect()),
    ))
}

pub async fn customer_payments(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(uid): Path<String>,
    Query(q): Query,
) -> ApiResult<Response> {
    let (page, limit) = paging(&q)?;
    let pq = PaymentQuery {
        status: None,
        sorting: Sorting::default(),
        offset: (page - 1) * limit,
        limit,
    };
    let res = engine.customer_payments(&m, &uid, pq).await?;
    Ok(Envelope::ok(wire::paged(&res, page, limit, wire::payment_wire)).into_response())
}
