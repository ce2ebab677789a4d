use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn lookups_every_path() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let p1 = t.pay(&tok, "order-1", 1000).await;
    t.clock.advance(10);
    let p2 = t.pay(&tok, "order-2", 2000).await;
    t.clock.advance(10);
    let p3 = t.pay(&tok, "order 3/한글", 3000).await;
    let imp1 = p1["imp_uid"].as_str().unwrap();
    let imp2 = p2["imp_uid"].as_str().unwrap();

    let (s, b) = t.get(&format!("/payments/{imp1}"), &tok).await;
    assert_eq!(s, 200);
    assert_eq!(b["response"]["merchant_uid"], "order-1");
    assert_eq!(b["response"]["sandbox"], true);
    // Visible without include_sandbox, and with include_sandbox=false as Java sends it.
    let (s, _) = t
        .get(&format!("/payments/{imp1}?include_sandbox=false"), &tok)
        .await;
    assert_eq!(s, 200);

    let (s, b) = t.get("/payments/imp_000000000000", &tok).await;
    assert_eq!(
        (
            s,
            b["code"].as_i64().unwrap(),
            b["message"].as_str().unwrap()
        ),
        (404, -1, "존재하지 않는 결제정보입니다.")
    );

    // Multi: 200 all, 207 partial (found only), 404 none, 400 nothing asked.
    let (s, b) = t
        .get(
            &format!("/payments?imp_uid[]={imp1}&imp_uid[]={imp2}"),
            &tok,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["response"].as_array().unwrap().len(), 2);
    let (s, b) = t
        .get(
            &format!("/payments?imp_uid[]={imp1}&imp_uid[]=imp_999999999999"),
            &tok,
        )
        .await;
    assert_eq!(s, 207);
    assert_eq!(b["code"], 0);
    assert_eq!(b["response"].as_array().unwrap().len(), 1);
    let (s, b) = t
        .get("/payments?merchant_uid[]=order-2&merchant_uid[]=nope", &tok)
        .await;
    assert_eq!(s, 207);
    assert_eq!(b["response"][0]["imp_uid"], imp2);
    let (s, _) = t.get("/payments?imp_uid[]=imp_999999999999", &tok).await;
    assert_eq!(s, 404);
    let (s, _) = t.get("/payments", &tok).await;
    assert_eq!(s, 400);

    // find / findAll with and without status; URL-encoded merchant_uid.
    let (s, b) = t.get("/payments/find/order-1", &tok).await;
    assert_eq!((s, b["response"]["imp_uid"].as_str().unwrap()), (200, imp1));
    let (s, _) = t.get("/payments/find/order-1/paid", &tok).await;
    assert_eq!(s, 200);
    let (s, _) = t.get("/payments/find/order-1/", &tok).await;
    assert_eq!(s, 200);
    let (s, _) = t.get("/payments/find/order-1/failed", &tok).await;
    assert_eq!(s, 404);
    let (s, _) = t.get("/payments/find/order-1/bogus", &tok).await;
    assert_eq!(s, 400);
    let (s, b) = t
        .get("/payments/find/order%203%2F%ED%95%9C%EA%B8%80", &tok)
        .await;
    assert_eq!(
        (s, b["response"]["imp_uid"].clone()),
        (200, p3["imp_uid"].clone())
    );
    let (s, b) = t.get("/payments/findAll/order-2", &tok).await;
    assert_eq!(s, 200);
    assert_eq!(b["response"]["total"], 1);
    assert_eq!(b["response"]["list"][0]["imp_uid"], imp2);
    let (s, _) = t.get("/payments/findAll/nothing-here", &tok).await;
    assert_eq!(s, 404);
    let (s, _) = t
        .get("/payments/findAll/order-2/paid?limit=5000", &tok)
        .await;
    assert_eq!(s, 400);

    // status + paging bounds
    let (s, b) = t.get("/payments/status/paid?limit=2", &tok).await;
    assert_eq!(s, 200);
    let r = &b["response"];
    assert_eq!(
        (
            r["total"].as_i64(),
            r["previous"].as_i64(),
            r["next"].as_i64()
        ),
        (Some(3), Some(0), Some(2))
    );
    assert_eq!(r["list"].as_array().unwrap().len(), 2);
    // default sorting -started: newest first
    assert_eq!(r["list"][0]["merchant_uid"], "order 3/한글");
    let (_, b) = t.get("/payments/status/paid?limit=2&page=2", &tok).await;
    let r = &b["response"];
    assert_eq!(
        (r["previous"].as_i64(), r["next"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(r["list"].as_array().unwrap().len(), 1);
    let (_, b) = t.get("/payments/status/all?sorting=started", &tok).await;
    assert_eq!(b["response"]["list"][0]["merchant_uid"], "order-1");
    for bad in [
        "/payments/status/paid?limit=0",
        "/payments/status/paid?limit=1001",
        "/payments/status/paid?page=0",
        "/payments/status/bogus",
        "/payments/status/paid?sorting=amount",
        "/payments/status/paid?limit=abc",
    ] {
        let (s, b) = t.get(bad, &tok).await;
        assert_eq!((s, b["code"].as_i64().unwrap()), (400, -1), "{bad}");
    }
    let (s, b) = t.get("/payments/status/paid?limit=1000", &tok).await;
    assert_eq!((s, b["response"]["total"].as_i64().unwrap()), (200, 3));
    // Time window: nothing before the payments.
    let (_, b) = t.get("/payments/status/paid?from=1000&to=2000", &tok).await;
    assert_eq!(b["response"]["total"], 0);
    let _ = json!({});
}

#[tokio::test]
async fn tenants_are_isolated() {
    let t = TestPier::start().await;
    let a = t.token().await;
    let p = t.pay(&a, "shared-uid", 1000).await;
    let imp = p["imp_uid"].as_str().unwrap();
    let b = t.other_merchant().await;
    let (s, _) = t.get(&format!("/payments/{imp}"), &b).await;
    assert_eq!(s, 404);
    let (s, _) = t.get("/payments/find/shared-uid", &b).await;
    assert_eq!(s, 404);
    let (s, _) = t.get(&format!("/payments?imp_uid[]={imp}"), &b).await;
    assert_eq!(s, 404);
    let (_, r) = t.get("/payments/status/all", &b).await;
    assert_eq!(r["response"]["total"], 0);
    // B may use the same merchant_uid: it is B's own order id.
    let pb = t.pay(&b, "shared-uid", 500).await;
    assert_ne!(pb["imp_uid"], p["imp_uid"]);
}

/// Concurrent lookups are answered together on PostgreSQL (one statement for whatever is
/// queued): in one such batch each merchant must still see only its own payments, each with its
/// own cancel history.
#[tokio::test]
async fn concurrent_lookups_of_two_merchants_see_only_their_own() {
    let t = TestPier::start().await;
    let a = t.token().await;
    let b = t.other_merchant().await;
    let mut owned = Vec::new();
    for i in 0..6 {
        let uid = format!("concurrent-{i}");
        let pa = t.pay(&a, &uid, 1000 + i).await;
        let pb = t.pay(&b, &uid, 2000 + i).await;
        owned.push((
            a.clone(),
            pa["imp_uid"].as_str().unwrap().to_owned(),
            1000 + i,
        ));
        owned.push((
            b.clone(),
            pb["imp_uid"].as_str().unwrap().to_owned(),
            2000 + i,
        ));
    }
    // One of A's payments partly refunded: its history must come with it, and only with it.
    let (s, r) = t
        .post(
            "/payments/cancel",
            Some(&a),
            json!({"imp_uid": owned[0].1, "amount": 300, "reason": "partial"}),
        )
        .await;
    assert_eq!((s, r["code"].as_i64()), (200, Some(0)), "{r}");

    let asks = (0..4)
        .flat_map(|_| owned.iter())
        .flat_map(|(owner, imp, amount)| {
            let stranger = if *owner == a { b.clone() } else { a.clone() };
            [
                (owner.clone(), imp.clone(), Some(*amount)),
                (stranger, imp.clone(), None),
            ]
        });
    let futs = asks.map(|(tok, imp, amount)| {
        let t = &t;
        async move {
            let (s, body) = t.get(&format!("/payments/{imp}"), &tok).await;
            (imp, amount, s, body)
        }
    });
    let answers = futures_join_all(futs).await;
    assert_eq!(answers.len(), 96);
    for (imp, amount, s, body) in answers {
        match amount {
            Some(amount) => {
                assert_eq!(s, 200, "{body}");
                let p = &body["response"];
                assert_eq!(
                    (p["imp_uid"].as_str(), p["amount"].as_i64()),
                    (Some(imp.as_str()), Some(amount))
                );
                let history = p["cancel_history"].as_array().unwrap();
                if imp == owned[0].1 {
                    assert_eq!(
                        (history.len(), p["cancel_amount"].as_i64()),
                        (1, Some(300)),
                        "{body}"
                    );
                    assert_eq!(history[0]["amount"], 300);
                } else {
                    assert!(history.is_empty(), "{body}");
                }
            }
            None => assert_eq!((s, body["code"].as_i64()), (404, Some(-1)), "{body}"),
        }
    }
}
