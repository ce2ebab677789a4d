//! `GET /payments/{imp_uid}/balance` in the documented shape (OAS
//! `PaymentBalanceResponseAnnotation`): tax-free/supply/VAT split, histories, unpaid payments,
//! tenant scoping.

use crate::common::*;
use pier_domain::Clock;
use serde_json::{json, Value};

fn part(p: &Value) -> (i64, i64, i64, i64) {
    (
        p["tax_free"].as_i64().unwrap(),
        p["supply"].as_i64().unwrap(),
        p["vat"].as_i64().unwrap(),
        p["service"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn balance_splits_tax_free_and_vat_per_change() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let (s, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(&tok),
            json!({"merchant_uid": "bal-1", "amount": 11_000, "tax_free": 1000, "card_number": CARD_OK, "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12"}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    let imp = b["response"]["imp_uid"].as_str().unwrap().to_owned();

    let (s, b) = t.get(&format!("/payments/{imp}/balance"), &tok).await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    let r = &b["response"];
    assert_eq!(r["amount"], 11_000);
    // 10,000 taxable: VAT is 1/11 rounded (909), supply the rest.
    assert_eq!(part(&r["primary"]), (1000, 9091, 909, 0));
    assert_eq!(part(&r["secondary"]), (0, 0, 0, 0));
    assert_eq!(part(&r["discount"]), (0, 0, 0, 0));
    assert_eq!(part(&r["cash_receipt"]), (0, 0, 0, 0));
    assert_eq!(r["histories"].as_array().unwrap().len(), 1);
    assert!(r["histories"][0]["created"].as_i64().unwrap() > 0);

    // A partial cancel with a tax-free part.
    let (s, c) = t
        .post(
            "/payments/cancel",
            Some(&tok),
            json!({"imp_uid": imp, "amount": 5500, "tax_free": 500}),
        )
        .await;
    assert_eq!((s, c["code"].as_i64()), (200, Some(0)), "{c}");
    let (_, b) = t.get(&format!("/payments/{imp}/balance"), &tok).await;
    let r = &b["response"];
    assert_eq!(r["amount"], 11_000, "the original total stays");
    // 500 tax-free and 5000 taxable remain: VAT the integer 1/11 of 5000 (454), supply the rest.
    assert_eq!(part(&r["primary"]), (500, 4546, 454, 0));
    let hs = r["histories"].as_array().unwrap();
    assert_eq!(hs.len(), 2);
    assert_eq!(part(&hs[0]["primary"]), (1000, 9091, 909, 0));
    assert_eq!(part(&hs[1]["primary"]), (500, 4546, 454, 0));

    // Another merchant never sees it.
    let other = t.other_merchant().await;
    let (s, b) = t.get(&format!("/payments/{imp}/balance"), &other).await;
    assert_eq!((s, b["code"].as_i64()), (404, Some(-1)), "{b}");
    let (s, _) = t.get("/payments/imp_000000000000/balance", &tok).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn balance_of_an_unpaid_payment_is_empty() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let due = t.clock.now_unix() + 86_400;
    let (s, b) = t
        .post(
            "/vbanks",
            Some(&tok),
            json!({"merchant_uid": "bal-vb", "amount": 3000, "vbank_code": "004", "vbank_due": due, "vbank_holder": "홍길동"}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    let imp = b["response"]["imp_uid"].as_str().unwrap();
    let (s, b) = t.get(&format!("/payments/{imp}/balance"), &tok).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["response"]["amount"], 3000);
    assert_eq!(part(&b["response"]["primary"]), (0, 0, 0, 0));
    assert_eq!(b["response"]["histories"], json!([]));
}
