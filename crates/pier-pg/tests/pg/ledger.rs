//! PG-side idempotency, cancels, net-cancels, virtual accounts, and the ledger's totals.

use crate::common::{card, mid, order, Rig, T0};
use pier_pg::testpg::{DepositTarget, LedgerStatus, LedgerVbankStatus};
use pier_pg::{CancelRequest, Inquiry, Mid, Pg, PgError, PgEvent, VbankRequest};
use rand::{Rng, SeedableRng};

fn cancel_req(order_id: &str, pg_tid: &str, amount_krw: i64, id: &str) -> CancelRequest {
    CancelRequest {
        order_id: order_id.into(),
        pg_tid: pg_tid.into(),
        amount_krw,
        tax_free_krw: 0,
        reason: Some("고객 요청".into()),
        cancellation_id: id.into(),
        refund_account: None,
    }
}

#[tokio::test]
async fn approving_an_order_twice_charges_once() {
    let rig = Rig::start().await;
    for (via, pg) in rig.both() {
        let o = order(30_000);
        let first = pg
            .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
            .await
            .unwrap();
        let second = pg
            .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
            .await
            .unwrap();
        assert_eq!(first, second, "{via}");
        // The same order id with other terms is a different order: refused.
        let mut other = o.clone();
        other.amount_krw = 31_000;
        let r = pg
            .approve_keyed(&mid(), &other, card("4518-4200-0000-0000"))
            .await;
        assert!(
            matches!(r, Err(PgError::Rejected { ref code, .. }) if code == "DUPLICATE_ORDER_ID"),
            "{via}"
        );
        let r = pg
            .approve_keyed(&Mid::new("other"), &o, card("4518-4200-0000-0000"))
            .await;
        assert!(matches!(r, Err(PgError::Rejected { .. })), "{via}");
        // A decline is replayed too.
        let d = order(1_000);
        let r1 = pg
            .approve_keyed(&mid(), &d, card("5409-2600-0000-2116"))
            .await
            .unwrap_err();
        let r2 = pg
            .approve_keyed(&mid(), &d, card("5409-2600-0000-2116"))
            .await
            .unwrap_err();
        assert_eq!(r1, r2);
        let ledger = rig.engine.ledger_snapshot();
        let t = ledger.total(&mid().0, &o.merchant_uid).unwrap();
        assert_eq!(
            (t.approvals, t.approved_krw, t.net_krw),
            (1, 30_000, 30_000),
            "{via}"
        );
    }
}

#[tokio::test]
async fn concurrent_duplicate_approvals_charge_once() {
    let rig = Rig::start().await;
    let o = order(10_000);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (o, sim, inproc) = (o.clone(), rig.sim.clone(), rig.inproc.clone());
        tasks.push(tokio::spawn(async move {
            let pg: &dyn Pg = if i % 2 == 0 { &sim } else { &inproc };
            pg.approve_keyed(&mid(), &o, card("4242424242424242"))
                .await
                .unwrap()
        }));
    }
    let mut tids = std::collections::HashSet::new();
    for t in tasks {
        tids.insert(t.await.unwrap().pg_tid);
    }
    assert_eq!(tids.len(), 1);
    assert_eq!(
        rig.engine
            .ledger_snapshot()
            .total(&mid().0, &o.merchant_uid)
            .unwrap()
            .approvals,
        1
    );
}

#[tokio::test]
async fn cancels_are_idempotent_and_never_exceed() {
    let rig = Rig::start().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for (via, pg) in rig.both() {
        let o = order(10_000);
        let a = pg
            .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
            .await
            .unwrap();
        let c1 = pg
            .cancel(&mid(), &cancel_req(&o.order_id, &a.pg_tid, 1_000, "cx-1"))
            .await
            .unwrap();
        assert_eq!(c1.amount_krw, 1_000);
        assert!(!c1.pg_cancel_tid.is_empty() && c1.pg_cancel_tid != a.pg_tid);
        // Same cancellation id: the same cancel, not a second refund.
        let again = pg
            .cancel(&mid(), &cancel_req(&o.order_id, &a.pg_tid, 1_000, "cx-1"))
            .await
            .unwrap();
        assert_eq!(c1, again, "{via}");
        let reused = pg
            .cancel(&mid(), &cancel_req(&o.order_id, &a.pg_tid, 2_000, "cx-1"))
            .await;
        assert!(matches!(reused, Err(PgError::Rejected { .. })), "{via}");
        // Beyond the remaining 9,000: refused by the PG with its message.
        let over = pg
            .cancel(&mid(), &cancel_req(&o.order_id, &a.pg_tid, 9_001, "cx-2"))
            .await;
        match over {
            Err(PgError::Declined { message, .. }) => assert_eq!(
                message,
                "결제취소에 실패하였습니다.(requested cancel amount is bigger than cancelable amount)"
            ),
            other => panic!("{via}: {other:?}"),
        }
        // Random partial cancels: the total never passes the amount.
        let mut cancelled = 1_000;
        for i in 0..30 {
            let amount = rng.gen_range(1..=3_000);
            let r = pg
                .cancel(
                    &mid(),
                    &cancel_req(&o.order_id, &a.pg_tid, amount, &format!("{via}-r{i}")),
                )
                .await;
            if cancelled + amount <= 10_000 {
                r.unwrap();
                cancelled += amount;
            } else {
                assert!(matches!(r, Err(PgError::Declined { .. })), "{via}: {r:?}");
            }
        }
        let remaining = 10_000 - cancelled;
        if remaining > 0 {
            assert!(matches!(
                pg.inquire(&mid(), &o.order_id).await.unwrap(),
                Inquiry::Approved(_)
            ));
            pg.cancel(
                &mid(),
                &cancel_req(&o.order_id, &a.pg_tid, remaining, &format!("{via}-last")),
            )
            .await
            .unwrap();
        }
        assert_eq!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::Voided {
                pg_tid: a.pg_tid.clone()
            }
        );
        let r = pg
            .cancel(
                &mid(),
                &cancel_req(&o.order_id, &a.pg_tid, 1, &format!("{via}-more")),
            )
            .await;
        assert!(matches!(r, Err(PgError::Declined { .. })));
        let ledger = rig.engine.ledger_snapshot();
        let row = ledger.order(&o.order_id).unwrap();
        assert_eq!(
            (row.status, row.cancelled_krw, row.net_krw),
            (LedgerStatus::Cancelled, 10_000, 0)
        );
        let cancels: i64 = ledger
            .cancels
            .iter()
            .filter(|c| c.order_id == o.order_id)
            .map(|c| c.amount_krw)
            .sum();
        assert_eq!(cancels, 10_000);

        // Unknown order, wrong tid, a declined order, bad amounts: refused before anything.
        for req in [
            cancel_req("imp_nope", "x", 100, &format!("{via}-u1")),
            cancel_req(&o.order_id, "wrong-tid", 100, &format!("{via}-u2")),
            cancel_req(&o.order_id, &a.pg_tid, 0, &format!("{via}-u3")),
        ] {
            assert!(
                matches!(pg.cancel(&mid(), &req).await, Err(PgError::Rejected { .. })),
                "{via}"
            );
        }
    }
}

#[tokio::test]
async fn tax_free_cancels_are_bounded() {
    let rig = Rig::start().await;
    for (via, pg) in rig.both() {
        let mut o = order(10_000);
        o.tax_free_krw = 2_000;
        let a = pg
            .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
            .await
            .unwrap();
        let mut req = cancel_req(&o.order_id, &a.pg_tid, 3_000, &format!("{via}-tf1"));
        req.tax_free_krw = 2_000;
        pg.cancel(&mid(), &req).await.unwrap();
        let mut req = cancel_req(&o.order_id, &a.pg_tid, 1_000, &format!("{via}-tf2"));
        req.tax_free_krw = 1;
        assert!(
            matches!(pg.cancel(&mid(), &req).await, Err(PgError::Declined { .. })),
            "{via}"
        );
    }
}

#[tokio::test]
async fn net_cancel_voids_and_blocks_late_approvals() {
    let rig = Rig::start().await;
    for (via, pg) in rig.both() {
        // Approved, response lost: the reconciler inquires, then voids.
        let o = order(20_000);
        let r = pg
            .approve_keyed(&mid(), &o, card("5525-7600-0000-0504"))
            .await;
        assert!(matches!(r, Err(PgError::Unknown(_))));
        let Inquiry::Approved(a) = pg.inquire(&mid(), &o.order_id).await.unwrap() else {
            panic!("{via}")
        };
        pg.net_cancel(&mid(), &o.order_id).await.unwrap();
        pg.net_cancel(&mid(), &o.order_id).await.unwrap();
        assert_eq!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::Voided {
                pg_tid: a.pg_tid.clone()
            }
        );
        let r = pg
            .approve_keyed(&mid(), &o, card("5525-7600-0000-0504"))
            .await;
        assert!(
            matches!(r, Err(PgError::Rejected { ref code, .. }) if code == "ORDER_VOIDED"),
            "{via}: {r:?}"
        );
        let row = rig
            .engine
            .ledger_snapshot()
            .order(&o.order_id)
            .cloned()
            .unwrap();
        assert_eq!(
            (row.status, row.voided_krw, row.net_krw),
            (LedgerStatus::Voided, 20_000, 0)
        );

        // Never seen (the timeout card): Ok, and a late approval of it is refused.
        let t = order(5_000);
        assert!(matches!(
            pg.approve_keyed(&mid(), &t, card("5461-1200-0000-0408"))
                .await,
            Err(PgError::Unknown(_))
        ));
        pg.net_cancel(&mid(), &t.order_id).await.unwrap();
        let late = pg.approve_keyed(&mid(), &t, card("4242424242424242")).await;
        assert!(
            matches!(late, Err(PgError::Rejected { .. })),
            "{via}: {late:?}"
        );
        assert_eq!(
            pg.inquire(&mid(), &t.order_id).await.unwrap(),
            Inquiry::NotFound
        );

        // Declined orders and other merchants' orders: nothing to void, still Ok.
        let d = order(1_000);
        let _ = pg
            .approve_keyed(&mid(), &d, card("5570-4200-0000-2112"))
            .await;
        pg.net_cancel(&mid(), &d.order_id).await.unwrap();
        assert!(matches!(
            pg.inquire(&mid(), &d.order_id).await.unwrap(),
            Inquiry::Declined { .. }
        ));
        let x = order(1_000);
        pg.approve_keyed(&mid(), &x, card("4242424242424242"))
            .await
            .unwrap();
        pg.net_cancel(&Mid::new("intruder"), &x.order_id)
            .await
            .unwrap();
        assert!(matches!(
            pg.inquire(&mid(), &x.order_id).await.unwrap(),
            Inquiry::Approved(_)
        ));
        assert_eq!(
            pg.inquire(&Mid::new("intruder"), &x.order_id)
                .await
                .unwrap(),
            Inquiry::NotFound
        );
    }
}

#[tokio::test]
async fn virtual_accounts_issue_deposit_and_expire() {
    let rig = Rig::start().await;
    let mut events = rig.engine.subscribe();
    for (via, pg) in rig.both() {
        let req = VbankRequest {
            order: order(45_000),
            bank_code: "004".into(),
            due_unix: T0 + 3_600,
            holder: None,
        };
        let v = pg.issue_vbank(&mid(), &req).await.unwrap();
        assert_eq!(
            (v.bank_code.as_str(), v.bank_name.as_str()),
            ("004", "KB국민은행")
        );
        assert!(v.account_num.len() >= 10 && v.account_num.chars().all(|c| c.is_ascii_digit()));
        assert_eq!((v.due_unix, v.issued_at), (T0 + 3_600, T0));
        assert_eq!(
            pg.issue_vbank(&mid(), &req).await.unwrap(),
            v,
            "{via}: issuance is idempotent"
        );
        assert_eq!(
            pg.inquire(&mid(), &req.order.order_id).await.unwrap(),
            Inquiry::NotFound
        );
        // Unpaid accounts cannot be refunded.
        let r = pg
            .cancel(
                &mid(),
                &cancel_req(&req.order.order_id, &v.pg_tid, 100, &format!("{via}-vc")),
            )
            .await;
        assert!(matches!(r, Err(PgError::Declined { .. })));

        // Deposit by account number, exactly at the due time.
        rig.clock.set(T0 + 3_600);
        assert!(rig
            .engine
            .deposit(&DepositTarget::Account(v.account_num.clone()), Some(44_999))
            .is_err());
        let d = rig
            .engine
            .deposit(&DepositTarget::Account(v.account_num.clone()), Some(45_000))
            .unwrap();
        assert_eq!(
            (d.amount_krw, d.deposited_at, d.pg_tid.as_str()),
            (45_000, T0 + 3_600, v.pg_tid.as_str())
        );
        let ev = events.recv().await.unwrap();
        assert_eq!(
            ev,
            PgEvent::VbankDeposited {
                mid: mid(),
                order_id: req.order.order_id.clone(),
                merchant_uid: req.order.merchant_uid.clone(),
                amount_krw: 45_000,
                pg_tid: v.pg_tid.clone(),
                deposited_at: T0 + 3_600,
            }
        );
        let Inquiry::Approved(a) = pg.inquire(&mid(), &req.order.order_id).await.unwrap() else {
            panic!("{via}")
        };
        assert_eq!(
            (a.amount_krw, a.bank_code.as_deref()),
            (45_000, Some("004"))
        );
        assert!(rig
            .engine
            .deposit(&DepositTarget::OrderId(req.order.order_id.clone()), None)
            .is_err());
        // Once paid it refunds like any payment.
        pg.cancel(
            &mid(),
            &cancel_req(&req.order.order_id, &v.pg_tid, 5_000, &format!("{via}-vr")),
        )
        .await
        .unwrap();

        // Past the due time: refused.
        rig.clock.set(T0);
        let late = VbankRequest {
            order: order(10_000),
            bank_code: "088".into(),
            due_unix: T0 + 60,
            holder: Some("피어상점".into()),
        };
        let lv = pg.issue_vbank(&mid(), &late).await.unwrap();
        assert_eq!(lv.holder, "피어상점");
        rig.clock.set(T0 + 61);
        let r = rig
            .engine
            .deposit(&DepositTarget::OrderId(late.order.order_id.clone()), None);
        assert!(
            matches!(r, Err(PgError::Rejected { ref code, .. }) if code == "DEPOSIT_EXPIRED"),
            "{r:?}"
        );
        // Withdrawn (net-cancelled) accounts take no money either.
        rig.clock.set(T0);
        let w = VbankRequest {
            order: order(10_000),
            bank_code: "020".into(),
            due_unix: T0 + 60,
            holder: None,
        };
        pg.issue_vbank(&mid(), &w).await.unwrap();
        pg.net_cancel(&mid(), &w.order.order_id).await.unwrap();
        assert!(rig
            .engine
            .deposit(&DepositTarget::OrderId(w.order.order_id.clone()), None)
            .is_err());

        // Bad requests.
        let bad_bank = VbankRequest {
            order: order(1_000),
            bank_code: "999".into(),
            due_unix: T0 + 60,
            holder: None,
        };
        assert!(matches!(
            pg.issue_vbank(&mid(), &bad_bank).await,
            Err(PgError::Rejected { .. })
        ));
        let past = VbankRequest {
            order: order(1_000),
            bank_code: "004".into(),
            due_unix: T0,
            holder: None,
        };
        assert!(matches!(
            pg.issue_vbank(&mid(), &past).await,
            Err(PgError::Rejected { .. })
        ));

        rig.clock.set(T0 + 61);

        let snap = rig.engine.ledger_snapshot();

        rig.clock.set(T0);
        let row = |id: &str| {
            snap.vbanks
                .iter()
                .find(|v| v.order_id == id)
                .unwrap()
                .status
        };
        assert_eq!(row(&req.order.order_id), LedgerVbankStatus::Deposited);
        assert_eq!(row(&late.order.order_id), LedgerVbankStatus::Expired);
        assert_eq!(row(&w.order.order_id), LedgerVbankStatus::Voided);
        let t = snap.total(&mid().0, &req.order.merchant_uid).unwrap();
        assert_eq!(
            (t.approved_krw, t.refunded_krw, t.net_krw),
            (45_000, 5_000, 40_000)
        );
    }
}

#[tokio::test]
async fn ledger_totals_per_merchant_uid() {
    let rig = Rig::start().await;
    let pg = &rig.inproc;
    // Two attempts of one merchant_uid, both approved: the double charge a reliability test must see.
    let a = order(7_000);
    let mut b = order(7_000);
    b.merchant_uid = a.merchant_uid.clone();
    pg.approve_keyed(&mid(), &a, card("4242424242424242"))
        .await
        .unwrap();
    pg.approve_keyed(&mid(), &b, card("4242424242424242"))
        .await
        .unwrap();
    let snap = rig.engine.ledger_snapshot();
    let t = snap.total(&mid().0, &a.merchant_uid).unwrap();
    assert_eq!((t.approvals, t.live_approvals, t.net_krw), (2, 2, 14_000));
    pg.net_cancel(&mid(), &b.order_id).await.unwrap();
    let snap = rig.engine.ledger_snapshot();
    let t = snap.total(&mid().0, &a.merchant_uid).unwrap();
    assert_eq!(
        (t.approvals, t.live_approvals, t.net_krw, t.refunded_krw),
        (2, 1, 7_000, 7_000)
    );
    assert_eq!(
        snap.net_krw(&mid().0),
        snap.totals.iter().map(|t| t.net_krw).sum::<i64>()
    );
    // The snapshot is plain JSON, for `GET /admin/ledger` and reliability tests.
    let json = serde_json::to_string(&snap).unwrap();
    let back: pier_pg::testpg::LedgerSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snap);
}
