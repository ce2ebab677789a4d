//! The HTTP layer: one module per i'mport resource, the envelope, and the middleware that every
//! route shares (auth, idempotency keys, metrics, request ids, limits).
//!
//! Where is a REST path handled? `router()` below lists every route and the module that serves it.

pub mod admin;
pub mod auth;
pub mod balance;
pub mod certifications;
pub mod checkout;
pub mod codes;
pub mod edge;
pub mod error;
pub mod escrows;
pub mod holder;
pub mod idempotency;
pub mod ops;
pub mod params;
pub mod payments;
pub mod pg_window;
pub mod receipts;
pub mod refunds;
pub mod schedules;
pub mod subscribe;
pub mod testid;
pub mod unsupported;
pub mod vbanks;
pub mod webhooks;
pub mod window_result;
pub mod wire;

use crate::engine::Engine;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use error::ApiError;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub type AppState = Arc<Engine>;

/// Largest request body accepted.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;
/// No request may take longer than this end to end.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every route, the operator console's (`console`) and `pages` (the test PG's window pages)
/// under the same middleware. Authenticated routes sit behind the token check and the
/// idempotency layer. The console comes in as a router so that `http` does not name it (the
/// console builds on `http`'s state and limits, not the other way round).
pub fn router(state: AppState, console: Router<AppState>, pages: Router) -> Router {
    let authed = Router::new()
        .route("/users/pg", get(auth::list_pg))
        .route("/payments", get(payments::get_many))
        .route("/payments/{imp_uid}", get(payments::get_one))
        .route("/payments/find/{merchant_uid}", get(payments::find))
        .route(
            "/payments/find/{merchant_uid}/{status}",
            get(payments::find_with_status),
        )
        .route("/payments/findAll/{merchant_uid}", get(payments::find_all))
        .route(
            "/payments/findAll/{merchant_uid}/{status}",
            get(payments::find_all_with_status),
        )
        .route("/payments/status/{status}", get(payments::by_status))
        .route("/payments/cancel", post(refunds::cancel))
        .route("/payments/{imp_uid}/balance", get(balance::balance))
        .route(
            "/payments/prepare",
            post(refunds::prepare_create).put(refunds::prepare_update),
        )
        .route(
            "/payments/prepare/{merchant_uid}",
            get(refunds::prepare_get),
        )
        .route("/vbanks", post(vbanks::issue))
        .route("/vbanks/holder", get(holder::holder))
        .route(
            "/vbanks/{imp_uid}",
            put(vbanks::update).delete(vbanks::revoke),
        )
        .route("/testpg/vbank/deposit", post(vbanks::testpg_deposit))
        .route("/subscribe/payments/onetime", post(subscribe::onetime))
        .route("/subscribe/payments/again", post(subscribe::again))
        .route("/subscribe/customers", get(subscribe::get_customers))
        .route(
            "/subscribe/customers/{customer_uid}",
            get(subscribe::get_customer)
                .post(subscribe::issue_customer)
                .delete(subscribe::delete_customer),
        )
        .route(
            "/subscribe/customers/{customer_uid}/payments",
            get(subscribe::customer_payments),
        )
        .route(
            "/subscribe/payments/schedule",
            get(schedules::list).post(schedules::create),
        )
        .route(
            "/subscribe/payments/unschedule",
            post(schedules::unschedule),
        )
        .route(
            "/subscribe/payments/schedule/{merchant_uid}",
            get(schedules::get_one).put(schedules::update),
        )
        .route(
            "/subscribe/payments/schedule/{merchant_uid}/reschedule",
            post(schedules::reschedule),
        )
        .route(
            "/subscribe/payments/schedule/{merchant_uid}/retry",
            post(schedules::retry),
        )
        .route(
            "/subscribe/payments/schedule/customers/{customer_uid}",
            get(schedules::by_customer),
        )
        .route(
            "/subscribe/customers/{customer_uid}/schedules",
            get(schedules::by_customer),
        )
        .route("/webhooks/deliveries", get(webhooks::deliveries))
        .route("/webhooks/{event_id}/redeliver", post(webhooks::redeliver))
        .route("/admin/unsettled", get(admin::unsettled))
        .merge(unsupported::routes())
        .route(
            "/escrows/logis/{imp_uid}",
            get(escrows::get_one)
                .post(escrows::register)
                .put(escrows::update),
        )
        .route(
            "/receipts/{imp_uid}",
            get(receipts::get_one)
                .post(receipts::issue)
                .delete(receipts::cancel),
        )
        .route(
            "/receipts/external/{merchant_uid}",
            get(receipts::get_external)
                .post(receipts::issue_external)
                .delete(receipts::cancel_external),
        )
        .route(
            "/certifications/{imp_uid}",
            get(certifications::get_one).delete(certifications::delete_one),
        )
        .route(
            "/certifications/otp/request",
            post(certifications::otp_request),
        )
        .route(
            "/certifications/otp/confirm/{imp_uid}",
            post(certifications::otp_confirm),
        )
        .route_layer(from_fn_with_state(state.clone(), idempotency::layer))
        .route_layer(from_fn_with_state(state.clone(), auth::require_token));

    let mut public = Router::new()
        .route("/users/getToken", post(auth::get_token))
        .route("/pg/pgsim/notify", post(vbanks::pgsim_notify))
        .route("/cards", get(codes::cards))
        .route("/cards/{code}", get(codes::card))
        .route("/banks", get(codes::banks))
        .route("/banks/{code}", get(codes::bank))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(ops::openapi))
        .route("/v1/iamport.js", get(checkout::sdk))
        // Limited per address and per merchant in the handler (it reads the merchant).
        .route(
            "/checkout/prepare",
            post(checkout::prepare).options(checkout::preflight),
        )
        // Limited per address and per merchant in the handler, as /checkout/prepare.
        .route(
            "/checkout/certification/prepare",
            post(testid::prepare).options(checkout::preflight),
        )
        .route("/checkout/static/done.js", get(checkout::done_js))
        .route("/checkout/static/pier.css", get(checkout::css))
        .route("/checkout/static/pgcall.js", get(pg_window::pgcall_js))
        .route("/demo", get(checkout::demo))
        .route("/demo/shop.js", get(checkout::demo_js));
    // With `--metrics-listen`, /metrics is served there only.
    if state.config().metrics_listen.is_none() {
        public = public.route("/metrics", get(ops::metrics));
    }
    // Anonymous endpoints that do work per call: limited per client address.
    let anonymous = Router::new()
        .route("/checkout/window/{id}", get(checkout::window))
        .route(
            "/checkout/return/{id}",
            get(checkout::window_return).post(checkout::window_return),
        )
        .route(
            "/checkout/cancel/{id}",
            post(checkout::cancel).options(checkout::preflight),
        )
        .route("/demo/verify", post(checkout::demo_verify))
        .route(
            "/checkout/certification/cancel/{id}",
            post(testid::sdk_cancel).options(checkout::preflight),
        )
        .route("/testid/{id}", get(testid::window))
        .route("/testid/{id}/request", post(testid::request))
        .route("/testid/{id}/confirm", post(testid::confirm))
        .route("/testid/{id}/cancel", post(testid::cancel))
        .route("/testid/{id}/result", get(testid::result))
        .route(
            "/pg/tosspayments/{channel_id}/webhook",
            post(pg_window::toss_webhook),
        )
        .route_layer(from_fn_with_state(state.clone(), edge::anon_limit));
    // The test PG's window pages: the same limit, and below the same stack as the API.
    let pages = pages.route_layer(from_fn_with_state(state.clone(), edge::anon_limit));

    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(authed)
        .merge(public)
        .merge(anonymous)
        .merge(console)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        .merge(pages)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(from_fn(track_metrics))
        .layer(from_fn(deadline))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                // The path only: bodies (card data) and query strings are never logged.
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id, merchant = tracing::field::Empty)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(from_fn_with_state(state, edge::client_addr))
        .layer(crate::edge::nosniff())
}

/// `/metrics` alone, for `--metrics-listen`.
pub fn metrics_router() -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        .layer(crate::edge::nosniff())
}

async fn not_found() -> ApiError {
    ApiError::not_found("요청하신 API를 찾을 수 없습니다. (no such path)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        -1,
        "허용되지 않는 메소드입니다. (method not allowed)",
    )
}

async fn deadline(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::unavailable("요청 처리 시간이 초과되었습니다. (request timed out)")
            .into_response(),
    }
}

/// Request counts and latency histograms by route template and status.
async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("pier_http_requests_total", &labels).increment(1);
    metrics::histogram!("pier_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    res
}

/// The merchant the token resolved to, put in request extensions by `auth::require_token`.
#[derive(Clone, Debug)]
pub struct Merchant(pub String);
