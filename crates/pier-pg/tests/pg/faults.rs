//! pgsim's fault knobs, its admin API, and how the client maps transport failures.

use crate::common::{card, mid, order, Rig, DEADLINE};
use pier_pg::pgsim::{self, Faults};
use pier_pg::testpg::LedgerSnapshot;
use pier_pg::{Inquiry, Pg, PgError};
use std::time::{Duration, Instant};

#[tokio::test]
async fn latency_is_added() {
    let rig = Rig::with_faults(Faults {
        latency_ms: 120,
        latency_jitter_ms: 30,
        ..Faults::default()
    })
    .await;
    let started = Instant::now();
    rig.sim
        .approve_keyed(&mid(), &order(1_000), card("4242424242424242"))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(120), "{took:?}");
    assert!(took < DEADLINE, "{took:?}");
}

#[tokio::test]
async fn timeouts_are_unknown_and_unprocessed() {
    let rig = Rig::with_faults(Faults {
        timeout_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let o = order(1_000);
    let started = Instant::now();
    let r = rig
        .sim
        .approve_keyed(&mid(), &o, card("4242424242424242"))
        .await;
    assert!(matches!(r, Err(PgError::Unknown(_))), "{r:?}");
    assert!(started.elapsed() >= DEADLINE);
    assert!(rig.engine.ledger_snapshot().order(&o.order_id).is_none());
}

#[tokio::test]
async fn server_errors_are_unknown() {
    let rig = Rig::with_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let o = order(1_000);
    let started = Instant::now();
    let r = rig
        .sim
        .approve_keyed(&mid(), &o, card("4242424242424242"))
        .await;
    assert!(matches!(r, Err(PgError::Unknown(_))), "{r:?}");
    assert!(started.elapsed() < DEADLINE, "a 500 is answered at once");
    assert!(rig.engine.ledger_snapshot().order(&o.order_id).is_none());
}

#[tokio::test]
async fn dropped_responses_are_unknown_but_approved() {
    let rig = Rig::with_faults(Faults {
        drop_response_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let o = order(1_000);
    let r = rig
        .sim
        .approve_keyed(&mid(), &o, card("4242424242424242"))
        .await;
    assert!(matches!(r, Err(PgError::Unknown(_))), "{r:?}");
    let snap = rig.engine.ledger_snapshot();
    assert_eq!(
        snap.order(&o.order_id).unwrap().net_krw,
        1_000,
        "the PG processed it"
    );
    // The reconciler's path: inquire (through the in-process side, pgsim still drops), then void.
    assert!(matches!(
        rig.inproc.inquire(&mid(), &o.order_id).await.unwrap(),
        Inquiry::Approved(_)
    ));
}

#[tokio::test]
async fn down_is_unreachable_and_admin_still_works() {
    let rig = Rig::with_faults(Faults {
        down: true,
        ..Faults::default()
    })
    .await;
    let http = reqwest::Client::new();
    let o = order(1_000);
    let r = rig
        .sim
        .approve_keyed(&mid(), &o, card("4242424242424242"))
        .await;
    assert!(matches!(r, Err(PgError::Unreachable(_))), "{r:?}");
    assert!(rig.engine.ledger_snapshot().order(&o.order_id).is_none());
    // The admin API is never faulted: bring pgsim back up through it.
    let base = rig.base();
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let got: Faults = http
        .get(format!("{base}/admin/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(got.down);
    let resp = http
        .put(format!("{base}/admin/faults"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    rig.sim
        .approve_keyed(&mid(), &o, card("4242424242424242"))
        .await
        .unwrap();
    // Invalid settings are refused and leave the current ones alone.
    let resp = http
        .put(format!("{base}/admin/faults"))
        .json(&serde_json::json!({"timeout_rate": 0.8, "error_rate": 0.8}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(rig.faults.get(), Faults::default());
    let resp = http
        .put(format!("{base}/admin/faults"))
        .json(&serde_json::json!({"bogus": 1}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = pgsim::Client::with_deadline(&format!("http://{addr}"), DEADLINE).unwrap();
    let r = client
        .approve_keyed(&mid(), &order(1_000), card("4242424242424242"))
        .await;
    assert!(matches!(r, Err(PgError::Unreachable(_))), "{r:?}");
}

#[tokio::test]
async fn admin_ledger_and_deposit_over_http() {
    let rig = Rig::start().await;
    let http = reqwest::Client::new();
    let base = rig.base();
    let o = order(12_345);
    rig.sim
        .approve_keyed(&mid(), &o, card("4242424242424242"))
        .await
        .unwrap();
    let snap: LedgerSnapshot = http
        .get(format!("{base}/admin/ledger"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(snap.order(&o.order_id).unwrap().amount_krw, 12_345);

    let req = pier_pg::VbankRequest {
        order: order(8_000),
        bank_code: "004".into(),
        due_unix: crate::common::T0 + 3_600,
        holder: None,
    };
    let v = rig.sim.issue_vbank(&mid(), &req).await.unwrap();
    let resp = http
        .post(format!("{base}/admin/vbank/deposit"))
        .json(&serde_json::json!({"account_num": v.account_num, "amount_krw": 8_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let d: pier_pg::testpg::Deposit = resp.json().await.unwrap();
    assert_eq!(
        (d.order_id.as_str(), d.amount_krw),
        (req.order.order_id.as_str(), 8_000)
    );
    let resp = http
        .post(format!("{base}/admin/vbank/deposit"))
        .json(&serde_json::json!({"order_id": req.order.order_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422, "second deposit refused");
}

#[tokio::test]
async fn malformed_requests_are_rejected_without_echo() {
    let rig = Rig::start().await;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/v1/payments/keyed", rig.base()))
        .header("content-type", "application/json")
        .body(r#"{"mid":"m","order":{},"card":{"number":4242424242424242}}"#)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    let text = resp.text().await.unwrap();
    assert!(!text.contains("4242"), "{text}");
    // Card data that does not parse is refused by field name, never by value.
    let resp = http
        .post(format!("{}/v1/payments/keyed", rig.base()))
        .json(&serde_json::json!({
            "mid": "m",
            "order": {"order_id": "o1", "merchant_uid": "m1", "amount_krw": 1000, "tax_free_krw": 0,
                      "name": null, "buyer_name": null, "card_quota": 0},
            "card": {"number": "4242-4242-4242-424x", "expiry": "2099-12", "birth": null, "pwd_2digit": null}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("card_number") && !text.contains("4242"),
        "{text}"
    );
}
