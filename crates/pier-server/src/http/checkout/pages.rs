//! What a browser gets back: JSON for the SDK (with its CORS), and HTML pages with a strict
//! Content-Security-Policy and `frame-ancestors` from the merchant's allowed origins.

use crate::engine::gates::Origins;
use crate::engine::Engine;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pier_store::CheckoutSession;
use serde_json::Value;

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

pub(super) fn page(html: String, frame_ancestors: &str) -> Response {
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
pub(super) fn done_page(c: &CheckoutSession, result: &Value, ancestors: &str) -> Response {
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
