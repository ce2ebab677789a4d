//! The PG-specific operations of the i'mport API (Naver Pay order management, KCP QuickPay,
//! Benepia points, PAYCO order status, Paymentwall delivery, partner receipts, tiers): every path
//! of the official OpenAPI under those prefixes answers that the gateway does not offer it.
//!
//! Why HTTP 200 with code -1: the paths and methods are valid i'mport operations, so a 404
//! would tell a client the payment or the path does not exist, and a 5xx (the OAS's "501 PG
//! unsupported") makes clients treat it as a server fault and retry (Python's client throws the
//! body away on any non-200; spec §1.3). i'mport reports what a PG cannot or will not do as
//! HTTP 200 with code -1 and the reason in `message` — the same envelope as a PG refusal — which
//! every client library surfaces as a plain failure. The token is checked first (these routes
//! sit on the authenticated router), so an anonymous caller learns nothing.

use super::error::ApiError;
use super::AppState;
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;

/// The refusal, naming the feature (Korean and English) the gateway does not offer.
fn refusal(feature: &'static str) -> ApiError {
    ApiError::pg_refused(format!(
        "해당 PG사에서 지원하지 않는 기능입니다: {feature}. (the gateway does not offer this operation: Pier's PGs do not include {feature})"
    ))
}

fn naver() -> MethodRouter<AppState> {
    post(|| async { refusal("네이버페이 주문관리 / Naver Pay order management") })
}

/// Routes for every PG-specific path of the official OpenAPI, methods as documented.
pub fn routes() -> Router<AppState> {
    let naver_get =
        || get(|| async { refusal("네이버페이 주문관리 / Naver Pay order management") });
    let kcpquick = || async { refusal("KCP 퀵페이 / KCP QuickPay") };
    let benepia = || async { refusal("베네피아 포인트 / Benepia points") };
    let mut r = Router::new();
    for action in [
        "cancel",
        "approve-cancel",
        "ship",
        "ship-exchanged",
        "collect-exchanged",
        "place",
        "request-return",
        "approve-return",
        "reject-return",
        "withhold-return",
        "resolve-return",
        "point",
        "confirm",
    ] {
        r = r.route(&format!("/payments/{{imp_uid}}/naver/{action}"), naver());
    }
    r.route("/payments/{imp_uid}/naver/product-orders", naver_get())
        .route("/payments/{imp_uid}/naver/cash-amount", naver_get())
        .route("/naver/product-orders/{product_order_id}", naver_get())
        .route("/naver/reviews", naver_get())
        .route("/kcpquick/members/{member_id}", delete(kcpquick))
        .route("/kcpquick/members/{member_id}/fido/release", post(kcpquick))
        .route("/kcpquick/payment/money", post(kcpquick))
        .route("/kcpquick/payment/autopay", post(kcpquick))
        .route("/kcpquick/autopay/{customer_uid}", delete(kcpquick))
        .route(
            "/kcpquick/prepare/{merchant_uid}",
            post(kcpquick).put(kcpquick),
        )
        .route("/benepia/point", post(benepia))
        .route("/benepia/payment", post(benepia))
        .route(
            "/payco/orders/status/{imp_uid}",
            post(|| async { refusal("PAYCO 주문상태 변경 / PAYCO order status") }),
        )
        .route(
            "/paymentwall/delivery",
            post(|| async { refusal("Paymentwall 배송정보 / Paymentwall delivery") }),
        )
        .route(
            "/partners/receipts/{imp_uid}",
            post(|| async { refusal("파트너 영수증 / partner receipts") }),
        )
        .route(
            "/tiers/{tier_code}",
            get(|| async { refusal("하위가맹점(Tier) 조회 / tier lookup") }),
        )
}
