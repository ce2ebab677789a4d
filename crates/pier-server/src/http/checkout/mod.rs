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
//!
//! `order` reads `request_pay` into a `WindowRequest`, `pages` holds the answers a browser
//! gets (JSON for the SDK, HTML pages), `assets` the embedded files and the demo shop.

mod assets;
pub mod order;
pub mod pages;

pub use assets::*;
pub use order::*;
pub use pages::*;

use crate::engine::origins::url_allowed;
use crate::engine::window::{codes, WindowError, WindowResult};
use crate::engine::Engine;
use crate::http::auth::ClientAddr;
use crate::http::error::{ApiError, ApiResult};
use crate::http::params::Params;
use crate::http::window_result::{merge_redirect, prevalidation_result, window_callback};
use crate::http::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use pier_store::CheckoutSession;
use serde_json::json;

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
    result: &WindowResult,
    headers: &HeaderMap,
) -> Response {
    let result = &window_callback(result);
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
    if let Some(r) = WindowResult::recorded(&c) {
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
            let r = window_callback(&r);
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
