use crate::common::*;
use serde_json::{json, Value};

const DECLINES: &[(&str, &str)] = &[
    ("5570-4200-0000-2112", "insufficient"),
    ("5409-2600-0000-2116", "over limit"),
    ("5361-8100-0000-2101", "lost/stolen"),
    ("4332-9000-0000-2103", "expired"),
    ("4673-0900-0000-2107", "wrong password"),
];
const CARD_INVALID: &str = "9409-1500-0000-0001";
const CARD_TIMEOUT: &str = "5461-1200-0000-0408";
const CARD_LOSE_RESPONSE: &str = "5525-7600-0000-0504";
const CARD_LOST: &str = "5361-8100-0000-2101";

const PAYMENT_KEYS: &[&str] = &[
    "imp_uid",
    "merchant_uid",
    "pay_method",
    "channel",
    "pg_provider",
    "emb_pg_provider",
    "pg_tid",
    "pg_id",
    "escrow",
    "apply_num",
    "bank_code",
    "bank_name",
    "card_code",
    "card_name",
    "card_quota",
    "card_number",
    "card_type",
    "vbank_code",
    "vbank_name",
    "vbank_num",
    "vbank_holder",
    "vbank_date",
    "vbank_issued_at",
    "name",
    "amount",
    "cancel_amount",
    "currency",
    "buyer_name",
    "buyer_email",
    "buyer_tel",
    "buyer_addr",
    "buyer_postcode",
    "custom_data",
    "user_agent",
    "status",
    "started_at",
    "paid_at",
    "failed_at",
    "cancelled_at",
    "fail_reason",
    "cancel_reason",
    "receipt_url",
    "cancel_history",
    "cancel_receipt_urls",
    "cash_receipt_issued",
    "customer_uid",
    "customer_uid_usage",
    "sandbox",
];
const CUSTOMER_KEYS: &[&str] = &[
    "customer_uid",
    "pg_provider",
    "pg_id",
    "sandbox",
    "customer_id",
    "card_name",
    "card_code",
    "card_number",
    "card_type",
    "customer_name",
    "customer_tel",
    "customer_email",
    "customer_addr",
    "customer_postcode",
    "inserted",
    "updated",
];

fn onetime_body(uid: &str, amount: Value, card: &str) -> Value {
    json!({"merchant_uid": uid, "amount": amount, "card_number": card, "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12", "name": "주문"})
}

#[tokio::test]
async fn onetime_outcomes_and_wire_shape() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let (s, b) = t.post("/subscribe/payments/onetime", Some(&tok), json!({
        "merchant_uid": "ot-1", "amount": 60000, "card_number": "4518-4200-0000-0000", "expiry": "203012",
        "birth": "880101", "pwd_2digit": "12", "name": "상품", "buyer_name": "홍길동", "buyer_email": "a@b.c",
        "card_quota": 3, "custom_data": {"k": "v"}, "tax_free": 0, "vat_amount": 0, "interest_free_by_merchant": false,
        "use_card_point": false, "product_count": 0
    })).await;
    assert_eq!((s, b["code"].as_i64().unwrap()), (200, 0), "{b}");
    let p = &b["response"];
    for k in PAYMENT_KEYS {
        assert!(p.as_object().unwrap().contains_key(*k), "missing key {k}");
    }
    assert_eq!(p["status"], "paid");
    assert_eq!(p["channel"], "api");
    assert_eq!(p["pay_method"], "card");
    assert_eq!(p["pg_provider"], "jtnet");
    assert_eq!(p["amount"], 60000);
    assert_eq!(p["cancel_amount"], 0);
    assert_eq!(p["currency"], "KRW");
    assert_eq!(p["card_quota"], 3);
    assert_eq!(p["card_number"], "45184200****0000");
    assert_eq!(p["card_code"], "366");
    assert!(p["paid_at"].as_i64().unwrap() > 0);
    assert_eq!(p["failed_at"], 0);
    assert_eq!(p["cancelled_at"], 0);
    assert!(p["fail_reason"].is_null());
    assert_eq!(p["cancel_history"], json!([]));
    assert_eq!(p["cancel_receipt_urls"], json!([]));
    assert_eq!(p["custom_data"], "{\"k\":\"v\"}");
    assert!(p["customer_uid"].is_null());
    assert!(p["apply_num"].is_string() && p["pg_tid"].is_string() && p["receipt_url"].is_string());

    // Installments below 50,000 KRW become a lump sum.
    let mut body = onetime_body("ot-small", json!(10000), "4518-4200-0000-0000");
    body["card_quota"] = json!(6);
    let (_, b) = t
        .post("/subscribe/payments/onetime", Some(&tok), body)
        .await;
    assert_eq!(b["response"]["card_quota"], 0, "{b}");

    // Each decline: HTTP 200, code 0, a persisted failed payment with its reason.
    for (i, (card, what)) in DECLINES.iter().enumerate() {
        let uid = format!("decl-{i}");
        let (s, b) = t
            .post(
                "/subscribe/payments/onetime",
                Some(&tok),
                onetime_body(&uid, json!(1000), card),
            )
            .await;
        assert_eq!((s, b["code"].as_i64().unwrap()), (200, 0), "{what}: {b}");
        let p = &b["response"];
        assert_eq!(p["status"], "failed", "{what}");
        assert!(p["failed_at"].as_i64().unwrap() > 0);
        let reason = p["fail_reason"].as_str().unwrap();
        assert!(!reason.is_empty());
        assert_eq!(b["message"].as_str().unwrap(), reason);
        let (s, f) = t.get(&format!("/payments/find/{uid}/failed"), &tok).await;
        assert_eq!(
            (s, f["response"]["imp_uid"].clone()),
            (200, p["imp_uid"].clone())
        );
        // A failed attempt does not block a retry with the same merchant_uid.
        let (_, r) = t
            .post(
                "/subscribe/payments/onetime",
                Some(&tok),
                onetime_body(&uid, json!(1000), CARD_OK),
            )
            .await;
        assert_eq!(r["response"]["status"], "paid", "{r}");
        let (_, all) = t.get(&format!("/payments/findAll/{uid}"), &tok).await;
        assert_eq!(all["response"]["total"], 2);
    }

    // Card data rejected before the PG: code -1, response null.
    for (card, expiry) in [
        (CARD_INVALID, "2030-12"),
        ("1234-5678", "2030-12"),
        ("4518-4200-0000-000x", "2030-12"),
        (CARD_OK, "2020-01"),
        (CARD_OK, "2030-13"),
    ] {
        let mut body = onetime_body("rej", json!(1000), card);
        body["expiry"] = json!(expiry);
        let (s, b) = t
            .post("/subscribe/payments/onetime", Some(&tok), body)
            .await;
        assert_eq!(
            (s, b["code"].as_i64().unwrap()),
            (200, -1),
            "{card} {expiry}: {b}"
        );
        assert!(b["response"].is_null());
    }
    let mut body = onetime_body("rej-birth", json!(1000), CARD_OK);
    body["birth"] = json!("12");
    let (_, b) = t
        .post("/subscribe/payments/onetime", Some(&tok), body)
        .await;
    assert_eq!(b["code"], -1);

    // A paid merchant_uid is spent: refused, no PG call, no new record.
    let (s, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(&tok),
            onetime_body("ot-1", json!(60000), CARD_OK),
        )
        .await;
    assert_eq!(
        (
            s,
            b["code"].as_i64().unwrap(),
            b["message"].as_str().unwrap()
        ),
        (200, 1, "이미 결제가 이루어진 거래건입니다.")
    );
    let (_, all) = t.get("/payments/findAll/ot-1", &tok).await;
    assert_eq!(all["response"]["total"], 1);
}

#[tokio::test]
async fn validation_names_the_field_and_leaves_no_record() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!("14000"), "amount"),
        (json!(14000.5), "amount"),
        (json!(1.4e4), "amount"),
        (json!(-1000), "amount"),
        (json!(0), "amount"),
        (json!(null), "amount"),
    ];
    for (amount, field) in cases {
        let (s, b) = t
            .post(
                "/subscribe/payments/onetime",
                Some(&tok),
                onetime_body("v-1", amount.clone(), CARD_OK),
            )
            .await;
        assert_eq!((s, b["code"].as_i64().unwrap()), (400, -1), "{amount}: {b}");
        assert!(b["message"].as_str().unwrap().contains(field), "{b}");
    }
    let mut body = onetime_body("v-1", json!(1000), CARD_OK);
    body.as_object_mut().unwrap().remove("merchant_uid");
    let (s, b) = t
        .post("/subscribe/payments/onetime", Some(&tok), body)
        .await;
    assert!(s == 400 && b["message"].as_str().unwrap().contains("merchant_uid"));
    let (s, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(&tok),
            onetime_body(&"x".repeat(41), json!(1000), CARD_OK),
        )
        .await;
    assert!(
        s == 400 && b["message"].as_str().unwrap().contains("merchant_uid"),
        "{b}"
    );
    let mut body = onetime_body("v-1", json!(1000), CARD_OK);
    body["card_quota"] = json!(-2);
    let (s, _) = t
        .post("/subscribe/payments/onetime", Some(&tok), body)
        .await;
    assert_eq!(s, 400);
    let mut body = onetime_body("v-1", json!(1000), CARD_OK);
    body["tax_free"] = json!(2000);
    let (s, _) = t
        .post("/subscribe/payments/onetime", Some(&tok), body)
        .await;
    assert_eq!(s, 400);
    let mut body = onetime_body("v-1", json!(1000), CARD_OK);
    body["notice_url"] = json!("ftp://x");
    let (s, _) = t
        .post("/subscribe/payments/onetime", Some(&tok), body)
        .await;
    assert_eq!(s, 400);
    let mut body = onetime_body("v-1", json!(1000), CARD_OK);
    body["pg"] = json!("kcp");
    let (s, b) = t
        .post("/subscribe/payments/onetime", Some(&tok), body)
        .await;
    assert_eq!((s, b["code"].as_i64().unwrap()), (200, 1), "{b}");
    // Nothing was recorded for v-1.
    let (s, _) = t.get("/payments/findAll/v-1", &tok).await;
    assert_eq!(s, 404);

    // Form bodies: numbers are text there, and work.
    let (s, b) = t
        .send(
            t.http
                .post(t.url("/subscribe/payments/onetime/"))
                .header("Authorization", &tok)
                .form(&[
                    ("merchant_uid", "form-1"),
                    ("amount", "14000"),
                    ("card_number", "4518420000000000"),
                    ("expiry", "2030-12"),
                    ("birth", "880101"),
                    ("pwd_2digit", "12"),
                    ("pg", "jtnet"),
                ]),
        )
        .await;
    assert_eq!(
        (s, b["response"]["status"].as_str()),
        (200, Some("paid")),
        "{b}"
    );
    let (s, b) = t
        .send(
            t.http
                .post(t.url("/subscribe/payments/onetime"))
                .header("Authorization", &tok)
                .form(&[
                    ("merchant_uid", "form-2"),
                    ("amount", "14000원"),
                    ("card_number", "4518420000000000"),
                    ("expiry", "2030-12"),
                ]),
        )
        .await;
    assert_eq!(s, 400, "{b}");
}

#[tokio::test]
async fn billing_keys_and_again() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let (s, b) = t.post("/subscribe/customers/cust-1", Some(&tok), json!({
        "card_number": "5570-4200-0000-0000", "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12",
        "customer_name": "홍길동", "customer_email": "h@example.com", "customer_tel": "010-1234-5678"
    })).await;
    assert_eq!((s, b["code"].as_i64().unwrap()), (200, 0), "{b}");
    let c = &b["response"];
    for k in CUSTOMER_KEYS {
        assert!(c.as_object().unwrap().contains_key(*k), "missing {k}");
    }
    assert_eq!(c["customer_uid"], "cust-1");
    assert_eq!(c["card_number"], "55704200****0000");
    assert_eq!(c["card_code"], "381");
    assert!(c.get("billing_key").is_none());

    let (s, b) = t.get("/subscribe/customers/cust-1", &tok).await;
    assert_eq!(
        (s, b["response"]["customer_name"].as_str()),
        (200, Some("홍길동"))
    );

    // again: buyer defaults from the customer; usage "payment".
    let (s, b) = t.post("/subscribe/payments/again", Some(&tok), json!({"customer_uid": "cust-1", "merchant_uid": "ag-1", "amount": 9900, "name": "월 구독"})).await;
    assert_eq!((s, b["code"].as_i64().unwrap()), (200, 0), "{b}");
    let p = &b["response"];
    assert_eq!(p["status"], "paid");
    assert_eq!(p["customer_uid"], "cust-1");
    assert_eq!(p["customer_uid_usage"], "payment");
    assert_eq!(p["buyer_name"], "홍길동");
    assert_eq!(p["card_number"], "55704200****0000");

    // Unknown customer: code 1 with the spec's message.
    let (s, b) = t
        .post(
            "/subscribe/payments/again",
            Some(&tok),
            json!({"customer_uid": "nobody", "merchant_uid": "ag-2", "amount": 1000}),
        )
        .await;
    assert_eq!(
        (
            s,
            b["code"].as_i64().unwrap(),
            b["message"].as_str().unwrap()
        ),
        (200, 1, "등록되지 않은 구매자입니다.")
    );

    // A key whose charges decline: code 0, failed.
    let (_, b) = t
        .post(
            "/subscribe/customers/cust-susp",
            Some(&tok),
            json!({"card_number": "4651-2000-0000-2105", "expiry": "2030-12"}),
        )
        .await;
    assert_eq!(b["code"], 0, "{b}");
    let (_, b) = t
        .post(
            "/subscribe/payments/again",
            Some(&tok),
            json!({"customer_uid": "cust-susp", "merchant_uid": "ag-3", "amount": 1000}),
        )
        .await;
    assert_eq!(
        (b["code"].as_i64(), b["response"]["status"].as_str()),
        (Some(0), Some("failed")),
        "{b}"
    );

    // Key issuance refused by the card company: code -1.
    let (s, b) = t
        .post(
            "/subscribe/customers/cust-lost",
            Some(&tok),
            json!({"card_number": CARD_LOST, "expiry": "2030-12"}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64().unwrap()), (200, -1));
    assert!(b["message"]
        .as_str()
        .unwrap()
        .starts_with("카드정보 인증 및 빌키 발급에 실패하였습니다."));

    // Multi lookup 200/207/404.
    let (s, b) = t
        .get(
            "/subscribe/customers?customer_uid[]=cust-1&customer_uid[]=cust-susp",
            &tok,
        )
        .await;
    assert_eq!((s, b["response"].as_array().unwrap().len()), (200, 2));
    let (s, b) = t
        .get(
            "/subscribe/customers?customer_uid[]=cust-1&customer_uid[]=nope",
            &tok,
        )
        .await;
    assert_eq!((s, b["response"].as_array().unwrap().len()), (207, 1));
    let (s, _) = t
        .get("/subscribe/customers?customer_uid[]=nope", &tok)
        .await;
    assert_eq!(s, 404);

    // Payments made with a key, paged.
    let (_, b) = t
        .post(
            "/subscribe/payments/again",
            Some(&tok),
            json!({"customer_uid": "cust-1", "merchant_uid": "ag-4", "amount": 9900}),
        )
        .await;
    assert_eq!(b["response"]["status"], "paid");
    let (s, b) = t
        .get("/subscribe/customers/cust-1/payments?page=1", &tok)
        .await;
    assert_eq!((s, b["response"]["total"].as_i64().unwrap()), (200, 2));

    // Re-issuing replaces the mapping.
    let (_, b) = t
        .post(
            "/subscribe/customers/cust-1",
            Some(&tok),
            json!({"card_number": "4518-4200-0000-0000", "expiry": "2031-01"}),
        )
        .await;
    assert_eq!(b["response"]["card_number"], "45184200****0000");
    let (_, b) = t
        .post(
            "/subscribe/payments/again",
            Some(&tok),
            json!({"customer_uid": "cust-1", "merchant_uid": "ag-5", "amount": 100}),
        )
        .await;
    assert_eq!(b["response"]["card_number"], "45184200****0000");

    // Another merchant sees none of it.
    let other = t.other_merchant().await;
    let (_, b) = t.get("/subscribe/customers/cust-1", &other).await;
    assert_eq!(b["code"], 1);
    let (_, b) = t
        .post(
            "/subscribe/payments/again",
            Some(&other),
            json!({"customer_uid": "cust-1", "merchant_uid": "x-1", "amount": 100}),
        )
        .await;
    assert_eq!(b["code"], 1);
    let (_, b) = t.delete("/subscribe/customers/cust-1", &other).await;
    assert_eq!(b["code"], 1);

    // Delete, then it is gone.
    let (s, b) = t.delete("/subscribe/customers/cust-1", &tok).await;
    assert_eq!(
        (s, b["response"]["customer_uid"].as_str()),
        (200, Some("cust-1"))
    );
    let (s, b) = t.get("/subscribe/customers/cust-1", &tok).await;
    assert_eq!((s, b["code"].as_i64().unwrap()), (200, 1));
    assert_eq!(
        b["message"],
        "요청하신 customer_uid(cust-1)로 등록된 정보를 찾을 수 없습니다."
    );
    let (_, b) = t
        .post(
            "/subscribe/payments/again",
            Some(&tok),
            json!({"customer_uid": "cust-1", "merchant_uid": "ag-6", "amount": 100}),
        )
        .await;
    assert_eq!(b["code"], 1);
}

/// `again` completes the attempt from the billing key (on PostgreSQL in the same statement
/// that inserts it): the key's channel and card, the customer's buyer fields where the request
/// gives none, the request's own where it does — in the answer and as stored.
#[tokio::test]
async fn again_fills_the_attempt_from_the_key() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let (_, c) = t.post("/subscribe/customers/fill-1", Some(&tok), json!({
        "card_number": "5570-4200-0000-0000", "expiry": "2030-12", "birth": "880101",
        "customer_name": "홍길동", "customer_email": "h@example.com", "customer_tel": "010-1234-5678",
        "customer_addr": "서울", "customer_postcode": "04524"
    })).await;
    assert_eq!(c["code"], 0, "{c}");
    let c = &c["response"];
    let (_, b) = t.post("/subscribe/payments/again", Some(&tok), json!({
        "customer_uid": "fill-1", "merchant_uid": "fill-a", "amount": 123000, "name": "정기결제",
        "buyer_name": "김철수", "buyer_addr": "부산", "card_quota": 2, "custom_data": {"plan": "pro"}
    })).await;
    assert_eq!(b["code"], 0, "{b}");
    let p = &b["response"];
    let (_, stored) = t
        .get(
            &format!("/payments/{}", p["imp_uid"].as_str().unwrap()),
            &tok,
        )
        .await;
    for p in [p, &stored["response"]] {
        // From the request.
        assert_eq!(p["merchant_uid"], "fill-a");
        assert_eq!(p["amount"], 123000);
        assert_eq!(p["name"], "정기결제");
        assert_eq!(p["buyer_name"], "김철수");
        assert_eq!(p["buyer_addr"], "부산");
        assert_eq!(p["card_quota"], 2);
        assert_eq!(p["custom_data"], "{\"plan\":\"pro\"}");
        // From the customer where the request is silent.
        assert_eq!(p["buyer_email"], "h@example.com");
        assert_eq!(p["buyer_tel"], "010-1234-5678");
        assert_eq!(p["buyer_postcode"], "04524");
        // The key's card and channel.
        for k in [
            "card_code",
            "card_name",
            "card_number",
            "card_type",
            "pg_provider",
            "pg_id",
            "sandbox",
        ] {
            assert_eq!(p[k], c[k], "{k}");
        }
        assert!(p["card_name"].is_string(), "{p}");
        assert_eq!(p["customer_uid"], "fill-1");
        assert_eq!(p["customer_uid_usage"], "payment");
        assert_eq!(
            (p["pay_method"].as_str(), p["channel"].as_str()),
            (Some("card"), Some("api"))
        );
        assert_eq!(p["status"], "paid");
    }
    // Nothing but the one attempt was written.
    let (_, list) = t
        .get("/subscribe/customers/fill-1/payments?page=1", &tok)
        .await;
    assert_eq!(list["response"]["total"], 1, "{list}");
}

#[tokio::test]
async fn onetime_with_customer_uid_stores_the_key_on_success_only() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let mut body = onetime_body("ok-key", json!(1000), "5570-4200-0000-0000");
    body["customer_uid"] = json!("c-ok");
    body["buyer_name"] = json!("김철수");
    let (_, b) = t
        .post("/subscribe/payments/onetime", Some(&tok), body)
        .await;
    assert_eq!(b["response"]["status"], "paid");
    assert_eq!(b["response"]["customer_uid"], "c-ok");
    let (_, c) = t.get("/subscribe/customers/c-ok", &tok).await;
    assert_eq!(
        (c["code"].as_i64(), c["response"]["customer_name"].as_str()),
        (Some(0), Some("김철수"))
    );
    let mut body = onetime_body("bad-key", json!(1000), DECLINES[0].0);
    body["customer_uid"] = json!("c-bad");
    let (_, b) = t
        .post("/subscribe/payments/onetime", Some(&tok), body)
        .await;
    assert_eq!(b["response"]["status"], "failed");
    let (_, c) = t.get("/subscribe/customers/c-bad", &tok).await;
    assert_eq!(c["code"], 1);
}

#[tokio::test]
async fn hundred_concurrent_agains_charge_once() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let (_, b) = t
        .post(
            "/subscribe/customers/conc",
            Some(&tok),
            json!({"card_number": CARD_OK, "expiry": "2030-12"}),
        )
        .await;
    assert_eq!(b["code"], 0);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let http = t.http.clone();
        let url = t.url("/subscribe/payments/again");
        let tok = tok.clone();
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .header("Authorization", tok)
                .json(
                    &json!({"customer_uid": "conc", "merchant_uid": "same-order", "amount": 5000}),
                )
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }));
    }
    let mut paid = 0;
    let mut refused = 0;
    for task in tasks {
        let (s, b) = task.await.unwrap();
        assert_eq!(s, 200, "{b}");
        match b["code"].as_i64().unwrap() {
            0 => {
                assert_eq!(b["response"]["status"], "paid");
                paid += 1;
            }
            1 => refused += 1,
            _ => panic!("unexpected {b}"),
        }
    }
    assert_eq!((paid, refused), (1, 99));
    let ledger = t.pier.testpg.ledger_snapshot_shared().await.unwrap();
    let approvals = ledger
        .orders
        .iter()
        .filter(|o| o.merchant_uid == "same-order")
        .count();
    assert_eq!(approvals, 1, "the PG saw exactly one charge");
    let (_, all) = t.get("/payments/findAll/same-order", &tok).await;
    assert_eq!(all["response"]["total"], 1);
}

#[tokio::test]
async fn unknown_pg_outcomes_are_never_reported_as_success() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    for (uid, card) in [("to-1", CARD_TIMEOUT), ("lost-1", CARD_LOSE_RESPONSE)] {
        let (s, b) = t
            .post(
                "/subscribe/payments/onetime",
                Some(&tok),
                onetime_body(uid, json!(1000), card),
            )
            .await;
        assert_eq!((s, b["code"].as_i64().unwrap()), (200, -1), "{b}");
        assert!(b["response"].is_null());
        assert!(b["message"].as_str().unwrap().contains("imp_uid"));
        // The attempt is recorded `ready` and keeps the merchant_uid for the reconciler.
        let (_, f) = t.get(&format!("/payments/find/{uid}"), &tok).await;
        assert_eq!(f["response"]["status"], "ready");
        let (_, again) = t
            .post(
                "/subscribe/payments/onetime",
                Some(&tok),
                onetime_body(uid, json!(1000), CARD_OK),
            )
            .await;
        assert_eq!(again["code"], 1, "{again}");
    }
    let ledger = t.pier.testpg.ledger_snapshot_shared().await.unwrap();
    assert!(
        ledger.orders.iter().any(|o| o.merchant_uid == "lost-1"),
        "the PG approved the lost-response charge"
    );
    assert!(!ledger
        .orders
        .iter()
        .any(|o| o.merchant_uid == "to-1" && o.status == pier_pg::testpg::LedgerStatus::Approved));
}

#[tokio::test]
async fn idempotency_keys() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let post = |key: &'static str, body: Value| {
        t.http
            .post(t.url("/subscribe/payments/onetime"))
            .header("Authorization", &tok)
            .header("Idempotency-Key", key)
            .json(&body)
    };
    let body = onetime_body("idem-1", json!(1000), CARD_OK);
    let r1 = post("k1", body.clone()).send().await.unwrap();
    assert!(!r1.headers().contains_key("idempotent-replayed"));
    let b1: Value = r1.json().await.unwrap();
    assert_eq!(b1["response"]["status"], "paid");
    let r2 = post("k1", body.clone()).send().await.unwrap();
    assert_eq!(r2.headers().get("idempotent-replayed").unwrap(), "true");
    let b2: Value = r2.json().await.unwrap();
    assert_eq!(b1, b2, "replayed, not charged again");
    let (_, all) = t.get("/payments/findAll/idem-1", &tok).await;
    assert_eq!(all["response"]["total"], 1);
    // Same key, different body.
    let r3 = post("k1", onetime_body("idem-1", json!(2000), CARD_OK))
        .send()
        .await
        .unwrap();
    assert_eq!(r3.status().as_u16(), 422);
    // Declines are replayed too.
    let d = onetime_body("idem-2", json!(1000), DECLINES[1].0);
    let d1: Value = post("k2", d.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d2: Value = post("k2", d.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d1["response"]["status"], "failed");
    assert_eq!(d1, d2);
    // While the first is in flight: 409.
    let slow = post("k3", onetime_body("idem-3", json!(1000), CARD_TIMEOUT)).send();
    let second = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        post("k3", onetime_body("idem-3", json!(1000), CARD_TIMEOUT))
            .send()
            .await
            .unwrap()
    };
    let (first, second) = tokio::join!(slow, second);
    assert_eq!(second.status().as_u16(), 409);
    assert_eq!(first.unwrap().status().as_u16(), 200);
    // Keys are per merchant.
    let other = t.other_merchant().await;
    let r = t
        .http
        .post(t.url("/subscribe/payments/onetime"))
        .header("Authorization", &other)
        .header("Idempotency-Key", "k1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("idempotent-replayed"));
}
