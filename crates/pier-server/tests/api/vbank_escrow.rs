//! `escrow: true` on `POST /vbanks`: the virtual-account payment is an escrow payment, and once
//! the deposit arrives its delivery information goes through `/escrows/logis/{imp_uid}`.

use crate::common::*;
use pier_domain::Clock;
use serde_json::{json, Value};

fn code(b: &Value) -> i64 {
    b["code"].as_i64().unwrap()
}

async fn issue(t: &TestPier, tok: &str, merchant_uid: &str, escrow: Value) -> (u16, Value) {
    let due = t.clock.now_unix() + 3 * 24 * 3600;
    t.post(
        "/vbanks",
        Some(tok),
        json!({"merchant_uid": merchant_uid, "amount": 30_000, "vbank_code": "004", "vbank_due": due,
               "vbank_holder": "피어상점", "name": "escrow order", "escrow": escrow}),
    )
    .await
}

fn logis() -> Value {
    json!({
        "sender": {"name": "피어상점", "tel": "02-1234-5678"},
        "receiver": {"name": "홍길동", "tel": "010-1234-5678", "addr": "서울시 강남구"},
        "logis": {"company": "CJGLS", "invoice": "123456789012", "sent_at": 1_767_225_600}
    })
}

#[tokio::test]
async fn escrow_vbank_takes_delivery_information_once_paid() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let (s, b) = issue(&t, &tok, "vb-esc-1", json!(true)).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let imp = b["response"]["imp_uid"].as_str().unwrap().to_owned();
    assert_eq!(b["response"]["escrow"], true, "{b}");
    assert_eq!(b["response"]["status"], "ready");
    let path = format!("/escrows/logis/{imp}");
    // Not deposited yet: not paid.
    let (s, b) = t.post(&path, Some(&tok), logis()).await;
    assert_eq!((s, code(&b)), (409, -1), "{b}");

    let (s, b) = t
        .post("/testpg/vbank/deposit", Some(&tok), json!({"imp_uid": imp}))
        .await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    let (_, p) = t.get(&format!("/payments/{imp}"), &tok).await;
    assert_eq!(
        (&p["response"]["status"], &p["response"]["escrow"]),
        (&json!("paid"), &json!(true)),
        "{p}"
    );
    let (s, b) = t.post(&path, Some(&tok), logis()).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["invoice"], "123456789012");
    let (s, b) = t.get(&path, &tok).await;
    assert_eq!((s, b["response"]["company"].clone()), (200, json!("CJGLS")));
}

#[tokio::test]
async fn vbank_without_escrow_is_refused_by_logis_and_bad_escrow_is_400() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let (s, b) = issue(&t, &tok, "vb-esc-2", json!(false)).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["escrow"], false);
    let imp = b["response"]["imp_uid"].as_str().unwrap().to_owned();
    t.post("/testpg/vbank/deposit", Some(&tok), json!({"imp_uid": imp}))
        .await;
    let (s, b) = t
        .post(&format!("/escrows/logis/{imp}"), Some(&tok), logis())
        .await;
    assert_eq!((s, code(&b)), (400, -1), "{b}");
    assert!(b["message"]
        .as_str()
        .unwrap()
        .contains("not an escrow payment"));

    for bad in [json!("maybe"), json!(2), json!({"a": 1})] {
        let (s, b) = issue(&t, &tok, "vb-esc-3", bad.clone()).await;
        assert_eq!((s, code(&b)), (400, -1), "{bad}: {b}");
    }
    // Nothing was issued by the refused calls: the merchant_uid is still free.
    let (s, b) = issue(&t, &tok, "vb-esc-3", json!("true")).await;
    assert_eq!((s, code(&b)), (200, 0), "{b}");
    assert_eq!(b["response"]["escrow"], true);
}
