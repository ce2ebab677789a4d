//! Security properties checked end to end: card data never at rest nor in logs, tenants isolated
//! on every endpoint, tokens checked, getToken brute force limited, payment data not cached.

use crate::common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Digits of `CARD_OK` that must never be stored or logged together (the masked form keeps the
/// first 8 and last 4 only), and birth digits unique to these tests.
const FORBIDDEN: &[&str] = &[
    "1111222233334444",
    "1111-2222-3333-4444",
    "22223333",
    "2222-3333",
    "830917",
    "pwd_2digit",
];
const BIRTH: &str = "830917";

/// Every log line of this test process (all tests), captured by a global subscriber at debug
/// level and trace for Pier's crates.
pub(crate) fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = buf.clone();
        let make = move || Capture(w.clone());
        let filter = tracing_subscriber::EnvFilter::new(
            "debug,pier_server=trace,pier_pg=trace,pier_store=trace,tower_http=trace",
        );
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(make)
            .with_ansi(false)
            .try_init();
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let mut v = self.0.lock().unwrap();
        if v.len() < 64 * 1024 * 1024 {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_clean(what: &str, bytes: &[u8]) {
    for f in FORBIDDEN {
        let needle = f.as_bytes();
        let hit = bytes.windows(needle.len()).position(|w| w == needle);
        assert!(
            hit.is_none(),
            "{what} contains {f:?}: …{}…",
            hit.map(|i| String::from_utf8_lossy(
                &bytes[i.saturating_sub(80)..(i + 80).min(bytes.len())]
            )
            .into_owned())
                .unwrap_or_default()
        );
    }
}

/// Everything the database holds, as bytes: the SQLite files (main, WAL, shared memory), or every
/// row of every table of the test's PostgreSQL schema rendered as text.
async fn database_bytes(t: &TestPier) -> Vec<u8> {
    let url = t.pier.engine.config().database_url.clone();
    if let Some(path) = url.strip_prefix("sqlite:") {
        let mut out = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(b) = std::fs::read(format!("{path}{suffix}")) {
                out.extend_from_slice(&b);
            }
        }
        assert!(out.len() > 4096, "read the SQLite files");
        out
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(tables.len() > 3, "{tables:?}");
        let mut out = Vec::new();
        for table in tables {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT t::text FROM \"{table}\" t"))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            for r in rows {
                out.extend_from_slice(r.as_bytes());
                out.push(b'\n');
            }
        }
        pool.close().await;
        out
    }
}

#[tokio::test]
async fn card_data_is_never_stored_nor_logged() {
    let logs = captured_logs();
    let t = TestPier::start().await;
    let tok = t.token().await;
    let card =
        json!({"card_number": CARD_OK, "expiry": "2030-12", "birth": BIRTH, "pwd_2digit": "73"});
    // A keyed payment, with and without Idempotency-Key, form and JSON.
    let mut body = card.clone();
    body["merchant_uid"] = json!("sec-1");
    body["amount"] = json!(1000);
    let (s, b) = t
        .post("/subscribe/payments/onetime", Some(&tok), body)
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    assert_eq!(b["response"]["card_number"], "11112222****4444");
    let (s, b) = t
        .send(
            t.http
                .post(t.url("/subscribe/payments/onetime"))
                .header("Authorization", &tok)
                .header("Idempotency-Key", "sec-idem-1")
                .form(&[
                    ("merchant_uid", "sec-2"),
                    ("amount", "2000"),
                    ("card_number", CARD_OK),
                    ("expiry", "2030-12"),
                    ("birth", BIRTH),
                    ("pwd_2digit", "73"),
                ]),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    // A billing key, a charge with it, a payment that also stores the card, a decline, a bad
    // card number and an expired card (the errors must not echo the number either).
    let (s, b) = t
        .post("/subscribe/customers/sec-cust", Some(&tok), card.clone())
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    let (_, b) = t
        .post(
            "/subscribe/payments/again",
            Some(&tok),
            json!({"customer_uid": "sec-cust", "merchant_uid": "sec-3", "amount": 3000}),
        )
        .await;
    assert_eq!(b["code"], 0, "{b}");
    let mut body = card.clone();
    body["merchant_uid"] = json!("sec-4");
    body["amount"] = json!(4000);
    body["customer_uid"] = json!("sec-cust-2");
    let (_, b) = t
        .post("/subscribe/payments/onetime", Some(&tok), body)
        .await;
    assert_eq!(b["code"], 0, "{b}");
    let (_, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(&tok),
            json!({"merchant_uid": "sec-5", "amount": 1000, "card_number": "5570-4200-0000-2112", "expiry": "2030-12", "birth": BIRTH}),
        )
        .await;
    assert_eq!(b["response"]["status"], "failed", "declined: {b}");
    for (i, bad) in [
        "1111-2222-3333-4444-x",
        "11112222333344449999",
        "1111 2222 3333 4444 ",
    ]
    .iter()
    .enumerate()
    {
        let (_, b) = t
            .post(
                "/subscribe/payments/onetime",
                Some(&tok),
                json!({"merchant_uid": format!("sec-6-{i}"), "amount": 1000, "card_number": bad, "expiry": "2030-12", "birth": BIRTH, "pwd_2digit": "7x"}),
            )
            .await;
        assert_ne!(b["code"], 0, "{b}");
        assert!(!b.to_string().contains("22223333"), "{b}");
    }
    let (_, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(&tok),
            json!({"merchant_uid": "sec-7", "amount": 1000, "card_number": CARD_OK, "expiry": "2020-01", "birth": BIRTH}),
        )
        .await;
    assert_ne!(b["code"], 0, "{b}");
    // Lookups of what was stored.
    let (_, b) = t.get("/payments/find/sec-2", &tok).await;
    assert_eq!(b["response"]["status"], "paid");
    let (_, b) = t.get("/subscribe/customers/sec-cust", &tok).await;
    assert_eq!(b["code"], 0);
    assert_clean("a response", b.to_string().as_bytes());

    let db = database_bytes(&t).await;
    assert_clean("the database", &db);
    // Sanity: the masked number *is* there, so the search reads real data.
    assert!(
        db.windows(16).any(|w| w == b"11112222****4444"),
        "masked number stored"
    );
    let logged = logs.lock().unwrap().clone();
    assert!(!logged.is_empty(), "logs were captured");
    assert_clean("the logs", &logged);
}

#[tokio::test]
async fn a_merchant_cannot_touch_another_merchants_objects() {
    let t = TestPier::start().await;
    let a = t.token().await;
    let b_tok = t.other_merchant().await;
    // Merchant B's objects.
    let paid = t.pay(&b_tok, "b-order-1", 5000).await;
    let b_imp = paid["imp_uid"].as_str().unwrap().to_owned();
    let (_, r) = t
        .post(
            "/subscribe/customers/b-cust",
            Some(&b_tok),
            json!({"card_number": CARD_OK, "expiry": "2030-12"}),
        )
        .await;
    assert_eq!(r["code"], 0, "{r}");

    // Reads with A's token find nothing of B's (404, or the spec's 200/code 1 for customers).
    for path in [
        format!("/payments/{b_imp}"),
        "/payments/find/b-order-1".to_string(),
        "/payments/find/b-order-1/paid".to_string(),
    ] {
        let (s, r) = t.get(&path, &a).await;
        assert_eq!(s, 404, "{path}: {r}");
        assert!(!r.to_string().contains(&b_imp), "{path}: {r}");
    }
    let (s, r) = t.get("/subscribe/customers/b-cust", &a).await;
    assert!(r["code"] != 0 && r["response"].is_null(), "{s}: {r}");
    for path in [
        format!("/payments?imp_uid[]={b_imp}"),
        "/payments?merchant_uid[]=b-order-1".to_string(),
        "/payments/findAll/b-order-1".to_string(),
        "/payments/status/all".to_string(),
        "/payments/status/paid".to_string(),
        "/subscribe/customers?customer_uid[]=b-cust".to_string(),
        "/subscribe/customers/b-cust/payments".to_string(),
        "/users/pg".to_string(),
        "/admin/unsettled".to_string(),
    ] {
        let (s, r) = t.get(&path, &a).await;
        // Error messages may echo the asked id; B's data must not appear in `response`.
        let text = r["response"].to_string();
        assert!(
            !r.to_string().contains(&b_imp)
                && !text.contains("b-cust")
                && !text.contains("b-order-1"),
            "{path} ({s}): {r}"
        );
        assert!(s == 200 || s == 404, "{path}: {s} {r}");
    }
    // Charging B's billing key with A's token is refused and charges nothing.
    let (s, r) = t
        .post(
            "/subscribe/payments/again",
            Some(&a),
            json!({"customer_uid": "b-cust", "merchant_uid": "a-steal-1", "amount": 1000}),
        )
        .await;
    assert_eq!((s, r["code"].as_i64()), (200, Some(1)), "{r}");
    let (s, _) = t.get("/payments/find/a-steal-1/paid", &a).await;
    assert_eq!(s, 404);
    // Deleting B's customer with A's token fails; B's key still works.
    let (s, r) = t.delete("/subscribe/customers/b-cust", &a).await;
    assert!(r["code"] != 0 && r["response"].is_null(), "{s}: {r}");
    let (s, r) = t.get("/subscribe/customers/b-cust", &b_tok).await;
    assert_eq!((s, r["code"].as_i64()), (200, Some(0)), "{r}");
    // A reusing B's merchant_uid is A's own order (namespaces are per merchant), not a conflict.
    let mine = t.pay(&a, "b-order-1", 700).await;
    assert_ne!(mine["imp_uid"], b_imp);
    let (_, r) = t.get(&format!("/payments/{b_imp}"), &b_tok).await;
    assert_eq!(r["response"]["amount"], 5000);
    // B's customer still has B's card, untouched by A registering the same customer_uid.
    let (_, r) = t
        .post(
            "/subscribe/customers/b-cust",
            Some(&a),
            json!({"card_number": "4242-4242-4242-4242", "expiry": "2030-12"}),
        )
        .await;
    assert_eq!(r["code"], 0, "{r}");
    let (_, r) = t.get("/subscribe/customers/b-cust", &b_tok).await;
    assert_eq!(r["response"]["card_number"], "11112222****4444", "{r}");
}

#[tokio::test]
async fn expired_forged_and_malformed_tokens_get_401() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let mut forged = tok.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    let long = "a".repeat(4096);
    for bad in [
        forged.as_str(),
        "0000000000000000000000000000000000000000",
        "Bearer",
        "' OR 1=1 --",
        long.as_str(),
    ] {
        for path in ["/users/pg", "/payments/status/all", "/admin/unsettled"] {
            let (s, b) = t
                .send(t.http.get(t.url(path)).header("Authorization", bad))
                .await;
            assert_eq!((s, b["code"].as_i64()), (401, Some(-1)), "{path} {bad:.20}");
        }
    }
    let (s, _) = t
        .post(
            "/subscribe/payments/onetime",
            Some(&forged),
            json!({"merchant_uid": "x", "amount": 1000, "card_number": CARD_OK, "expiry": "2030-12"}),
        )
        .await;
    assert_eq!(s, 401);
    // Valid until it expires (30 minutes), then 401 everywhere.
    let (s, _) = t.get("/users/pg", &tok).await;
    assert_eq!(s, 200);
    t.clock.advance(30 * 60 + 1);
    for path in ["/users/pg", "/payments/status/all"] {
        let (s, b) = t.get(path, &tok).await;
        assert_eq!((s, b["code"].as_i64()), (401, Some(-1)), "{path}");
    }
    let (s, _) = t.delete("/subscribe/customers/x", &tok).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn get_token_guessing_is_limited_per_client_address_across_keys() {
    // One instance: the getToken failure limiter is per instance (docs/ARCHITECTURE.md, "Several
    // instances on one PostgreSQL": N instances allow N × the bound), and this asserts the bound.
    let t = TestPier::start_one_cfg(Opts::default(), |_| {}).await;
    // Many different (unknown) keys from one address: the address gets limited.
    let mut statuses = Vec::new();
    for i in 0..25 {
        let (s, b) = t
            .post(
                "/users/getToken",
                None,
                json!({"imp_key": format!("guess-key-{i}"), "imp_secret": "guess-secret-0000"}),
            )
            .await;
        assert_eq!(b["code"], -1);
        statuses.push(s);
    }
    assert_eq!(statuses[0], 401);
    assert_eq!(*statuses.last().unwrap(), 429, "{statuses:?}");
    // Limited in the envelope, for the demo key's right secret too, from this address.
    let (s, b) = t
        .post(
            "/users/getToken",
            None,
            json!({"imp_key": DEMO_KEY, "imp_secret": DEMO_SECRET}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (429, Some(-1)), "{b}");
    assert!(b["response"].is_null());
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

fn no_store(res: &reqwest::Response) -> bool {
    res.headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.contains("no-store"))
        .unwrap_or(false)
}

#[tokio::test]
async fn payment_data_responses_are_not_cacheable() {
    let t = TestPier::start().await;
    let tok = t.token().await;
    let paid = t.pay(&tok, "cache-1", 1000).await;
    let imp = paid["imp_uid"].as_str().unwrap();
    let res = t
        .http
        .post(t.url("/users/getToken"))
        .json(&json!({"imp_key": DEMO_KEY, "imp_secret": DEMO_SECRET}))
        .send()
        .await
        .unwrap();
    assert!(no_store(&res), "getToken");
    for path in [
        format!("/payments/{imp}"),
        "/payments/find/cache-1".into(),
        "/payments/status/all".into(),
        format!("/payments?imp_uid[]={imp}"),
        "/payments/nope-404".into(),
        "/admin/unsettled".into(),
    ] {
        let res = t
            .http
            .get(t.url(&path))
            .header("Authorization", &tok)
            .send()
            .await
            .unwrap();
        assert!(no_store(&res), "{path}");
    }
    for (key, body) in [
        (
            None,
            json!({"merchant_uid": "cache-2", "amount": 1000, "card_number": CARD_OK, "expiry": "2030-12"}),
        ),
        (
            Some("cache-idem"),
            json!({"merchant_uid": "cache-3", "amount": 1000, "card_number": CARD_OK, "expiry": "2030-12"}),
        ),
        (
            Some("cache-idem"),
            json!({"merchant_uid": "cache-3", "amount": 1000, "card_number": CARD_OK, "expiry": "2030-12"}),
        ),
    ] {
        let mut rb = t
            .http
            .post(t.url("/subscribe/payments/onetime"))
            .header("Authorization", &tok)
            .json(&body);
        if let Some(k) = key {
            rb = rb.header("Idempotency-Key", k);
        }
        let res = rb.send().await.unwrap();
        assert!(no_store(&res), "onetime {key:?}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["code"], 0, "{v}");
    }
}
