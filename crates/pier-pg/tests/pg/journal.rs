//! The journal (billing keys survive a restart, card data only sealed) and the standalone
//! `pgsim::serve` with its deposit notifications.

use crate::common::{card, mid, order, T0};
use pier_domain::ManualClock;
use pier_pg::pgsim::{self, PgsimOptions};
use pier_pg::testpg::{Engine, EngineConfig, InProcess};
use pier_pg::{Inquiry, Pg, PgEvent, VbankRequest};
use std::sync::Arc;
use std::time::Duration;

fn engine(key: [u8; 32], path: &std::path::Path) -> std::io::Result<Engine> {
    let config = EngineConfig::new(key, "http://127.0.0.1:1").with_journal(path);
    Engine::new(config, Arc::new(ManualClock::new(T0)))
}

#[tokio::test]
async fn billing_keys_survive_a_restart_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("testpg.jsonl");
    let key = [9u8; 32];
    let number = "4518-4200-0000-0000";
    let digits = "4518420000000000";

    let first = engine(key, &path).unwrap();
    let pg = InProcess::new(first.clone());
    let bk = pg
        .issue_billing_key(&mid(), "customer-9", card(number))
        .await
        .unwrap();
    let o = order(5_000);
    let a = pg.pay_with_key(&mid(), &o, &bk.billing_key).await.unwrap();
    let deleted = pg
        .issue_billing_key(&mid(), "customer-10", card("4242424242424242"))
        .await
        .unwrap();
    pg.delete_billing_key(&mid(), &deleted.billing_key)
        .await
        .unwrap();
    first.flush_journal().await.unwrap();
    let before = first.ledger_snapshot();
    drop(pg);
    drop(first);

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(digits),
        "card number in clear in the journal"
    );
    assert!(!text.contains("4242424242424242"));
    assert!(text.contains(&bk.billing_key));

    // Restart: same ledger, the key still charges, the deleted one stays deleted.
    let second = engine(key, &path).unwrap();
    assert_eq!(second.ledger_snapshot(), before);
    let pg = InProcess::new(second.clone());
    assert_eq!(
        pg.inquire(&mid(), &o.order_id).await.unwrap(),
        Inquiry::Approved(a)
    );
    pg.pay_with_key(&mid(), &order(6_000), &bk.billing_key)
        .await
        .unwrap();
    assert!(pg
        .pay_with_key(&mid(), &order(6_000), &deleted.billing_key)
        .await
        .is_err());
    second.flush_journal().await.unwrap();
    drop(pg);
    drop(second);

    // Another key cannot open it.
    let err = engine([1u8; 32], &path).unwrap_err();
    assert!(err.to_string().contains("another encryption key"), "{err}");

    // A torn last line (crash mid-write) is skipped, and later appends still replay.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"t\":\"order\",\"mid")
        .unwrap();
    let third = engine(key, &path).unwrap();
    let pg = InProcess::new(third.clone());
    let late = order(7_000);
    pg.pay_with_key(&mid(), &late, &bk.billing_key)
        .await
        .unwrap();
    third.flush_journal().await.unwrap();
    drop(pg);
    drop(third);
    let fourth = engine(key, &path).unwrap();
    assert!(fourth.ledger_snapshot().order(&late.order_id).is_some());

    // Not a journal at all.
    let other = dir.path().join("other.jsonl");
    std::fs::write(&other, "hello\n").unwrap();
    assert!(engine(key, &other).is_err());
}

#[tokio::test]
async fn serve_notifies_deposits_with_the_secret() {
    // Pier's side: a receiver that records what pgsim posts.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Option<String>, PgEvent)>(4);
    let receiver = axum::Router::new().route(
        "/pg-events",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, axum::Json(ev): axum::Json<PgEvent>| {
                let tx = tx.clone();
                async move {
                    let secret = headers
                        .get(pgsim::NOTIFY_SECRET_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let _ = tx.send((secret, ev)).await;
                    "ok"
                }
            },
        ),
    );
    let pier = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pier_addr = pier.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(pier, receiver).await });

    let dir = tempfile::tempdir().unwrap();
    let mut opts = PgsimOptions::new([5u8; 32]);
    opts.notify_url = Some(format!("http://{pier_addr}/pg-events"));
    opts.notify_secret = Some("s3cret".into());
    opts.journal_path = Some(dir.path().join("pgsim.jsonl"));
    assert!(!format!("{opts:?}").contains("s3cret"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(pgsim::serve(opts, listener, async move {
        let _ = stopped.await;
    }));

    let client = pgsim::Client::new(&format!("http://{addr}")).unwrap();
    let now = chrono::Utc::now().timestamp();
    let req = VbankRequest {
        order: order(19_000),
        bank_code: "090".into(),
        due_unix: now + 600,
        holder: None,
    };
    let v = client.issue_vbank(&mid(), &req).await.unwrap();
    assert!(v.bank_name.contains("카카오뱅크"));
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/admin/vbank/deposit"))
        .json(&serde_json::json!({"order_id": req.order.order_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (secret, event) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secret.as_deref(), Some("s3cret"));
    let PgEvent::VbankDeposited {
        order_id,
        amount_krw,
        pg_tid,
        ..
    } = event;
    assert_eq!(
        (order_id, amount_krw, pg_tid),
        (req.order.order_id.clone(), 19_000, v.pg_tid)
    );

    // Graceful shutdown flushes the journal.
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let replayed = engine([5u8; 32], &dir.path().join("pgsim.jsonl")).unwrap();
    assert!(replayed
        .ledger_snapshot()
        .order(&req.order.order_id)
        .is_some());
}
