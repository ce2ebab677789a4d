//! Opt-in live check of the Toss connector against Toss's real **test** environment.
//!
//! Runs only with `PIER_TOSS_LIVE_SECRET_KEY` (a `test_sk_…` key; a `live_sk_` key is refused
//! so that no real money can move) and, for the window check, `PIER_TOSS_LIVE_CLIENT_KEY`;
//! otherwise it prints that it was skipped and passes. It calls `https://api.tosspayments.com`
//! and needs the network; nothing it does charges anything: an inquiry of an order Toss never
//! saw, a cancel of a payment that does not exist, and a wrong key.
//!
//! `PIER_TOSS_LIVE_SECRET_KEY=test_sk_… PIER_TOSS_LIVE_CLIENT_KEY=test_ck_… \
//!  cargo test -p pier-pg --test pg toss_live -- --nocapture`

use crate::common::{mid, order};
use pier_pg::toss::{Config, Connector};
use pier_pg::{CancelRequest, Inquiry, Pg, PgError};

fn live_keys() -> Option<(String, Option<String>)> {
    let secret = std::env::var("PIER_TOSS_LIVE_SECRET_KEY")
        .ok()
        .filter(|k| !k.is_empty())?;
    let client = std::env::var("PIER_TOSS_LIVE_CLIENT_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    Some((secret, client))
}

#[tokio::test]
async fn toss_live_contract_or_skipped() {
    let Some((secret, client_key)) = live_keys() else {
        eprintln!("toss_live: skipped (set PIER_TOSS_LIVE_SECRET_KEY to a test_sk_ key to run it)");
        return;
    };
    assert!(
        secret.starts_with("test_sk_"),
        "the live check runs with a test key (test_sk_…) only"
    );
    let conn = Connector::new(&Config::new(secret))
        .unwrap()
        .with_client_key(client_key.as_deref());
    // Auth works and an order Toss never saw is not found.
    let o = order(1_000);
    let r = conn.inquire(&mid(), &o.order_id).await;
    assert_eq!(r, Ok(Inquiry::NotFound), "{r:?}");
    // A cancel of a payment that does not exist is a known refusal, not an unknown outcome.
    let r = conn
        .cancel(
            &mid(),
            &CancelRequest {
                order_id: o.order_id.clone(),
                pg_tid: "pier_live_check_no_such_payment".into(),
                amount_krw: 1_000,
                tax_free_krw: 0,
                reason: Some("live check".into()),
                cancellation_id: format!("cnl_live_{}", o.order_id),
                refund_account: None,
            },
        )
        .await;
    assert!(matches!(r, Err(PgError::Rejected { .. })), "{r:?}");
    // A wrong key is refused.
    let wrong = Connector::new(&Config::new("test_sk_pier_wrong_key_0000")).unwrap();
    let r = wrong.inquire(&mid(), &o.order_id).await;
    assert!(matches!(r, Err(PgError::Rejected { .. })), "{r:?}");
    // The window call names Toss's SDK and the client key (no network).
    if client_key.is_some() {
        let s = conn
            .begin_auth(
                &mid(),
                &pier_pg::AuthBegin {
                    order: o,
                    pay_method: "card".into(),
                    issue_billing_key: false,
                    return_url: "https://pier.example/checkout/return/x".into(),
                    display: Default::default(),
                },
            )
            .await
            .unwrap();
        let call = s.browser_call.unwrap();
        assert_eq!(call.script_url, "https://js.tosspayments.com/v1/payment");
        let r = reqwest::get(&call.script_url).await;
        assert!(
            r.is_ok_and(|r| r.status().is_success()),
            "Toss's SDK is served at the URL the window loads"
        );
    }
    eprintln!("toss_live: ran against Toss's test environment");
}
