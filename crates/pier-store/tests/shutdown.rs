//! A store's shutdown stops and joins every task and thread it started (issue #21): on a SQLite
//! file the lane's writer and checkpointer threads, on an in-memory SQLite database the writer
//! task, on PostgreSQL the writers and the batched readers. Work queued before the shutdown is
//! answered (or refused `Unavailable`), never dropped; the count of live tasks says nothing was
//! left behind.

use pier_store::*;
use std::sync::Arc;
use std::time::Duration;

/// Far above what draining takes (milliseconds); only a hung task would reach it.
const WITHIN: Duration = Duration::from_secs(30);

fn merchant(code: &str) -> Merchant {
    Merchant {
        imp_code: code.into(),
        name: "M".into(),
        imp_key: format!("key_{code}"),
        secret_hash: "h".into(),
        webhook_url: None,
        webhook_format: "json".into(),
        webhook_secret: None,
        allowed_origins: None,
        is_demo: false,
        created_at: 1,
    }
}

fn channel(m: &str) -> Channel {
    Channel {
        id: "c1".into(),
        merchant_id: m.into(),
        pg_provider: "jtnet".into(),
        mid: "mid1".into(),
        is_default: true,
        sandbox: true,
        target: "inprocess".into(),
        created_at: 1,
        api_base: None,
        client_key: None,
        secret_sealed: None,
    }
}

fn attempt(imp: &str, uid: &str) -> Payment {
    let mut p = Payment::new(imp.into(), "imp1".into(), uid.into(), 1000, 10);
    p.uid_lock = true;
    p.pg_state = PgState::InFlight;
    p
}

/// Runs every kind of work that goes through the store's own tasks: a write through the
/// group-commit writer and each batched read (inline on SQLite).
async fn exercise(s: &Arc<dyn Store>) {
    s.create_merchant(&merchant("imp1")).await.unwrap();
    s.add_channel(&channel("imp1")).await.unwrap();
    s.insert_payment(&attempt("imp_a", "o_a")).await.unwrap();
    assert!(s
        .get_payment(Some("imp1"), "imp_a")
        .await
        .unwrap()
        .is_some());
    assert_eq!(s.list_channels(Some("imp1")).await.unwrap().len(), 1);
    assert!(s.get_prepare("imp1", "o_a").await.unwrap().is_none());
    assert!(s
        .charge_context("imp1", "cu", "o_a")
        .await
        .unwrap()
        .is_none());
}

async fn shuts_down(s: Arc<dyn Store>, what: &str) {
    assert!(s.live_tasks() > 0, "{what}: the writer runs as the store's");
    exercise(&s).await;
    // Work in flight while the store shuts down: each is answered, with its result or
    // `Unavailable` (never "dropped a request" from a task that ended under it).
    let mut inflight = Vec::new();
    for i in 0..32 {
        let s = s.clone();
        inflight.push(tokio::spawn(async move {
            let p = attempt(&format!("imp_{i}"), &format!("o_{i}"));
            let (w, r) = tokio::join!(s.insert_payment(&p), s.get_payment(Some("imp1"), "imp_a"));
            (w, r.map(|p| p.is_some()))
        }));
    }
    tokio::task::yield_now().await;
    s.shutdown(WITHIN).await.unwrap();
    assert_eq!(
        s.live_tasks(),
        0,
        "{what}: a task or thread outlived shutdown"
    );
    for t in inflight {
        let (w, r) = t.await.unwrap();
        assert!(
            w.is_ok() || matches!(&w, Err(StoreError::Unavailable(m)) if m.contains("stopped")),
            "{what}: {w:?}"
        );
        assert!(
            matches!(r, Ok(true))
                || matches!(&r, Err(StoreError::Unavailable(m)) if m.contains("stopped")),
            "{what}: {r:?}"
        );
    }
    // After it: writes are refused as unavailable, a second shutdown has nothing to do.
    let late = s.insert_payment(&attempt("imp_late", "o_late")).await;
    assert!(matches!(late, Err(StoreError::Unavailable(_))), "{late:?}");
    s.shutdown(WITHIN).await.unwrap();
    assert_eq!(s.live_tasks(), 0);
}

#[tokio::test]
async fn shutdown_joins_the_sqlite_writer_threads() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("s.db").display());
    let (s, _) = connect(&url, true).await.unwrap();
    shuts_down(s, "sqlite file").await;
}

#[tokio::test]
async fn shutdown_joins_the_in_memory_sqlite_writer_task() {
    let (s, _) = connect("sqlite::memory:", true).await.unwrap();
    shuts_down(s, "sqlite in memory").await;
}

#[tokio::test]
async fn shutdown_joins_the_postgres_writers_and_readers() {
    let Ok(base) = std::env::var("PIER_TEST_DATABASE_URL") else {
        eprintln!("PIER_TEST_DATABASE_URL not set: the PostgreSQL store was not checked");
        return;
    };
    let db = testdb::fresh_postgres(&base).await.unwrap();
    let (s, kind) = connect(db.url(), true).await.unwrap();
    assert_eq!(kind, StoreKind::Postgres);
    shuts_down(s, "postgres").await;
}
