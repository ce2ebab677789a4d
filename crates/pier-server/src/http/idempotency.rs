//! `Idempotency-Key` on POST, PUT and DELETE (Stripe semantics): the first request with a key runs
//! and its answer is stored (declines included); the same key with the same request replays that
//! answer; with a different request it is refused; while the first still runs, 409. Non-final
//! answers (unknown PG outcome, storage errors) are not stored, so a retry runs again — and meets
//! the merchant_uid guard, which keeps it from charging twice. Keys are kept 24 hours at least.

use super::error::{ApiError, RETRYABLE_HEADER};
use super::{AppState, Merchant, BODY_LIMIT_BYTES};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pier_store::IdemBegin;

pub const HEADER: &str = "idempotency-key";
pub const MAX_KEY_LEN: usize = 255;
pub async fn layer(State(engine): State<AppState>, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::POST | Method::PUT | Method::DELETE) {
        return next.run(req).await;
    }
    let Some(key) = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return next.run(req).await;
    };
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return ApiError::bad_request(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} characters"
        ))
        .into_response();
    }
    let Some(Merchant(merchant)) = req.extensions().get::<Merchant>().cloned() else {
        return ApiError::unauthorized().into_response();
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                -1,
                "request body is too large (max 64 KiB)",
            )
            .into_response()
        }
    };
    // Keyed hash: the body may hold card data, and a plain hash of it could be brute-forced.
    let mut material = Vec::with_capacity(bytes.len() + 64);
    material.extend_from_slice(parts.method.as_str().as_bytes());
    material.push(b' ');
    material.extend_from_slice(parts.uri.path().as_bytes());
    material.push(b'\n');
    material.extend_from_slice(&bytes);
    let hash = engine.idem_request_hash(&material);
    match engine.idem_begin(&merchant, &key, &hash).await {
        Err(e) => return ApiError::from(e).into_response(),
        Ok(IdemBegin::InFlight { .. }) => {
            return ApiError::conflict("같은 Idempotency-Key의 요청이 처리 중입니다. (a request with this Idempotency-Key is in progress)")
                .retryable()
                .into_response()
        }
        Ok(IdemBegin::Done { request_hash, http_status, body }) => {
            if request_hash != hash {
                return mismatch();
            }
            let status = StatusCode::from_u16(http_status as u16).unwrap_or(StatusCode::OK);
            let mut res = (status, body).into_response();
            res.headers_mut().insert("content-type", HeaderValue::from_static("application/json; charset=utf-8"));
            res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            res.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
            return res;
        }
        Ok(IdemBegin::Started) => {}
    }
    let res = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (rparts, rbody) = res.into_parts();
    let rbytes = match axum::body::to_bytes(rbody, 4 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            let _ = engine.idem_abort(&merchant, &key).await;
            return ApiError::internal("response too large").into_response();
        }
    };
    if rparts.headers.contains_key(RETRYABLE_HEADER) || rparts.status.is_server_error() {
        if let Err(e) = engine.idem_abort(&merchant, &key).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
    } else {
        let text = String::from_utf8_lossy(&rbytes).into_owned();
        if let Err(e) = engine
            .idem_finish(&merchant, &key, rparts.status.as_u16() as i64, &text)
            .await
        {
            tracing::warn!(error = %e, "could not store an idempotent response");
        }
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

fn mismatch() -> Response {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        -1,
        "Idempotency-Key가 다른 요청에 이미 사용되었습니다. (this Idempotency-Key was used with a different request)",
    )
    .into_response()
}
