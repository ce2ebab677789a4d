//! The Toss Payments connector against the Toss simulator: what only Toss has (auth, the
//! idempotency header, its error shapes, its field mapping) and the transport failures.

use crate::common::{card, mid, order, DEADLINE};
use pier_pg::pgsim::Faults;
use pier_pg::toss::sim::{self, Sim, SimConfig};
use pier_pg::toss::{idempotency_key, Config, Connector};
use pier_pg::{CancelRequest, Inquiry, Pg, PgError};
use std::net::SocketAddr;

pub const SECRET: &str = "test_sk_pier_simulated_0000";

/// A simulator on `127.0.0.1:0` and a connector to it with the common short deadline.
pub struct TossRig {
    pub sim: Sim,
    pub addr: SocketAddr,
    pub connector: Connector,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TossRig {
    pub async fn start() -> Self {
        Self::with_faults(Faults {
            // Held requests outlive the connector's deadline but not the test.
            hang_ms: 2_000,
            ..Faults::default()
        })
        .await
    }

    pub async fn with_faults(faults: Faults) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = SimConfig::new(SECRET);
        config.faults = faults;
        config.base_url = format!("http://{addr}");
        let sim = Sim::new(config).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(sim::serve(sim.clone(), listener, async move {
            let _ = stopped.await;
        }));
        Self {
            connector: connector(&format!("http://{addr}"), SECRET),
            sim,
            addr,
            _stop: stop,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn quiet(&self) {
        self.sim
            .faults()
            .set(Faults {
                hang_ms: 2_000,
                ..Faults::default()
            })
            .unwrap();
    }
}

pub fn connector(base: &str, secret: &str) -> Connector {
    Connector::new(&Config {
        api_base: base.to_owned(),
        secret_key: secret.to_owned(),
        deadline: DEADLINE,
    })
    .unwrap()
}

#[tokio::test]
async fn approval_maps_toss_fields_to_imports() {
    let rig = TossRig::start().await;
    let mut o = order(60_000);
    o.card_quota = 3;
    let a = rig
        .connector
        .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
        .await
        .unwrap();
    let p = rig.sim.payment_of_order(&o.order_id).unwrap();
    assert_eq!(a.pg_tid, p.payment_key);
    let toss_card = p.card.unwrap();
    assert_eq!(toss_card.issuer_code.as_deref(), Some("41"), "신한 at Toss");
    assert_eq!(a.card_code.as_deref(), Some("366"), "신한 in KFTC");
    assert_eq!(a.card_name.as_deref(), Some("신한카드"));
    assert_eq!(a.card_number.as_deref(), Some("451842******0000"));
    assert_eq!(a.apply_num, toss_card.approve_no);
    assert_eq!(a.card_quota, 3);
    assert_eq!(a.card_type, Some(0));
    assert_eq!(a.amount_krw, 60_000);
    assert!(a.approved_at > 1_700_000_000, "{}", a.approved_at);
    assert_eq!(
        a.receipt_url,
        Some(format!("{}/receipt/{}", rig.base(), a.pg_tid))
    );
    // Below 50,000 KRW the installment request is a lump sum, as with the test PG.
    let mut small = order(10_000);
    small.card_quota = 3;
    let a = rig
        .connector
        .approve_keyed(&mid(), &small, card("4518-4200-0000-0000"))
        .await
        .unwrap();
    assert_eq!(a.card_quota, 0);
}

/// Inquiry by paymentKey (`GET /v1/payments/{paymentKey}`): the payment found must be the
/// order's; an unknown key is not found; a key from outside Toss is refused before any call.
#[tokio::test]
async fn inquiry_by_payment_key_checks_the_order() {
    let rig = TossRig::start().await;
    let o = order(12_000);
    let a = rig
        .connector
        .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
        .await
        .unwrap();
    let by_key = rig
        .connector
        .inquire_tid(&mid(), &o.order_id, &a.pg_tid)
        .await
        .unwrap();
    assert!(
        matches!(&by_key, Inquiry::Approved(x) if x.pg_tid == a.pg_tid && x.amount_krw == 12_000),
        "{by_key:?}"
    );
    let other = order(1_000);
    let mismatch = rig
        .connector
        .inquire_tid(&mid(), &other.order_id, &a.pg_tid)
        .await;
    assert!(
        matches!(&mismatch, Err(PgError::Rejected { code, .. }) if code == "ORDER_MISMATCH"),
        "{mismatch:?}"
    );
    let unknown = rig
        .connector
        .inquire_tid(&mid(), &o.order_id, "tviva20261206000000abcde")
        .await
        .unwrap();
    assert_eq!(unknown, Inquiry::NotFound);
    let hostile = rig
        .connector
        .inquire_tid(&mid(), &o.order_id, "../orders/x")
        .await;
    assert!(
        matches!(&hostile, Err(PgError::Rejected { code, .. }) if code == "INVALID_PAYMENT_KEY"),
        "{hostile:?}"
    );
}

#[tokio::test]
async fn billing_key_carries_its_customer_key() {
    let rig = TossRig::start().await;
    let k1 = rig
        .connector
        .issue_billing_key(&mid(), "buyer@example.com", card("5570-4200-0000-0000"))
        .await
        .unwrap();
    let (customer_key, toss_key) = k1.billing_key.split_once(':').unwrap();
    assert!(customer_key.starts_with("pier_"), "{customer_key}");
    assert!(
        !customer_key.contains("buyer"),
        "the customer_uid must not be guessable from the customerKey"
    );
    assert!(toss_key.starts_with("bk_"));
    assert_eq!(k1.card_code.as_deref(), Some("381"));
    assert_eq!(k1.card_type, Some(1), "KB check card");
    // The same customer registering another card gets the same customerKey, another billing key.
    let k2 = rig
        .connector
        .issue_billing_key(&mid(), "buyer@example.com", card("4518-4200-0000-0000"))
        .await
        .unwrap();
    assert_eq!(k2.billing_key.split_once(':').unwrap().0, customer_key);
    assert_ne!(k2.billing_key, k1.billing_key);
    // A billing key with another customer's customerKey is refused by Toss.
    let forged = format!("pier_someoneelse:{toss_key}");
    let r = rig
        .connector
        .pay_with_key(&mid(), &order(1_000), &forged)
        .await;
    assert!(
        matches!(&r, Err(PgError::Rejected { code, .. }) if code == "NOT_MATCHES_CUSTOMER_KEY"),
        "{r:?}"
    );
    // Deleting is a documented no-op (no deletion API in Toss v1); a foreign key is refused.
    rig.connector
        .delete_billing_key(&mid(), &k1.billing_key)
        .await
        .unwrap();
    assert!(matches!(
        rig.connector.delete_billing_key(&mid(), "nocolon").await,
        Err(PgError::Rejected { .. })
    ));
}

#[tokio::test]
async fn birth_is_sent_only_when_given() {
    let rig = TossRig::start().await;
    let mut no_birth = card("4518-4200-0000-0000");
    no_birth.birth = None;
    let o = order(1_000);
    // This simulator plays a merchant whose contract requires it (the default).
    let r = rig
        .connector
        .approve_keyed(&mid(), &o, no_birth.clone())
        .await;
    assert!(
        matches!(&r, Err(PgError::Rejected { code, .. }) if code == "INVALID_REQUEST"),
        "{r:?}"
    );
    assert!(rig.sim.payment_of_order(&o.order_id).is_none());
    // A business number (10 digits) is a corporate card.
    let mut corporate = card("4518-4200-0000-0000");
    corporate.birth = Some(pier_domain::Birth::parse("1234567890").unwrap());
    let o = order(1_000);
    rig.connector
        .approve_keyed(&mid(), &o, corporate)
        .await
        .unwrap();
    let p = rig.sim.payment_of_order(&o.order_id).unwrap();
    assert_eq!(p.card.unwrap().owner_type.as_deref(), Some("법인"));
}

#[tokio::test]
async fn bad_secret_is_rejected_and_charges_nothing() {
    let rig = TossRig::start().await;
    let wrong = connector(&rig.base(), "test_sk_wrong");
    let o = order(1_000);
    let r = wrong
        .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
        .await;
    assert!(
        matches!(&r, Err(PgError::Rejected { code, .. }) if code == "UNAUTHORIZED_KEY"),
        "{r:?}"
    );
    assert!(rig.sim.payment_of_order(&o.order_id).is_none());
    assert!(matches!(
        wrong.inquire(&mid(), &o.order_id).await,
        Err(PgError::Rejected { .. })
    ));
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = connector(&format!("http://{addr}"), SECRET);
    let r = c
        .approve_keyed(&mid(), &order(1_000), card("4518-4200-0000-0000"))
        .await;
    assert!(matches!(r, Err(PgError::Unreachable(_))), "{r:?}");
    let r = c.inquire(&mid(), "imp_000000000001").await;
    assert!(matches!(r, Err(PgError::Unreachable(_))), "{r:?}");
}

#[tokio::test]
async fn timeouts_and_5xx_are_unknown_and_charge_nothing() {
    let rig = TossRig::with_faults(Faults {
        timeout_rate: 1.0,
        hang_ms: 2_000,
        ..Faults::default()
    })
    .await;
    let o = order(1_000);
    let started = std::time::Instant::now();
    let r = rig
        .connector
        .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
        .await;
    assert!(matches!(r, Err(PgError::Unknown(_))), "{r:?}");
    assert!(started.elapsed() >= DEADLINE);
    assert!(
        started.elapsed() < DEADLINE * 5,
        "the deadline bounds the call"
    );
    rig.sim
        .faults()
        .set(Faults {
            error_rate: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let r = rig
        .connector
        .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
        .await;
    assert!(matches!(r, Err(PgError::Unknown(_))), "{r:?}");
    rig.quiet();
    assert_eq!(
        rig.connector.inquire(&mid(), &o.order_id).await.unwrap(),
        Inquiry::NotFound
    );
    assert_eq!(rig.sim.approved_charges(&o.order_id), 0);
}

/// The answer to a processed charge is lost: the connector says Unknown, the inquiry finds
/// exactly one approval, and the retried call (same derived Idempotency-Key, same body) gets the
/// stored answer without a second charge.
#[tokio::test]
async fn lost_answer_then_retry_charges_once() {
    let rig = TossRig::with_faults(Faults {
        drop_response_rate: 1.0,
        hang_ms: 2_000,
        ..Faults::default()
    })
    .await;
    let o = order(25_000);
    let r = rig
        .connector
        .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
        .await;
    assert!(matches!(r, Err(PgError::Unknown(_))), "{r:?}");
    assert_eq!(rig.sim.approved_charges(&o.order_id), 1, "it was processed");
    rig.quiet();
    let Inquiry::Approved(found) = rig.connector.inquire(&mid(), &o.order_id).await.unwrap() else {
        panic!("the inquiry must show the approval")
    };
    let again = rig
        .connector
        .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
        .await
        .unwrap();
    assert_eq!(again, found);
    assert_eq!(rig.sim.approved_charges(&o.order_id), 1, "no second charge");

    // The same through raw HTTP: the key is derived, so anyone retrying derives the same one.
    let key = idempotency_key("approve_keyed", &mid(), &o.order_id);
    let http = reqwest::Client::new();
    let other_body = serde_json::json!({
        "amount": 25_000, "orderId": o.order_id, "orderName": "x",
        "cardNumber": "4518420000000000", "cardExpirationYear": "99",
        "cardExpirationMonth": "12", "customerIdentityNumber": "880101"
    });
    let resp = http
        .post(format!("{}/v1/payments/key-in", rig.base()))
        .basic_auth(SECRET, Some(""))
        .header("Idempotency-Key", &key)
        .json(&other_body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422, "same key, another body: refused");
    assert_eq!(rig.sim.approved_charges(&o.order_id), 1);
}

/// A virtual account whose issuance answer was lost is "not found" to the reconciler (nothing paid
/// yet); its net-cancel must close the account at Toss, or a buyer could pay into an account for
/// an attempt Pier failed.
#[tokio::test]
async fn net_cancel_closes_an_issued_virtual_account() {
    let rig = TossRig::start().await;
    rig.quiet();
    let http = reqwest::Client::new();
    let o = order(25_000);
    let due = chrono::Utc::now().timestamp() + 86_400;
    rig.connector
        .issue_vbank(
            &mid(),
            &pier_pg::VbankRequest {
                order: o.clone(),
                bank_code: "088".into(),
                due_unix: due,
                holder: Some("홍길동".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        rig.connector.inquire(&mid(), &o.order_id).await.unwrap(),
        Inquiry::NotFound,
        "an account not paid into is no payment yet"
    );
    rig.connector.net_cancel(&mid(), &o.order_id).await.unwrap();
    // Idempotent, like every net-cancel.
    rig.connector.net_cancel(&mid(), &o.order_id).await.unwrap();
    let after = rig.connector.inquire(&mid(), &o.order_id).await.unwrap();
    assert!(matches!(after, Inquiry::Voided { .. }), "{after:?}");
    let deposit = http
        .put(format!(
            "{}/admin/orders/{}/deposit",
            rig.base(),
            o.order_id
        ))
        .send()
        .await
        .unwrap();
    assert_ne!(deposit.status(), 200, "a closed account takes no deposit");
    let still = rig.connector.inquire(&mid(), &o.order_id).await.unwrap();
    assert!(matches!(still, Inquiry::Voided { .. }), "{still:?}");
}

#[tokio::test]
async fn window_needs_a_client_key_and_reads_tosss_returns() {
    let rig = TossRig::start().await;
    let begin = pier_pg::AuthBegin {
        order: order(1_000),
        pay_method: "card".into(),
        issue_billing_key: false,
        return_url: "http://127.0.0.1/return".into(),
        display: Default::default(),
    };
    let r = rig.connector.begin_auth(&mid(), &begin).await;
    assert!(
        matches!(&r, Err(PgError::Rejected { code, .. }) if code == "NO_CLIENT_KEY"),
        "{r:?}"
    );
    let with_key = rig.connector.clone().with_client_key(Some("test_ck_x"));
    let s = with_key.begin_auth(&mid(), &begin).await.unwrap();
    let call = s.browser_call.expect("Toss's window is opened by its SDK");
    assert_eq!(call.script_url, format!("{}/v1/payment", rig.base()));
    assert_eq!(
        (call.init.as_str(), call.init_arg.as_str()),
        ("TossPayments", "test_ck_x")
    );
    assert_eq!(call.method, "requestPayment");
    let success = call.args[1]["successUrl"].as_str().unwrap();
    assert!(success.contains(&s.auth_session_id), "{success}");
    assert!(call.fail_url.contains(&s.auth_session_id));
    // The live API base loads Toss's own SDK.
    let live = pier_pg::toss::Connector::new(&Config::new("test_sk_x"))
        .unwrap()
        .with_client_key(Some("test_ck_x"));
    let s = live.begin_auth(&mid(), &begin).await.unwrap();
    assert_eq!(
        s.browser_call.unwrap().script_url,
        "https://js.tosspayments.com/v1/payment"
    );
    // A vbank and an unknown method.
    let mut vb = begin.clone();
    vb.pay_method = "vbank".into();
    let call = with_key
        .begin_auth(&mid(), &vb)
        .await
        .unwrap()
        .browser_call
        .unwrap();
    assert_eq!(call.args[0], "가상계좌");
    vb.pay_method = "kakaopay".into();
    assert!(matches!(
        with_key.begin_auth(&mid(), &vb).await,
        Err(PgError::Rejected { code, .. }) if code == "INVALID_PAY_METHOD"
    ));
    // A confirmation whose URL amount differs from the order is refused before Toss is asked.
    let o = order(1_000);
    let done = with_key
        .complete_auth(
            &mid(),
            &pier_pg::AuthComplete {
                order: o.clone(),
                auth_session_id: "x".into(),
                auth_token: "tsim_unknown".into(),
                params: vec![
                    ("paymentKey".into(), "tsim_unknown".into()),
                    ("orderId".into(), o.order_id.clone()),
                    ("amount".into(), "999".into()),
                ],
            },
        )
        .await;
    assert!(
        matches!(&done, Err(PgError::Rejected { code, .. }) if code == "AMOUNT_MISMATCH"),
        "{done:?}"
    );
}

#[tokio::test]
async fn cancel_of_unknown_payment_is_rejected() {
    let rig = TossRig::start().await;
    let r = rig
        .connector
        .cancel(
            &mid(),
            &CancelRequest {
                order_id: "imp_000000000999".into(),
                pg_tid: "tsim_nope".into(),
                amount_krw: 1_000,
                tax_free_krw: 0,
                reason: None,
                cancellation_id: "c-unknown".into(),
                refund_account: None,
            },
        )
        .await;
    assert!(
        matches!(&r, Err(PgError::Rejected { code, .. }) if code == "NOT_FOUND_PAYMENT"),
        "{r:?}"
    );
}

/// Concurrent retries of one charge (same derived key, same body) while Toss is slow: one charge,
/// every caller gets that payment.
#[tokio::test]
async fn concurrent_retries_charge_once() {
    let rig = TossRig::with_faults(Faults {
        latency_ms: 100,
        hang_ms: 2_000,
        ..Faults::default()
    })
    .await;
    let o = order(7_000);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (c, o) = (rig.connector.clone(), o.clone());
        calls.spawn(async move {
            c.approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
                .await
        });
    }
    let answers = calls.join_all().await;
    let first = answers[0].clone().unwrap();
    for a in answers {
        assert_eq!(a.unwrap().pg_tid, first.pg_tid);
    }
    assert_eq!(rig.sim.approved_charges(&o.order_id), 1);
}

/// The reconciler's path after a lost answer: net-cancel voids the charge Toss processed.
#[tokio::test]
async fn net_cancel_after_a_lost_answer_voids_it() {
    let rig = TossRig::with_faults(Faults {
        drop_response_rate: 1.0,
        hang_ms: 2_000,
        ..Faults::default()
    })
    .await;
    let o = order(20_000);
    let r = rig
        .connector
        .approve_keyed(&mid(), &o, card("4518-4200-0000-0000"))
        .await;
    assert!(matches!(r, Err(PgError::Unknown(_))), "{r:?}");
    rig.quiet();
    rig.connector.net_cancel(&mid(), &o.order_id).await.unwrap();
    let p = rig.sim.payment_of_order(&o.order_id).unwrap();
    assert_eq!(p.status, "CANCELED");
    assert_eq!(p.balance_amount, 0);
    assert_eq!(p.cancels.map(|c| c.len()), Some(1));
    assert!(matches!(
        rig.connector.inquire(&mid(), &o.order_id).await.unwrap(),
        Inquiry::Voided { .. }
    ));
}
