//! The Toss simulator itself: strict about auth, fields and idempotency keys over plain HTTP,
//! and its admin routes (faults, deposits) as the connector sees them.

use crate::common::{mid, order};
use crate::toss::{TossRig, SECRET};
use pier_pg::{CancelRequest, Inquiry, Pg, PgError};

#[tokio::test]
async fn simulator_is_strict_about_auth_fields_and_keys() {
    let rig = TossRig::start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/payments/key-in", rig.base());
    let good = serde_json::json!({
        "amount": 1_000, "orderId": "order-strict-1", "orderName": "상품",
        "cardNumber": "4518420000000000", "cardExpirationYear": "99",
        "cardExpirationMonth": "12", "customerIdentityNumber": "880101"
    });
    // No auth, and a key without the trailing colon: 401 in Toss's shape.
    for req in [
        http.post(&url).json(&good),
        http.post(&url)
            .header("Authorization", format!("Basic {}", "dGVzdA=="))
            .json(&good),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let e: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(e["code"], "UNAUTHORIZED_KEY");
        assert!(e["message"].is_string());
    }
    // An unknown field, a missing field, a mistyped field: 400 INVALID_REQUEST, no value echoed.
    let mut unknown = good.clone();
    unknown["cardNo"] = "4518420000000000".into();
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("orderName");
    let mut mistyped = good.clone();
    mistyped["amount"] = "1000".into();
    for (body, field) in [
        (unknown, Some("cardNo")),
        (missing, Some("orderName")),
        (mistyped, None),
    ] {
        let resp = http
            .post(&url)
            .basic_auth(SECRET, Some(""))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let e: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(e["code"], "INVALID_REQUEST");
        let message = e["message"].as_str().unwrap();
        assert!(!message.contains("4518"), "{message}");
        if let Some(field) = field {
            assert!(message.contains(field), "{message}");
        }
    }
    // An idempotency key over 300 characters is refused.
    let resp = http
        .post(&url)
        .basic_auth(SECRET, Some(""))
        .header("Idempotency-Key", "k".repeat(301))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // The good request passes, and a replay with its key is the same answer.
    let send = || {
        http.post(&url)
            .basic_auth(SECRET, Some(""))
            .header("Idempotency-Key", "strict-1")
            .json(&good)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 200);
    let first: serde_json::Value = first.json().await.unwrap();
    let second: serde_json::Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(first["status"], "DONE");
    assert_eq!(rig.sim.approved_charges("order-strict-1"), 1);
    // Without a key, the same order id is a duplicate at Toss.
    let resp = http
        .post(&url)
        .basic_auth(SECRET, Some(""))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let e: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(e["code"], "DUPLICATED_ORDER_ID");
}

#[tokio::test]
async fn admin_faults_route_and_deposit() {
    let rig = TossRig::start().await;
    let http = reqwest::Client::new();
    let resp = http
        .put(format!("{}/admin/faults", rig.base()))
        .json(&serde_json::json!({"error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(rig.sim.faults().get().error_rate, 1.0);
    let resp = http
        .put(format!("{}/admin/faults", rig.base()))
        .json(&serde_json::json!({"error_rate": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "invalid knobs are refused");
    rig.quiet();

    let o = order(30_000);
    let due = chrono::Utc::now().timestamp() + 3 * 86_400;
    let issued = rig
        .connector
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
    assert_eq!(issued.bank_code, "088");
    assert_eq!(issued.due_unix, due);
    assert!(!issued.account_num.is_empty());
    let resp = http
        .put(format!(
            "{}/admin/orders/{}/deposit",
            rig.base(),
            o.order_id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let Inquiry::Approved(a) = rig.connector.inquire(&mid(), &o.order_id).await.unwrap() else {
        panic!("a deposited virtual account is a payment")
    };
    assert_eq!(a.pg_tid, issued.pg_tid);

    // The refund goes to the buyer's own account, which may be at a bank that issues no virtual
    // accounts (카카오뱅크, KFTC 090 = Toss 90).
    let refunded = rig
        .connector
        .cancel(
            &mid(),
            &CancelRequest {
                order_id: o.order_id.clone(),
                pg_tid: issued.pg_tid.clone(),
                amount_krw: 30_000,
                tax_free_krw: 0,
                reason: Some("환불".into()),
                cancellation_id: "c-kakaobank".into(),
                refund_account: Some(pier_pg::RefundAccount {
                    bank_code: "090".into(),
                    account_number: "3333012345678".into(),
                    holder: "홍길동".into(),
                }),
            },
        )
        .await;
    assert!(refunded.is_ok(), "{refunded:?}");
    // Toss issues virtual accounts at its 15 banks only: 카카오뱅크 is refused before any call.
    let at_kakaobank = rig
        .connector
        .issue_vbank(
            &mid(),
            &pier_pg::VbankRequest {
                order: order(10_000),
                bank_code: "090".into(),
                due_unix: due,
                holder: Some("홍길동".into()),
            },
        )
        .await;
    assert!(
        matches!(&at_kakaobank, Err(PgError::Rejected { code, .. }) if code == "INVALID_BANK"),
        "{at_kakaobank:?}"
    );
}
