use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn get_token_good_bad_reuse_and_forms() {
    let t = TestPier::start().await;
    let (s, b) = t
        .post(
            "/users/getToken",
            None,
            json!({"imp_key": DEMO_KEY, "imp_secret": DEMO_SECRET}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["code"], 0);
    assert!(b["message"].is_null());
    let r = &b["response"];
    let tok = r["access_token"].as_str().unwrap();
    assert_eq!(tok.len(), 40);
    assert_eq!(r["now"].as_i64().unwrap(), 1_767_225_600);
    assert_eq!(r["expired_at"].as_i64().unwrap(), 1_767_225_600 + 1800);

    // Reuse: same token, same expiry, while valid.
    t.clock.advance(600);
    let (_, b2) = t
        .post(
            "/users/getToken",
            None,
            json!({"imp_key": DEMO_KEY, "imp_secret": DEMO_SECRET}),
        )
        .await;
    assert_eq!(b2["response"]["access_token"], tok);
    assert_eq!(b2["response"]["expired_at"], r["expired_at"]);
    assert_eq!(b2["response"]["now"].as_i64().unwrap(), 1_767_225_600 + 600);

    // Form body works too.
    let (s, b3) = t
        .send(
            t.http
                .post(t.url("/users/getToken"))
                .form(&[("imp_key", DEMO_KEY), ("imp_secret", DEMO_SECRET)]),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b3["response"]["access_token"], tok);

    // Bad key, bad secret, missing fields.
    let (s, b) = t
        .post(
            "/users/getToken",
            None,
            json!({"imp_key": "nope", "imp_secret": DEMO_SECRET}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64().unwrap()), (401, -1));
    let (s, _) = t
        .post(
            "/users/getToken",
            None,
            json!({"imp_key": DEMO_KEY, "imp_secret": "wrong-secret-123456"}),
        )
        .await;
    assert_eq!(s, 401);
    let (s, b) = t
        .post("/users/getToken", None, json!({"imp_key": DEMO_KEY}))
        .await;
    assert_eq!(s, 400, "{b}");

    // Each header form is accepted.
    for (h, v) in [
        ("Authorization", format!("Bearer {tok}")),
        ("Authorization", tok.to_string()),
        ("X-ImpTokenHeader", tok.to_string()),
    ] {
        let (s, b) = t.send(t.http.get(t.url("/users/pg")).header(h, v)).await;
        assert_eq!(s, 200, "{h}: {b}");
        assert_eq!(b["response"][0]["pg_provider"], "jtnet");
    }
    // No token, forged token.
    let (s, b) = t.send(t.http.get(t.url("/users/pg"))).await;
    assert_eq!((s, b["message"].as_str().unwrap()), (401, "Unauthorized"));
    let (s, _) = t
        .get("/users/pg", "0123456789abcdef0123456789abcdef01234567")
        .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn token_extension_and_expiry() {
    let t = TestPier::start().await;
    let start = 1_767_225_600;
    let tok = t.token().await;
    // Last minute: extended by 5 minutes, same token.
    t.clock.set(start + 1800 - 30);
    let (_, b) = t
        .post(
            "/users/getToken",
            None,
            json!({"imp_key": DEMO_KEY, "imp_secret": DEMO_SECRET}),
        )
        .await;
    assert_eq!(b["response"]["access_token"], tok.as_str());
    assert_eq!(
        b["response"]["expired_at"].as_i64().unwrap(),
        start + 1800 + 300
    );
    // Still valid past the original expiry thanks to the extension.
    t.clock.set(start + 1800 + 10);
    let (s, _) = t.get("/users/pg", &tok).await;
    assert_eq!(s, 200);
    // Expired: 401, and getToken issues a new token.
    t.clock.set(start + 1800 + 301);
    let (s, b) = t.get("/users/pg", &tok).await;
    assert_eq!((s, b["message"].as_str().unwrap()), (401, "Unauthorized"));
    let tok2 = t.token().await;
    assert_ne!(tok, tok2);
}

#[tokio::test]
async fn get_token_brute_force_is_rate_limited() {
    // One instance: the getToken failure limiter is per instance (docs/ARCHITECTURE.md, "Several
    // instances on one PostgreSQL": N instances allow N × the bound), and this asserts the bound.
    let t = TestPier::start_one_cfg(Opts::default(), |_| {}).await;
    let mut last = 0;
    for _ in 0..25 {
        let (s, b) = t
            .post(
                "/users/getToken",
                None,
                json!({"imp_key": DEMO_KEY, "imp_secret": "guess-guess-guess-guess"}),
            )
            .await;
        assert_eq!(b["code"], -1);
        last = s;
    }
    assert_eq!(last, 429);
    // The right secret is refused too while limited, then works in the next minute.
    let (s, _) = t
        .post(
            "/users/getToken",
            None,
            json!({"imp_key": DEMO_KEY, "imp_secret": DEMO_SECRET}),
        )
        .await;
    assert_eq!(s, 429);
    t.clock.advance(61);
    let (s, _) = t
        .post(
            "/users/getToken",
            None,
            json!({"imp_key": DEMO_KEY, "imp_secret": DEMO_SECRET}),
        )
        .await;
    assert_eq!(s, 200);
}
