//! Escrow: `escrow: true` in `request_pay` (checkout prepare) marks the payment; delivery
//! information via `POST`/`PUT`/`GET /escrows/logis/{imp_uid}`; refusals for non-escrow and
//! unpaid payments, bad input, other merchants.

use crate::common::*;
use serde_json::{json, Value};

fn code(b: &Value) -> i64 {
    b["code"].as_i64().unwrap()
}

/// Opens a payment window with `params` and, when `pay` is set, pays it with a test card
/// through the test PG's forms (as checkout.rs does). Returns the imp_uid.
async fn window(t: &TestPier, params: Value, pay: bool) -> String {
    let client = no_redirects();
    let res = t
        .http
        .post(t.url("/checkout/prepare"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("origin", "http://shop.example")
        .body(json!({"user_code": DEMO_CODE, "mode": "redirect", "params": params}).to_string())
        .send()
        .await
        .unwrap();
    let opened: Value = res.json().await.unwrap();
    assert_eq!(opened["success"], true, "{opened}");
    let imp_uid = opened["imp_uid"].as_str().unwrap().to_owned();
    if !pay {
        return imp_uid;
    }
    let (back, binding) = card_window_through_pg(opened["window_url"].as_str().unwrap()).await;
    client
        .get(&back)
        .header("cookie", &binding)
        .send()
        .await
        .unwrap();
    imp_uid
}

fn params(merchant_uid: &str, escrow: bool) -> Value {
    json!({"pg": "jtnet", "pay_method": "card", "merchant_uid": merchant_uid, "amount": 30000,
           "escrow": escrow, "m_redirect_url": "https://shop.example/done"})
}

fn logis(company: &str, invoice: &str, sent_at: i64) -> Value {
    json!({
        "sender": {"name": "피어상점", "tel": "02-1234-5678", "addr": "서울시 중구", "postcode": "04500"},
        "receiver": {"name": "홍길동", "tel": "010-1234-5678", "addr": "서울시 강남구", "postcode": "06000"},
        "logis": {"company": company, "invoice": invoice, "sent_at": sent_at}
    })
}

async fn put(t: &TestPier, path: &str, tok: &str, body: Value) -> (u16, Value) {
    t.send(
        t.http
            .put(t.url(path))
            .header("Authorization", tok)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn escrow_payment_delivery_information() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let imp = window(&t, params("esc-1", true), true).await;
    let (_, p) = t.get(&format!("/payments/{imp}"), &tok).await;
    assert_eq!(p["response"]["status"], "paid", "{p}");
    assert_eq!(p["response"]["escrow"], true, "{p}");
    let path = format!("/escrows/logis/{imp}");

    // Nothing registered yet.
    let (s, b) = t.get(&path, &tok).await;
    assert_eq!((s, code(&b)), (409, -1), "{b}");
    // PUT before POST: nothing to change.
    let (s, _) = put(
        &t,
        &path,
        &tok,
        logis("CJGLS", "123456789012", 1_767_225_600),
    )
    .await;
    assert_eq!(s, 409);

    let (s, b) = t
        .post(
            &path,
            Some(&tok),
            logis("CJGLS", "123456789012", 1_767_225_600),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["company"], "CJGLS");
    assert_eq!(b["response"]["invoice"], "123456789012");
    assert_eq!(b["response"]["sent_at"], 1_767_225_600);
    assert!(b["response"]["applied_at"].as_i64().unwrap() > 0);
    // The answer carries no personal data of sender or receiver.
    assert!(!b.to_string().contains("홍길동"), "{b}");

    // Registering twice: refused; changing: allowed.
    let (s, b) = t
        .post(&path, Some(&tok), logis("EPOST", "999", 1_767_225_600))
        .await;
    assert_eq!((s, code(&b)), (409, -1), "{b}");
    let (s, b) = put(
        &t,
        &path,
        &tok,
        logis("EPOST", "6078-1234-5678", 1_767_229_200),
    )
    .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let (s, b) = t.get(&path, &tok).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["company"], "EPOST");
    assert_eq!(b["response"]["invoice"], "6078-1234-5678");
    assert_eq!(b["response"]["sent_at"], 1_767_229_200);

    // Bad input: 400.
    for body in [
        json!({}),
        json!({"sender": {"name": "a"}, "receiver": {"name": "b"}}),
        json!({"sender": "x", "receiver": {"name": "b"}, "logis": {"company": "CJ", "invoice": "1", "sent_at": 1}}),
        json!({"sender": {"name": "a"}, "receiver": {"name": "b"}, "logis": {"company": "CJ", "invoice": "1"}}),
        json!({"sender": {"name": "a"}, "receiver": {"name": "b"}, "logis": {"company": "CJ", "invoice": "1", "sent_at": "soon"}}),
        json!({"sender": {"name": "a"}, "receiver": {"name": "b"}, "logis": {"company": "C J", "invoice": "1", "sent_at": 1}}),
        json!({"sender": {"name": "a"}, "receiver": {}, "logis": {"company": "CJ", "invoice": "1", "sent_at": 1}}),
    ] {
        let (s, b) = put(&t, &path, &tok, body.clone()).await;
        assert_eq!((s, code(&b)), (400, -1), "{body}: {b}");
    }

    // Another merchant sees nothing.
    let other = t.other_merchant().await;
    let (s, _) = t.get(&path, &other).await;
    assert_eq!(s, 404);
    let (s, _) = t.post(&path, Some(&other), logis("CJGLS", "1", 1)).await;
    assert_eq!(s, 404);
    // Authenticated.
    let (s, _) = t.send(t.http.get(t.url(&path))).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn escrow_refusals() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    // A paid payment that is not escrow: refused cleanly.
    let card = t.pay(&tok, "esc-card", 1000).await;
    let imp = card["imp_uid"].as_str().unwrap();
    assert_eq!(card["escrow"], false);
    let (s, b) = t
        .post(
            &format!("/escrows/logis/{imp}"),
            Some(&tok),
            logis("CJGLS", "1", 1),
        )
        .await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("not an escrow payment"),
        "{b}"
    );
    // An escrow payment not paid yet.
    let ready = window(&t, params("esc-ready", true), false).await;
    let (_, p) = t.get(&format!("/payments/{ready}"), &tok).await;
    assert_eq!(p["response"]["escrow"], true);
    let (s, b) = t
        .post(
            &format!("/escrows/logis/{ready}"),
            Some(&tok),
            logis("CJGLS", "1", 1),
        )
        .await;
    assert_eq!((s, code(&b)), (409, -1), "{b}");
    // escrow must be a boolean; escrow with a billing key issue is refused.
    for bad in [
        json!({"pg": "jtnet", "merchant_uid": "esc-x", "amount": 1000, "escrow": "maybe"}),
        json!({"pg": "jtnet", "merchant_uid": "esc-y", "amount": 1000, "escrow": true, "customer_uid": "cu-1"}),
    ] {
        let res = t
            .http
            .post(t.url("/checkout/prepare"))
            .header("content-type", "text/plain;charset=UTF-8")
            .body(json!({"user_code": DEMO_CODE, "params": bad}).to_string())
            .send()
            .await
            .unwrap();
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["success"], false, "{bad}: {v}");
    }
    // Unknown payment.
    let (s, _) = t.get("/escrows/logis/imp_000000000000", &tok).await;
    assert_eq!(s, 404);
}
