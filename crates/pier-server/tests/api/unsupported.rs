//! PG-specific operations of the official OpenAPI (naver, kcpquick, benepia, payco, paymentwall,
//! partners, tiers): authenticated, HTTP 200 with code -1 saying the gateway does not offer them.

use crate::common::*;
use serde_json::json;

/// Every such path of the official OpenAPI with its method (path ids filled in).
const OPS: &[(&str, &str)] = &[
    ("POST", "/payments/imp_1/naver/cancel"),
    ("POST", "/payments/imp_1/naver/approve-cancel"),
    ("POST", "/payments/imp_1/naver/ship"),
    ("POST", "/payments/imp_1/naver/ship-exchanged"),
    ("POST", "/payments/imp_1/naver/collect-exchanged"),
    ("POST", "/payments/imp_1/naver/place"),
    ("POST", "/payments/imp_1/naver/request-return"),
    ("POST", "/payments/imp_1/naver/approve-return"),
    ("POST", "/payments/imp_1/naver/reject-return"),
    ("POST", "/payments/imp_1/naver/withhold-return"),
    ("POST", "/payments/imp_1/naver/resolve-return"),
    ("POST", "/payments/imp_1/naver/point"),
    ("POST", "/payments/imp_1/naver/confirm"),
    ("GET", "/payments/imp_1/naver/product-orders"),
    ("GET", "/payments/imp_1/naver/cash-amount"),
    ("GET", "/naver/product-orders/po_1"),
    ("GET", "/naver/reviews?from=1&to=2&review_type=general"),
    (
        "DELETE",
        "/kcpquick/members/m1?site_code=a&partner_type=b&partner_subtype=c",
    ),
    ("POST", "/kcpquick/members/m1/fido/release"),
    ("POST", "/kcpquick/payment/money"),
    ("POST", "/kcpquick/payment/autopay"),
    ("DELETE", "/kcpquick/autopay/cu_1"),
    ("POST", "/kcpquick/prepare/order-1"),
    ("PUT", "/kcpquick/prepare/order-1"),
    ("POST", "/benepia/point"),
    ("POST", "/benepia/payment"),
    ("POST", "/payco/orders/status/imp_1"),
    ("POST", "/paymentwall/delivery"),
    ("POST", "/partners/receipts/imp_1"),
    ("GET", "/tiers/T01"),
];

#[tokio::test]
async fn pg_specific_operations_are_refused_clearly() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    for (method, path) in OPS {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = t.http.request(m.clone(), t.url(path));
        if *method != "GET" {
            rb = rb.json(&json!({"reason": "x"}));
        }
        // Before these routes existed every one of them was a 404 "no such path".
        let (s, b) = t.send(rb.header("Authorization", &tok)).await;
        assert_eq!(
            (s, b["code"].as_i64()),
            (200, Some(-1)),
            "{method} {path}: {b}"
        );
        let msg = b["message"].as_str().unwrap();
        assert!(
            msg.contains("지원하지 않는") && msg.contains("does not offer"),
            "{method} {path}: {b}"
        );
        assert!(b["response"].is_null());
        // Authenticated like the rest.
        let (s, b) = t.send(t.http.request(m, t.url(path))).await;
        assert_eq!(
            (s, b["code"].as_i64()),
            (401, Some(-1)),
            "{method} {path}: {b}"
        );
    }
    // A method the official API does not have there stays a 405.
    let (s, _) = t
        .send(
            t.http
                .get(t.url("/benepia/point"))
                .header("Authorization", &tok),
        )
        .await;
    assert_eq!(s, 405);
}
