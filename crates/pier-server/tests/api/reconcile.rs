//! The reconciler: unknown PG outcomes and attempts left in flight by a crash are settled against
//! the PG's own records, exactly once, and the ones that stay unknown are shown to an operator.

use crate::common::*;
use pier_domain::Clock;
use pier_pg::testpg::{InProcess, LedgerStatus};
use pier_pg::{CardData, Mid, Pg};
use pier_server::engine::charge::FIRST_RECONCILE_DELAY_SECS;
use pier_server::engine::reconcile::STUCK_AFTER_ATTEMPTS;
use pier_store::{Payment, PgState, Settlement};
use serde_json::{json, Value};

/// The test card whose approval is made but whose answer never comes back.
const CARD_LOSE_RESPONSE: &str = "5525-7600-0000-0504";
/// The test card whose charge never reaches the PG's books (it times out unprocessed).
const CARD_TIMEOUT: &str = "5461-1200-0000-0408";

async fn charge(t: &TestPier, tok: &str, merchant_uid: &str, card: &str) -> (u16, Value) {
    t.post(
        "/subscribe/payments/onetime",
        Some(tok),
        json!({"merchant_uid": merchant_uid, "amount": 1000, "card_number": card, "expiry": "2030-12"}),
    )
    .await
}

/// Reconciler passes until the payment leaves `ready`, at most 10, the clock moving past the
/// longest backoff (60 s) between them. One pass settles it on a quiet machine; on a loaded one
/// the look can meet the tests' 300 ms PG deadline, and then the reconciler defers and looks
/// again later, exactly as in production. What the tests assert is the state it settles in.
async fn reconcile_until_settled(t: &TestPier, imp_uid: &str) -> String {
    let mut reports = Vec::new();
    for _ in 0..10 {
        reports.push(format!(
            "{:?}",
            t.pier.engine.reconcile_pass().await.unwrap()
        ));
        if payment(t, imp_uid).await.status.as_str() != "ready" {
            break;
        }
        t.clock.advance(61);
    }
    reports.join("; ")
}

async fn payment(t: &TestPier, imp_uid: &str) -> Payment {
    t.pier
        .store()
        .get_payment(None, imp_uid)
        .await
        .unwrap()
        .expect("payment exists")
}

async fn demo_channel(t: &TestPier) -> pier_store::Channel {
    t.pier
        .store()
        .list_channels(Some(DEMO_CODE))
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.is_default)
        .unwrap()
}

/// An attempt as `charge.rs` persists it before calling the PG (in flight, guard taken).
async fn insert_in_flight(t: &TestPier, merchant_uid: &str, amount: i64) -> Payment {
    let ch = demo_channel(t).await;
    let now = t.clock.now_unix();
    let mut p = Payment::new(
        pier_domain::ImpUid::generate().into_string(),
        DEMO_CODE.into(),
        merchant_uid.into(),
        amount,
        now,
    );
    p.uid_lock = true;
    p.pg_state = PgState::InFlight;
    p.channel_id = Some(ch.id.clone());
    p.pay_method = Some("card".into());
    p.pg_provider = Some(ch.pg_provider.clone());
    p.pg_id = Some(ch.mid.clone());
    t.pier.store().insert_payment(&p).await.unwrap();
    p
}

/// The PG approves `p`'s order behind Pier's back (as if the answer had been lost).
async fn approve_at_pg(t: &TestPier, p: &Payment) {
    let pg = InProcess::new(t.pier.testpg.clone());
    let order = pier_pg::Order {
        order_id: p.imp_uid.clone(),
        merchant_uid: p.merchant_uid.clone(),
        amount_krw: p.amount,
        tax_free_krw: 0,
        name: None,
        buyer_name: None,
        card_quota: 0,
    };
    let card = CardData {
        number: pier_domain::CardNumber::parse(CARD_OK).unwrap(),
        expiry: pier_domain::Expiry::parse("2030-12").unwrap(),
        birth: None,
        pwd_2digit: None,
    };
    pg.approve_keyed(&Mid(p.pg_id.clone().unwrap()), &order, card)
        .await
        .expect("approved at the PG");
}

async fn ledger_status(t: &TestPier, order_id: &str) -> Option<LedgerStatus> {
    t.pier
        .testpg
        .ledger_snapshot_shared()
        .await
        .unwrap()
        .order(order_id)
        .map(|o| o.status)
}

#[tokio::test]
async fn lost_approval_is_reconciled_to_paid_and_the_retry_sees_it() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let (s, b) = charge(&t, &tok, "rc-lost-1", CARD_LOSE_RESPONSE).await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(-1)), "{b}");
    let imp_uid = imp_uid_of_unknown(&b);
    let p = payment(&t, &imp_uid).await;
    assert_eq!((p.status.as_str(), p.pg_state), ("ready", PgState::Unknown));
    assert_eq!(
        ledger_status(&t, &imp_uid).await,
        Some(LedgerStatus::Approved)
    );

    // Not due yet: untouched.
    let r = t.pier.engine.reconcile_pass().await.unwrap();
    assert_eq!(r.paid, 0, "{r:?}");
    assert_eq!(payment(&t, &imp_uid).await.status.as_str(), "ready");

    t.clock.advance(FIRST_RECONCILE_DELAY_SECS);
    let r = reconcile_until_settled(&t, &imp_uid).await;
    let p = payment(&t, &imp_uid).await;
    assert_eq!(
        (p.status.as_str(), p.pg_state),
        ("paid", PgState::Settled),
        "{r}"
    );
    assert!(p.pg_tid.is_some());

    // The merchant's retry (any card) is told it is already paid, and nothing more is charged.
    let (s, b) = charge(&t, &tok, "rc-lost-1", CARD_OK).await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(1)), "{b}");
    let total = t
        .pier
        .testpg
        .ledger_snapshot_shared()
        .await
        .unwrap()
        .total(&p.pg_id.clone().unwrap(), "rc-lost-1")
        .cloned()
        .unwrap();
    assert_eq!((total.live_approvals, total.net_krw), (1, 1000));
    let (_, b) = t.get(&format!("/payments/{imp_uid}"), &tok).await;
    assert_eq!(b["response"]["status"], "paid");
}

#[tokio::test]
async fn attempt_the_pg_never_saw_fails_is_voided_and_frees_the_merchant_uid() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let (s, b) = charge(&t, &tok, "rc-nf-1", CARD_TIMEOUT).await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(-1)), "{b}");
    let imp_uid = imp_uid_of_unknown(&b);
    // While unknown, a retry is refused (in progress), and that refusal is not final.
    let (_, b) = charge(&t, &tok, "rc-nf-1", CARD_OK).await;
    assert_eq!(b["code"], 1, "{b}");

    t.clock.advance(FIRST_RECONCILE_DELAY_SECS);
    let r = reconcile_until_settled(&t, &imp_uid).await;
    let p = payment(&t, &imp_uid).await;
    assert_eq!(p.status.as_str(), "failed", "{r}");
    assert!(!p.uid_lock);
    assert!(p.fail_reason.as_deref().unwrap().contains("never saw"));

    // The order id is voided at the PG: a request still on its way cannot approve any more.
    let late = p.clone();
    let pg = InProcess::new(t.pier.testpg.clone());
    let order = pier_pg::Order {
        order_id: late.imp_uid.clone(),
        merchant_uid: late.merchant_uid.clone(),
        amount_krw: 1000,
        tax_free_krw: 0,
        name: None,
        buyer_name: None,
        card_quota: 0,
    };
    let card = CardData {
        number: pier_domain::CardNumber::parse(CARD_OK).unwrap(),
        expiry: pier_domain::Expiry::parse("2030-12").unwrap(),
        birth: None,
        pwd_2digit: None,
    };
    assert!(pg
        .approve_keyed(&Mid(p.pg_id.clone().unwrap()), &order, card)
        .await
        .is_err());

    // The merchant_uid is free again: the retry pays, once.
    let paid = t.pay(&tok, "rc-nf-1", 1000).await;
    assert_ne!(paid["imp_uid"], imp_uid);
    let total = t
        .pier
        .testpg
        .ledger_snapshot_shared()
        .await
        .unwrap()
        .total(&p.pg_id.unwrap(), "rc-nf-1")
        .cloned()
        .unwrap();
    assert_eq!((total.live_approvals, total.net_krw), (1, 1000));
}

#[tokio::test]
async fn approval_after_the_client_was_told_failed_is_net_cancelled() {
    let t = TestPier::start().await;
    let p = insert_in_flight(&t, "rc-told-1", 2500).await;
    approve_at_pg(&t, &p).await;
    let now = t.clock.now_unix();
    t.pier
        .store()
        .settle(
            &p.imp_uid,
            &Settlement::Unknown {
                told_failed: true,
                next_reconcile_at: now,
            },
            now,
            &[],
        )
        .await
        .unwrap();
    let r = reconcile_until_settled(&t, &p.imp_uid).await;
    let after = payment(&t, &p.imp_uid).await;
    assert_eq!(after.status.as_str(), "failed", "{r}");
    assert!(!after.uid_lock);
    assert_eq!(
        ledger_status(&t, &p.imp_uid).await,
        Some(LedgerStatus::Voided)
    );
    let snap = t.pier.testpg.ledger_snapshot_shared().await.unwrap();
    assert_eq!(
        snap.total(p.pg_id.as_deref().unwrap(), "rc-told-1")
            .unwrap()
            .net_krw,
        0
    );
}

#[tokio::test]
async fn crashed_in_flight_attempt_is_recovered_only_once_stale() {
    let t = TestPier::start().await;
    let p = insert_in_flight(&t, "rc-crash-1", 3000).await;
    approve_at_pg(&t, &p).await;
    // Fresh: a live request may still be waiting for the PG; the reconciler keeps off.
    t.pier.engine.reconcile_pass().await.unwrap();
    assert_eq!(payment(&t, &p.imp_uid).await.pg_state, PgState::InFlight);

    let now = t.clock.now_unix();
    t.clock.advance(now - t.pier.engine.stale_before(now) + 1);
    t.pier.engine.reconcile_pass().await.unwrap();
    let after = payment(&t, &p.imp_uid).await;
    assert_eq!(
        (after.status.as_str(), after.pg_state),
        ("paid", PgState::Settled)
    );

    // A live request that wakes up late with the same answer loses the guarded race harmlessly.
    let s = t
        .pier
        .store()
        .settle(
            &p.imp_uid,
            &Settlement::Failed {
                reason: "late".into(),
                failed_at: now,
            },
            now,
            &[],
        )
        .await;
    assert!(matches!(s, Err(pier_store::StoreError::Stale(_))));
    assert_eq!(payment(&t, &p.imp_uid).await.status.as_str(), "paid");
}

#[tokio::test]
async fn concurrent_reconcilers_settle_each_attempt_once() {
    let t = TestPier::start().await;
    let mut ps = Vec::new();
    for i in 0..12 {
        let p = insert_in_flight(&t, &format!("rc-conc-{i}"), 1000 + i).await;
        if i % 3 != 0 {
            approve_at_pg(&t, &p).await;
        }
        ps.push(p);
    }
    let now = t.clock.now_unix();
    t.clock.advance(now - t.pier.engine.stale_before(now) + 1);
    let e = t.pier.engine.clone();
    let (a, b, c) = tokio::join!(e.reconcile_pass(), e.reconcile_pass(), e.reconcile_pass());
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    // Each attempt was claimed by at most one of them (the background job may take some too).
    assert!(a.paid + b.paid + c.paid <= 8, "{a:?} {b:?} {c:?}");
    assert!(a.failed + b.failed + c.failed <= 4, "{a:?} {b:?} {c:?}");
    for (i, p) in ps.iter().enumerate() {
        let after = payment(&t, &p.imp_uid).await;
        let want = if i % 3 != 0 { "paid" } else { "failed" };
        assert_eq!(after.status.as_str(), want, "{}", p.imp_uid);
    }
}

#[tokio::test]
async fn unreachable_pg_backs_off_and_is_flagged_for_the_operator_of_that_merchant_only() {
    let t = TestPier::start().await;
    // A channel whose PG answers nothing (a closed port), made default for the demo merchant.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let dead = t
        .pier
        .engine
        .add_channel(
            DEMO_CODE,
            "jtnet",
            Some("dead_mid".into()),
            false,
            Some(url),
        )
        .await
        .unwrap();
    let mut q = Payment::new(
        pier_domain::ImpUid::generate().into_string(),
        DEMO_CODE.into(),
        "rc-stuck-2".into(),
        8000,
        t.clock.now_unix(),
    );
    q.uid_lock = true;
    q.pg_state = PgState::InFlight;
    q.channel_id = Some(dead.id.clone());
    q.pay_method = Some("card".into());
    t.pier.store().insert_payment(&q).await.unwrap();

    let mut last_attempts = 0;
    for _ in 0..(STUCK_AFTER_ATTEMPTS + 1) {
        let now = t.clock.now_unix();
        let cur = payment(&t, &q.imp_uid).await;
        let wait = (cur.next_reconcile_at - now).max(now - t.pier.engine.stale_before(now) + 1);
        t.clock.advance(wait);
        t.pier.engine.reconcile_pass().await.unwrap();
        let cur = payment(&t, &q.imp_uid).await;
        assert_eq!(
            (cur.status.as_str(), cur.pg_state),
            ("ready", PgState::Unknown)
        );
        assert!(cur.reconcile_attempts > last_attempts, "counted");
        last_attempts = cur.reconcile_attempts;
    }
    let cur = payment(&t, &q.imp_uid).await;
    assert!(cur.reconcile_attempts >= STUCK_AFTER_ATTEMPTS);
    // Backoff grew to its cap: the next look comes a minute later, and keeps coming (never
    // dropped, never pushed out to hours while the PG may be answering again).
    let gap = cur.next_reconcile_at - t.clock.now_unix();
    assert_eq!(
        gap,
        pier_server::engine::reconcile::BACKOFF_MAX_SECS,
        "gap {gap}"
    );

    // (Minutes passed: a fresh token.)
    let tok = t.token().await;
    let other = t.other_merchant().await;
    let (s, b) = t.get("/admin/unsettled?stuck=true", &tok).await;
    assert_eq!(s, 200, "{b}");
    let list = b["response"]["list"].as_array().unwrap();
    assert!(
        list.iter().any(|x| x["imp_uid"] == q.imp_uid.as_str()),
        "{b}"
    );
    assert!(list.iter().all(|x| x["needs_operator"] == true));
    // Another merchant sees none of it; no token, no list.
    let (s, b) = t.get("/admin/unsettled", &other).await;
    assert_eq!((s, b["response"]["total"].as_i64()), (200, Some(0)), "{b}");
    let (s, _) = t.send(t.http.get(t.url("/admin/unsettled"))).await;
    assert_eq!(s, 401);
    let (_, m) = (
        0,
        t.http
            .get(t.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(m.contains("pier_reconcile_stuck"), "gauge exported");
}
