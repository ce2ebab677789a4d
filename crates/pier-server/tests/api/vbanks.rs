//! Virtual accounts: issue → deposit → paid → refund; issue → revoke; issue → due passes →
//! deposit refused; PUT; pgsim notifications; tenant isolation.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn code(b: &Value) -> i64 {
    b["code"].as_i64().unwrap()
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

async fn issue(t: &TestPier, tok: &str, merchant_uid: &str, amount: i64) -> Value {
    let due = t.clock.now_unix() + 3 * 24 * 3600;
    let (s, b) = t
        .post(
            "/vbanks",
            Some(tok),
            json!({"merchant_uid": merchant_uid, "amount": amount, "vbank_code": "004", "vbank_due": due, "vbank_holder": "홍길동", "name": "vbank order", "buyer_name": "Kim"}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    b["response"].clone()
}

/// Waits (bounded) until the payment reaches `status`.
async fn wait_status(t: &TestPier, tok: &str, imp: &str, status: &str) -> Value {
    for _ in 0..100 {
        let (_, b) = t.get(&format!("/payments/{imp}"), tok).await;
        if b["response"]["status"] == status {
            return b["response"].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{imp} never became {status}");
}

use pier_domain::Clock;

#[tokio::test]
async fn issue_deposit_paid_refund() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let v = issue(&t, &tok, "vb-1", 25_000).await;
    let imp = v["imp_uid"].as_str().unwrap().to_owned();
    assert_eq!(v["pay_method"], "vbank");
    assert_eq!(v["status"], "ready");
    assert_eq!(v["vbank_code"], "004");
    assert!(v["vbank_name"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(v["vbank_num"].as_str().is_some_and(|s| s.len() >= 10));
    assert_eq!(v["vbank_holder"], "홍길동");
    assert!(v["vbank_date"].as_i64().unwrap() > t.clock.now_unix());
    assert_eq!(v["vbank_issued_at"], t.clock.now_unix());
    assert_eq!(v["paid_at"], 0);
    let events = t.pier.store().outbox_for_payment(&imp).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.status.as_str()).collect::<Vec<_>>(),
        ["ready"]
    );

    // A refund before the deposit is refused.
    let (s, b) = t
        .post("/payments/cancel", Some(&tok), json!({"imp_uid": imp}))
        .await;
    assert_eq!((s, code(&b)), (200, 1), "{b}");

    // The buyer transfers the money (wrong amount first).
    t.clock.advance(3600);
    let tok = t.token().await; // the old token expired
    let (s, b) = t
        .post(
            "/testpg/vbank/deposit",
            Some(&tok),
            json!({"imp_uid": imp, "amount": 1000}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, -1), "{b}");
    let (s, b) = t
        .post("/testpg/vbank/deposit", Some(&tok), json!({"imp_uid": imp}))
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["status"], "paid");
    assert_eq!(b["response"]["paid_at"], t.clock.now_unix());
    let paid = wait_status(&t, &tok, &imp, "paid").await;
    assert_eq!(paid["amount"], 25_000);
    let events = t.pier.store().outbox_for_payment(&imp).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.status.as_str()).collect::<Vec<_>>(),
        ["ready", "paid"],
        "one paid announcement, even though the job saw the deposit too"
    );
    // A second deposit is refused, and the merchant_uid is spent.
    let (s, b) = t
        .post("/testpg/vbank/deposit", Some(&tok), json!({"imp_uid": imp}))
        .await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");
    let (s, b) = t
        .post(
            "/vbanks",
            Some(&tok),
            json!({"merchant_uid": "vb-1", "amount": 1000, "vbank_code": "004", "vbank_due": t.clock.now_unix() + 3600}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 1), "{b}");

    // Refund: the refund account is required and validated.
    let (s, b) = t
        .post(
            "/payments/cancel",
            Some(&tok),
            json!({"imp_uid": imp, "amount": 5000}),
        )
        .await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("refund_holder"),
        "{b}"
    );
    let (s, b) = t
        .post(
            "/payments/cancel",
            Some(&tok),
            json!({"imp_uid": imp, "amount": 5000, "refund_holder": "홍길동", "refund_bank": "999", "refund_account": "12345678901"}),
        )
        .await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("refund_bank"),
        "{b}"
    );
    let (s, b) = t
        .post(
            "/payments/cancel",
            Some(&tok),
            json!({"imp_uid": imp, "amount": 5000, "checksum": 25_000, "refund_holder": "홍길동", "refund_bank": "088", "refund_account": "110-123-456789", "refund_tel": "01012345678"}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["status"], "cancelled");
    assert_eq!(b["response"]["cancel_amount"], 5000);
    let (s, b) = t
        .post(
            "/payments/cancel",
            Some(&tok),
            json!({"imp_uid": imp, "refund_holder": "홍길동", "refund_bank": "088", "refund_account": "110-123-456789"}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["cancel_amount"], 25_000);
    let snap = t.pier.testpg.ledger_snapshot_shared().await.unwrap();
    assert_eq!(snap.order(&imp).unwrap().cancelled_krw, 25_000);
    t.pier.shutdown().await;
}

#[tokio::test]
async fn issue_then_revoke() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let v = issue(&t, &tok, "vb-rev", 3000).await;
    let imp = v["imp_uid"].as_str().unwrap().to_owned();
    let (s, b) = t.delete(&format!("/vbanks/{imp}"), &tok).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["status"], "cancelled");
    assert!(b["response"]["cancelled_at"].as_i64().unwrap() > 0);
    // Revoked: again → 400; a refund is refused (never paid); deposit refused; the PG voided it.
    let (s, b) = t
        .post("/payments/cancel", Some(&tok), json!({"imp_uid": imp}))
        .await;
    assert_eq!((s, code(&b)), (200, 1), "{b}");
    let (_, b) = t.get(&format!("/payments/{imp}/balance"), &tok).await;
    // Never paid: nothing remains (documented balance shape: primary all zero, no history).
    assert_eq!(
        b["response"]["primary"],
        json!({"tax_free": 0, "supply": 0, "vat": 0, "service": 0}),
        "{b}"
    );
    assert_eq!(b["response"]["histories"], json!([]), "{b}");
    let (s, _) = t.delete(&format!("/vbanks/{imp}"), &tok).await;
    assert_eq!(s, 400);
    let (s, _) = t
        .post("/testpg/vbank/deposit", Some(&tok), json!({"imp_uid": imp}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        t.pier
            .testpg
            .ledger_snapshot_shared()
            .await
            .unwrap()
            .order(&imp)
            .unwrap()
            .status,
        pier_pg::testpg::LedgerStatus::Voided
    );
    // Unknown: 404. A card payment: 400.
    let (s, b) = t.delete("/vbanks/imp_000000000000", &tok).await;
    assert_eq!((s, code(&b)), (404, -1));
    let p = t.pay(&tok, "card-1", 1000).await;
    let (s, _) = t
        .delete(&format!("/vbanks/{}", p["imp_uid"].as_str().unwrap()), &tok)
        .await;
    assert_eq!(s, 400);
    // The merchant_uid is free again.
    issue(&t, &tok, "vb-rev", 3000).await;
    t.pier.shutdown().await;
}

#[tokio::test]
async fn deposit_after_the_due_time_is_refused() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let v = issue(&t, &tok, "vb-late", 4000).await;
    let imp = v["imp_uid"].as_str().unwrap().to_owned();
    t.clock.advance(3 * 24 * 3600 + 1);
    let tok = t.token().await; // the old token expired
    let (s, b) = t
        .post("/testpg/vbank/deposit", Some(&tok), json!({"imp_uid": imp}))
        .await;
    assert_eq!((s, code(&b)), (200, -1), "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("DEPOSIT_EXPIRED"),
        "{b}"
    );
    let (_, b) = t.get(&format!("/payments/{imp}"), &tok).await;
    assert_eq!(b["response"]["status"], "ready");
    // Bad issue requests.
    let now = t.clock.now_unix();
    for body in [
        json!({"merchant_uid": "vb-x", "amount": 1000, "vbank_code": "004", "vbank_due": now - 1}),
        json!({"merchant_uid": "vb-x", "amount": 1000, "vbank_code": "zzz", "vbank_due": now + 60}),
        json!({"merchant_uid": "vb-x", "amount": 1000, "vbank_code": "004"}),
        json!({"merchant_uid": "vb-x", "vbank_code": "004", "vbank_due": now + 60}),
    ] {
        let (s, b) = t.post("/vbanks", Some(&tok), body).await;
        assert_eq!((s, code(&b)), (400, -1), "{b}");
    }
    t.pier.shutdown().await;
}

#[tokio::test]
async fn update_amount_and_due_while_waiting() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let v = issue(&t, &tok, "vb-put", 9000).await;
    let imp = v["imp_uid"].as_str().unwrap().to_owned();
    let new_due = t.clock.now_unix() + 7 * 24 * 3600;
    let (s, b) = put(
        &t,
        &format!("/vbanks/{imp}"),
        &tok,
        json!({"amount": 9500, "vbank_due": new_due}),
    )
    .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["amount"], 9500);
    assert_eq!(b["response"]["vbank_date"], new_due);
    assert_eq!(b["response"]["status"], "ready");
    // The new account takes the new amount, past the old due time.
    t.clock.advance(5 * 24 * 3600);
    let tok = t.token().await; // the old token expired
    let (s, b) = t
        .post("/testpg/vbank/deposit", Some(&tok), json!({"imp_uid": imp}))
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["status"], "paid");
    assert_eq!(b["response"]["amount"], 9500);
    // Paid: no more changes; refund works on the new account.
    let (s, _) = put(&t, &format!("/vbanks/{imp}"), &tok, json!({"amount": 100})).await;
    assert_eq!(s, 400);
    let (s, b) = t
        .post(
            "/payments/cancel",
            Some(&tok),
            json!({"imp_uid": imp, "refund_holder": "Kim", "refund_bank": "004", "refund_account": "123456789012"}),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["cancel_amount"], 9500);
    let (s, _) = put(&t, "/vbanks/imp_000000000000", &tok, json!({"amount": 100})).await;
    assert_eq!(s, 404);
    t.pier.shutdown().await;
}

#[tokio::test]
async fn pgsim_notifications_need_the_secret_and_the_pgs_word() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let v = issue(&t, &tok, "vb-note", 2000).await;
    let imp = v["imp_uid"].as_str().unwrap().to_owned();
    let ev = json!({"type": "vbank_deposited", "mid": v["pg_id"], "order_id": imp, "merchant_uid": "vb-note", "amount_krw": 2000, "pg_tid": v["pg_tid"], "deposited_at": t.clock.now_unix()});
    // No secret / wrong secret.
    let (s, _) = t.post("/pg/pgsim/notify", None, ev.clone()).await;
    assert_eq!(s, 401);
    let (s, _) = t
        .send(
            t.http
                .post(t.url("/pg/pgsim/notify"))
                .header("x-pgsim-secret", "nope")
                .json(&ev),
        )
        .await;
    assert_eq!(s, 401);
    // The right secret, but the PG saw no deposit: not recorded.
    let secret = pier_server::http::vbanks::pgsim_notify_secret(&[7u8; 32]);
    let (s, b) = t
        .send(
            t.http
                .post(t.url("/pg/pgsim/notify"))
                .header("x-pgsim-secret", &secret)
                .json(&ev),
        )
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["recorded"], false);
    let (_, b) = t.get(&format!("/payments/{imp}"), &tok).await;
    assert_eq!(b["response"]["status"], "ready");
    // A deposit the PG confirms (made directly at the test PG, as pgsim's admin API would).
    t.pier
        .testpg
        .deposit_shared(&pier_pg::testpg::DepositTarget::OrderId(imp.clone()), None)
        .await
        .unwrap();
    let (s, _) = t
        .send(
            t.http
                .post(t.url("/pg/pgsim/notify"))
                .header("x-pgsim-secret", &secret)
                .json(&ev),
        )
        .await;
    assert_eq!(s, 200);
    wait_status(&t, &tok, &imp, "paid").await;
    t.pier.shutdown().await;
}

#[tokio::test]
async fn tenants_cannot_touch_each_others_vbanks() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let other = t.other_merchant().await;
    let v = issue(&t, &tok, "vb-iso", 5000).await;
    let imp = v["imp_uid"].as_str().unwrap().to_owned();
    let (s, _) = t.delete(&format!("/vbanks/{imp}"), &other).await;
    assert_eq!(s, 404);
    let (s, _) = put(&t, &format!("/vbanks/{imp}"), &other, json!({"amount": 1})).await;
    assert_eq!(s, 404);
    let (s, _) = t
        .post(
            "/testpg/vbank/deposit",
            Some(&other),
            json!({"imp_uid": imp}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = t.get(&format!("/payments/{imp}"), &other).await;
    assert_eq!(s, 404);
    // The other merchant may use the same merchant_uid for itself.
    issue(&t, &other, "vb-iso", 5000).await;
    let (_, b) = t.get(&format!("/payments/{imp}"), &tok).await;
    assert_eq!(b["response"]["status"], "ready");
    t.pier.shutdown().await;
}
