//! Scheduled payments: every endpoint and state transition, the scheduler's exactly-once
//! execution (also across a crash mid-run and across several instances on one PostgreSQL),
//! and the webhooks of scheduled payments.

use crate::common::*;
use crate::webhooks::{fast_jobs, set_hook, verify, Receiver};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const START: i64 = 1_767_225_600;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// Keys issue, billing-key charges are declined (the schedule-failure card).
const CARD_KEY_DECLINES: &str = "4651-2000-0000-2105";

const SCHEDULE_KEYS: &[&str] = &[
    "customer_uid",
    "merchant_uid",
    "imp_uid",
    "pg_provider",
    "pg_id",
    "customer_id",
    "schedule_at",
    "executed_at",
    "revoked_at",
    "amount",
    "currency",
    "name",
    "buyer_name",
    "buyer_email",
    "buyer_tel",
    "buyer_addr",
    "buyer_postcode",
    "custom_data",
    "schedule_status",
    "payment_status",
    "fail_reason",
];

/// A Pier whose jobs do not run: tests drive the scheduler with `run_due_schedules`.
async fn start_manual() -> TestPier {
    TestPier::start_cfg(Opts::default(), |c| {
        fast_jobs(c);
        c.run_jobs = false;
    })
    .await
}

async fn issue_key(t: &TestPier, tok: &str, uid: &str, card: &str) {
    let (s, b) = t
        .post(
            &format!("/subscribe/customers/{uid}"),
            Some(tok),
            json!({"card_number": card, "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12", "customer_name": "Kim"}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
}

async fn schedule(t: &TestPier, tok: &str, body: Value) -> (u16, Value) {
    t.post("/subscribe/payments/schedule", Some(tok), body)
        .await
}

fn item(uid: &str, at: i64, amount: i64) -> Value {
    json!({"merchant_uid": uid, "schedule_at": at, "amount": amount, "name": "monthly"})
}

async fn tick(t: &TestPier) -> usize {
    t.pier.engine.run_due_schedules(1000).await.unwrap()
}

#[tokio::test]
async fn register_read_and_execute_a_schedule() {
    let t = start_manual().await;
    let tok = t.token().await;
    issue_key(&t, &tok, "sc-cust", CARD_OK).await;
    let (s, b) = schedule(
        &t,
        &tok,
        json!({"customer_uid": "sc-cust", "schedules": [
            item("sc-1", START + HOUR, 9900),
            {"merchant_uid": "sc-2", "schedule_at": START + 2 * HOUR, "amount": 5000, "name": "second",
             "buyer_name": "Lee", "custom_data": {"plan": "pro"}},
        ]}),
    )
    .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    let list = b["response"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    for k in SCHEDULE_KEYS {
        assert!(
            list[0].get(*k).is_some(),
            "ScheduleResult lacks {k}: {}",
            list[0]
        );
    }
    assert_eq!(list[0]["schedule_status"], "scheduled");
    assert!(list[0]["payment_status"].is_null());
    assert!(list[0]["imp_uid"].is_null());
    assert_eq!(list[0]["executed_at"], 0);
    assert_eq!(list[0]["revoked_at"], 0);
    assert_eq!(list[0]["customer_uid"], "sc-cust");
    assert_eq!(
        list[0]["buyer_name"], "Kim",
        "buyer falls back to the customer's name"
    );
    assert_eq!(list[1]["buyer_name"], "Lee");
    assert_eq!(list[1]["custom_data"], r#"{"plan":"pro"}"#);
    assert_eq!(list[0]["pg_provider"], "jtnet");

    // Not due yet: nothing runs.
    assert_eq!(tick(&t).await, 0);
    let (s, b) = t.get("/subscribe/payments/schedule/sc-1", &tok).await;
    assert_eq!(
        (s, b["response"]["schedule_status"].as_str()),
        (200, Some("scheduled"))
    );
    let (s, _) = t.get("/subscribe/payments/schedule/nope", &tok).await;
    assert_eq!(s, 404);

    t.clock.advance(HOUR);
    assert_eq!(tick(&t).await, 1);
    let tok = t.token().await;
    let (_, b) = t.get("/subscribe/payments/schedule/sc-1", &tok).await;
    let r = &b["response"];
    assert_eq!(r["schedule_status"], "executed", "{r}");
    assert_eq!(r["payment_status"], "paid");
    assert_eq!(r["executed_at"], START + HOUR);
    let imp = r["imp_uid"].as_str().unwrap().to_owned();
    let (_, b) = t.get(&format!("/payments/{imp}"), &tok).await;
    let p = &b["response"];
    assert_eq!(p["status"], "paid");
    assert_eq!(p["merchant_uid"], "sc-1");
    assert_eq!(p["amount"], 9900);
    assert_eq!(p["channel"], "api");
    assert_eq!(p["customer_uid"], "sc-cust");
    assert_eq!(p["customer_uid_usage"], "payment.scheduled");
    // Executed once: later ticks do nothing to it.
    t.clock.advance(DAY);
    assert_eq!(tick(&t).await, 1, "only sc-2 runs");
    assert_eq!(tick(&t).await, 0);
    let tok = t.token().await;
    let ledger = t.pier.testpg.ledger_snapshot_shared().await.unwrap();
    assert_eq!(
        ledger
            .orders
            .iter()
            .filter(|o| o.merchant_uid == "sc-1")
            .count(),
        1
    );

    // A cancelled payment shows as payment_status cancelled... only when a cancel flow exists;
    // here the paid state is what the schedule reports.
    let (_, b) = t.get("/subscribe/payments/schedule/sc-2", &tok).await;
    assert_eq!(b["response"]["payment_status"], "paid");
    t.pier.shutdown().await;
}

#[tokio::test]
async fn schedule_lists_are_paged_and_accept_every_spelling() {
    let t = start_manual().await;
    let tok = t.token().await;
    issue_key(&t, &tok, "sl-a", CARD_OK).await;
    issue_key(&t, &tok, "sl-b", CARD_OK).await;
    let items: Vec<Value> = (0..5)
        .map(|i| item(&format!("sl-a-{i}"), START + (i + 1) * DAY, 1000))
        .collect();
    let (_, b) = schedule(
        &t,
        &tok,
        json!({"customer_uid": "sl-a", "schedules": items}),
    )
    .await;
    assert_eq!(b["code"], 0, "{b}");
    let (_, b) = schedule(
        &t,
        &tok,
        json!({"customer_uid": "sl-b", "schedules": [item("sl-b-0", START + DAY, 1000)]}),
    )
    .await;
    assert_eq!(b["code"], 0, "{b}");
    let (s, b) = t
        .post(
            "/subscribe/payments/unschedule",
            Some(&tok),
            json!({"customer_uid": "sl-a", "merchant_uid": "sl-a-4"}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");

    let q = format!("schedule_from={}&schedule_to={}", START, START + 30 * DAY);
    let (s, b) = t
        .get(&format!("/subscribe/payments/schedule?{q}&limit=2"), &tok)
        .await;
    assert_eq!(s, 200, "{b}");
    let r = &b["response"];
    assert_eq!(
        (
            r["total"].as_i64(),
            r["previous"].as_i64(),
            r["next"].as_i64()
        ),
        (Some(6), Some(0), Some(2))
    );
    assert_eq!(r["list"].as_array().unwrap().len(), 2);
    assert_eq!(
        r["list"][0]["merchant_uid"], "sl-a-4",
        "newest schedule_at first"
    );
    let (_, b) = t
        .get(
            &format!("/subscribe/payments/schedule?{q}&sorting=scheduled&limit=1&page=1"),
            &tok,
        )
        .await;
    assert_eq!(
        b["response"]["list"][0]["schedule_at"],
        START + DAY,
        "oldest first"
    );
    let (_, b) = t
        .get(
            &format!("/subscribe/payments/schedule?{q}&schedule_status=revoked"),
            &tok,
        )
        .await;
    assert_eq!(b["response"]["total"], 1);
    assert_eq!(b["response"]["list"][0]["schedule_status"], "revoked");
    assert!(b["response"]["list"][0]["revoked_at"].as_i64().unwrap() > 0);
    // `to` is exclusive.
    let (_, b) = t
        .get(
            &format!(
                "/subscribe/payments/schedule?schedule_from={}&schedule_to={}",
                START + DAY,
                START + 2 * DAY
            ),
            &tok,
        )
        .await;
    assert_eq!(b["response"]["total"], 2);

    // Bad searches are 400.
    for bad in [
        "schedule_to=1".to_owned(),
        format!("schedule_from={START}"),
        format!("schedule_from={}&schedule_to={}", START + 10, START),
        format!("{q}&schedule_status=done"),
        format!("{q}&limit=1001"),
        format!("schedule_from={START}&schedule_to={}", START + 200 * DAY),
    ] {
        let (s, b) = t
            .get(&format!("/subscribe/payments/schedule?{bad}"), &tok)
            .await;
        assert_eq!((s, b["code"].as_i64()), (400, Some(-1)), "{bad}: {b}");
    }

    // Per customer, every spelling.
    for path in [
        "/subscribe/payments/schedule/customers/sl-a",
        "/subscribe/customers/sl-a/schedules",
    ] {
        for qs in [
            format!(
                "from={START}&to={}&schedule-status=scheduled",
                START + 30 * DAY
            ),
            format!(
                "schedule_from={START}&schedule_to={}&schedule_status=scheduled",
                START + 30 * DAY
            ),
        ] {
            let (s, b) = t.get(&format!("{path}?{qs}"), &tok).await;
            assert_eq!(s, 200, "{b}");
            assert_eq!(b["response"]["total"], 4, "{path}?{qs}: {b}");
            assert!(b["response"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["customer_uid"] == "sl-a"));
        }
        let (_, b) = t.get(path, &tok).await;
        assert_eq!(b["response"]["total"], 5);
    }
    // Tenant scoping.
    let other = t.other_merchant().await;
    let (_, b) = t
        .get(&format!("/subscribe/payments/schedule?{q}"), &other)
        .await;
    assert_eq!(b["response"]["total"], 0);
    let (s, _) = t.get("/subscribe/payments/schedule/sl-a-0", &other).await;
    assert_eq!(s, 404);
    t.pier.shutdown().await;
}

#[tokio::test]
async fn registration_rules() {
    let t = start_manual().await;
    let tok = t.token().await;
    // Unknown customer, no card data.
    let (s, b) = schedule(
        &t,
        &tok,
        json!({"customer_uid": "nobody", "schedules": [item("r-1", START + HOUR, 1000)]}),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_i64(), b["message"].as_str()),
        (200, Some(1), Some("등록된 고객정보가 없습니다."))
    );
    // Unknown customer with card data: the key is issued first.
    let (s, b) = schedule(
        &t,
        &tok,
        json!({"customer_uid": "r-new", "card_number": CARD_OK, "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12",
               "customer_id": "user-7", "schedules": [item("r-1", START + HOUR, 1000)]}),
    )
    .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    assert_eq!(b["response"][0]["customer_id"], "user-7");
    let (_, b) = t.get("/subscribe/customers/r-new", &tok).await;
    assert_eq!(b["code"], 0, "the key exists: {b}");
    // A key that cannot be issued: PG refusal, nothing scheduled.
    let (s, b) = schedule(
        &t,
        &tok,
        json!({"customer_uid": "r-lost", "card_number": "5361-8100-0000-2101", "expiry": "2030-12",
               "schedules": [item("r-lost-1", START + HOUR, 1000)]}),
    )
    .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(-1)), "{b}");
    let (s, _) = t.get("/subscribe/payments/schedule/r-lost-1", &tok).await;
    assert_eq!(s, 404);
    // Duplicate merchant_uid: with an existing schedule, and within one request.
    let (s, b) = schedule(
        &t,
        &tok,
        json!({"customer_uid": "r-new", "schedules": [item("r-1", START + DAY, 1000)]}),
    )
    .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(1)), "{b}");
    let (s, b) = schedule(
        &t,
        &tok,
        json!({"customer_uid": "r-new", "schedules": [item("r-2", START + DAY, 1000), item("r-2", START + 2 * DAY, 1000)]}),
    )
    .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(1)), "{b}");
    // All or nothing: r-3 was not registered with the refused r-1.
    let (s, _) = schedule(&t, &tok, json!({"customer_uid": "r-new", "schedules": [item("r-3", START + DAY, 1000), item("r-1", START + DAY, 1000)]})).await;
    assert_eq!(s, 200);
    let (s, _) = t.get("/subscribe/payments/schedule/r-3", &tok).await;
    assert_eq!(s, 404);
    // A merchant_uid already paid cannot be scheduled.
    t.pay(&tok, "r-paid", 1000).await;
    let (_, b) = schedule(
        &t,
        &tok,
        json!({"customer_uid": "r-new", "schedules": [item("r-paid", START + DAY, 1000)]}),
    )
    .await;
    assert_eq!(b["code"], 1, "{b}");
    // Bad parameters are 400.
    for bad in [
        json!({"customer_uid": "r-new"}),
        json!({"customer_uid": "r-new", "schedules": []}),
        json!({"customer_uid": "r-new", "schedules": [{"merchant_uid": "x", "amount": 1000}]}),
        json!({"customer_uid": "r-new", "schedules": [{"merchant_uid": "x", "schedule_at": START, "amount": "1000"}]}),
        json!({"customer_uid": "r-new", "schedules": [{"merchant_uid": "x", "schedule_at": START * 1000, "amount": 1000}]}),
        json!({"schedules": [item("x", START, 1000)]}),
    ] {
        let (s, b) = schedule(&t, &tok, bad.clone()).await;
        assert_eq!((s, b["code"].as_i64()), (400, Some(-1)), "{bad}: {b}");
    }
    // Form encoding with PHP brackets.
    let res = t
        .http
        .post(t.url("/subscribe/payments/schedule"))
        .header("Authorization", &tok)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "customer_uid=r-new&schedules[0][merchant_uid]=r-form&schedules[0][schedule_at]={}&schedules[0][amount]=3000",
            START + DAY
        ))
        .send()
        .await
        .unwrap();
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["code"], 0, "{b}");
    assert_eq!(b["response"][0]["amount"], 3000);
    t.pier.shutdown().await;
}

#[tokio::test]
async fn unschedule_by_uid_array_or_customer() {
    let t = start_manual().await;
    let tok = t.token().await;
    issue_key(&t, &tok, "u-cust", CARD_OK).await;
    let items: Vec<Value> = (0..5)
        .map(|i| item(&format!("u-{i}"), START + (i + 1) * DAY, 1000))
        .collect();
    schedule(
        &t,
        &tok,
        json!({"customer_uid": "u-cust", "schedules": items}),
    )
    .await;
    let (_, b) = t
        .post(
            "/subscribe/payments/unschedule",
            Some(&tok),
            json!({"customer_uid": "u-cust", "merchant_uid": "u-0"}),
        )
        .await;
    assert_eq!(b["response"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["response"][0]["schedule_status"], "revoked");
    let (_, b) = t
        .post(
            "/subscribe/payments/unschedule",
            Some(&tok),
            json!({"merchant_uid": ["u-1", "u-2", "u-unknown"]}),
        )
        .await;
    assert_eq!(b["response"].as_array().unwrap().len(), 2, "{b}");
    // Revoked ones are not revoked again.
    let (s, b) = t
        .post(
            "/subscribe/payments/unschedule",
            Some(&tok),
            json!({"merchant_uid": "u-0"}),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_i64(), b["message"].as_str()),
        (
            200,
            Some(1),
            Some("취소할 예약결제 기록이 존재하지 않습니다.")
        )
    );
    let (_, b) = t
        .post(
            "/subscribe/payments/unschedule",
            Some(&tok),
            json!({"customer_uid": "u-cust"}),
        )
        .await;
    assert_eq!(
        b["response"].as_array().unwrap().len(),
        2,
        "the rest of the customer's: {b}"
    );
    let (s, b) = t
        .post(
            "/subscribe/payments/unschedule",
            Some(&tok),
            json!({"customer_uid": "u-cust"}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(1)));
    let (s, _) = t
        .post("/subscribe/payments/unschedule", Some(&tok), json!({}))
        .await;
    assert_eq!(s, 400);
    // Revoked schedules never run.
    t.clock.advance(30 * DAY);
    assert_eq!(tick(&t).await, 0);
    assert!(t
        .pier
        .testpg
        .ledger_snapshot_shared()
        .await
        .unwrap()
        .orders
        .is_empty());
    t.pier.shutdown().await;
}

#[tokio::test]
async fn move_reschedule_and_retry_follow_the_state_rules() {
    let t = start_manual().await;
    let tok = t.token().await;
    issue_key(&t, &tok, "m-ok", CARD_OK).await;
    issue_key(&t, &tok, "m-bad", CARD_KEY_DECLINES).await;
    schedule(&t, &tok, json!({"customer_uid": "m-ok", "schedules": [item("m-1", START + DAY, 1000), item("m-2", START + DAY, 1000)]})).await;
    schedule(
        &t,
        &tok,
        json!({"customer_uid": "m-bad", "schedules": [item("m-3", START + HOUR, 1000)]}),
    )
    .await;

    // PUT moves a pending schedule; past times and unknown schedules are refused.
    let (s, b) = t
        .send(
            t.http
                .put(t.url("/subscribe/payments/schedule/m-1"))
                .header("Authorization", &tok)
                .json(&json!({"schedule_at": START + 2 * DAY})),
        )
        .await;
    assert_eq!(
        (s, b["response"]["schedule_at"].as_i64()),
        (200, Some(START + 2 * DAY)),
        "{b}"
    );
    let (s, _) = t
        .send(
            t.http
                .put(t.url("/subscribe/payments/schedule/m-1"))
                .header("Authorization", &tok)
                .json(&json!({"schedule_at": START - 1})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = t
        .send(
            t.http
                .put(t.url("/subscribe/payments/schedule/none"))
                .header("Authorization", &tok)
                .json(&json!({"schedule_at": START + DAY})),
        )
        .await;
    assert_eq!(s, 404);
    // Reschedule and retry need a failed or revoked schedule.
    let (s, _) = t
        .post(
            "/subscribe/payments/schedule/m-2/reschedule",
            Some(&tok),
            json!({"schedule_at": START + 3 * DAY}),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = t
        .post(
            "/subscribe/payments/schedule/m-2/retry",
            Some(&tok),
            json!({}),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = t
        .post(
            "/subscribe/payments/schedule/none/retry",
            Some(&tok),
            json!({}),
        )
        .await;
    assert_eq!(s, 404);

    // m-3 runs and is declined.
    t.clock.advance(HOUR);
    assert_eq!(tick(&t).await, 1);
    let tok = t.token().await;
    let (_, b) = t.get("/subscribe/payments/schedule/m-3", &tok).await;
    let r = &b["response"];
    assert_eq!(
        (r["schedule_status"].as_str(), r["payment_status"].as_str()),
        (Some("executed"), Some("failed")),
        "{r}"
    );
    assert!(r["fail_reason"].as_str().unwrap().contains("2105"), "{r}");
    let failed_imp = r["imp_uid"].as_str().unwrap().to_owned();
    // An executed schedule cannot be moved.
    let (s, _) = t
        .send(
            t.http
                .put(t.url("/subscribe/payments/schedule/m-3"))
                .header("Authorization", &tok)
                .json(&json!({"schedule_at": START + 5 * DAY})),
        )
        .await;
    assert_eq!(s, 400);
    // Reschedule the failed one: scheduled again with a clean result.
    let (s, b) = t
        .post(
            "/subscribe/payments/schedule/m-3/reschedule",
            Some(&tok),
            json!({"schedule_at": START + 2 * HOUR}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let r = &b["response"];
    assert_eq!(r["schedule_status"], "scheduled");
    assert!(r["payment_status"].is_null() && r["imp_uid"].is_null() && r["fail_reason"].is_null());
    assert_eq!(r["executed_at"], 0);
    // The customer gets a working card; the retry runs now and returns the Payment.
    issue_key(&t, &tok, "m-bad", CARD_OK).await;
    let (_, b) = t
        .post(
            "/subscribe/payments/unschedule",
            Some(&tok),
            json!({"merchant_uid": "m-3"}),
        )
        .await;
    assert_eq!(b["code"], 0, "{b}");
    let (s, b) = t
        .post(
            "/subscribe/payments/schedule/m-3/retry",
            Some(&tok),
            json!({}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    let p = &b["response"];
    assert_eq!(p["status"], "paid");
    assert_eq!(p["merchant_uid"], "m-3");
    assert_ne!(p["imp_uid"].as_str().unwrap(), failed_imp);
    let (_, b) = t.get("/subscribe/payments/schedule/m-3", &tok).await;
    assert_eq!(
        (
            b["response"]["schedule_status"].as_str(),
            b["response"]["payment_status"].as_str()
        ),
        (Some("executed"), Some("paid"))
    );
    // Paid: no more retry or reschedule.
    let (s, _) = t
        .post(
            "/subscribe/payments/schedule/m-3/retry",
            Some(&tok),
            json!({}),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = t
        .post(
            "/subscribe/payments/schedule/m-3/reschedule",
            Some(&tok),
            json!({"schedule_at": START + 9 * DAY}),
        )
        .await;
    assert_eq!(s, 400);
    // Two attempts at the PG for m-3: the declined one and the paid retry.
    let ledger = t.pier.testpg.ledger_snapshot_shared().await.unwrap();
    assert_eq!(
        ledger
            .orders
            .iter()
            .filter(|o| o.merchant_uid == "m-3")
            .count(),
        2
    );
    t.pier.shutdown().await;
}

#[tokio::test]
async fn deleting_a_billing_key_revokes_its_schedules() {
    let t = start_manual().await;
    let tok = t.token().await;
    issue_key(&t, &tok, "d-cust", CARD_OK).await;
    schedule(&t, &tok, json!({"customer_uid": "d-cust", "schedules": [item("d-1", START + DAY, 1000), item("d-2", START + 2 * DAY, 1000)]})).await;
    let (_, b) = t.delete("/subscribe/customers/d-cust", &tok).await;
    assert_eq!(b["code"], 0, "{b}");
    for uid in ["d-1", "d-2"] {
        let (_, b) = t
            .get(&format!("/subscribe/payments/schedule/{uid}"), &tok)
            .await;
        assert_eq!(b["response"]["schedule_status"], "revoked", "{b}");
    }
    t.clock.advance(3 * DAY);
    assert_eq!(tick(&t).await, 0);
    t.pier.shutdown().await;
}

#[tokio::test]
async fn scheduled_paid_and_failed_fire_signed_webhooks() {
    let t = TestPier::start_cfg(Opts::default(), fast_jobs).await;
    let rx = Receiver::start().await;
    let secret = set_hook(&t, &rx.url("/console"), "json").await;
    let tok = t.token().await;
    issue_key(&t, &tok, "w-ok", CARD_OK).await;
    issue_key(&t, &tok, "w-bad", CARD_KEY_DECLINES).await;
    let (_, b) = schedule(
        &t,
        &tok,
        json!({"customer_uid": "w-ok", "schedules": [
            {"merchant_uid": "w-1", "schedule_at": START + HOUR, "amount": 1000, "notice_url": rx.url("/item")}]}),
    )
    .await;
    assert_eq!(b["code"], 0, "{b}");
    schedule(
        &t,
        &tok,
        json!({"customer_uid": "w-bad", "schedules": [item("w-2", START + HOUR, 1000)]}),
    )
    .await;
    t.clock.advance(HOUR);
    let tok = t.token().await;
    // The scheduler job runs them.
    let got = rx.wait_for("paid and failed", |r| r.len() >= 2).await;
    assert_eq!(got.len(), 2);
    let by_uid = |uid: &str| {
        got.iter()
            .find(|r| r.json()["merchant_uid"] == uid)
            .cloned()
            .unwrap()
    };
    let paid = by_uid("w-1");
    assert_eq!(
        paid.path, "/item",
        "the item's notice_url wins over the console URL"
    );
    assert_eq!(paid.json()["status"], "paid");
    let failed = by_uid("w-2");
    assert_eq!(failed.path, "/console");
    assert_eq!(failed.json()["status"], "failed");
    assert!(verify(&secret, &paid) && verify(&secret, &failed));
    let (_, b) = t.get("/subscribe/payments/schedule/w-2", &tok).await;
    assert_eq!(failed.json()["imp_uid"], b["response"]["imp_uid"]);
    // Exactly one webhook each, even after more ticks.
    t.clock.advance(DAY);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.all().len(), 2);
    t.pier.shutdown().await;
}

#[tokio::test]
async fn a_month_of_daily_schedules_runs_in_a_second() {
    let t = start_manual().await;
    let tok = t.token().await;
    issue_key(&t, &tok, "month", CARD_OK).await;
    let items: Vec<Value> = (0..30)
        .map(|d| item(&format!("day-{d:02}"), START + d * DAY + 9 * HOUR, 1000 + d))
        .collect();
    let (_, b) = schedule(
        &t,
        &tok,
        json!({"customer_uid": "month", "schedules": items}),
    )
    .await;
    assert_eq!(b["code"], 0, "{b}");
    let mut ran = 0;
    for _ in 0..31 {
        ran += tick(&t).await;
        t.clock.advance(DAY);
    }
    assert_eq!(ran, 30);
    let tok = t.token().await;
    let (_, b) = t
        .get(&format!("/subscribe/customers/month/schedules?from={START}&to={}&limit=100&schedule-status=executed", START + 40 * DAY), &tok)
        .await;
    assert_eq!(b["response"]["total"], 30, "{b}");
    assert!(b["response"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["payment_status"] == "paid"));
    let ledger = t.pier.testpg.ledger_snapshot_shared().await.unwrap();
    for d in 0..30 {
        let n = ledger
            .orders
            .iter()
            .filter(|o| o.merchant_uid == format!("day-{d:02}"))
            .count();
        assert_eq!(n, 1, "day-{d:02}");
    }
    t.pier.shutdown().await;
}

#[tokio::test]
async fn a_schedule_reclaimed_after_a_crash_mid_run_is_not_charged_again() {
    let t = start_manual().await;
    let tok = t.token().await;
    issue_key(&t, &tok, "crash", CARD_OK).await;
    schedule(
        &t,
        &tok,
        json!({"customer_uid": "crash", "schedules": [item("cr-1", START + HOUR, 7000)]}),
    )
    .await;
    t.clock.advance(HOUR);
    let e = t.pier.engine.clone();
    // Instance A claims the schedule, fixes its attempt and charges, then dies before recording.
    let now = START + HOUR;
    let mut claimed = t
        .pier
        .store()
        .claim_due_schedules(now, now + 120, &["imp_000000000042".to_owned()])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let s = claimed.pop().unwrap();
    assert_eq!(s.attempt_imp_uid.as_deref(), Some("imp_000000000042"));
    assert_eq!(s.run_state.as_str(), "running");
    let input = pier_server::engine::charge::AgainInput {
        order: pier_server::engine::charge::OrderInput {
            merchant_uid: pier_domain::MerchantUid::parse("cr-1").unwrap(),
            amount: pier_domain::Amount::new(7000, "amount").unwrap(),
            currency: "KRW".into(),
            tax_free: pier_domain::AmountPart::ZERO,
            vat_amount: None,
            name: None,
            buyer: Default::default(),
            card_quota: 0,
            custom_data: None,
            notice_urls: vec![],
            pg: None,
        },
        customer_uid: pier_domain::CustomerUid::parse("crash").unwrap(),
        usage: "payment.scheduled",
    };
    let paid = e
        .again_as(DEMO_CODE, input, Some("imp_000000000042".into()))
        .await
        .unwrap();
    assert_eq!(paid.payment.status.as_str(), "paid");
    // While A's lease holds nobody takes the schedule over.
    assert_eq!(tick(&t).await, 0);
    // The lease runs out; instance B claims it, finds the payment and records it.
    t.clock.advance(121);
    assert_eq!(tick(&t).await, 1);
    let tok = t.token().await;
    let (_, b) = t.get("/subscribe/payments/schedule/cr-1", &tok).await;
    let r = &b["response"];
    assert_eq!(
        (r["schedule_status"].as_str(), r["payment_status"].as_str()),
        (Some("executed"), Some("paid")),
        "{r}"
    );
    assert_eq!(r["imp_uid"], "imp_000000000042");
    let ledger = t.pier.testpg.ledger_snapshot_shared().await.unwrap();
    assert_eq!(
        ledger
            .orders
            .iter()
            .filter(|o| o.merchant_uid == "cr-1")
            .count(),
        1,
        "charged once"
    );
    // Concurrent ticks racing on one due schedule: still one charge.
    schedule(
        &t,
        &tok,
        json!({"customer_uid": "crash", "schedules": [item("cr-2", START + HOUR, 7000)]}),
    )
    .await;
    let (a, b2) = tokio::join!(e.run_due_schedules(10), e.run_due_schedules(10));
    assert_eq!(a.unwrap() + b2.unwrap(), 1);
    let ledger = t.pier.testpg.ledger_snapshot_shared().await.unwrap();
    assert_eq!(
        ledger
            .orders
            .iter()
            .filter(|o| o.merchant_uid == "cr-2")
            .count(),
        1
    );
    t.pier.shutdown().await;
}

/// An instance dies after recording its attempt but before the charge reaches the PG: the
/// reconciler voids the order id and fails the attempt ("the PG never saw it"). That is not the
/// customer's failure: the next claimer charges again under a new execution imp_uid, once.
#[tokio::test]
async fn an_attempt_that_never_reached_the_pg_is_charged_again_not_failed() {
    let t = start_manual().await;
    let tok = t.token().await;
    issue_key(&t, &tok, "strand", CARD_OK).await;
    schedule(
        &t,
        &tok,
        json!({"customer_uid": "strand", "schedules": [item("st-1", START + HOUR, 6000)]}),
    )
    .await;
    t.clock.advance(HOUR);
    let e = t.pier.engine.clone();
    let now = START + HOUR;
    // Instance A claims, records its attempt in flight, and dies before calling the PG.
    let claimed = t
        .pier
        .store()
        .claim_due_schedules(now, now + 120, &["imp_000000000077".to_owned()])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let mut p = pier_store::Payment::new(
        "imp_000000000077".into(),
        DEMO_CODE.into(),
        "st-1".into(),
        6000,
        now,
    );
    p.uid_lock = true;
    p.pg_state = pier_store::PgState::InFlight;
    p.customer_uid = Some("strand".into());
    let channel = t.pier.store().list_channels(Some(DEMO_CODE)).await.unwrap();
    p.channel_id = Some(channel[0].id.clone());
    p.pg_provider = Some("jtnet".into());
    p.pg_id = Some(channel[0].mid.clone());
    t.pier.store().insert_payment(&p).await.unwrap();
    // Later the reconciler finds it stale, the PG does not know it: voided and failed.
    t.clock.advance(300);
    let r = e.reconcile_pass().await.unwrap();
    assert_eq!((r.failed, r.net_cancelled), (1, 1), "{r:?}");
    let stranded = t
        .pier
        .store()
        .get_payment(Some(DEMO_CODE), "imp_000000000077")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stranded.status.as_str(), "failed");
    // The lease has run out: the next tick charges the schedule again, under a new imp_uid.
    assert_eq!(tick(&t).await, 1);
    let tok = t.token().await;
    let (_, b) = t.get("/subscribe/payments/schedule/st-1", &tok).await;
    let r = &b["response"];
    assert_eq!(
        (r["schedule_status"].as_str(), r["payment_status"].as_str()),
        (Some("executed"), Some("paid")),
        "{r}"
    );
    let imp = r["imp_uid"].as_str().unwrap();
    assert_ne!(imp, "imp_000000000077");
    let (_, pay) = t.get(&format!("/payments/{imp}"), &tok).await;
    assert_eq!(pay["response"]["status"], "paid");
    assert_eq!(pay["response"]["amount"], 6000);
    let ledger = t.pier.testpg.ledger_snapshot_shared().await.unwrap();
    let approved: Vec<_> = ledger
        .orders
        .iter()
        .filter(|o| o.merchant_uid == "st-1" && o.status == pier_pg::testpg::LedgerStatus::Approved)
        .collect();
    assert_eq!(approved.len(), 1, "charged once");
    t.pier.shutdown().await;
}

/// Three Pier instances on one PostgreSQL database and one shared PG (a pgsim): 1,000 due
/// schedules run with zero duplicates and zero misses.
#[tokio::test]
async fn three_instances_execute_1000_schedules_exactly_once() {
    if std::env::var("PIER_TEST_STORE").as_deref() != Ok("postgres") {
        eprintln!("note: three_instances_execute_1000_schedules_exactly_once needs PostgreSQL (PIER_TEST_STORE=postgres); skipped on SQLite");
        return;
    }
    const N: usize = 1000;
    // One PG for all instances.
    let pg_clock: Arc<dyn pier_domain::Clock> = Arc::new(pier_domain::SystemClock);
    let pg_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pg_url = format!("http://{}", pg_listener.local_addr().unwrap());
    let pg = pier_pg::testpg::Engine::new(
        pier_pg::testpg::EngineConfig::new([9u8; 32], pg_url.clone()),
        pg_clock,
    )
    .unwrap();
    let faults = pier_pg::pgsim::FaultControl::new(Default::default(), 0).unwrap();
    let (stop_pg, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pg2 = pg.clone();
    tokio::spawn(async move {
        let _ = pier_pg::pgsim::serve_engine(pg2, faults, pg_listener, async {
            let _ = stop_rx.await;
        })
        .await;
    });
    // The first instance creates the demo merchant; its jobs stay off until all are up.
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path()).await;
    let url = db.url.clone();
    let clock = pier_domain::ManualClock::new(START);
    let off = |c: &mut pier_server::Config| {
        fast_jobs(c);
        c.run_jobs = false;
    };
    let first = start_pier(&url, dir.path(), &clock, &Opts::default(), off).await;
    let e = first.engine.clone();
    let ch = e
        .add_channel(
            DEMO_CODE,
            "jtnet",
            Some("jtnet_shared".into()),
            true,
            Some(pg_url.clone()),
        )
        .await
        .unwrap();
    assert_eq!(ch.target, pg_url);
    let card = pier_pg::CardData {
        number: pier_domain::CardNumber::parse(CARD_OK).unwrap(),
        expiry: pier_domain::Expiry::parse("2030-12").unwrap(),
        birth: None,
        pwd_2digit: None,
    };
    e.issue_customer(
        DEMO_CODE,
        pier_domain::CustomerUid::parse("multi").unwrap(),
        card,
        None,
        Default::default(),
    )
    .await
    .unwrap();
    let items: Vec<_> = (0..N)
        .map(|i| pier_server::engine::schedules::ScheduleItem {
            order: pier_server::engine::charge::OrderInput {
                merchant_uid: pier_domain::MerchantUid::parse(&format!("multi-{i:04}")).unwrap(),
                amount: pier_domain::Amount::new(1000 + i as i64, "amount").unwrap(),
                currency: "KRW".into(),
                tax_free: pier_domain::AmountPart::ZERO,
                vat_amount: None,
                name: None,
                buyer: Default::default(),
                card_quota: 0,
                custom_data: None,
                notice_urls: vec![],
                pg: None,
            },
            schedule_at: START + (i as i64 % 60),
        })
        .collect();
    for chunk in items.chunks(200) {
        e.create_schedules(
            DEMO_CODE,
            pier_domain::CustomerUid::parse("multi").unwrap(),
            None,
            None,
            None,
            chunk.to_vec(),
        )
        .await
        .unwrap();
    }
    first.shutdown().await;
    // Three instances with the scheduler running, small batches so they interleave.
    let on = |c: &mut pier_server::Config| {
        fast_jobs(c);
        c.schedule_batch = 25;
        c.schedule_concurrency = 4;
    };
    let mut piers = Vec::new();
    for _ in 0..3 {
        piers.push(start_pier(&url, dir.path(), &clock, &Opts::default(), on).await);
    }
    clock.advance(60);
    let started = std::time::Instant::now();
    let store = piers[0].engine.clone();
    loop {
        let page = store
            .list_schedules(
                DEMO_CODE,
                &pier_store::ScheduleQuery {
                    status: Some(pier_store::ScheduleStatus::Executed),
                    limit: 1,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if page.total as usize == N {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {} of {N} executed",
            page.total
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    for p in piers {
        p.shutdown().await;
    }
    let _ = stop_pg.send(());
    // The PG's ledger: every merchant_uid approved exactly once, for its amount.
    let ledger = pg.ledger_snapshot_shared().await.unwrap();
    let mut seen = std::collections::HashMap::new();
    for o in &ledger.orders {
        *seen.entry(o.merchant_uid.clone()).or_insert(0) += 1;
        assert_eq!(o.status, pier_pg::testpg::LedgerStatus::Approved, "{o:?}");
    }
    assert_eq!(seen.len(), N, "misses");
    assert!(
        seen.values().all(|n| *n == 1),
        "duplicates: {:?}",
        seen.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    for i in 0..N {
        let t = ledger
            .total("jtnet_shared", &format!("multi-{i:04}"))
            .expect("approved");
        assert_eq!(t.net_krw, 1000 + i as i64);
    }
    eprintln!("3 instances executed {N} schedules in {took:?}");
}

#[tokio::test]
async fn an_unknown_outcome_is_never_charged_twice() {
    // The PG approves but the answer is lost: the payment's outcome is unknown (reconciler's).
    const CARD_LOSE_RESPONSE: &str = "5525-7600-0000-0504";
    let t = start_manual().await;
    let tok = t.token().await;
    issue_key(&t, &tok, "lost", CARD_LOSE_RESPONSE).await;
    schedule(
        &t,
        &tok,
        json!({"customer_uid": "lost", "schedules": [item("lo-1", START + HOUR, 4000)]}),
    )
    .await;
    t.clock.advance(HOUR);
    assert_eq!(tick(&t).await, 1);
    // Still pending (the outcome is not known), and the ticks that look again never re-charge.
    for _ in 0..3 {
        t.clock.advance(31);
        tick(&t).await;
    }
    let tok = t.token().await;
    let (_, b) = t.get("/subscribe/payments/schedule/lo-1", &tok).await;
    assert_eq!(b["response"]["schedule_status"], "scheduled", "{b}");
    assert!(b["response"]["payment_status"].is_null());
    let ledger = t.pier.testpg.ledger_snapshot_shared().await.unwrap();
    assert_eq!(
        ledger
            .orders
            .iter()
            .filter(|o| o.merchant_uid == "lo-1")
            .count(),
        1,
        "charged once"
    );
    // It cannot be moved or revoked while it runs.
    let (s, _) = t
        .send(
            t.http
                .put(t.url("/subscribe/payments/schedule/lo-1"))
                .header("Authorization", &tok)
                .json(&json!({"schedule_at": START + 9 * DAY})),
        )
        .await;
    assert_eq!(s, 400);
    let (_, b) = t
        .post(
            "/subscribe/payments/unschedule",
            Some(&tok),
            json!({"merchant_uid": "lo-1"}),
        )
        .await;
    assert_eq!(b["code"], 1);
    t.pier.shutdown().await;
}

/// Two instances on one PostgreSQL database, each in its own empty directory with the default
/// (in-process) test PG, whose journal they share: their schedulers tick at the same moments
/// over the same due schedules (small batches, so their claims interleave), and every schedule
/// is executed and charged exactly once — the test PG's ledger as either instance reads it, and
/// the schedules as either instance answers them. (`three_instances_execute_1000_schedules_exactly_once`
/// does the same through a shared pgsim with the scheduler jobs running.)
#[tokio::test]
async fn two_instances_on_the_default_test_pg_execute_each_schedule_once() {
    if std::env::var("PIER_TEST_STORE").as_deref() != Ok("postgres") {
        eprintln!("note: two_instances_on_the_default_test_pg_execute_each_schedule_once needs PostgreSQL (PIER_TEST_STORE=postgres); skipped on SQLite");
        return;
    }
    // 40 schedules in batches of 3: ~7 rounds in which both instances claim at once.
    const N: usize = 40;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let db = fresh_database(dir_a.path()).await;
    let clock = pier_domain::ManualClock::new(START);
    // The ticks below are the scheduler's; a PG deadline far above the test PG's latency keeps
    // a loaded machine from turning a charge into an unknown outcome (which would wait for the
    // reconciler instead of completing in the tick).
    let o = Opts {
        pg_deadline: Duration::from_secs(5),
        ..Opts::default()
    };
    let manual = |c: &mut pier_server::Config| {
        fast_jobs(c);
        c.run_jobs = false;
    };
    let a = start_pier(&db.url, dir_a.path(), &clock, &o, manual).await;
    let b = start_pier(&db.url, dir_b.path(), &clock, &o, |c| {
        manual(c);
        c.create_demo = false;
    })
    .await;
    let http = reqwest::Client::new();
    let call = |rb: reqwest::RequestBuilder| async move {
        let v: Value = rb.send().await.unwrap().json().await.unwrap();
        assert_eq!(v["code"], 0, "{v}");
        v["response"].clone()
    };
    let token = |base: String| async move {
        call(
            reqwest::Client::new()
                .post(format!("{base}/users/getToken"))
                .json(&json!({"imp_key": DEMO_KEY, "imp_secret": DEMO_SECRET})),
        )
        .await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // The key is issued through A, the schedules registered through B.
    let tok = token(a.base_url()).await;
    call(
        http.post(format!("{}/subscribe/customers/two", a.base_url()))
            .header("Authorization", &tok)
            .json(&json!({"card_number": CARD_OK, "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12"})),
    )
    .await;
    let items: Vec<Value> = (0..N)
        .map(|i| item(&format!("two-{i:03}"), START + HOUR, 1000 + i as i64))
        .collect();
    call(
        http.post(format!("{}/subscribe/payments/schedule", b.base_url()))
            .header("Authorization", &tok)
            .json(&json!({"customer_uid": "two", "schedules": items})),
    )
    .await;
    clock.advance(HOUR);
    let (ea, eb) = (a.engine.clone(), b.engine.clone());
    let mut ran = (0, 0);
    loop {
        let (x, y) = tokio::join!(ea.run_due_schedules(3), eb.run_due_schedules(3));
        let (x, y) = (x.unwrap(), y.unwrap());
        if x + y == 0 {
            break;
        }
        ran = (ran.0 + x, ran.1 + y);
    }
    assert_eq!(ran.0 + ran.1, N, "executions (A, B) = {ran:?}");
    assert!(ran.0 > 0 && ran.1 > 0, "both schedulers ran some: {ran:?}");
    // Later ticks find nothing.
    clock.advance(DAY);
    let (x, y) = tokio::join!(ea.run_due_schedules(100), eb.run_due_schedules(100));
    assert_eq!((x.unwrap(), y.unwrap()), (0, 0));
    // The test PG's books, as each instance reads them: one approval per schedule, its amount.
    for p in [&a, &b] {
        let ledger = p.testpg.ledger_snapshot_shared().await.unwrap();
        for i in 0..N {
            let uid = format!("two-{i:03}");
            let orders: Vec<_> = ledger
                .orders
                .iter()
                .filter(|o| o.merchant_uid == uid)
                .collect();
            assert_eq!(orders.len(), 1, "{uid}: {orders:?}");
            assert_eq!(
                orders[0].status,
                pier_pg::testpg::LedgerStatus::Approved,
                "{uid}"
            );
            assert_eq!(
                ledger.total(&orders[0].mid, &uid).map(|t| t.net_krw),
                Some(1000 + i as i64),
                "{uid}"
            );
        }
    }
    // Each instance answers every schedule executed and paid (a new token: the clock moved a day).
    let tok = token(b.base_url()).await;
    for (i, p) in [&a, &b].into_iter().cycle().take(N).enumerate() {
        let r = call(
            http.get(format!(
                "{}/subscribe/payments/schedule/two-{i:03}",
                p.base_url()
            ))
            .header("Authorization", &tok),
        )
        .await;
        assert_eq!(
            (r["schedule_status"].as_str(), r["payment_status"].as_str()),
            (Some("executed"), Some("paid")),
            "{r}"
        );
    }
    a.shutdown().await;
    b.shutdown().await;
    drop(db);
}
