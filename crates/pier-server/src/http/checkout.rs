//! The browser side of Pier: the drop-in SDK (`/v1/iamport.js`), the payment window endpoints
//! it talks to (`/checkout/…`), and the demo shop (`/demo`).
//!
//! Routes (all public; the window id is the capability):
//! - `GET  /v1/iamport.js` — the SDK (`sdk/iamport.js`, embedded).
//! - `POST /checkout/prepare` — `request_pay` server-side: pre-validation, payment row `ready`,
//!   PG window session; answers `{success, imp_uid, window_url}` or the failure object.
//! - `GET  /checkout/window/{id}` — the iframe / popup / redirect target: on to the PG's window.
//! - `GET|POST /checkout/return/{id}` — where the PG window sends the browser back.
//! - `POST /checkout/cancel/{id}` — the SDK's close button, `IMP.close()`, a closed popup.
//! - `GET  /checkout/static/done.js` — posts the result to the merchant page.
//! - `GET  /demo`, `GET /demo/shop.js`, `POST /demo/verify` — the demo shop.
//!
//! Pages carry a strict Content-Security-Policy (no inline script; `frame-ancestors` = the
//! merchant's allowed origins) and `Cache-Control: no-store`.

use super::auth::ClientAddr;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use super::subscribe::notice_urls;
use super::AppState;
use crate::engine::charge::Buyer;
use crate::engine::gates::Origins;
use crate::engine::origins::{url_allowed, MAX_ORIGIN_CHARS};
use crate::engine::window::{
    codes, merge_redirect, prevalidation_result, WindowError, WindowMode, WindowRequest,
    PAY_METHODS,
};
use crate::engine::Engine;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pier_domain::PaymentStatus;
use pier_domain::{CustomerUid, MerchantUid};
use pier_store::CheckoutSession;
use serde_json::{json, Value};

pub const SDK_JS: &str = include_str!("../../sdk/iamport.js");
pub const DONE_JS: &str = include_str!("../../sdk/done.js");
pub const DEMO_JS: &str = include_str!("../../sdk/demo.js");
pub const WINDOW_CSS: &str = include_str!("../../sdk/pier.css");
/// The demo shop's one product.
pub const DEMO_PRICE: i64 = 14_000;
pub const DEMO_PRODUCT: &str = "Pier 머그컵";

pub(crate) const MAX_URL_CHARS: usize = 2_000;

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

/// JSON for the SDK, readable cross-origin (no credentials are involved).
pub(crate) fn sdk_json(v: Value) -> Response {
    sdk_json_for(v, Cors::Any)
}

/// Which pages may read an SDK answer.
pub(crate) enum Cors<'a> {
    Any,
    /// A merchant with allowed origins: the page that opened the window.
    Only(&'a str),
    Nobody,
}

pub(crate) fn sdk_json_for(v: Value, cors: Cors<'_>) -> Response {
    let mut res = (StatusCode::OK, v.to_string()).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("origin"));
    let allow = match cors {
        Cors::Any => HeaderValue::from_static("*"),
        Cors::Only(o) => match HeaderValue::from_str(o) {
            Ok(o) => o,
            Err(_) => return res,
        },
        Cors::Nobody => return res,
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    res
}

/// CORS preflight of the SDK's endpoints.
pub async fn preflight() -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    res
}

fn is_mobile_ua(ua: &str) -> bool {
    ["Mobi", "Android", "iPhone", "iPad", "iPod"]
        .iter()
        .any(|m| ua.contains(m))
}

pub(crate) fn http_url(
    field: &'static str,
    v: Option<String>,
) -> Result<Option<String>, WindowError> {
    let Some(v) = v else { return Ok(None) };
    let ok = v.len() <= MAX_URL_CHARS
        && url::Url::parse(&v)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .unwrap_or(false);
    if ok {
        Ok(Some(v))
    } else {
        Err(WindowError::new(
            codes::INVALID_PARAM,
            format!("{field} must be an absolute http(s) URL"),
        ))
    }
}

/// How the SDK opens a window (`mode`: iframe unless said) and where a redirect window returns
/// (`m_redirect_url`, required for one). Shared by the payment and certification windows.
pub(crate) fn window_mode(
    body: &Value,
    p: &Params,
) -> Result<(WindowMode, Option<String>), WindowError> {
    let mode = match &body["mode"] {
        Value::String(s) => WindowMode::parse(s).ok_or_else(|| {
            WindowError::new(
                codes::INVALID_PARAM,
                "mode must be iframe, popup or redirect",
            )
        })?,
        _ => WindowMode::Iframe,
    };
    let m_redirect_url = http_url(
        "m_redirect_url",
        p.str_opt("m_redirect_url", MAX_URL_CHARS)
            .map_err(invalid)?,
    )?;
    if mode == WindowMode::Redirect && m_redirect_url.is_none() {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            "m_redirect_url is required for a redirect window",
        ));
    }
    Ok((mode, m_redirect_url))
}

fn invalid(e: ApiError) -> WindowError {
    WindowError::new(codes::INVALID_PARAM, e.message)
}

/// Parses and checks a `request_pay` sent by the SDK (it checked most of this already; a page
/// may skip the SDK, so everything is checked again here).
pub fn window_request(body: &Value, headers: &HeaderMap) -> Result<WindowRequest, WindowError> {
    let imp_code =
        match &body["user_code"] {
            Value::String(s) if !s.is_empty() && s.len() <= 40 => s.clone(),
            _ => return Err(WindowError::new(
                codes::UNKNOWN_MERCHANT,
                "IMP.init(userCode)로 가맹점 식별코드를 먼저 설정해주세요. (userCode is required)",
            )),
        };
    let Value::Object(raw) = &body["params"] else {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            "request_pay params must be an object",
        ));
    };
    let p = Params::from_json(&serde_json::to_vec(raw).unwrap_or_default()).map_err(invalid)?;
    let merchant_uid = p
        .str_opt("merchant_uid", MerchantUid::MAX_CHARS)
        .map_err(invalid)?
        .ok_or_else(|| WindowError::new(codes::INVALID_PARAM, "merchant_uid is required"))?;
    let merchant_uid = MerchantUid::parse(&merchant_uid)
        .map_err(|e| WindowError::new(codes::INVALID_PARAM, e.to_string()))?;
    let customer_uid = p
        .str_opt("customer_uid", 80)
        .map_err(invalid)?
        .map(|u| CustomerUid::parse(&u))
        .transpose()
        .map_err(|e| WindowError::new(codes::INVALID_PARAM, e.to_string()))?;
    let amount = match p.raw("amount") {
        None => return Err(WindowError::new(codes::INVALID_PARAM, "amount is required")),
        Some(Value::String(_)) => {
            return Err(WindowError::new(
                codes::INVALID_PARAM,
                "amount must be an integer (not string)",
            ))
        }
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
            WindowError::new(
                codes::INVALID_PARAM,
                "amount must be an integer (KRW has no fractions)",
            )
        })?,
        Some(_) => {
            return Err(WindowError::new(
                codes::INVALID_PARAM,
                "amount must be an integer",
            ))
        }
    };
    if !(0..=pier_domain::Amount::MAX_KRW).contains(&amount) {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            "amount is out of range",
        ));
    }
    if amount == 0 && customer_uid.is_none() {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            "amount must be greater than 0 (0 is only for issuing a billing key with customer_uid)",
        ));
    }
    let pay_method = p
        .str_opt("pay_method", 20)
        .map_err(invalid)?
        .unwrap_or_else(|| "card".into());
    if !PAY_METHODS.contains(&pay_method.as_str()) {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            format!(
                "pay_method {pay_method:?} is not offered (offered: {})",
                PAY_METHODS.join(", ")
            ),
        ));
    }
    let escrow = p.bool_opt("escrow").map_err(invalid)?.unwrap_or(false);
    // Escrow holds a sale's money until delivery; a billing key issue sells nothing.
    if escrow && customer_uid.is_some() {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            "escrow cannot be combined with customer_uid (billing key issue)",
        ));
    }
    if customer_uid.is_some() && pay_method != "card" {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            "customer_uid (billing key) needs pay_method card",
        ));
    }
    let currency = p
        .str_opt("currency", 3)
        .map_err(invalid)?
        .unwrap_or_else(|| "KRW".into());
    if !currency.eq_ignore_ascii_case("KRW") {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            format!("currency {currency} is not supported (KRW only)"),
        ));
    }
    let tax_free = p.money_opt("tax_free").map_err(invalid)?.unwrap_or(0);
    if tax_free > amount {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            "tax_free must not exceed amount",
        ));
    }
    let vat_amount = match p.money_opt("vat_amount").map_err(invalid)? {
        Some(v) => Some(v),
        None => p.money_opt("vat").map_err(invalid)?,
    };
    let (mode, m_redirect_url) = window_mode(body, &p)?;
    let confirm_url = http_url(
        "confirm_url",
        p.str_opt("confirm_url", MAX_URL_CHARS).map_err(invalid)?,
    )?;
    let mut card_detail = Vec::new();
    if let Some(card) = p.raw("card") {
        let Value::Object(card) = card else {
            return Err(WindowError::new(
                codes::INVALID_PARAM,
                "card must be an object",
            ));
        };
        match card.get("detail") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if items.len() <= 64 => {
                for it in items {
                    let code = it["card_code"].as_str().filter(|c| {
                        !c.is_empty()
                            && c.len() <= 8
                            && c.chars().all(|ch| ch == '*' || ch.is_ascii_alphanumeric())
                    });
                    let (Some(code), Some(enabled)) = (code, it["enabled"].as_bool()) else {
                        return Err(WindowError::new(
                            codes::INVALID_PARAM,
                            "card.detail items need card_code (string) and enabled (boolean)",
                        ));
                    };
                    card_detail.push((code.to_owned(), enabled));
                }
            }
            Some(_) => {
                return Err(WindowError::new(
                    codes::INVALID_PARAM,
                    "card.detail must be an array (at most 64 items)",
                ))
            }
        }
    }
    let mut card_quota = None;
    if let Some(display) = p.raw("display") {
        match &display["card_quota"] {
            Value::Null => {}
            Value::Array(items) if items.len() <= 36 => {
                let mut months = Vec::new();
                for m in items {
                    match m.as_i64() {
                        Some(m) if (0..=36).contains(&m) => months.push(m),
                        _ => {
                            return Err(WindowError::new(
                                codes::INVALID_PARAM,
                                "display.card_quota must be integers from 0 to 36",
                            ))
                        }
                    }
                }
                card_quota = Some(months);
            }
            _ => {
                return Err(WindowError::new(
                    codes::INVALID_PARAM,
                    "display.card_quota must be an array of months",
                ))
            }
        }
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(500).collect::<String>());
    let mobile = ua.as_deref().is_some_and(is_mobile_ua) || mode == WindowMode::Redirect;
    // A browser always sends `Origin` with the SDK's POST and a page cannot forge it; the body's
    // `origin` is a fallback for clients without the header only. An opaque origin ("null":
    // sandboxed frames, file: pages) has no origin to allow.
    let parent_origin = match headers.get(header::ORIGIN) {
        Some(v) => v.to_str().ok().filter(|o| *o != "null").map(str::to_owned),
        None => body["origin"].as_str().map(str::to_owned),
    }
    .filter(|o| o.len() <= MAX_ORIGIN_CHARS);
    Ok(WindowRequest {
        imp_code,
        mode,
        mobile,
        user_agent: ua,
        parent_origin,
        pay_method,
        pg: p
            .str_opt("pg", 80)
            .map_err(invalid)?
            .or(p.str_opt("channelKey", 80).map_err(invalid)?),
        merchant_uid,
        amount,
        tax_free,
        vat_amount,
        name: p.str_opt("name", 100).map_err(invalid)?,
        buyer: Buyer {
            name: p.str_opt("buyer_name", 40).map_err(invalid)?,
            email: p.str_opt("buyer_email", 100).map_err(invalid)?,
            tel: p.str_opt("buyer_tel", 30).map_err(invalid)?,
            addr: p.str_opt("buyer_addr", 200).map_err(invalid)?,
            postcode: p.str_opt("buyer_postcode", 10).map_err(invalid)?,
        },
        custom_data: p.json_text_opt("custom_data", 8 * 1024).map_err(invalid)?,
        notice_urls: notice_urls(&p).map_err(invalid)?,
        customer_uid,
        customer_id: p.str_opt("customer_id", 100).map_err(invalid)?,
        m_redirect_url,
        confirm_url,
        card_detail,
        card_quota,
        escrow,
    })
}

/// The start shared by the SDK's prepare calls (payment and certification windows): the
/// per-address limit (every call writes rows), then a JSON object body. `Err` is the answer.
pub(crate) fn prepare_body(
    engine: &AppState,
    client: std::net::IpAddr,
    body: &[u8],
    what: &str,
) -> Result<Value, Box<Response>> {
    if !engine.anon.prepare_addr_allows(client) {
        metrics::counter!("pier_rate_limited_total", "limit" => "prepare_addr").increment(1);
        return Err(Box::new(crate::edge::too_many(&format!(
            "{what} per address"
        ))));
    }
    match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => {
            let e = WindowError::new(
                codes::INVALID_PARAM,
                "the request body must be a JSON object",
            );
            Err(Box::new(sdk_json(prevalidation_result(None, &e))))
        }
    }
}

/// The per-merchant limit of the SDK's prepare calls, once the request names a merchant.
pub(crate) fn prepare_merchant_limit(
    engine: &AppState,
    imp_code: &str,
    what: &str,
) -> Option<Response> {
    if engine.anon.prepare_merchant_allows(imp_code) {
        return None;
    }
    metrics::counter!("pier_rate_limited_total", "limit" => "prepare_merchant").increment(1);
    Some(crate::edge::too_many(&format!("{what} per merchant")))
}

pub async fn prepare(
    State(engine): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Each call writes a payment and a checkout row and opens a PG session: limited per client
    // address first, then per merchant once the request names a valid one.
    let v = match prepare_body(&engine, client, &body, "checkout/prepare") {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let merchant_uid = v["params"]["merchant_uid"].as_str().map(str::to_owned);
    let redirect_to = v["params"]["m_redirect_url"].as_str().map(str::to_owned);
    let fail = |e: WindowError| {
        let mut r = prevalidation_result(merchant_uid.as_deref(), &e);
        // A target refused by the origin gate is not handed back as a place to go.
        let redirect_to = redirect_to
            .as_deref()
            .filter(|_| e.code != codes::ORIGIN_NOT_ALLOWED);
        if let Some(u) = redirect_to.and_then(|u| merge_redirect(u, &r)) {
            r["redirect_url"] = json!(u);
        }
        sdk_json(r)
    };
    let req = match window_request(&v, &headers) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if let Some(refused) = prepare_merchant_limit(&engine, &req.imp_code, "checkout/prepare") {
        return refused;
    }
    let mode = req.mode;
    match engine.open_window(req).await {
        Ok(o) => sdk_json_for(
            json!({
                "success": true,
                "imp_uid": o.imp_uid,
                "merchant_uid": merchant_uid,
                "checkout_id": o.checkout_id,
                "window_url": o.window_url,
                "mode": mode.as_str(),
            }),
            o.cors_origin.as_deref().map_or(Cors::Any, Cors::Only),
        ),
        Err(e) => fail(e),
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// `frame-ancestors` of a merchant's pages: its allowed origins, or any (the demo, none set).
pub(crate) async fn frame_ancestors(engine: &Engine, merchant_id: &str) -> String {
    match engine.merchant_origins(merchant_id).await {
        Origins::Any => "*".into(),
        Origins::Only(list) if list.is_empty() => "'none'".into(),
        Origins::Only(list) => list.join(" "),
    }
}

fn page(html: String, frame_ancestors: &str) -> Response {
    page_with(html, frame_ancestors, "")
}

pub(crate) fn page_with(html: String, frame_ancestors: &str, extra: &str) -> Response {
    let mut res = html.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         form-action 'self'; base-uri 'none'; frame-ancestors {frame_ancestors}{extra}"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// The page that hands the result to the merchant page (iframe / popup).
fn done_page(c: &CheckoutSession, result: &Value, ancestors: &str) -> Response {
    let ok = result["success"].as_bool().unwrap_or(false);
    let msg = if ok {
        "결제가 완료되었습니다.".to_owned()
    } else {
        result["error_msg"]
            .as_str()
            .unwrap_or("결제에 실패하였습니다.")
            .to_owned()
    };
    let html = format!(
        "<!doctype html><html lang=\"ko\"><head><meta charset=\"utf-8\"><title>Pier 결제 결과</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/checkout/static/pier.css\">\
         <script src=\"/checkout/static/done.js\" defer></script></head>\
         <body data-testid=\"checkout-done\" data-mode=\"{mode}\" data-origin=\"{origin}\" data-checkout=\"{id}\" data-result=\"{result}\">\
         <main class=\"box\"><h1>Pier</h1><p data-testid=\"checkout-done-message\">{msg}</p></main></body></html>",
        mode = esc(&c.mode),
        origin = esc(c.parent_origin.as_deref().unwrap_or("")),
        id = esc(&c.id),
        result = esc(&result.to_string()),
        msg = esc(&msg),
    );
    page(html, ancestors)
}

pub(crate) fn redirect(to: &str) -> Response {
    let mut res = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The cookie binding a redirect-mode window to the browser that opened it.
fn binding_cookie_name(c: &CheckoutSession) -> String {
    format!("pier_rd_{}", c.id)
}

fn has_binding(engine: &Engine, c: &CheckoutSession, headers: &HeaderMap) -> bool {
    let name = binding_cookie_name(c);
    let want = engine.redirect_binding(&c.id);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .any(|(k, v)| {
            k == name && bool::from(subtle::ConstantTimeEq::ct_eq(v.as_bytes(), want.as_bytes()))
        })
}

/// The result delivered the way the window was opened. A redirect-mode result goes to
/// `m_redirect_url` only while the window's session lives, and only if that URL is on the
/// merchant's allowed origins or (no allowed origins set) the request comes from the browser
/// that opened the window; otherwise the result page is shown. So no one can use Pier as an
/// open redirect by opening and cancelling a window and handing out its URL.
async fn deliver(
    engine: &Engine,
    c: &CheckoutSession,
    result: &Value,
    headers: &HeaderMap,
) -> Response {
    let allowed = engine.merchant_origins(&c.merchant_id).await.into_list();
    if c.mode == "redirect" && engine.now() <= c.expires_at {
        if let Some(to) = c.m_redirect_url.as_deref() {
            let permitted = match &allowed {
                Some(list) => url_allowed(list, to),
                None => has_binding(engine, c, headers),
            };
            if let Some(u) = merge_redirect(to, result).filter(|_| permitted) {
                return redirect(&u);
            }
        }
    }
    // An unknown merchant (or a storage error) has an empty list: framed by nobody.
    let fa = match allowed {
        Some(list) if list.is_empty() => "'none'".to_owned(),
        Some(list) => list.join(" "),
        None => "*".to_owned(),
    };
    done_page(c, result, &fa)
}

/// The page of a window whose session has expired: no redirect, no result.
async fn expired_page(engine: &Engine, c: &CheckoutSession) -> Response {
    let html = "<!doctype html><html lang=\"ko\"><head><meta charset=\"utf-8\"><title>Pier</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/checkout/static/pier.css\"></head>\
         <body data-testid=\"checkout-expired\"><main class=\"box\"><h1>Pier</h1>\
         <p>결제창이 만료되었습니다. (this payment window has expired)</p></main></body></html>"
        .to_owned();
    let fa = frame_ancestors(engine, &c.merchant_id).await;
    let mut res = page(html, &fa);
    *res.status_mut() = StatusCode::NOT_FOUND;
    res
}

pub async fn window(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let c = engine.checkout(&id).await?;
    let now = engine.now();
    if now > c.expires_at {
        return Ok(expired_page(&engine, &c).await);
    }
    if let Some(r) = c
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str::<Value>(r).ok())
    {
        return Ok(deliver(&engine, &c, &r, &headers).await);
    }
    let mut res = match crate::engine::pg_window::browser_call(&c) {
        Some(call) => super::pg_window::handoff_page(&engine, &c, &call).await,
        None => redirect(&c.pg_window_url),
    };
    if c.mode == "redirect" {
        // The browser opening the window; it lives as long as the window's session.
        let secure = if engine.public_base().starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{}={}; Path=/checkout/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            binding_cookie_name(&c),
            engine.redirect_binding(&c.id),
            (c.expires_at - now).max(1),
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    Ok(res)
}

fn return_params(uri_query: Option<&str>, body: &[u8]) -> ApiResult<Params> {
    if !body.is_empty() {
        let text =
            std::str::from_utf8(body).map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
        return Params::from_form(text);
    }
    Params::from_query(uri_query)
}

pub async fn window_return(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let query = req.uri().query().map(str::to_owned);
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 16 * 1024)
        .await
        .map_err(|_| ApiError::bad_request("request body is too large"))?;
    let p = return_params(query.as_deref(), &body)?;
    let session = p.str_req("auth_session_id", 64)?;
    let cancelled = p.bool_opt("cancel")?.unwrap_or(false);
    let token = if cancelled {
        None
    } else {
        p.str_opt("auth_token", 64)?
    };
    let pg_params = super::pg_window::pg_return_params(query.as_deref(), &body)?;
    let (c, result) = engine
        .window_return(&id, &session, token, pg_params)
        .await?;
    Ok(deliver(&engine, &c, &result, &headers).await)
}

pub async fn cancel(State(engine): State<AppState>, Path(id): Path<String>) -> Response {
    match engine.cancel_window(&id).await {
        Ok((c, r)) => {
            // A merchant with allowed origins: only the page that opened the window reads it.
            let allowed = engine.merchant_origins(&c.merchant_id).await.into_list();
            match allowed {
                None => sdk_json(r),
                Some(list) => match c.parent_origin.as_deref() {
                    Some(o) if list.iter().any(|a| a == o) => sdk_json_for(r, Cors::Only(o)),
                    _ => sdk_json_for(r, Cors::Nobody),
                },
            }
        }
        Err(e) => {
            let e = WindowError::new(codes::SESSION_EXPIRED, e.to_string());
            sdk_json(prevalidation_result(None, &e))
        }
    }
}

/// Wraps the PG's window pages mounted in Pier (in-process channels): their `frame-ancestors`
/// becomes the merchant's allowed origins, looked up by the PG session in the path.
pub async fn pg_window_headers(
    State(engine): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let session = req
        .uri()
        .path()
        .strip_prefix("/testpg/window/")
        .and_then(|rest| rest.split('/').next())
        .filter(|s| !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_owned);
    let mut res = next.run(req).await;
    let ancestors = match session {
        Some(s) => match engine.merchant_of_pg_session(&s).await {
            Some(merchant_id) => frame_ancestors(&engine, &merchant_id).await,
            None => "'none'".into(),
        },
        None => return res,
    };
    let h = res.headers_mut();
    if let Some(csp) = h
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
    {
        let replaced = csp
            .split(';')
            .map(|d| {
                if d.trim_start().starts_with("frame-ancestors") {
                    format!(" frame-ancestors {ancestors}")
                } else {
                    d.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(";");
        if let Ok(v) = HeaderValue::from_str(&replaced) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    res
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
