//! The payment-window flow: begin through a connector, authenticate through the engine API the
//! window pages use, complete through the connector.

use crate::common::{card, mid, order, Rig};
use pier_pg::testpg::{cards, SessionStatus};
use pier_pg::{AuthBegin, AuthComplete, AuthOutcome, AuthSession, Inquiry, Order, Pg, PgError};

fn begin(o: &Order, method: &str, billing: bool) -> AuthBegin {
    AuthBegin {
        order: o.clone(),
        pay_method: method.into(),
        issue_billing_key: billing,
        return_url: "https://pier.example/checkout/return".into(),
        display: Default::default(),
    }
}

fn complete(o: &Order, s: &AuthSession, token: &str) -> AuthComplete {
    AuthComplete {
        order: o.clone(),
        auth_session_id: s.auth_session_id.clone(),
        auth_token: token.into(),
        params: Vec::new(),
    }
}

#[tokio::test]
async fn card_window_pays_once() {
    let rig = Rig::start().await;
    for (via, pg) in rig.both() {
        let mut o = order(60_000);
        o.card_quota = 0;
        let s = pg
            .begin_auth(&mid(), &begin(&o, "card", false))
            .await
            .unwrap();
        assert_eq!(
            s.redirect_url,
            format!("{}/testpg/window/{}", rig.base(), s.auth_session_id)
        );
        let view = rig.engine.session(&s.auth_session_id).unwrap();
        assert_eq!(
            (
                view.pay_method.as_str(),
                view.amount_krw,
                view.issue_billing_key
            ),
            ("card", 60_000, false)
        );
        assert_eq!(view.status, SessionStatus::Pending);
        assert_eq!(view.return_url, "https://pier.example/checkout/return");

        // Completing before authenticating, or with a made-up token, is refused.
        let r = pg.complete_auth(&mid(), &complete(&o, &s, "nope")).await;
        assert!(matches!(r, Err(PgError::Rejected { .. })), "{via}");

        let token = rig
            .engine
            .authenticate_card(&s.auth_session_id, card("4518-4200-0000-0000"), 6)
            .unwrap();
        assert_eq!(
            rig.engine.session(&s.auth_session_id).unwrap().status,
            SessionStatus::Authenticated
        );
        let r = pg.complete_auth(&mid(), &complete(&o, &s, "wrong")).await;
        assert!(matches!(r, Err(PgError::Rejected { .. })), "{via}");
        // The amount must be the one authenticated.
        let mut tampered = o.clone();
        tampered.amount_krw = 100;
        let r = pg
            .complete_auth(&mid(), &complete(&tampered, &s, &token))
            .await;
        assert!(
            matches!(r, Err(PgError::Rejected { ref code, .. }) if code == "ORDER_MISMATCH"),
            "{via}"
        );

        let AuthOutcome::Paid(a) = pg
            .complete_auth(&mid(), &complete(&o, &s, &token))
            .await
            .unwrap()
        else {
            panic!("{via}")
        };
        assert_eq!(
            (a.amount_krw, a.card_quota, a.card_code.as_deref()),
            (60_000, 6, Some("366"))
        );
        assert_eq!(a.billing_key, None);
        // Replaying the completion returns the same approval; nothing is charged twice.
        let again = pg
            .complete_auth(&mid(), &complete(&o, &s, &token))
            .await
            .unwrap();
        assert_eq!(again, AuthOutcome::Paid(a.clone()));
        let t = rig.engine.ledger_snapshot();
        assert_eq!(t.total(&mid().0, &o.merchant_uid).unwrap().approvals, 1);
        assert_eq!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::Approved(a)
        );
        assert_eq!(
            rig.engine.session(&s.auth_session_id).unwrap().status,
            SessionStatus::Completed
        );
        // The window cannot be re-used, and another MID cannot complete it.
        assert!(rig
            .engine
            .authenticate_card(&s.auth_session_id, card("4242424242424242"), 0)
            .is_err());
        let r = pg
            .complete_auth(&pier_pg::Mid::new("other"), &complete(&o, &s, &token))
            .await;
        assert!(matches!(r, Err(PgError::Rejected { .. })));
    }
}

#[tokio::test]
async fn card_window_declines_and_refusals() {
    let rig = Rig::start().await;
    for (via, pg) in rig.both() {
        // Issuer declines happen at completion, as for keyed payments.
        let o = order(10_000);
        let s = pg
            .begin_auth(&mid(), &begin(&o, "card", false))
            .await
            .unwrap();
        let token = rig
            .engine
            .authenticate_card(&s.auth_session_id, card("5409-2600-0000-2116"), 0)
            .unwrap();
        let r = pg.complete_auth(&mid(), &complete(&o, &s, &token)).await;
        assert_eq!(r.unwrap_err(), cards::OVER_LIMIT.declined(), "{via}");
        assert!(matches!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::Declined { .. }
        ));

        // An invalid number is refused right in the window.
        let o = order(10_000);
        let s = pg
            .begin_auth(&mid(), &begin(&o, "card", false))
            .await
            .unwrap();
        let r = rig
            .engine
            .authenticate_card(&s.auth_session_id, card("9409-1500-0000-0001"), 0);
        assert!(matches!(r, Err(PgError::Rejected { .. })));
        // Timeout card: the completion is never answered and nothing is recorded; the session
        // stays open.
        let token = rig
            .engine
            .authenticate_card(&s.auth_session_id, card("5461-1200-0000-0408"), 0)
            .unwrap();
        assert!(matches!(
            pg.complete_auth(&mid(), &complete(&o, &s, &token)).await,
            Err(PgError::Unknown(_))
        ));
        assert_eq!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::NotFound
        );
        assert_eq!(
            rig.engine.session(&s.auth_session_id).unwrap().status,
            SessionStatus::Authenticated
        );

        // Lost response: the replay of the completion recovers the approval.
        let o = order(10_000);
        let s = pg
            .begin_auth(&mid(), &begin(&o, "card", false))
            .await
            .unwrap();
        let token = rig
            .engine
            .authenticate_card(&s.auth_session_id, card("5525-7600-0000-0504"), 0)
            .unwrap();
        assert!(matches!(
            pg.complete_auth(&mid(), &complete(&o, &s, &token)).await,
            Err(PgError::Unknown(_))
        ));
        let again = pg
            .complete_auth(&mid(), &complete(&o, &s, &token))
            .await
            .unwrap();
        let Inquiry::Approved(a) = pg.inquire(&mid(), &o.order_id).await.unwrap() else {
            panic!()
        };
        assert_eq!(again, AuthOutcome::Paid(a));

        // The buyer closes the window.
        let o = order(10_000);
        let s = pg
            .begin_auth(&mid(), &begin(&o, "card", false))
            .await
            .unwrap();
        let token = rig
            .engine
            .authenticate_card(&s.auth_session_id, card("4242424242424242"), 0)
            .unwrap();
        rig.engine.abandon_session(&s.auth_session_id).unwrap();
        let r = pg.complete_auth(&mid(), &complete(&o, &s, &token)).await;
        assert!(
            matches!(r, Err(PgError::Rejected { ref code, .. }) if code == "USER_CANCELLED"),
            "{r:?}"
        );

        // Bad begins.
        for (method, billing, amount) in [
            ("bitcoin", false, 1_000),
            ("trans", true, 1_000),
            ("card", false, 0),
        ] {
            let r = pg
                .begin_auth(&mid(), &begin(&order(amount), method, billing))
                .await;
            assert!(matches!(r, Err(PgError::Rejected { .. })), "{via} {method}");
        }
        let mut b = begin(&order(1_000), "card", false);
        b.return_url = "javascript:alert(1)".into();
        assert!(matches!(
            pg.begin_auth(&mid(), &b).await,
            Err(PgError::Rejected { .. })
        ));
    }
    assert!(rig.engine.session("no-such-session").is_none());
}

#[tokio::test]
async fn sessions_expire() {
    let rig = Rig::start().await;
    let o = order(10_000);
    let s = rig
        .inproc
        .begin_auth(&mid(), &begin(&o, "card", false))
        .await
        .unwrap();
    let token = rig
        .engine
        .authenticate_card(&s.auth_session_id, card("4242424242424242"), 0)
        .unwrap();
    rig.clock.advance(rig.engine.config().session_ttl_secs + 1);
    assert_eq!(
        rig.engine.session(&s.auth_session_id).unwrap().status,
        SessionStatus::Expired
    );
    let r = rig
        .inproc
        .complete_auth(&mid(), &complete(&o, &s, &token))
        .await;
    assert!(
        matches!(r, Err(PgError::Rejected { ref code, .. }) if code == "SESSION_EXPIRED"),
        "{r:?}"
    );
}

#[tokio::test]
async fn window_billing_keys() {
    let rig = Rig::start().await;
    for (via, pg) in rig.both() {
        // Amount 0: a key only, no payment.
        let o = order(0);
        let s = pg
            .begin_auth(&mid(), &begin(&o, "card", true))
            .await
            .unwrap();
        let token = rig
            .engine
            .authenticate_card(&s.auth_session_id, card("4518-4200-0000-0000"), 0)
            .unwrap();
        let AuthOutcome::BillingKeyOnly(key) = pg
            .complete_auth(&mid(), &complete(&o, &s, &token))
            .await
            .unwrap()
        else {
            panic!("{via}")
        };
        assert_eq!(key.card_code.as_deref(), Some("366"));
        assert_eq!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::NotFound
        );
        // The replay hands back the same key (it could not be recovered otherwise).
        assert_eq!(
            pg.complete_auth(&mid(), &complete(&o, &s, &token))
                .await
                .unwrap(),
            AuthOutcome::BillingKeyOnly(key.clone())
        );
        pg.pay_with_key(&mid(), &order(3_000), &key.billing_key)
            .await
            .unwrap();
        assert_eq!(
            rig.engine
                .ledger_snapshot()
                .billing_keys
                .iter()
                .filter(|k| k.billing_key == key.billing_key)
                .count(),
            1
        );

        // Amount > 0: a first payment carrying the new key.
        let o = order(15_000);
        let s = pg
            .begin_auth(&mid(), &begin(&o, "card", true))
            .await
            .unwrap();
        let token = rig
            .engine
            .authenticate_card(&s.auth_session_id, card("4242424242424242"), 0)
            .unwrap();
        let AuthOutcome::Paid(a) = pg
            .complete_auth(&mid(), &complete(&o, &s, &token))
            .await
            .unwrap()
        else {
            panic!("{via}")
        };
        let new_key = a.billing_key.clone().expect("key issued with the payment");
        assert_eq!(a.amount_krw, 15_000);
        pg.pay_with_key(&mid(), &order(2_000), &new_key)
            .await
            .unwrap();

        // Key issuance refused: nothing issued, nothing paid.
        let o = order(15_000);
        let s = pg
            .begin_auth(&mid(), &begin(&o, "card", true))
            .await
            .unwrap();
        let token = rig
            .engine
            .authenticate_card(&s.auth_session_id, card("5594-1000-0000-2131"), 0)
            .unwrap();
        let r = pg.complete_auth(&mid(), &complete(&o, &s, &token)).await;
        assert!(matches!(r, Err(PgError::Rejected { .. })), "{via}: {r:?}");
        assert_eq!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::NotFound
        );

        // First payment declined: no key either.
        let keys_before = rig.engine.ledger_snapshot().billing_keys.len();
        let o = order(15_000);
        let s = pg
            .begin_auth(&mid(), &begin(&o, "card", true))
            .await
            .unwrap();
        let token = rig
            .engine
            .authenticate_card(&s.auth_session_id, card("5570-4200-0000-2112"), 0)
            .unwrap();
        let r = pg.complete_auth(&mid(), &complete(&o, &s, &token)).await;
        assert_eq!(r.unwrap_err(), cards::INSUFFICIENT_BALANCE.declined());
        assert_eq!(rig.engine.ledger_snapshot().billing_keys.len(), keys_before);

        // The suspended card: first payment fine, later key charges declined.
        let o = order(15_000);
        let s = pg
            .begin_auth(&mid(), &begin(&o, "card", true))
            .await
            .unwrap();
        let token = rig
            .engine
            .authenticate_card(&s.auth_session_id, card("4651-2000-0000-2105"), 0)
            .unwrap();
        let AuthOutcome::Paid(a) = pg
            .complete_auth(&mid(), &complete(&o, &s, &token))
            .await
            .unwrap()
        else {
            panic!()
        };
        let r = pg
            .pay_with_key(&mid(), &order(2_000), &a.billing_key.unwrap())
            .await;
        assert_eq!(r.unwrap_err(), cards::SUSPENDED.declined());
    }
}

#[tokio::test]
async fn trans_phone_and_vbank_windows() {
    let rig = Rig::start().await;
    for (via, pg) in rig.both() {
        // Account transfer.
        let o = order(22_000);
        let s = pg
            .begin_auth(&mid(), &begin(&o, "trans", false))
            .await
            .unwrap();
        assert!(rig
            .engine
            .authenticate_trans(&s.auth_session_id, "999")
            .is_err());
        assert!(rig
            .engine
            .authenticate_card(&s.auth_session_id, card("4242424242424242"), 0)
            .is_err());
        let token = rig
            .engine
            .authenticate_trans(&s.auth_session_id, "088")
            .unwrap();
        let AuthOutcome::Paid(a) = pg
            .complete_auth(&mid(), &complete(&o, &s, &token))
            .await
            .unwrap()
        else {
            panic!("{via}")
        };
        assert_eq!(
            (a.bank_code.as_deref(), a.bank_name.as_deref()),
            (Some("088"), Some("신한은행"))
        );
        assert_eq!((a.card_code, a.apply_num), (None, None));

        // Phone: the SMS code is deterministic and shown by the engine; five misses close it.
        let o = order(9_000);
        let s = pg
            .begin_auth(&mid(), &begin(&o, "phone", false))
            .await
            .unwrap();
        let code = rig.engine.sms_code(&s.auth_session_id).unwrap();
        assert_eq!(code, rig.engine.sms_code(&s.auth_session_id).unwrap());
        assert!(rig
            .engine
            .authenticate_phone(&s.auth_session_id, "ABC", "010-1234-5678", &code)
            .is_err());
        assert!(rig
            .engine
            .authenticate_phone(&s.auth_session_id, "SKT", "02-123-4567", &code)
            .is_err());
        let wrong = if code == "000000" { "000001" } else { "000000" };
        assert!(rig
            .engine
            .authenticate_phone(&s.auth_session_id, "SKT", "010-1234-5678", wrong)
            .is_err());
        let token = rig
            .engine
            .authenticate_phone(&s.auth_session_id, "KT_MVNO", "010-1234-5678", &code)
            .unwrap();
        let AuthOutcome::Paid(a) = pg
            .complete_auth(&mid(), &complete(&o, &s, &token))
            .await
            .unwrap()
        else {
            panic!("{via}")
        };
        assert_eq!(a.amount_krw, 9_000);

        let o = order(9_000);
        let s = pg
            .begin_auth(&mid(), &begin(&o, "phone", false))
            .await
            .unwrap();
        for _ in 0..pier_pg::testpg::MAX_SMS_FAILURES {
            assert!(rig
                .engine
                .authenticate_phone(&s.auth_session_id, "SKT", "01012345678", "x")
                .is_err());
        }
        assert_eq!(
            rig.engine.session(&s.auth_session_id).unwrap().status,
            SessionStatus::Failed
        );
        let code = rig.engine.sms_code(&s.auth_session_id).unwrap();
        assert!(rig
            .engine
            .authenticate_phone(&s.auth_session_id, "SKT", "01012345678", &code)
            .is_err());

        // Virtual account: issued at completion, paid later by a deposit.
        let o = order(33_000);
        let s = pg
            .begin_auth(&mid(), &begin(&o, "vbank", false))
            .await
            .unwrap();
        let token = rig
            .engine
            .authenticate_vbank(&s.auth_session_id, "020")
            .unwrap();
        let AuthOutcome::Vbank(v) = pg
            .complete_auth(&mid(), &complete(&o, &s, &token))
            .await
            .unwrap()
        else {
            panic!("{via}")
        };
        assert_eq!(
            (v.bank_code.as_str(), v.bank_name.as_str()),
            ("020", "우리은행")
        );
        assert_eq!(v.due_unix, v.issued_at + rig.engine.config().vbank_due_secs);
        assert_eq!(v.holder, rig.engine.config().vbank_holder);
        assert_eq!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::NotFound
        );
        rig.engine
            .deposit(
                &pier_pg::testpg::DepositTarget::Account(v.account_num.clone()),
                None,
            )
            .unwrap();
        assert!(matches!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::Approved(_)
        ));
    }
}
