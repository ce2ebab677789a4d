//! Bad input never gets a 500, a panic or a non-envelope answer.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn malformed_requests_get_envelopes() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    // Malformed JSON
    let (s, b) = t
        .send(
            t.http
                .post(t.url("/subscribe/payments/again"))
                .header("Authorization", &tok)
                .header("content-type", "application/json")
                .body("{\"amount\": "),
        )
        .await;
    assert_eq!((s, b["code"].as_i64().unwrap()), (400, -1));
    // JSON that is not an object
    let (s, _) = t
        .send(
            t.http
                .post(t.url("/subscribe/payments/again"))
                .header("Authorization", &tok)
                .header("content-type", "application/json")
                .body("[1,2]"),
        )
        .await;
    assert_eq!(s, 400);
    // Wrong content type
    let (s, _) = t
        .send(
            t.http
                .post(t.url("/subscribe/payments/again"))
                .header("Authorization", &tok)
                .header("content-type", "text/xml")
                .body("<a/>"),
        )
        .await;
    assert_eq!(s, 415);
    // Oversized body
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024));
    let (s, _) = t
        .send(
            t.http
                .post(t.url("/subscribe/payments/again"))
                .header("Authorization", &tok)
                .header("content-type", "application/json")
                .body(big),
        )
        .await;
    assert_eq!(s, 413);
    // Unknown path, wrong method
    let (s, b) = t.get("/nope/nothing", &tok).await;
    assert_eq!((s, b["code"].as_i64().unwrap()), (404, -1));
    let (s, _) = t.send(t.http.put(t.url("/users/getToken"))).await;
    assert_eq!(s, 405);
    // Trailing slash is the same path.
    let (s, b) = t
        .send(
            t.http
                .get(t.url("/users/pg/"))
                .header("Authorization", &tok),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    // Operations endpoints.
    let (s, _) = t.send(t.http.get(t.url("/healthz"))).await;
    assert_eq!(s, 200);
    let (s, _) = t.send(t.http.get(t.url("/readyz"))).await;
    assert_eq!(s, 200);
    let metrics = t
        .http
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("pier_http_requests_total"), "{metrics}");
    let openapi: serde_json::Value = t
        .http
        .get(t.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(openapi["paths"].is_object());
    // Request ids are echoed.
    let res = t.http.get(t.url("/healthz")).send().await.unwrap();
    assert!(res.headers().contains_key("x-request-id"));
    let _ = json!({});
}

#[tokio::test]
async fn code_tables() {
    let t = TestPier::start().await;
    let (s, b) = t.send(t.http.get(t.url("/cards"))).await;
    assert_eq!(s, 200);
    let cards = b["response"].as_array().unwrap();
    for code in [
        "361", "365", "366", "367", "368", "371", "381", "041", "090",
    ] {
        assert!(cards.iter().any(|c| c["code"] == code), "{code}");
    }
    let (s, b) = t.send(t.http.get(t.url("/cards/366"))).await;
    assert_eq!(
        (s, b["response"]["name"].as_str().unwrap()),
        (200, "신한카드")
    );
    let (s, _) = t.send(t.http.get(t.url("/cards/999"))).await;
    assert_eq!(s, 404);
    let (s, b) = t.send(t.http.get(t.url("/banks"))).await;
    assert_eq!(s, 200);
    assert!(b["response"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["code"] == "004"));
    let (s, b) = t.send(t.http.get(t.url("/banks/088"))).await;
    assert_eq!(
        (s, b["response"]["name"].as_str().unwrap()),
        (200, "신한은행")
    );
    let (s, _) = t.send(t.http.get(t.url("/banks/000"))).await;
    assert_eq!(s, 404);
}

/// Integers at the edges of i64 in query windows and paging: a clean envelope, never an
/// overflow (schemathesis once found `schedule_to=9223372036854775807` dropping the connection).
#[tokio::test]
async fn extreme_integers_in_queries_get_envelopes() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let max = i64::MAX;
    let min = i64::MIN;
    let cases: Vec<(String, u16)> = vec![
        (
            format!("/subscribe/payments/schedule?schedule_from=0&schedule_to={max}"),
            400,
        ),
        (
            format!("/subscribe/payments/schedule?schedule_from={min}&schedule_to={max}"),
            400,
        ),
        (
            format!("/subscribe/payments/schedule?schedule_from={max}&schedule_to={min}"),
            400,
        ),
        (
            format!(
                "/subscribe/payments/schedule?schedule_from={}&schedule_to={max}",
                max - 1
            ),
            200,
        ),
        (format!("/payments/status/paid?from=1&to={max}"), 400),
        // from ≤ 0 means "not given" (the default window ending at `to`)
        (format!("/payments/status/paid?from={min}&to={max}"), 200),
        (format!("/payments/status/all?to={max}"), 200),
        (format!("/payments/status/all?from={max}"), 400),
        (
            "/payments/status/all?page=1000000&limit=1000".to_string(),
            200,
        ),
        (format!("/payments/status/all?page={max}"), 400),
        (format!("/payments/status/all?limit={min}"), 400),
        (
            "/payments/status/all?page=99999999999999999999".to_string(),
            400,
        ),
        // a customer without schedules has an empty page
        (
            format!("/subscribe/customers/nobody/schedules?from={min}&to={max}"),
            200,
        ),
        (
            format!(
                "/subscribe/payments/schedule/customers/nobody?from={min}&to={max}&page=1000000"
            ),
            200,
        ),
        (
            "/webhooks/deliveries?page=1000000&limit=1000".to_string(),
            200,
        ),
    ];
    for (path, want) in cases {
        let (s, b) = t.get(&path, &tok).await;
        assert_eq!(s, want, "{path}: {b}");
        assert!(
            b["code"].is_i64() && b.get("response").is_some(),
            "{path}: {b}"
        );
        if want == 200 {
            assert_eq!(b["code"], 0, "{path}: {b}");
        }
    }
}
