//! A store that stops taking writes in the middle of a request (issue #21): the answer is 503 in
//! the envelope, marked retryable, and never the final refusal "settled elsewhere" that a
//! stopped writer used to produce (it was reported as `Stale`, which means the row moved on).

use crate::common::*;
use pier_pg::pgsim::Faults;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn writer_stopped_during_the_pg_call_is_unavailable_and_retryable() {
    let t = TestPier::start_with(Opts {
        pg_deadline: Duration::from_secs(10),
        ..Opts::default()
    })
    .await;
    let tok = t.token().await;
    let (pg_engine, faults, _stop_tx, _server) = crate::refunds::pgsim_channel(&t).await;
    // The PG answers after 800 ms: long enough to stop the writer between the recorded attempt
    // and the PG's approval.
    faults
        .set(Faults {
            latency_ms: 800,
            ..Faults::default()
        })
        .unwrap();
    let body = json!({"merchant_uid": "order-stop", "amount": 5000, "card_number": CARD_OK,
        "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12", "pg": "jtnet.simmid"});
    let send = |key: &'static str| {
        t.http
            // The instance whose writer this test stops (another one's writer keeps working).
            .post(t.first_url("/subscribe/payments/onetime"))
            .header("Authorization", &tok)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let call = tokio::spawn(send("stop-1"));
    // Wait (bounded) until the attempt is recorded and the PG call is under way.
    let mut recorded = false;
    for _ in 0..200 {
        if t.pier
            .store()
            .locked_payment(DEMO_CODE, "order-stop")
            .await
            .unwrap()
            .is_some()
        {
            recorded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(recorded, "the attempt was never recorded");
    t.pier.store().close_writes();

    let res = call.await.unwrap().unwrap();
    let status = res.status().as_u16();
    let retryable = res
        .headers()
        .get("x-pier-retryable")
        .map(|v| v.to_str().unwrap().to_owned());
    let b: Value = res.json().await.unwrap();
    assert_eq!(status, 503, "{b}");
    assert_eq!(b["code"], -1, "{b}");
    assert!(b["response"].is_null(), "{b}");
    assert_eq!(retryable.as_deref(), Some("true"), "{b}");
    // The PG did approve: the reconciler (not this answer) owns the outcome.
    let snap = pg_engine.ledger_snapshot();
    assert_eq!(snap.orders.len(), 1);

    // Nothing final was stored under the key: the same key runs again (and is again refused as
    // not final, since the store still takes no writes), it is not a replay of a refusal.
    let res = send("stop-1").await.unwrap();
    let again_retryable = res.headers().get("x-pier-retryable").is_some();
    let b: Value = res.json().await.unwrap();
    assert!(again_retryable, "{b}");
    assert_ne!(b["code"], 0, "{b}");
}
