//! Secrets at rest, masking and retention (docs/security/secrets.md): tokens stored only as
//! keyed hashes, secret rotation and token revocation (in this process and by another one on
//! the same database), 15-digit card numbers masked 6 + 4, and the retention job.

use crate::common::*;
use pier_server::jobs::retention::retention_pass;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Every text value of `table`, as one string per row, read straight from the database.
async fn table_text(t: &TestPier, table: &str) -> Vec<String> {
    let url = &t.pier.engine.config().database_url;
    let sql = format!("SELECT * FROM {table}");
    if url.starts_with("postgres") {
        use sqlx::Row;
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query(&sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows.iter()
            .map(|r| {
                (0..r.columns().len())
                    .map(|i| r.try_get::<String, _>(i).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    } else {
        use sqlx::Row;
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = sqlx::query(&sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows.iter()
            .map(|r| {
                (0..r.columns().len())
                    .map(|i| r.try_get::<String, _>(i).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }
}

/// Runs one statement straight on the database (rows a test needs that no API makes).
async fn exec(t: &TestPier, sql: &str) {
    let url = &t.pier.engine.config().database_url;
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

async fn get_token_status(t: &TestPier, key: &str, secret: &str) -> u16 {
    t.post(
        "/users/getToken",
        None,
        json!({"imp_key": key, "imp_secret": secret}),
    )
    .await
    .0
}

/// Status of an authenticated call made with `token`.
async fn call_with(t: &TestPier, token: &str) -> u16 {
    t.get("/payments/status/all?limit=1", token).await.0
}

#[tokio::test]
async fn the_database_holds_no_raw_token_and_get_token_still_reuses_it() {
    let t = TestPier::start().await;
    let token = t.token().await;
    assert_eq!(token.len(), 40);
    assert_eq!(call_with(&t, &token).await, 200);
    let rows = table_text(&t, "tokens").await;
    assert_eq!(rows.len(), 1);
    assert!(
        !rows[0].contains(&token),
        "the tokens table holds the raw token: {rows:?}"
    );
    // Reuse (spec §2.2) survives a restart: the token is minted again from its stored nonce,
    // not remembered.
    let t = t.restart(Opts::default(), |_| {}).await;
    assert_eq!(t.token().await, token);
    assert_eq!(call_with(&t, &token).await, 200);
}

#[tokio::test]
async fn rotate_secret_refuses_the_old_secret_and_its_tokens() {
    let t = TestPier::start().await;
    let old_token = t.token().await;
    let new_secret = t.pier.engine.rotate_secret(DEMO_CODE).await.unwrap();
    assert_ne!(new_secret, DEMO_SECRET);
    assert_eq!(get_token_status(&t, DEMO_KEY, DEMO_SECRET).await, 401);
    assert_eq!(call_with(&t, &old_token).await, 401);
    let new_token = t.token_for(DEMO_KEY, &new_secret).await;
    assert_ne!(new_token, old_token);
    assert_eq!(call_with(&t, &new_token).await, 200);
    // The new hash is the HKDF-keyed v1 form.
    let rows = table_text(&t, "merchants").await;
    assert!(rows.iter().any(|r| r.contains("v1$")), "{rows:?}");
    // An unknown merchant is a clear error.
    assert!(t.pier.engine.rotate_secret("imp_nobody").await.is_err());
}

#[tokio::test]
async fn revoke_tokens_refuses_the_merchants_tokens_only() {
    let t = TestPier::start().await;
    let token = t.token().await;
    let other = t.other_merchant().await;
    assert_eq!(t.pier.engine.revoke_tokens(DEMO_CODE).await.unwrap(), 1);
    assert_eq!(call_with(&t, &token).await, 401);
    assert_eq!(call_with(&t, &other).await, 200);
    // The secret still works and gives a fresh token.
    let fresh = t.token().await;
    assert_ne!(fresh, token);
    assert_eq!(call_with(&t, &fresh).await, 200);
}

#[tokio::test]
async fn revocation_by_another_process_takes_effect_within_the_cache_bound() {
    let t = TestPier::start().await;
    let token = t.token().await;
    assert_eq!(call_with(&t, &token).await, 200); // now cached in this server
                                                  // Another process (the CLI) deletes the tokens through its own store connection.
    let (store, _) = pier_store::connect(&t.pier.engine.config().database_url, false)
        .await
        .unwrap();
    assert_eq!(store.revoke_tokens(DEMO_CODE).await.unwrap(), 1);
    // Bound: engine/auth.rs TOKEN_CACHE_TTL (5 s), plus slack for a slow machine.
    let end = Instant::now() + Duration::from_secs(8);
    loop {
        if call_with(&t, &token).await == 401 {
            break;
        }
        assert!(
            Instant::now() < end,
            "revoked token still accepted after 8 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_15_digit_amex_is_masked_to_first_6_and_last_4() {
    let t = TestPier::start().await;
    let token = t.token().await;
    let (s, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(&token),
            json!({"merchant_uid": "amex_1", "amount": 1000, "card_number": "3782-822463-10005",
                   "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12"}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    assert_eq!(b["response"]["card_number"], "378282*****0005", "{b}");
    // The billing key's card as the test PG reports it.
    let (s, b) = t
        .post(
            "/subscribe/customers/amex_cust",
            Some(&token),
            json!({"card_number": "378282246310005", "expiry": "2030-12", "birth": "880101",
                   "pwd_2digit": "12"}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    assert_eq!(b["response"]["card_number"], "378282*****0005", "{b}");
    // 16 digits keep i'mport's 8 + 4.
    let p = t.pay(&token, "visa_1", 1000).await;
    assert_eq!(p["card_number"], "11112222****4444");
}

/// Opens a payment window (no browser) and returns its answer.
async fn open_window(t: &TestPier, merchant_uid: &str) -> Value {
    let res = t
        .http
        .post(t.url("/checkout/prepare"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("origin", "http://shop.example")
        .body(
            json!({"user_code": DEMO_CODE, "params": {"pg": "jtnet", "pay_method": "card",
                   "merchant_uid": merchant_uid, "amount": 5000}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["success"], true, "{v}");
    v
}

#[tokio::test]
async fn retention_expires_abandoned_windows_and_deletes_old_rows() {
    // The job's own loop is not relied on: the test runs passes at chosen clock times.
    let t = TestPier::start_cfg(Opts::default(), |c| {
        c.retention_interval = Duration::from_secs(3600);
    })
    .await;
    let token = t.token().await;
    let opened = open_window(&t, "abandoned_1").await;
    let imp_uid = opened["imp_uid"].as_str().unwrap().to_owned();
    // A second window whose PG call is under way (its outcome is the reconciler's).
    let busy = open_window(&t, "in_flight_1").await;
    let busy_uid = busy["imp_uid"].as_str().unwrap().to_owned();
    exec(
        &t,
        &format!("UPDATE payments SET pg_state = 'in_flight' WHERE imp_uid = '{busy_uid}'"),
    )
    .await;
    let paid = t.pay(&token, "paid_1", 1000).await;
    let now = t.pier.engine.now();
    // Old webhook history: a delivered and a dead event, a pending one (never deleted), and a
    // delivery log row, all 91 days old.
    let old = now - 91 * 86_400;
    for (id, state) in [("ev_d", "delivered"), ("ev_x", "dead"), ("ev_p", "pending")] {
        exec(
            &t,
            &format!(
                "INSERT INTO outbox (id, merchant_id, imp_uid, merchant_uid, status, created_at, \
                 state) VALUES ('{id}', '{DEMO_CODE}', 'imp_old', 'o_old', 'paid', {old}, '{state}')"
            ),
        )
        .await;
    }
    exec(
        &t,
        &format!(
            "INSERT INTO webhook_deliveries (id, merchant_id, event_id, imp_uid, merchant_uid, \
             status, url, attempt, at) VALUES ('dl_old', '{DEMO_CODE}', 'ev_d', 'imp_old', \
             'o_old', 'delivered', 'http://127.0.0.1:9/', 1, {old})"
        ),
    )
    .await;

    // Nothing is due yet.
    let r = retention_pass(&t.pier.engine).await.unwrap();
    assert_eq!(r.windows_expired, 0);
    assert_eq!(r.tokens_deleted, 0);
    assert_eq!((r.outbox_deleted, r.deliveries_deleted), (2, 1));
    let ids = table_text(&t, "outbox").await;
    assert!(ids.iter().any(|r| r.starts_with("ev_p|")), "{ids:?}");

    // 31 minutes on: the window and the token have expired.
    t.clock.advance(31 * 60);
    let r = retention_pass(&t.pier.engine).await.unwrap();
    assert_eq!(r.windows_expired, 1, "{r:?}");
    assert_eq!(r.tokens_deleted, 1, "{r:?}");
    assert!(table_text(&t, "tokens").await.is_empty());
    let token = t.token().await;
    let (_, p) = t.get(&format!("/payments/{imp_uid}"), &token).await;
    assert_eq!(p["response"]["status"], "failed", "{p}");
    assert_eq!(
        p["response"]["fail_reason"],
        "결제 가능 시간이 지났습니다. (the window expired)"
    );
    // The paid payment is untouched, and a second pass finds nothing more to expire.
    let (_, q) = t
        .get(
            &format!("/payments/{}", paid["imp_uid"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(q["response"]["status"], "paid");
    // The attempt in flight was not expired by the job (whatever the reconciler made of it).
    let (_, b) = t.get(&format!("/payments/{busy_uid}"), &token).await;
    assert_ne!(
        b["response"]["fail_reason"], "결제 가능 시간이 지났습니다. (the window expired)",
        "{b}"
    );
    assert_eq!(
        retention_pass(&t.pier.engine)
            .await
            .unwrap()
            .windows_expired,
        0
    );
    // The windows are kept 7 days after they expired, then deleted.
    assert_eq!(table_text(&t, "checkout_sessions").await.len(), 2);
    t.clock.advance(7 * 86_400);
    let r = retention_pass(&t.pier.engine).await.unwrap();
    assert_eq!(r.windows_deleted, 2, "{r:?}");
    assert!(table_text(&t, "checkout_sessions").await.is_empty());
}

#[tokio::test]
async fn a_secret_hashed_before_the_upgrade_still_works_until_rotated() {
    let t = TestPier::start().await;
    // The pre-HKDF form: HMAC-SHA256 under the server key itself (the harness key is [7; 32]).
    let legacy = hex::encode(pier_server::keys::hmac_sha256(
        &[7u8; 32],
        DEMO_SECRET.as_bytes(),
    ));
    exec(
        &t,
        &format!("UPDATE merchants SET secret_hash = '{legacy}' WHERE imp_code = '{DEMO_CODE}'"),
    )
    .await;
    // A fresh server, so no cached merchant row hides the legacy hash.
    let t = t.restart(Opts::default(), |_| {}).await;
    let token = t.token().await;
    assert_eq!(call_with(&t, &token).await, 200);
    assert_eq!(
        get_token_status(&t, DEMO_KEY, "wrong-secret-0123456789").await,
        401
    );
    let rows = table_text(&t, "merchants").await;
    assert!(
        rows.iter().any(|r| r.contains(&legacy)),
        "still the legacy hash: {rows:?}"
    );
    // Rotation moves it to the v1 form.
    let new_secret = t.pier.engine.rotate_secret(DEMO_CODE).await.unwrap();
    assert_eq!(get_token_status(&t, DEMO_KEY, DEMO_SECRET).await, 401);
    assert_eq!(get_token_status(&t, DEMO_KEY, &new_secret).await, 200);
}
