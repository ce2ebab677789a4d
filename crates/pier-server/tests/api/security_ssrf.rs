//! Server-side request forgery: every URL someone else supplies (webhook URL, notice_url,
//! confirm_url) goes through the outbound client, which refuses internal addresses in every
//! spelling unless `--outbound-allow-private` is set; what a refused or failed target answered
//! never reaches the caller; a refused delivery is logged with its reason and the flag; and one
//! merchant's hanging webhook target cannot stall another merchant's webhooks.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What an internal service would leak if Pier relayed its answer.
const INTERNAL: &str = "INTERNAL-SECRET-7f3a";

/// A stand-in for an internal service (or a merchant endpoint) on 127.0.0.1: counts requests
/// started and finished, answers `status` with `body`, and while `hold` is set waits until it
/// is cleared before answering.
#[derive(Clone)]
struct Target {
    started: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
    hold: Arc<tokio::sync::watch::Sender<bool>>,
    port: u16,
}

impl Target {
    async fn start(status: StatusCode, body: &'static str) -> Target {
        Self::start_held(status, body, false).await
    }

    async fn start_held(status: StatusCode, body: &'static str, held: bool) -> Target {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (hold, _) = tokio::sync::watch::channel(held);
        let t = Target {
            started: Arc::default(),
            finished: Arc::default(),
            hold: Arc::new(hold),
            port: listener.local_addr().unwrap().port(),
        };
        let s = t.clone();
        let app = axum::Router::new().fallback(move || {
            let s = s.clone();
            async move {
                s.started.fetch_add(1, Ordering::SeqCst);
                let mut rx = s.hold.subscribe();
                let _ = rx.wait_for(|held| !*held).await;
                s.finished.fetch_add(1, Ordering::SeqCst);
                (status, [("content-type", "application/json")], body)
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        t
    }

    fn hits(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    fn release(&self) {
        self.hold.send_replace(false);
    }
}

/// The spellings of this machine's loopback that a textual check let through.
fn bypasses(port: u16) -> Vec<String> {
    vec![
        format!("http://[::ffff:127.0.0.1]:{port}/x"),
        format!("http://[::ffff:7f00:1]:{port}/x"),
        format!("http://localhost.:{port}/x"),
        format!("http://localhost:{port}/x"),
    ]
}

fn strict(c: &mut pier_server::Config) {
    crate::webhooks::fast_jobs(c);
    c.webhook_allow_private = false;
}

/// The delivery log of one payment once it has a row.
async fn delivery_log(t: &TestPier, tok: &str, imp_uid: &str) -> Vec<Value> {
    for _ in 0..300 {
        let (s, b) = t
            .get(
                &format!("/webhooks/deliveries?imp_uid={imp_uid}&limit=100"),
                tok,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        let list = b["response"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !list.is_empty() {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no delivery logged for {imp_uid}");
}

#[tokio::test]
async fn webhook_targets_on_loopback_in_any_spelling_are_refused_and_logged_with_the_flag() {
    let t = TestPier::start_cfg(Opts::default(), strict).await;
    let internal = Target::start(StatusCode::OK, INTERNAL).await;
    let tok = t.token().await;
    for (i, url) in bypasses(internal.port).into_iter().enumerate() {
        // As the merchant's console URL …
        t.pier
            .engine
            .set_webhook(DEMO_CODE, Some(url.clone()), "json")
            .await
            .unwrap();
        let p = t.pay(&tok, &format!("ssrf-hook-{i}"), 1000).await;
        let log = delivery_log(&t, &tok, p["imp_uid"].as_str().unwrap()).await;
        assert_eq!(log[0]["status_code"], 0, "{url}: {}", log[0]);
        let err = log[0]["error"].as_str().unwrap_or_default();
        assert!(
            err.starts_with("refused: ")
                && err.contains("loopback")
                && err.contains("(allow with --outbound-allow-private)"),
            "{url}: {err}"
        );
        // … and as a request's notice_url.
        let (s, b) = t
            .post(
                "/subscribe/payments/onetime",
                Some(&tok),
                json!({"merchant_uid": format!("ssrf-notice-{i}"), "amount": 1000, "card_number": CARD_OK,
                       "expiry": "2030-12", "notice_url": url}),
            )
            .await;
        assert_eq!(b["response"]["status"], "paid", "{s} {b}");
        let log = delivery_log(&t, &tok, b["response"]["imp_uid"].as_str().unwrap()).await;
        assert_eq!(log[0]["url"], url.as_str());
        let err = log[0]["error"].as_str().unwrap_or_default();
        assert!(
            err.contains("loopback") && err.contains("--outbound-allow-private"),
            "{url}: {err}"
        );
    }
    assert_eq!(internal.hits(), 0, "no refused target was contacted");
    t.pier.shutdown().await;
}

#[tokio::test]
async fn allow_private_still_delivers_to_loopback() {
    // The flag that local development and the other tests rely on.
    let t = TestPier::start_cfg(Opts::default(), crate::webhooks::fast_jobs).await;
    let local = Target::start(StatusCode::OK, "ok").await;
    let tok = t.token().await;
    t.pier
        .engine
        .set_webhook(
            DEMO_CODE,
            Some(format!("http://[::ffff:127.0.0.1]:{}/hook", local.port)),
            "json",
        )
        .await
        .unwrap();
    let p = t.pay(&tok, "ssrf-allowed-1", 1000).await;
    let log = delivery_log(&t, &tok, p["imp_uid"].as_str().unwrap()).await;
    assert_eq!(log[0]["status_code"], 200, "{}", log[0]);
    assert_eq!(local.hits(), 1);
    t.pier.shutdown().await;
}

async fn prepare(t: &TestPier, params: Value) -> Value {
    let res = t
        .http
        .post(t.url("/checkout/prepare"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("origin", "http://shop.example")
        .body(json!({"user_code": DEMO_CODE, "mode": "redirect", "params": params}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn window_params(merchant_uid: &str, confirm_url: &str) -> Value {
    json!({"pg": "jtnet", "pay_method": "card", "merchant_uid": merchant_uid, "amount": 1000,
           "m_redirect_url": "https://shop.example/done", "confirm_url": confirm_url})
}

/// Drives an opened window through the test PG with an approved card and returns what the
/// buyer is sent back with (the result merged into m_redirect_url).
async fn complete_window(t: &TestPier, window_url: &str) -> Vec<(String, String)> {
    let back = through_pg(window_url).await;
    follow_return(t, &back).await
}

/// The window up to the PG's answer: the path (with query) of Pier's return step, and the
/// cookie of the browser that opened the window.
async fn through_pg(window_url: &str) -> (String, String) {
    let (back, cookie) = card_window_through_pg(window_url).await;
    let back = url::Url::parse(&back).unwrap();
    (
        format!("{}?{}", back.path(), back.query().unwrap_or("")),
        cookie,
    )
}

/// Pier's return step (where confirm_url is asked), on `t` (possibly restarted elsewhere).
async fn follow_return(t: &TestPier, (back, cookie): &(String, String)) -> Vec<(String, String)> {
    let res = no_redirects()
        .get(t.url(back))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let to = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    to.query_pairs().into_owned().collect()
}

fn get<'a>(q: &'a [(String, String)], k: &str) -> &'a str {
    q.iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[tokio::test]
async fn confirm_url_on_loopback_in_any_spelling_is_refused_at_prepare() {
    let t = TestPier::start_cfg(Opts::default(), strict).await;
    let internal = Target::start(
        StatusCode::BAD_REQUEST,
        r#"{"reason":"INTERNAL-SECRET-7f3a"}"#,
    )
    .await;
    for (i, url) in bypasses(internal.port).into_iter().enumerate() {
        let opened = prepare(&t, window_params(&format!("ssrf-prep-{i}"), &url)).await;
        assert_eq!(opened["success"], false, "{url}: {opened}");
        assert!(!opened.to_string().contains(INTERNAL));
    }
    assert_eq!(internal.hits(), 0);
    t.pier.shutdown().await;
}

#[tokio::test]
async fn a_confirm_url_refused_at_call_time_is_not_contacted_and_its_answer_never_shown() {
    // A window opened while private targets were allowed, completed after a restart without
    // the flag: the prepare-time check is passed, so this exercises the call itself.
    let t = TestPier::start_cfg(Opts::default(), crate::webhooks::fast_jobs).await;
    let internal = Target::start(
        StatusCode::BAD_REQUEST,
        r#"{"reason":"INTERNAL-SECRET-7f3a"}"#,
    )
    .await;
    let mut opened = Vec::new();
    for (i, url) in bypasses(internal.port).into_iter().enumerate() {
        let o = prepare(&t, window_params(&format!("ssrf-call-{i}"), &url)).await;
        assert_eq!(o["success"], true, "{url}: {o}");
        let back = through_pg(o["window_url"].as_str().unwrap()).await;
        opened.push((url, o, back));
    }
    let t = t.restart(Opts::default(), strict).await;
    let token = t.token().await;
    for (url, o, back) in opened {
        let q = follow_return(&t, &back).await;
        assert_eq!(get(&q, "imp_success"), "false", "{url}: {q:?}");
        assert_eq!(get(&q, "error_code"), "F1006", "{url}: {q:?}");
        let msg = get(&q, "error_msg");
        assert!(!msg.contains(INTERNAL), "{url}: {msg}");
        assert!(
            !msg.contains("127.0.0.1") && !msg.contains("loopback"),
            "{url}: {msg}"
        );
        let imp_uid = o["imp_uid"].as_str().unwrap();
        let (_, p) = t.get(&format!("/payments/{imp_uid}"), &token).await;
        assert_eq!(p["response"]["status"], "failed", "{p}");
        assert!(!p.to_string().contains(INTERNAL), "{p}");
    }
    assert_eq!(internal.hits(), 0, "no refused confirm_url was contacted");
    t.pier.shutdown().await;
}

#[tokio::test]
async fn confirm_url_shows_the_merchants_reason_but_never_a_failed_targets_text() {
    // Private targets allowed (local development): the merchant's confirm_url is reachable.
    let t = TestPier::start().await;
    let token = t.token().await;
    let merchant = Target::start(
        StatusCode::BAD_REQUEST,
        r#"{"reason":"품절 (out of stock)"}"#,
    )
    .await;
    let url = format!("http://127.0.0.1:{}/confirm", merchant.port);
    let o = prepare(&t, window_params("ssrf-reason-1", &url)).await;
    assert_eq!(o["success"], true, "{o}");
    let q = complete_window(&t, o["window_url"].as_str().unwrap()).await;
    assert_eq!(get(&q, "error_code"), "F1006", "{q:?}");
    assert!(
        get(&q, "error_msg").contains("품절 (out of stock)"),
        "{q:?}"
    );
    assert_eq!(merchant.hits(), 1);

    // A confirm_url that approves lets the payment through.
    let ok = Target::start(StatusCode::OK, "{}").await;
    let url = format!("http://127.0.0.1:{}/confirm", ok.port);
    let o = prepare(&t, window_params("ssrf-ok-1", &url)).await;
    let q = complete_window(&t, o["window_url"].as_str().unwrap()).await;
    assert_eq!(get(&q, "imp_success"), "true", "{q:?}");
    assert_eq!(ok.hits(), 1);

    // Nothing listens: the buyer gets the generic text, not the connect error (which would
    // tell an anonymous caller which internal ports are open).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = prepare(
        &t,
        window_params("ssrf-closed-1", &format!("http://127.0.0.1:{closed}/")),
    )
    .await;
    let q = complete_window(&t, o["window_url"].as_str().unwrap()).await;
    let msg = get(&q, "error_msg");
    assert_eq!(get(&q, "error_code"), "F1006", "{q:?}");
    assert!(msg.contains("confirm_url did not answer"), "{msg}");
    assert!(
        !msg.contains("refused") && !msg.contains(&closed.to_string()),
        "{msg}"
    );
    let imp_uid = o["imp_uid"].as_str().unwrap();
    let (_, p) = t.get(&format!("/payments/{imp_uid}"), &token).await;
    assert_eq!(p["response"]["status"], "failed");
    t.pier.shutdown().await;
}

#[tokio::test]
async fn one_merchants_hanging_target_does_not_stall_another_merchants_webhooks() {
    // One instance: the per-merchant webhook share is per dispatcher (docs/ARCHITECTURE.md,
    // "Several instances on one PostgreSQL": N instances hold N × the share), and this asserts
    // that A holds exactly its share of one dispatcher's slots.
    let t = TestPier::start_one_cfg(Opts::default(), |c| {
        crate::webhooks::fast_jobs(c);
        // Far longer than the test: A's requests hang until released.
        c.webhook_timeout = Duration::from_secs(60);
        c.webhook_concurrency = 4;
        c.webhook_merchant_concurrency = 2;
    })
    .await;
    let a_tok = t.token().await;
    let a_target = Target::start_held(StatusCode::OK, "{}", true).await;
    t.pier
        .engine
        .set_webhook(
            DEMO_CODE,
            Some(format!("http://127.0.0.1:{}/a", a_target.port)),
            "json",
        )
        .await
        .unwrap();
    // Merchant A queues more events than there are delivery slots in all.
    for i in 0..10 {
        t.pay(&a_tok, &format!("ssrf-a-{i}"), 1000).await;
    }
    for _ in 0..500 {
        if a_target.hits() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a_target.hits(), 2, "A holds its share of slots");

    let b = t
        .pier
        .engine
        .create_merchant("B", None, None, None, false)
        .await
        .unwrap();
    t.pier
        .engine
        .add_channel(&b.imp_code, "jtnet", None, true, None)
        .await
        .unwrap();
    let b_target = Target::start(StatusCode::OK, "{}").await;
    t.pier
        .engine
        .set_webhook(
            &b.imp_code,
            Some(format!("http://127.0.0.1:{}/b", b_target.port)),
            "json",
        )
        .await
        .unwrap();
    let b_tok = t.token_for(&b.imp_key, &b.imp_secret).await;
    t.pay(&b_tok, "ssrf-b-1", 1000).await;
    for _ in 0..500 {
        if b_target.finished.load(Ordering::SeqCst) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // B's webhook arrived while every one of A's requests is still hanging, and A never got
    // more than its share.
    assert_eq!(b_target.finished.load(Ordering::SeqCst), 1, "B delivered");
    assert_eq!(
        a_target.finished.load(Ordering::SeqCst),
        0,
        "A still hanging"
    );
    assert_eq!(a_target.hits(), 2, "A never took more than its share");

    // Released, A's backlog drains in turn.
    a_target.release();
    for _ in 0..500 {
        if a_target.finished.load(Ordering::SeqCst) >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a_target.finished.load(Ordering::SeqCst), 10);
    t.pier.shutdown().await;
}
