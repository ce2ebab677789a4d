//! The connector conformance suite: the same scenarios, through the `Pg` trait only, against
//! every connector Pier ships: the test PG in-process, pgsim over HTTP, and Toss Payments against
//! its simulator. A new connector joins by adding itself to `connectors!` below; the checklist in
//! `docs/connectors/README.md` is what these scenarios enforce.
//!
//! Codes and messages differ between PGs; the scenarios compare only what the trait promises:
//! the outcome kind, the amounts, the ids staying the same, and what an inquiry says afterwards.

use crate::common::{card, mid, order, Rig, DEADLINE};
use crate::toss::TossRig;
use pier_pg::{CancelRequest, Inquiry, Pg, PgError, VbankRequest};
use std::time::Instant;

/// Declares one `#[tokio::test]` per scenario that runs it against every connector.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let rig = Rig::start().await;
            let toss = TossRig::start().await;
            let connectors: [(&str, &dyn Pg); 3] = [
                ("in-process", &rig.inproc),
                ("pgsim", &rig.sim),
                ("toss", &toss.connector),
            ];
            for (via, pg) in connectors {
                scenarios::$name(via, pg).await;
            }
        }
    )*};
}

conformance!(
    keyed_approval_is_inquirable,
    issuer_refusal_is_declined,
    invalid_card_is_rejected,
    billing_key_issue_then_pay,
    refused_registration_is_rejected,
    unknown_billing_key_is_rejected,
    partial_then_full_cancel,
    cancel_retry_is_one_cancel,
    unknown_order_is_not_found,
    lost_answer_is_unknown_then_found_once,
    timeout_is_unknown_and_nothing_happened,
    net_cancel_voids_idempotently,
    vbank_waits_for_its_deposit,
);

fn cancel_req(order_id: &str, pg_tid: &str, amount_krw: i64, id: &str) -> CancelRequest {
    CancelRequest {
        order_id: order_id.into(),
        pg_tid: pg_tid.into(),
        amount_krw,
        tax_free_krw: 0,
        reason: Some("conformance".into()),
        cancellation_id: id.into(),
        refund_account: None,
    }
}

/// A known refusal: `Declined` or `Rejected`, never `Unknown` or `Unreachable`.
fn refused<T>(r: &Result<T, PgError>) -> bool {
    matches!(r, Err(PgError::Declined { .. } | PgError::Rejected { .. }))
}

/// A card number as a connector may show it: at most the first 6 and last 4 digits.
fn assert_masked(via: &str, shown: Option<&str>, digits: &str) {
    let shown = shown.unwrap_or_else(|| panic!("{via}: no card number"));
    let visible: Vec<(usize, char)> = shown
        .char_indices()
        .filter(|(_, c)| c.is_ascii_digit())
        .collect();
    assert!(visible.len() <= 12, "{via}: {shown} shows too much");
    let n = shown.len();
    for (i, c) in visible {
        assert!(
            i < 8 || i + 4 >= n,
            "{via}: {shown} shows a middle digit at {i}"
        );
        assert_eq!(digits.as_bytes().get(i), Some(&(c as u8)), "{via}: {shown}");
    }
}

mod scenarios {
    use super::*;

    pub async fn keyed_approval_is_inquirable(via: &str, pg: &dyn Pg) {
        let o = order(12_000);
        let a = pg
            .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
            .await
            .unwrap_or_else(|e| panic!("{via}: {e}"));
        assert!(!a.pg_tid.is_empty(), "{via}");
        assert_eq!(a.amount_krw, 12_000, "{via}");
        assert_eq!(a.card_code.as_deref(), Some("366"), "{via}: 신한");
        assert!(a.card_name.is_some(), "{via}");
        assert!(a.apply_num.is_some(), "{via}");
        assert_eq!(a.card_quota, 0, "{via}");
        assert_masked(via, a.card_number.as_deref(), "4518420000000000");
        match pg.inquire(&mid(), &o.order_id).await {
            Ok(Inquiry::Approved(found)) => {
                assert_eq!(found.pg_tid, a.pg_tid, "{via}");
                assert_eq!(found.amount_krw, a.amount_krw, "{via}");
            }
            other => panic!("{via}: {other:?}"),
        }
    }

    pub async fn issuer_refusal_is_declined(via: &str, pg: &dyn Pg) {
        let o = order(5_000);
        let r = pg
            .approve_keyed(&mid(), &o, card("5570-4200-0000-2112"))
            .await;
        assert!(matches!(r, Err(PgError::Declined { .. })), "{via}: {r:?}");
        let i = pg.inquire(&mid(), &o.order_id).await.unwrap();
        assert!(
            matches!(i, Inquiry::Declined { .. } | Inquiry::NotFound),
            "{via}: {i:?}"
        );
    }

    pub async fn invalid_card_is_rejected(via: &str, pg: &dyn Pg) {
        let o = order(5_000);
        let r = pg
            .approve_keyed(&mid(), &o, card("9409-1500-0000-0001"))
            .await;
        assert!(matches!(r, Err(PgError::Rejected { .. })), "{via}: {r:?}");
        assert_eq!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::NotFound,
            "{via}: nothing was attempted"
        );
    }

    pub async fn billing_key_issue_then_pay(via: &str, pg: &dyn Pg) {
        let key = pg
            .issue_billing_key(&mid(), "conformance-customer", card("5570-4200-0000-0000"))
            .await
            .unwrap_or_else(|e| panic!("{via}: {e}"));
        assert!(!key.billing_key.is_empty(), "{via}");
        assert_eq!(key.card_code.as_deref(), Some("381"), "{via}: KB국민");
        assert_masked(via, key.card_number.as_deref(), "5570420000000000");
        let o = order(9_900);
        let a = pg
            .pay_with_key(&mid(), &o, &key.billing_key)
            .await
            .unwrap_or_else(|e| panic!("{via}: {e}"));
        assert_eq!(a.amount_krw, 9_900, "{via}");
        assert_eq!(a.card_code.as_deref(), Some("381"), "{via}");
        let Ok(Inquiry::Approved(found)) = pg.inquire(&mid(), &o.order_id).await else {
            panic!("{via}: the key payment is not approved at the PG")
        };
        assert_eq!(found.pg_tid, a.pg_tid, "{via}");
        // A card suspended after registration: the key charge is declined.
        let key = pg
            .issue_billing_key(&mid(), "conformance-suspended", card("4651-2000-0000-2105"))
            .await
            .unwrap_or_else(|e| panic!("{via}: {e}"));
        let r = pg
            .pay_with_key(&mid(), &order(9_900), &key.billing_key)
            .await;
        assert!(matches!(r, Err(PgError::Declined { .. })), "{via}: {r:?}");
    }

    pub async fn refused_registration_is_rejected(via: &str, pg: &dyn Pg) {
        for number in [
            "5361-8100-0000-2101",
            "5594-1000-0000-2131",
            "9409-1500-0000-0001",
        ] {
            let r = pg
                .issue_billing_key(&mid(), "conformance-refused", card(number))
                .await;
            assert!(
                matches!(r, Err(PgError::Rejected { .. })),
                "{via} {number}: {r:?}"
            );
        }
    }

    pub async fn unknown_billing_key_is_rejected(via: &str, pg: &dyn Pg) {
        let o = order(1_000);
        let r = pg
            .pay_with_key(&mid(), &o, "pier_nobody:bk_never_issued")
            .await;
        assert!(matches!(r, Err(PgError::Rejected { .. })), "{via}: {r:?}");
        assert_eq!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::NotFound,
            "{via}"
        );
    }

    pub async fn partial_then_full_cancel(via: &str, pg: &dyn Pg) {
        let o = order(10_000);
        let a = pg
            .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
            .await
            .unwrap_or_else(|e| panic!("{via}: {e}"));
        let c1 = pg
            .cancel(&mid(), &cancel_req(&o.order_id, &a.pg_tid, 3_000, "cx-1"))
            .await
            .unwrap_or_else(|e| panic!("{via}: {e}"));
        assert_eq!(c1.amount_krw, 3_000, "{via}");
        assert!(!c1.pg_cancel_tid.is_empty(), "{via}");
        assert!(
            matches!(
                pg.inquire(&mid(), &o.order_id).await,
                Ok(Inquiry::Approved(_))
            ),
            "{via}: partly cancelled is still approved"
        );
        // More than what is left is a known refusal (the test PG words it as a declined cancel,
        // Toss as a bad request), and takes nothing.
        let r = pg
            .cancel(&mid(), &cancel_req(&o.order_id, &a.pg_tid, 7_001, "cx-2"))
            .await;
        assert!(refused(&r), "{via}: {r:?}");
        let c2 = pg
            .cancel(&mid(), &cancel_req(&o.order_id, &a.pg_tid, 7_000, "cx-3"))
            .await
            .unwrap_or_else(|e| panic!("{via}: {e}"));
        assert_eq!(c2.amount_krw, 7_000, "{via}");
        assert_ne!(c2.pg_cancel_tid, c1.pg_cancel_tid, "{via}");
        assert_eq!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::Voided {
                pg_tid: a.pg_tid.clone()
            },
            "{via}: fully cancelled"
        );
        let r = pg
            .cancel(&mid(), &cancel_req(&o.order_id, &a.pg_tid, 1, "cx-4"))
            .await;
        assert!(refused(&r), "{via}: {r:?}");
    }

    pub async fn cancel_retry_is_one_cancel(via: &str, pg: &dyn Pg) {
        let o = order(10_000);
        let a = pg
            .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
            .await
            .unwrap_or_else(|e| panic!("{via}: {e}"));
        let req = cancel_req(&o.order_id, &a.pg_tid, 4_000, "retry-me");
        let first = pg.cancel(&mid(), &req).await.unwrap();
        let again = pg.cancel(&mid(), &req).await.unwrap();
        assert_eq!(first.pg_cancel_tid, again.pg_cancel_tid, "{via}");
        assert_eq!(first.amount_krw, again.amount_krw, "{via}");
        // Only 4,000 was taken: exactly 6,000 is left.
        let rest = pg
            .cancel(&mid(), &cancel_req(&o.order_id, &a.pg_tid, 6_000, "rest"))
            .await;
        assert!(rest.is_ok(), "{via}: {rest:?}");
    }

    pub async fn unknown_order_is_not_found(via: &str, pg: &dyn Pg) {
        assert_eq!(
            pg.inquire(&mid(), "imp_never_seen_01").await.unwrap(),
            Inquiry::NotFound,
            "{via}"
        );
    }

    pub async fn lost_answer_is_unknown_then_found_once(via: &str, pg: &dyn Pg) {
        let o = order(15_000);
        let started = Instant::now();
        let r = pg
            .approve_keyed(&mid(), &o, card("5525-7600-0000-0504"))
            .await;
        assert!(matches!(r, Err(PgError::Unknown(_))), "{via}: {r:?}");
        assert!(started.elapsed() >= DEADLINE, "{via}");
        let Ok(Inquiry::Approved(found)) = pg.inquire(&mid(), &o.order_id).await else {
            panic!("{via}: the processed charge must be found")
        };
        let again = pg
            .approve_keyed(&mid(), &o, card("5525-7600-0000-0504"))
            .await
            .unwrap_or_else(|e| panic!("{via}: retry: {e}"));
        assert_eq!(
            again.pg_tid, found.pg_tid,
            "{via}: the retry is the same payment"
        );
        assert_eq!(again.amount_krw, 15_000, "{via}");
    }

    pub async fn timeout_is_unknown_and_nothing_happened(via: &str, pg: &dyn Pg) {
        let o = order(15_000);
        let started = Instant::now();
        let r = pg
            .approve_keyed(&mid(), &o, card("5461-1200-0000-0408"))
            .await;
        assert!(matches!(r, Err(PgError::Unknown(_))), "{via}: {r:?}");
        assert!(started.elapsed() >= DEADLINE, "{via}");
        assert_eq!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::NotFound,
            "{via}"
        );
    }

    pub async fn net_cancel_voids_idempotently(via: &str, pg: &dyn Pg) {
        let o = order(8_000);
        let a = pg
            .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
            .await
            .unwrap_or_else(|e| panic!("{via}: {e}"));
        pg.net_cancel(&mid(), &o.order_id)
            .await
            .unwrap_or_else(|e| panic!("{via}: {e}"));
        pg.net_cancel(&mid(), &o.order_id)
            .await
            .unwrap_or_else(|e| panic!("{via}: again: {e}"));
        assert_eq!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::Voided { pg_tid: a.pg_tid },
            "{via}"
        );
        pg.net_cancel(&mid(), "imp_never_seen_02")
            .await
            .unwrap_or_else(|e| panic!("{via}: unknown order: {e}"));
    }

    pub async fn vbank_waits_for_its_deposit(via: &str, pg: &dyn Pg) {
        let o = order(33_000);
        let due = chrono::Utc::now().timestamp() + 3 * 86_400;
        let v = pg
            .issue_vbank(
                &mid(),
                &VbankRequest {
                    order: o.clone(),
                    bank_code: "004".into(),
                    due_unix: due,
                    holder: Some("홍길동".into()),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{via}: {e}"));
        assert!(!v.pg_tid.is_empty(), "{via}");
        assert_eq!(v.bank_code, "004", "{via}");
        assert!(!v.bank_name.is_empty(), "{via}");
        assert!(!v.account_num.is_empty(), "{via}");
        assert_eq!(v.due_unix, due, "{via}");
        assert_eq!(
            pg.inquire(&mid(), &o.order_id).await.unwrap(),
            Inquiry::NotFound,
            "{via}: no money yet"
        );
    }
}
