//! Cash receipts: of a paid virtual-account payment (`/receipts/{imp_uid}`) and external
//! (`/receipts/external/{merchant_uid}`): issue, lookup, cancel, refusals, tenant scoping, the
//! payment's `cash_receipt_issued`, a full cancel taking the receipt with it, and the
//! identifier stored only masked.

use crate::common::*;
use pier_domain::Clock;
use serde_json::{json, Value};

fn code(b: &Value) -> i64 {
    b["code"].as_i64().unwrap()
}

/// A paid virtual-account payment; returns its imp_uid.
async fn paid_vbank(t: &TestPier, tok: &str, merchant_uid: &str, amount: i64) -> String {
    let due = t.clock.now_unix() + 86_400;
    let (s, b) = t
        .post(
            "/vbanks",
            Some(tok),
            json!({"merchant_uid": merchant_uid, "amount": amount, "vbank_code": "004", "vbank_due": due, "vbank_holder": "홍길동"}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let imp = b["response"]["imp_uid"].as_str().unwrap().to_owned();
    let (s, b) = t
        .post("/testpg/vbank/deposit", Some(tok), json!({"imp_uid": imp}))
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    imp
}

#[tokio::test]
async fn payment_receipt_issue_lookup_cancel_and_full_refund() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let imp = paid_vbank(&t, &tok, "rc-1", 25_000).await;

    let (s, b) = t
        .post(
            &format!("/receipts/{imp}"),
            Some(&tok),
            json!({"identifier": "010-1234-5678", "identifier_type": "phone", "type": "person", "buyer_name": "홍길동"}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let r = b["response"].clone();
    assert_eq!(r["imp_uid"], imp.as_str());
    assert_eq!(r["status"], "issued");
    assert_eq!(r["cancelled_at"], 0);
    assert_eq!(r["type"], "person");
    assert_eq!(r["amount"], 25_000);
    assert_eq!(r["vat"], 25_000 / 11);
    assert!(r["applied_at"].as_i64().unwrap() > 0);
    assert!(r["receipt_tid"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(r["apply_num"].as_str().unwrap().len(), 9);
    // The identifier is never echoed, and only its masked form is stored.
    assert!(!b.to_string().contains("5678"), "{b}");
    let merchant_id = t
        .pier
        .store()
        .get_payment(None, &imp)
        .await
        .unwrap()
        .unwrap()
        .merchant_id;
    let stored = t
        .pier
        .store()
        .find_receipt(&merchant_id, "payment", &imp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.identifier_masked, "010****5678");

    // The payment shows it; the balance shows the part it covers.
    let (_, p) = t.get(&format!("/payments/{imp}"), &tok).await;
    assert_eq!(p["response"]["cash_receipt_issued"], true, "{p}");
    let (_, bal) = t.get(&format!("/payments/{imp}/balance"), &tok).await;
    assert_eq!(bal["response"]["cash_receipt"]["vat"], 25_000 / 11, "{bal}");

    // Issuing twice is refused; the lookup answers the receipt.
    let (s, b) = t
        .post(
            &format!("/receipts/{imp}"),
            Some(&tok),
            json!({"identifier": "01012345678"}),
        )
        .await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");
    let (s, b) = t.get(&format!("/receipts/{imp}"), &tok).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["receipt_tid"], r["receipt_tid"]);

    // Another merchant sees nothing and cannot cancel it.
    let other = t.other_merchant().await;
    let (s, _) = t.get(&format!("/receipts/{imp}"), &other).await;
    assert_eq!(s, 404);
    let (s, _) = t.delete(&format!("/receipts/{imp}"), &other).await;
    assert_eq!(s, 404);

    // Cancel, cancel again (refused), issue anew.
    let (s, b) = t.delete(&format!("/receipts/{imp}"), &tok).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["status"], "cancelled");
    assert!(b["response"]["cancelled_at"].as_i64().unwrap() > 0);
    let (_, p) = t.get(&format!("/payments/{imp}"), &tok).await;
    assert_eq!(p["response"]["cash_receipt_issued"], false);
    let (s, b) = t.delete(&format!("/receipts/{imp}"), &tok).await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");
    t.clock.advance(1);
    let (s, b) = t
        .post(
            &format!("/receipts/{imp}"),
            Some(&tok),
            json!({"identifier": "123-45-67890", "type": "company"}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["type"], "company");

    // A full refund of the payment cancels its receipt.
    let (s, b) = t
        .post(
            "/payments/cancel",
            Some(&tok),
            json!({"imp_uid": imp, "refund_holder": "홍길동", "refund_bank": "088", "refund_account": "110-123-456789", "refund_tel": "01012345678"}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["cash_receipt_issued"], false, "{b}");
    let (s, b) = t.get(&format!("/receipts/{imp}"), &tok).await;
    assert_eq!(s, 200);
    assert_eq!(b["response"]["status"], "cancelled", "{b}");
    assert!(b["response"]["cancelled_at"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn payment_receipt_refusals() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    // A card payment: refused cleanly.
    let card = t.pay(&tok, "rc-card", 1000).await;
    let imp = card["imp_uid"].as_str().unwrap();
    let (s, b) = t
        .post(
            &format!("/receipts/{imp}"),
            Some(&tok),
            json!({"identifier": "01012345678"}),
        )
        .await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("trans or vbank"),
        "{b}"
    );
    // An unpaid virtual account.
    let due = t.clock.now_unix() + 86_400;
    let (_, v) = t
        .post(
            "/vbanks",
            Some(&tok),
            json!({"merchant_uid": "rc-wait", "amount": 1000, "vbank_code": "004", "vbank_due": due, "vbank_holder": "홍길동"}),
        )
        .await;
    let wait = v["response"]["imp_uid"].as_str().unwrap();
    let (s, b) = t
        .post(
            &format!("/receipts/{wait}"),
            Some(&tok),
            json!({"identifier": "01012345678"}),
        )
        .await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");
    // Never issued: GET 404, DELETE 400.
    let (s, _) = t.get(&format!("/receipts/{wait}"), &tok).await;
    assert_eq!(s, 404);
    let (s, _) = t.delete(&format!("/receipts/{wait}"), &tok).await;
    assert_eq!(s, 400);
    // Unknown payment.
    let (s, _) = t
        .post(
            "/receipts/imp_000000000000",
            Some(&tok),
            json!({"identifier": "01012345678"}),
        )
        .await;
    assert_eq!(s, 404);
    // Bad parameters on a payable one.
    let imp = paid_vbank(&t, &tok, "rc-2", 5000).await;
    for body in [
        json!({}),
        json!({"identifier": "12345"}),
        json!({"identifier": "010-abcd-5678"}),
        json!({"identifier": "01012345678", "type": "robot"}),
        json!({"identifier": "01012345678", "identifier_type": "x"}),
        json!({"identifier": "01012345678", "tax_free": 6000}),
        json!({"identifier": "01012345678", "tax_free": "10"}),
        json!({"identifier": "01012345678", "vat_amount": -1}),
    ] {
        let (s, b) = t
            .post(&format!("/receipts/{imp}"), Some(&tok), body.clone())
            .await;
        assert_eq!((s, code(&b)), (400, -1), "{body}: {b}");
    }
    let (_, p) = t.get(&format!("/payments/{imp}"), &tok).await;
    assert_eq!(p["response"]["cash_receipt_issued"], false);
}

#[tokio::test]
async fn external_receipts() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let (s, b) = t
        .post(
            "/receipts/external/ext-1",
            Some(&tok),
            json!({"amount": 11_000, "identifier": "010-9876-5432", "name": "offline order", "pay_method": "trans"}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let r = &b["response"];
    assert_eq!(r["merchant_uid"], "ext-1");
    assert_eq!(r["amount"], 11_000);
    assert_eq!(
        r["vat"], 1000,
        "vat defaults to the integer 1/11 of the amount"
    );
    assert!(r["vat"].is_i64());
    assert_eq!(r["status"], "issued");
    assert_eq!(r["cancelled_at"], 0);
    assert!(!b.to_string().contains("5432"));

    // Twice for one merchant_uid: refused.
    let (s, b) = t
        .post(
            "/receipts/external/ext-1",
            Some(&tok),
            json!({"amount": 11_000, "identifier": "01098765432"}),
        )
        .await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");
    // amount must be an integer.
    for amount in [
        json!("11000"),
        json!(10.5),
        json!(0),
        json!(-5),
        Value::Null,
    ] {
        let (s, b) = t
            .post(
                "/receipts/external/ext-2",
                Some(&tok),
                json!({"amount": amount, "identifier": "01098765432"}),
            )
            .await;
        assert_eq!((s, code(&b)), (400, -1), "{amount}: {b}");
    }
    let (s, b) = t
        .post(
            "/receipts/external/ext-2",
            Some(&tok),
            json!({"amount": 5000, "identifier": "01098765432", "vat_amount": 300, "tax_free": 1000}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["vat"], 300);

    // Tenant scoping.
    let other = t.other_merchant().await;
    let (s, _) = t.get("/receipts/external/ext-1", &other).await;
    assert_eq!(s, 404);
    let (s, _) = t.delete("/receipts/external/ext-1", &other).await;
    assert_eq!(s, 404);
    // The other merchant may use the same merchant_uid for its own receipt.
    let (s, b) = t
        .post(
            "/receipts/external/ext-1",
            Some(&other),
            json!({"amount": 1100, "identifier": "01098765432"}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");

    // Lookup, cancel, cancel again.
    let (s, b) = t.get("/receipts/external/ext-1", &tok).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["amount"], 11_000);
    let (s, b) = t.delete("/receipts/external/ext-1", &tok).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["status"], "cancelled");
    assert!(b["response"]["cancelled_at"].as_i64().unwrap() > 0);
    let (s, b) = t.delete("/receipts/external/ext-1", &tok).await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");
    let (s, _) = t.get("/receipts/external/never", &tok).await;
    assert_eq!(s, 404);
    let (s, _) = t.delete("/receipts/external/never", &tok).await;
    assert_eq!(s, 404);
    // Authenticated.
    let (s, _) = t.send(t.http.get(t.url("/receipts/external/ext-1"))).await;
    assert_eq!(s, 401);
}

/// Concurrent issues for one payment and for one external merchant_uid: exactly one wins (the
/// partial unique indexes), the rest are refused cleanly, never a 5xx.
#[tokio::test]
async fn concurrent_issues_make_one_receipt() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let imp = paid_vbank(&t, &tok, "rc-race", 9000).await;
    for path in [
        format!("/receipts/{imp}"),
        "/receipts/external/ext-race".to_owned(),
    ] {
        let outcomes = futures_join_all((0..12).map(|_| {
            t.post(
                &path,
                Some(&tok),
                json!({"identifier": "01012345678", "amount": 9000}),
            )
        }))
        .await;
        let ok = outcomes
            .iter()
            .filter(|(s, b)| *s == 200 && code(b) == 0)
            .count();
        let refused = outcomes
            .iter()
            .filter(|(s, b)| *s == 400 && code(b) == -1)
            .count();
        assert_eq!((ok, refused), (1, 11), "{path}: {outcomes:?}");
    }
}
