//! The embedded SDK files and the demo shop (`/demo`).

use super::pages::*;
use crate::engine::Engine;
use crate::http::error::{ApiError, ApiResult};
use crate::http::params::Params;
use crate::http::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use pier_domain::PaymentStatus;

use serde_json::json;

pub const SDK_JS: &str = include_str!("../../../sdk/iamport.js");
pub const DONE_JS: &str = include_str!("../../../sdk/done.js");
pub const DEMO_JS: &str = include_str!("../../../sdk/demo.js");
pub const WINDOW_CSS: &str = include_str!("../../../sdk/pier.css");
/// The demo shop's one product.
pub const DEMO_PRICE: i64 = 14_000;
pub const DEMO_PRODUCT: &str = "Pier 머그컵";

fn static_asset(body: &'static str, ct: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    res
}

pub async fn sdk() -> Response {
    static_asset(SDK_JS, "application/javascript; charset=utf-8")
}

pub async fn done_js() -> Response {
    static_asset(DONE_JS, "application/javascript; charset=utf-8")
}

pub async fn demo_js() -> Response {
    static_asset(DEMO_JS, "application/javascript; charset=utf-8")
}

pub async fn css() -> Response {
    static_asset(WINDOW_CSS, "text/css; charset=utf-8")
}

// ---------------------------------------------------------------------------------------------
// The demo shop.

async fn demo_merchant(engine: &Engine) -> ApiResult<pier_store::Merchant> {
    engine
        .demo_merchant()
        .await?
        .ok_or_else(|| ApiError::not_found("the demo merchant does not exist on this server"))
}

pub async fn demo(State(engine): State<AppState>) -> ApiResult<Response> {
    let m = demo_merchant(&engine).await?;
    let html = format!(
        "<!doctype html><html lang=\"ko\"><head><meta charset=\"utf-8\"><title>Pier 데모 상점</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/checkout/static/pier.css\">\
         <script src=\"/v1/iamport.js\"></script><script src=\"/demo/shop.js\" defer></script></head>\
         <body data-imp-code=\"{code}\" data-price=\"{price}\">\
         <main class=\"box shop\"><h1>Pier 데모 상점</h1>\
         <div class=\"product\" data-testid=\"demo-product\"><div class=\"mug\" aria-hidden=\"true\">☕</div>\
         <div><h2 data-testid=\"demo-product-name\">{name}</h2><p class=\"price\" data-testid=\"demo-price\">{price_text}원</p>\
         <p class=\"hint\">테스트 결제입니다. 실제로 청구되지 않습니다. 승인 카드: 4518-4200-0000-0000</p></div></div>\
         <label>결제수단 <select id=\"pay-method\" data-testid=\"demo-pay-method\">\
         <option value=\"card\">신용카드</option><option value=\"trans\">실시간 계좌이체</option>\
         <option value=\"phone\">휴대폰 소액결제</option><option value=\"vbank\">가상계좌</option></select></label>\
         <button id=\"buy\" class=\"primary\" data-testid=\"demo-buy\">{price_text}원 결제하기</button>\
         <section id=\"outcome\" data-testid=\"demo-outcome\" class=\"outcome\" hidden></section>\
         </main></body></html>",
        code = esc(&m.imp_code),
        price = DEMO_PRICE,
        price_text = "14,000",
        name = esc(DEMO_PRODUCT),
    );
    // The shop frames the payment window (Pier, or a pgsim channel's own origin).
    Ok(page_with(html, "'self'", "; frame-src 'self' http: https:"))
}

/// The demo shop's own "backend": verifies a payment by imp_uid and amount, server-side.
pub async fn demo_verify(State(engine): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let p = Params::from_json(&body)?;
    let imp_uid = p.str_req("imp_uid", 40)?;
    let m = demo_merchant(&engine).await?;
    let pay = engine
        .find_payment_by_uid(&m.imp_code, &imp_uid)
        .await?
        .ok_or_else(|| ApiError::not_found("no such payment"))?;
    let amount_ok = pay.amount == DEMO_PRICE;
    let verified = amount_ok
        && (pay.status == PaymentStatus::Paid
            || (pay.status == PaymentStatus::Ready && pay.vbank_num.is_some()));
    let v = json!({
        "verified": verified,
        "amount_ok": amount_ok,
        "imp_uid": pay.imp_uid,
        "merchant_uid": pay.merchant_uid,
        "status": pay.status,
        "amount": pay.amount,
        "expected_amount": DEMO_PRICE,
        "pay_method": pay.pay_method,
        "card_name": pay.card_name,
        "vbank_name": pay.vbank_name,
        "vbank_num": pay.vbank_num,
        "fail_reason": pay.fail_reason,
    });
    let mut res = v.to_string().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
