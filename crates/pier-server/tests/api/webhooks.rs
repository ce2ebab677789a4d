//! Webhook delivery: a local receiver gets every event with a valid Standard Webhooks
//! signature; retries with backoff; dead events and manual redelivery; crash recovery; the
//! delivery log; target safety.

use crate::common::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub fn header(&self, k: &str) -> String {
        self.headers
            .get(k)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

/// A webhook receiver on 127.0.0.1:0: records every request; answers 500 to the first
/// `fail_first` requests (or to all while `fail_all` is set), else 200; may sleep first.
#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<Received>>>,
    pub fail_first: Arc<AtomicUsize>,
    pub fail_all: Arc<std::sync::atomic::AtomicBool>,
    pub delay_ms: Arc<AtomicUsize>,
    pub base: String,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let mut r = Receiver::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        r.base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(handle).with_state(r.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        r
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (real time) until `pred` holds over what was received.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..300 {
            let all = self.all();
            if pred(&all) {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}; got {:?}", self.all());
    }
}

async fn handle(
    State(r): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let delay = r.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    r.got.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
    });
    if r.fail_all.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let left = r.fail_first.load(Ordering::SeqCst);
    if left > 0 {
        r.fail_first.store(left - 1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    StatusCode::OK
}

/// Verifies a Standard Webhooks signature independently of Pier's code.
pub fn verify(secret: &str, r: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let id = r.header("webhook-id");
    let ts = r.header("webhook-timestamp");
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    r.header("webhook-signature")
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

/// Job settings for fast tests: poll every 20 ms, retry after 1 s (clock seconds).
pub fn fast_jobs(cfg: &mut pier_server::Config) {
    cfg.jobs_poll_interval = Duration::from_millis(20);
    cfg.webhook_retry_delays_secs = vec![1, 1, 1, 1];
    cfg.webhook_timeout = Duration::from_millis(500);
    cfg.webhook_connect_timeout = Duration::from_millis(300);
}

pub async fn start_fast() -> TestPier {
    TestPier::start_cfg(Opts::default(), fast_jobs).await
}

/// Points the demo merchant's webhooks at `url`; returns the signing secret.
pub async fn set_hook(t: &TestPier, url: &str, format: &str) -> String {
    t.pier
        .engine
        .set_webhook(DEMO_CODE, Some(url.to_owned()), format)
        .await
        .unwrap()
}

async fn issue_key(t: &TestPier, tok: &str, uid: &str) {
    let (s, b) = t
        .post(
            &format!("/subscribe/customers/{uid}"),
            Some(tok),
            json!({"card_number": CARD_OK, "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12"}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
}

#[tokio::test]
async fn paid_webhooks_from_onetime_and_again_are_signed() {
    let t = start_fast().await;
    let rx = Receiver::start().await;
    let secret = set_hook(&t, &rx.url("/hook"), "json").await;
    let tok = t.token().await;
    let p1 = t.pay(&tok, "wh-onetime-1", 1000).await;
    issue_key(&t, &tok, "wh-cust").await;
    let (s, b) = t
        .post(
            "/subscribe/payments/again",
            Some(&tok),
            json!({"customer_uid": "wh-cust", "merchant_uid": "wh-again-1", "amount": 2000, "name": "again"}),
        )
        .await;
    assert_eq!(
        (s, b["response"]["status"].as_str()),
        (200, Some("paid")),
        "{b}"
    );
    let p2 = b["response"].clone();
    let got = rx.wait_for("two webhooks", |r| r.len() >= 2).await;
    for p in [&p1, &p2] {
        let r = got
            .iter()
            .find(|r| r.json()["merchant_uid"] == p["merchant_uid"])
            .expect("a webhook for each payment");
        assert_eq!(r.path, "/hook");
        assert!(verify(&secret, r), "bad signature: {r:?}");
        assert!(r.header("content-type").starts_with("application/json"));
        assert!(r.header("webhook-id").starts_with("evt_"));
        assert_eq!(r.header("webhook-timestamp"), t.clock_now().to_string());
        assert_eq!(
            r.json(),
            json!({"imp_uid": p["imp_uid"], "merchant_uid": p["merchant_uid"], "status": "paid"})
        );
    }
    // A tampered body does not verify.
    assert_eq!(got.len(), 2);
    let mut bad = got[0].clone();
    bad.body = br#"{"imp_uid":"x","merchant_uid":"y","status":"paid"}"#.to_vec();
    assert!(!verify(&secret, &bad));
    // The delivery log shows both (once recorded), with latency and status.
    let mut b = Value::Null;
    for _ in 0..200 {
        let (s, body) = t.get("/webhooks/deliveries", &tok).await;
        assert_eq!(s, 200, "{body}");
        b = body;
        if b["response"]["total"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b["response"]["total"], 2, "{b}");
    let first = &b["response"]["list"][0];
    assert_eq!(first["status_code"], 200);
    assert_eq!(first["attempt"], 1);
    assert!(first["error"].is_null());
    let (_, b) = t
        .get(
            &format!(
                "/webhooks/deliveries?imp_uid={}",
                p1["imp_uid"].as_str().unwrap()
            ),
            &tok,
        )
        .await;
    assert_eq!(b["response"]["total"], 1);
    assert_eq!(b["response"]["list"][0]["imp_uid"], p1["imp_uid"]);
    t.pier.shutdown().await;
}

trait ClockNow {
    fn clock_now(&self) -> i64;
}
impl ClockNow for TestPier {
    fn clock_now(&self) -> i64 {
        pier_domain::Clock::now_unix(&self.clock)
    }
}

#[tokio::test]
async fn notice_url_overrides_and_form_format() {
    let t = start_fast().await;
    let rx = Receiver::start().await;
    let secret = set_hook(&t, &rx.url("/console"), "form").await;
    let tok = t.token().await;
    let (s, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(&tok),
            json!({"merchant_uid": "wh-form-1", "amount": 1000, "card_number": CARD_OK, "expiry": "2030-12",
                   "notice_url": [rx.url("/a"), rx.url("/b")]}),
        )
        .await;
    assert_eq!(b["response"]["status"], "paid", "{s} {b}");
    let got = rx.wait_for("two targets", |r| r.len() >= 2).await;
    let mut paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        vec!["/a", "/b"],
        "the console URL is not used when notice_url is given"
    );
    for r in &got {
        assert!(verify(&secret, r));
        assert_eq!(
            r.header("content-type"),
            "application/x-www-form-urlencoded"
        );
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&r.body).unwrap();
        assert!(form.contains(&("status".into(), "paid".into())), "{form:?}");
        assert!(form.contains(&("merchant_uid".into(), "wh-form-1".into())));
        assert!(form.contains(&(
            "imp_uid".into(),
            b["response"]["imp_uid"].as_str().unwrap().into()
        )));
    }
    t.pier.shutdown().await;
}

#[tokio::test]
async fn receiver_failing_twice_gets_the_event_on_the_third_try() {
    let t = start_fast().await;
    let rx = Receiver::start().await;
    rx.fail_first.store(2, Ordering::SeqCst);
    let secret = set_hook(&t, &rx.url("/hook"), "json").await;
    let tok = t.token().await;
    let p = t.pay(&tok, "wh-retry-1", 1000).await;
    let imp = p["imp_uid"].as_str().unwrap();
    rx.wait_for("first attempt", |r| !r.is_empty()).await;
    wait_log(&t, &tok, imp, 1).await;
    // Retries wait for their (clock) delay: nothing more arrives until time moves.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.all().len(), 1, "a retry came before its delay");
    for n in 2..=3 {
        t.clock.advance(2);
        rx.wait_for("the next attempt", |r| r.len() >= n).await;
        // Move time only once the attempt is recorded (its retry time comes from the clock).
        wait_log(&t, &tok, imp, n).await;
    }
    let got = rx.all();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| verify(&secret, r)));
    // The same webhook-id on every attempt (receivers deduplicate by it).
    assert!(got
        .iter()
        .all(|r| r.header("webhook-id") == got[0].header("webhook-id")));
    let log = wait_log(&t, &tok, imp, 3).await;
    let mut rows: Vec<(i64, i64)> = log
        .iter()
        .map(|d| {
            (
                d["attempt"].as_i64().unwrap(),
                d["status_code"].as_i64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(rows, vec![(1, 503), (2, 503), (3, 200)]);
    // Delivered: no fourth attempt however long we wait.
    t.clock.advance(3600);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.all().len(), 3);
    let ev = t
        .pier
        .store()
        .list_events(DEMO_CODE, Some(imp), 10)
        .await
        .unwrap();
    assert_eq!(ev[0].state.as_str(), "delivered");
    assert_eq!(ev[0].attempts, 3);
    t.pier.shutdown().await;
}

/// The delivery log of one payment once it has `n` rows.
async fn wait_log(t: &TestPier, tok: &str, imp_uid: &str, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let (_, b) = t
            .get(
                &format!("/webhooks/deliveries?imp_uid={imp_uid}&limit=100"),
                tok,
            )
            .await;
        let list = b["response"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if list.len() >= n {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("delivery log of {imp_uid} never reached {n} rows");
}

#[tokio::test]
async fn dead_after_the_retry_budget_then_manual_redelivery() {
    let t = start_fast().await;
    let rx = Receiver::start().await;
    rx.fail_all.store(true, Ordering::SeqCst);
    set_hook(&t, &rx.url("/hook"), "json").await;
    let tok = t.token().await;
    let p = t.pay(&tok, "wh-dead-1", 1000).await;
    let imp = p["imp_uid"].as_str().unwrap();
    // 1 attempt + 4 retries (fast_jobs), then dead.
    for n in 1..=5 {
        rx.wait_for("an attempt", |r| r.len() >= n).await;
        wait_log(&t, &tok, imp, n).await;
        t.clock.advance(2);
    }
    let log = wait_log(&t, &tok, imp, 5).await;
    assert!(log
        .iter()
        .all(|d| d["status_code"] == 500 && d["error"] == "HTTP 500"));
    let mut state = String::new();
    for _ in 0..100 {
        state = t
            .pier
            .store()
            .list_events(DEMO_CODE, Some(imp), 1)
            .await
            .unwrap()[0]
            .state
            .as_str()
            .to_owned();
        if state == "dead" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, "dead");
    t.clock.advance(3600);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(rx.all().len(), 5, "no attempt after dead");
    let tok = t.token().await;
    // The receiver is fixed; the merchant asks for a redelivery.
    rx.fail_all.store(false, Ordering::SeqCst);
    let event_id = log[0]["event_id"].as_str().unwrap().to_owned();
    let other = t.other_merchant().await;
    let (s, _) = t
        .post(
            &format!("/webhooks/{event_id}/redeliver"),
            Some(&other),
            json!({}),
        )
        .await;
    assert_eq!(s, 404, "another merchant cannot touch this event");
    let (s, b) = t
        .post(
            &format!("/webhooks/{event_id}/redeliver"),
            Some(&tok),
            json!({}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    assert_eq!(b["response"]["state"], "pending");
    rx.wait_for("the redelivery", |r| r.len() >= 6).await;
    let log = wait_log(&t, &tok, imp, 6).await;
    assert!(log.iter().any(|d| d["status_code"] == 200));
    let (s, _) = t
        .post("/webhooks/evt_nope/redeliver", Some(&tok), json!({}))
        .await;
    assert_eq!(s, 404);
    // Tenant scoping of the log.
    let (_, b) = t.get("/webhooks/deliveries", &other).await;
    assert_eq!(b["response"]["total"], 0);
    t.pier.shutdown().await;
}

#[tokio::test]
async fn an_event_committed_before_a_crash_is_delivered_after_restart() {
    // The first Pier runs no jobs: the payment and its event are committed, nothing is sent.
    let t = TestPier::start_cfg(Opts::default(), |c| {
        fast_jobs(c);
        c.run_jobs = false;
    })
    .await;
    let rx = Receiver::start().await;
    let secret = set_hook(&t, &rx.url("/hook"), "json").await;
    let tok = t.token().await;
    let p = t.pay(&tok, "wh-crash-1", 1000).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(rx.all().is_empty());
    // A new Pier on the same database delivers it.
    let t = t.restart(Opts::default(), fast_jobs).await;
    let got = rx
        .wait_for("the delivery after restart", |r| !r.is_empty())
        .await;
    assert_eq!(got[0].json()["imp_uid"], p["imp_uid"]);
    assert!(verify(&secret, &got[0]));
    t.pier.shutdown().await;
}

#[tokio::test]
async fn a_leased_event_whose_dispatcher_died_is_delivered_after_the_lease() {
    let t = TestPier::start_cfg(Opts::default(), |c| {
        fast_jobs(c);
        c.run_jobs = false;
    })
    .await;
    let rx = Receiver::start().await;
    set_hook(&t, &rx.url("/hook"), "json").await;
    let tok = t.token().await;
    t.pay(&tok, "wh-lease-1", 1000).await;
    // A dispatcher leases the event and dies before delivering it.
    let leased = t.pier.engine.claim_webhooks(10).await.unwrap();
    assert_eq!(leased.len(), 1);
    let t = t.restart(Opts::default(), fast_jobs).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(rx.all().is_empty(), "the lease still holds");
    t.clock.advance(t.pier.engine.webhook_lease_secs() + 1);
    rx.wait_for("the delivery after the lease", |r| r.len() == 1)
        .await;
    t.pier.shutdown().await;
}

#[tokio::test]
async fn other_event_types_go_through_the_same_code() {
    let t = start_fast().await;
    let rx = Receiver::start().await;
    let secret = set_hook(&t, &rx.url("/hook"), "json").await;
    let tok = t.token().await;
    let p = t.pay(&tok, "wh-types-1", 1000).await;
    rx.wait_for("paid", |r| r.len() == 1).await;
    // Events written by other flows (cancel, vbank issue) are plain outbox rows.
    let mk = |status: &str, cancellation_id: Option<&str>| pier_store::OutboxEvent {
        id: format!("evt_test_{status}"),
        merchant_id: DEMO_CODE.into(),
        imp_uid: p["imp_uid"].as_str().unwrap().into(),
        merchant_uid: "wh-types-1".into(),
        status: status.parse().unwrap(),
        cancellation_id: cancellation_id.map(Into::into),
        notice_urls: None,
        created_at: t.clock_now(),
    };
    t.pier
        .store()
        .insert_events(&[mk("cancelled", Some("cncl_1")), mk("ready", None)])
        .await
        .unwrap();
    let got = rx.wait_for("cancelled and ready", |r| r.len() == 3).await;
    let bodies: Vec<Value> = got.iter().map(|r| r.json()).collect();
    assert!(bodies.contains(&json!({"imp_uid": p["imp_uid"], "merchant_uid": "wh-types-1", "status": "cancelled", "cancellation_id": "cncl_1"})), "{bodies:?}");
    assert!(bodies.contains(
        &json!({"imp_uid": p["imp_uid"], "merchant_uid": "wh-types-1", "status": "ready"})
    ));
    assert!(got.iter().all(|r| verify(&secret, r)));
    t.pier.shutdown().await;
}

#[tokio::test]
async fn no_target_is_skipped_and_private_targets_are_refused() {
    let t = TestPier::start_cfg(Opts::default(), |c| {
        fast_jobs(c);
        c.webhook_allow_private = false;
    })
    .await;
    let tok = t.token().await;
    // No merchant URL and no notice_url: nothing to send.
    let p = t.pay(&tok, "wh-none-1", 1000).await;
    let imp = p["imp_uid"].as_str().unwrap().to_owned();
    let mut state = String::new();
    for _ in 0..100 {
        state = t
            .pier
            .store()
            .list_events(DEMO_CODE, Some(&imp), 1)
            .await
            .unwrap()[0]
            .state
            .as_str()
            .to_owned();
        if state != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, "skipped");
    // A loopback target is refused without being contacted.
    let rx = Receiver::start().await;
    set_hook(&t, &rx.url("/hook"), "json").await;
    let p = t.pay(&tok, "wh-private-1", 1000).await;
    let log = wait_log(&t, &tok, p["imp_uid"].as_str().unwrap(), 1).await;
    assert_eq!(log[0]["status_code"], 0);
    assert!(
        log[0]["error"].as_str().unwrap().contains("refused"),
        "{}",
        log[0]
    );
    assert!(rx.all().is_empty());
    // Non-http targets cannot be configured at all.
    assert!(t
        .pier
        .engine
        .set_webhook(DEMO_CODE, Some("file:///etc/passwd".into()), "json")
        .await
        .is_err());
    t.pier.shutdown().await;
}

#[tokio::test]
async fn an_event_without_a_target_is_written_skipped_and_one_with_a_target_pending() {
    // No dispatcher runs: what the store holds is what the payment's own transaction wrote.
    let t = TestPier::start_cfg(Opts::default(), |c| {
        fast_jobs(c);
        c.run_jobs = false;
    })
    .await;
    let tok = t.token().await;
    let event = |imp: String| {
        let store = t.pier.store().clone();
        async move {
            let rows = store.list_events(DEMO_CODE, Some(&imp), 10).await.unwrap();
            assert_eq!(rows.len(), 1, "one event per payment");
            rows.into_iter().next().unwrap()
        }
    };
    // Neither a notice_url nor a merchant URL: born skipped, with the reason, never leased.
    let p = t.pay(&tok, "wh-born-1", 1000).await;
    let e = event(p["imp_uid"].as_str().unwrap().into()).await;
    assert_eq!(e.state.as_str(), "skipped");
    assert_eq!(e.last_error.as_deref(), Some(pier_store::NO_WEBHOOK_TARGET));
    assert_eq!(e.leased_until, 0);
    // A notice_url on the request: pending, for the dispatcher.
    let (s, b) = t
        .post(
            "/subscribe/payments/onetime",
            Some(&tok),
            json!({"merchant_uid": "wh-born-2", "amount": 1000, "card_number": CARD_OK, "expiry": "2030-12", "notice_url": "https://example.com/hook"}),
        )
        .await;
    assert_eq!((s, b["code"].as_i64()), (200, Some(0)), "{b}");
    let e = event(b["response"]["imp_uid"].as_str().unwrap().into()).await;
    assert_eq!((e.state.as_str(), e.last_error), ("pending", None));
    // A merchant URL: pending too.
    let rx = Receiver::start().await;
    set_hook(&t, &rx.url("/hook"), "json").await;
    let p = t.pay(&tok, "wh-born-3", 1000).await;
    let e = event(p["imp_uid"].as_str().unwrap().into()).await;
    assert_eq!(e.state.as_str(), "pending");
    t.pier.shutdown().await;
}

#[tokio::test]
async fn a_slow_endpoint_does_not_slow_payments() {
    let t = start_fast().await;
    let rx = Receiver::start().await;
    rx.delay_ms.store(3000, Ordering::SeqCst);
    set_hook(&t, &rx.url("/slow"), "json").await;
    let tok = t.token().await;
    let started = std::time::Instant::now();
    for i in 0..20 {
        t.pay(&tok, &format!("wh-slow-{i}"), 1000).await;
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "20 payments took {took:?}");
    // Each delivery gave up at the timeout (500 ms) and was logged as such.
    let (_, b) = t.get("/webhooks/deliveries?limit=100", &tok).await;
    let _ = b;
    let mut timeouts = 0;
    for _ in 0..200 {
        let (_, b) = t.get("/webhooks/deliveries?limit=100", &tok).await;
        timeouts = b["response"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["error"].as_str().is_some_and(|e| e.contains("timeout")))
            .count();
        if timeouts >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(timeouts >= 20, "only {timeouts} timeouts logged");
    t.pier.shutdown().await;
}
