//! The browser and webhook side of PGs whose window is opened by their own script (Toss):
//!
//! - `GET /checkout/window/{id}` of such a window serves `handoff_page`: it loads the PG's
//!   script (its origin is the only foreign one in `script-src`) and `pgcall.js` performs the
//!   stored call (`engine::pg_window`).
//! - `GET /checkout/static/pgcall.js`.
//! - `/checkout/return/{id}`: the PG's own return parameters (`pg_return_params`), bounded.
//! - `POST /pg/tosspayments/{channel_id}/webhook`: Toss's webhooks for a channel, a hint that
//!   Pier checks with Toss before acting (`engine::pg_webhooks`).

use super::checkout::pages::{esc, frame_ancestors};
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::engine::pg_webhooks::PgWebhook;
use crate::engine::Engine;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pier_pg::BrowserCall;
use pier_store::CheckoutSession;
use serde_json::json;

pub const PGCALL_JS: &str = include_str!("../../sdk/pgcall.js");

/// A PG's return carries a handful of parameters (Toss: `paymentKey`, `orderId`, `amount`, or
/// `customerKey`, `authKey`, or `code`, `message`, `orderId`); 16 leaves room, and each value
/// fits Toss's longest (`authKey`, `paymentKey`: at most 300 characters).
const MAX_PG_PARAMS: usize = 16;
const MAX_PG_KEY_CHARS: usize = 40;
const MAX_PG_VALUE_CHARS: usize = 300;
/// Webhook bodies: a Toss Payment object is a few kilobytes.
const MAX_WEBHOOK_BYTES: usize = 64 * 1024;

pub async fn pgcall_js() -> Response {
    let mut res = PGCALL_JS.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

/// The parameters of a return other than Pier's own (`auth_session_id`, `auth_token`,
/// `cancel`), from the form body or else the query. Too many or too long is a 400.
pub fn pg_return_params(query: Option<&str>, body: &[u8]) -> ApiResult<Vec<(String, String)>> {
    let raw: &[u8] = if body.is_empty() {
        query.unwrap_or("").as_bytes()
    } else {
        body
    };
    let mut out = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        if matches!(k.as_ref(), "auth_session_id" | "auth_token" | "cancel") {
            continue;
        }
        if out.len() >= MAX_PG_PARAMS
            || k.chars().count() > MAX_PG_KEY_CHARS
            || v.chars().count() > MAX_PG_VALUE_CHARS
        {
            return Err(ApiError::bad_request(
                "too many or too long parameters in the PG's return",
            ));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

/// `scheme://host[:port]` of the PG's script, for the page's CSP; `None` if it is not an
/// http(s) URL (the page then loads no foreign script, and pgcall.js goes to the fail URL).
fn script_origin(u: &str) -> Option<String> {
    let u = url::Url::parse(u).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    Some(u.origin().ascii_serialization())
}

/// The page that opens the PG's window with its script.
pub async fn handoff_page(engine: &Engine, c: &CheckoutSession, call: &BrowserCall) -> Response {
    let origin = script_origin(&call.script_url);
    let script = origin
        .as_ref()
        .map(|_| format!("<script src=\"{}\"></script>", esc(&call.script_url)))
        .unwrap_or_default();
    let call_json = serde_json::to_string(call).unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=\"ko\"><head><meta charset=\"utf-8\"><title>Pier</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/checkout/static/pier.css\">{script}\
         <script src=\"/checkout/static/pgcall.js\" defer></script></head>\
         <body data-testid=\"checkout-pg-handoff\" data-call=\"{call}\"><main class=\"box\"><h1>Pier</h1>\
         <p>결제창으로 이동합니다… (opening the PG's payment window)</p></main></body></html>",
        call = esc(&call_json),
    );
    let o = origin.unwrap_or_default();
    let fa = frame_ancestors(engine, &c.merchant_id).await;
    // The PG's script may open its own layer (iframe) and call its own API: its origin, and
    // https for the hosts it uses that Pier cannot list (Toss's live SDK; to verify live).
    let csp = format!(
        "default-src 'none'; script-src 'self' {o}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: https:; connect-src 'self' {o} https:; frame-src {o} https:; \
         form-action 'self' {o} https:; base-uri 'none'; frame-ancestors {fa}"
    );
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
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// Toss's webhook for one channel. Always 200 once read (Toss resends anything else), with what
/// Pier made of it; 404 for a channel that is not a Toss channel; 503 when Pier could not
/// check it (Toss resends it later).
pub async fn toss_webhook(
    State(engine): State<AppState>,
    Path(channel_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    if body.len() > MAX_WEBHOOK_BYTES {
        return Err(ApiError::bad_request("the webhook body is too large"));
    }
    let v = match engine.toss_webhook(&channel_id, &body).await? {
        PgWebhook::Paid(imp_uid) => json!({"result": "paid", "imp_uid": imp_uid}),
        PgWebhook::Ignored(why) => json!({"result": "ignored", "reason": why}),
    };
    let mut res = (StatusCode::OK, v.to_string()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Ok(res)
}
