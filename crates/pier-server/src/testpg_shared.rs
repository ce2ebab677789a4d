//! The in-process test PG on PostgreSQL: its journal lives in Pier's database
//! (`testpg_journal`), so that every instance on one database runs the same test PG
//! (pier-pg `testpg::shared` explains how; docs/ARCHITECTURE.md why).

use crate::config::Config;
use async_trait::async_trait;
use pier_domain::Clock;
use pier_pg::testpg::{Engine, EngineConfig, JournalOp, JournalRow, SharedJournal};
use pier_store::Store;
use std::sync::Arc;

/// pier-pg's journal interface on Pier's store.
pub struct StoreJournal(pub Arc<dyn Store>);

#[async_trait]
impl SharedJournal for StoreJournal {
    async fn append(&self, origin: &str, ops: &[JournalOp]) -> Result<Vec<bool>, String> {
        let ops: Vec<pier_store::JournalAppend> = ops
            .iter()
            .map(|o| pier_store::JournalAppend {
                read_point: o.read_point,
                entries: o.entries.clone(),
                reads: o.reads.clone(),
            })
            .collect();
        self.0
            .testpg_append(origin, &ops)
            .await
            .map_err(|e| e.to_string())
    }

    async fn read_after(
        &self,
        after: i64,
        limit: i64,
        skip_bodies_of: Option<&str>,
    ) -> Result<Vec<JournalRow>, String> {
        let rows = self
            .0
            .testpg_read_after(after, limit, skip_bodies_of)
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .map(|(seq, origin, body)| JournalRow { seq, origin, body })
            .collect())
    }

    async fn read_subjects(&self, subjects: &[String]) -> Result<Vec<JournalRow>, String> {
        let rows = self
            .0
            .testpg_read_subjects(subjects)
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .map(|(seq, origin, body)| JournalRow { seq, origin, body })
            .collect())
    }

    async fn prune(&self, sessions_upto: i64, limit: i64) -> Result<u64, String> {
        self.0
            .testpg_prune(sessions_upto, limit)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Starts the test PG on the shared journal (a configured journal file is not used then).
pub async fn start(
    pg_cfg: EngineConfig,
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
    cfg: &Config,
) -> anyhow::Result<Engine> {
    if let Some(j) = &cfg.testpg_journal {
        tracing::warn!(
            path = %j.display(),
            "on PostgreSQL the test PG journals to the database; the journal file is not used"
        );
    }
    Engine::new_shared(pg_cfg, clock, Arc::new(StoreJournal(store)))
        .await
        .map_err(|e| anyhow::anyhow!("starting the test PG: {e}"))
}

/// Two engines on one journal in the store (SQLite, and PostgreSQL when
/// `PIER_TEST_DATABASE_URL` is set), made to race by a journal that runs the other instance's
/// operation just before the next append.
#[cfg(test)]
mod tests {
    use super::*;
    use pier_domain::{Birth, CardNumber, Expiry, ManualClock, Pwd2Digit};
    use pier_pg::testpg::{InProcess, LedgerSnapshot};
    use pier_pg::{CancelRequest, CardData, Mid, Order, Pg, PgError};
    use std::future::Future;
    use std::pin::Pin;

    type Hook = Pin<Box<dyn Future<Output = ()> + Send>>;

    /// The store's journal, running a hook (another instance's operation) before the next
    /// append: the operation being appended read the journal before the hook's entry, so it
    /// loses the race whenever the hook wrote one of its subjects.
    struct Racing {
        store: StoreJournal,
        hook: std::sync::Mutex<Option<Hook>>,
    }

    impl Racing {
        fn before_next_append(&self, hook: impl Future<Output = ()> + Send + 'static) {
            *self.hook.lock().unwrap() = Some(Box::pin(hook));
        }
    }

    #[async_trait]
    impl SharedJournal for Racing {
        async fn append(&self, origin: &str, ops: &[JournalOp]) -> Result<Vec<bool>, String> {
            let hook = self.hook.lock().unwrap().take();
            if let Some(hook) = hook {
                hook.await;
            }
            self.store.append(origin, ops).await
        }
        async fn read_after(
            &self,
            after: i64,
            limit: i64,
            skip: Option<&str>,
        ) -> Result<Vec<JournalRow>, String> {
            self.store.read_after(after, limit, skip).await
        }
        async fn read_subjects(&self, subjects: &[String]) -> Result<Vec<JournalRow>, String> {
            self.store.read_subjects(subjects).await
        }
        async fn prune(&self, upto: i64, limit: i64) -> Result<u64, String> {
            self.store.prune(upto, limit).await
        }
    }

    /// 2025-01-01T00:00:00Z.
    const T0: i64 = 1_735_689_600;

    struct Pair {
        a: Engine,
        b: Engine,
        pa: InProcess,
        pb: InProcess,
        racing: Arc<Racing>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        cfg: EngineConfig,
    }

    impl Pair {
        /// `a` appends through `racing`; `b` straight to the store.
        async fn start(store: Arc<dyn Store>) -> Self {
            let cfg = EngineConfig::new([7; 32], "http://testpg.invalid");
            let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(T0));
            let plain = Arc::new(StoreJournal(store.clone()));
            let b = Engine::new_shared(cfg.clone(), clock.clone(), plain)
                .await
                .unwrap();
            let racing = Arc::new(Racing {
                store: StoreJournal(store.clone()),
                hook: std::sync::Mutex::new(None),
            });
            let a = Engine::new_shared(cfg.clone(), clock.clone(), racing.clone())
                .await
                .unwrap();
            Pair {
                pa: InProcess::new(a.clone()),
                pb: InProcess::new(b.clone()),
                a,
                b,
                racing,
                store,
                clock,
                cfg,
            }
        }

        /// The journal's truth: a new engine reading it all.
        async fn truth(&self) -> LedgerSnapshot {
            let journal = Arc::new(StoreJournal(self.store.clone()));
            let c = Engine::new_shared(self.cfg.clone(), self.clock.clone(), journal)
                .await
                .unwrap();
            let snap = c.ledger_snapshot_shared().await.unwrap();
            c.shutdown().await;
            snap
        }

        async fn shutdown(self) {
            self.a.shutdown().await;
            self.b.shutdown().await;
        }
    }

    /// A snapshot in a canonical order (replicas apply entries in different orders).
    fn canonical(mut s: LedgerSnapshot) -> LedgerSnapshot {
        s.orders.sort_by(|x, y| x.order_id.cmp(&y.order_id));
        s.cancels.sort_by(|x, y| {
            (&x.order_id, &x.cancellation_id).cmp(&(&y.order_id, &y.cancellation_id))
        });
        s.billing_keys
            .sort_by(|x, y| x.billing_key.cmp(&y.billing_key));
        s.vbanks.sort_by(|x, y| x.order_id.cmp(&y.order_id));
        s
    }

    fn mid() -> Mid {
        Mid::new("pier_test_mid")
    }

    fn card() -> CardData {
        CardData {
            number: CardNumber::parse("4242-4242-4242-4242").unwrap(),
            expiry: Expiry::parse("2099-12").unwrap(),
            birth: Some(Birth::parse("880101").unwrap()),
            pwd_2digit: Some(Pwd2Digit::parse("12").unwrap()),
        }
    }

    fn order(id: &str, amount_krw: i64) -> Order {
        Order {
            order_id: format!("imp_{id}"),
            merchant_uid: format!("m_{id}"),
            amount_krw,
            tax_free_krw: 0,
            name: None,
            buyer_name: None,
            card_quota: 0,
        }
    }

    fn cancel(order: &Order, pg_tid: &str, amount_krw: i64, id: &str) -> CancelRequest {
        CancelRequest {
            order_id: order.order_id.clone(),
            pg_tid: pg_tid.to_owned(),
            amount_krw,
            tax_free_krw: 0,
            reason: None,
            cancellation_id: id.to_owned(),
            refund_account: None,
        }
    }

    /// Every store the journal runs on here; the handles keep the databases alive.
    async fn stores() -> Vec<(Arc<dyn Store>, Box<dyn std::any::Any>)> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("j.db").display());
        let (sqlite, _) = pier_store::connect(&url, true).await.unwrap();
        let mut all: Vec<(Arc<dyn Store>, Box<dyn std::any::Any>)> = vec![(sqlite, Box::new(dir))];
        match std::env::var("PIER_TEST_DATABASE_URL") {
            Ok(base) => {
                let fresh = pier_store::testdb::fresh_postgres(&base).await.unwrap();
                let (pg, _) = pier_store::connect(fresh.url(), true).await.unwrap();
                all.push((pg, Box::new(fresh)));
            }
            Err(_) => eprintln!("PIER_TEST_DATABASE_URL not set: ran on SQLite only"),
        }
        all
    }

    async fn lost_races_are_repaired(store: Arc<dyn Store>) {
        let p = Pair::start(store).await;
        // History a rebuild would read again: 40 payments through b.
        for i in 0..40 {
            let o = order(&format!("old{i}"), 1_000);
            p.pb.approve_keyed(&mid(), &o, card()).await.unwrap();
        }
        let paid = order("x", 1_000);
        let approval = p.pa.approve_keyed(&mid(), &paid, card()).await.unwrap();
        let before = p.a.journal_stats().unwrap();

        // 1. b cancels 500 of the payment just before a's append of a 300 cancel of it: a's
        // append is refused (the order is one subject), a repairs and cancels again on the truth.
        let pb = InProcess::new(p.b.clone());
        let req_b = cancel(&paid, &approval.pg_tid, 500, "b-1");
        p.racing.before_next_append(async move {
            pb.cancel(&mid(), &req_b).await.unwrap();
        });
        let req_a = cancel(&paid, &approval.pg_tid, 300, "a-1");
        let out = p.pa.cancel(&mid(), &req_a).await.unwrap();
        assert_eq!(out.amount_krw, 300);
        let snap = p.a.ledger_snapshot();
        assert_eq!(snap.order(&paid.order_id).unwrap().cancelled_krw, 800);
        assert_eq!(snap.cancels.len(), 2);

        // 2. b net-cancels an order a is approving at that moment (an unseen order: b's
        // tombstone): a's approval loses; its new record is dropped and the rerun refused.
        let voided = order("v", 2_000);
        let pb = InProcess::new(p.b.clone());
        let order_id = voided.order_id.clone();
        p.racing.before_next_append(async move {
            pb.net_cancel(&mid(), &order_id).await.unwrap();
        });
        let err =
            p.pa.approve_keyed(&mid(), &voided, card())
                .await
                .unwrap_err();
        assert!(
            matches!(&err, PgError::Rejected { code, .. } if code == "ORDER_VOIDED"),
            "{err:?}"
        );
        assert!(p.a.ledger_snapshot().order(&voided.order_id).is_none());

        // Neither race rebuilt the replica; each repair read only the entries of the records
        // its operation wrote (the order's entries and the cancel's: a handful, not the 40+
        // entries of the journal).
        let after = p.a.journal_stats().unwrap();
        assert_eq!(after.rebuilds, before.rebuilds, "{after:?}");
        assert_eq!(after.repairs, before.repairs + 2, "{after:?}");
        assert!(after.repaired_rows - before.repaired_rows <= 4, "{after:?}");

        // And the replicas are the journal's truth.
        let truth = canonical(p.truth().await);
        assert_eq!(
            canonical(p.a.ledger_snapshot_shared().await.unwrap()),
            truth
        );
        assert_eq!(
            canonical(p.b.ledger_snapshot_shared().await.unwrap()),
            truth
        );
        assert_eq!(truth.order(&paid.order_id).unwrap().cancelled_krw, 800);
        assert!(truth.order(&voided.order_id).is_none());
        p.shutdown().await;
    }

    #[tokio::test]
    async fn a_lost_race_repairs_what_it_touched_without_a_rebuild() {
        for (store, _keep) in stores().await {
            lost_races_are_repaired(store).await;
        }
    }

    /// Concurrent operations of one instance on one record reach the journal in the order they
    /// changed the replica: the record's last entry has every one of them.
    async fn one_instance_appends_in_order(store: Arc<dyn Store>) {
        let p = Pair::start(store).await;
        let paid = order("seq", 100_000);
        let approval = p.pa.approve_keyed(&mid(), &paid, card()).await.unwrap();
        let mut cancels = Vec::new();
        for i in 0..40 {
            let pa = InProcess::new(p.a.clone());
            let req = cancel(&paid, &approval.pg_tid, 100 + i, &format!("c{i}"));
            cancels.push(tokio::spawn(async move {
                pa.cancel(&mid(), &req).await.unwrap().amount_krw
            }));
        }
        let mut answered = 0;
        for c in cancels {
            answered += c.await.unwrap();
        }
        let truth = p.truth().await;
        assert_eq!(truth.order(&paid.order_id).unwrap().cancelled_krw, answered);
        assert_eq!(truth.cancels.len(), 40);
        assert_eq!(
            canonical(p.a.ledger_snapshot_shared().await.unwrap()),
            canonical(truth)
        );
        p.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_operations_of_one_instance_reach_the_journal_in_order() {
        for (store, _keep) in stores().await {
            one_instance_appends_in_order(store).await;
        }
    }

    /// A write acknowledged through one instance is seen by every later operation through the
    /// other, though a writing operation there may run on its replica without catching up.
    async fn acknowledged_writes_are_seen(store: Arc<dyn Store>) {
        let p = Pair::start(store).await;
        for round in 0..5 {
            // b is fresh (it just read the journal's end), so its writes run without a catch-up.
            p.b.sync().await.unwrap();
            let o = order(&format!("ack{round}"), 1_000);
            let approval = p.pa.approve_keyed(&mid(), &o, card()).await.unwrap();
            match p.pb.inquire(&mid(), &o.order_id).await.unwrap() {
                pier_pg::Inquiry::Approved(a) => assert_eq!(a.pg_tid, approval.pg_tid),
                other => panic!("round {round}: {other:?}"),
            }
            p.b.sync().await.unwrap();
            let o = order(&format!("ackc{round}"), 1_000);
            let approval = p.pa.approve_keyed(&mid(), &o, card()).await.unwrap();
            let req = cancel(&o, &approval.pg_tid, 400, "c");
            assert_eq!(p.pb.cancel(&mid(), &req).await.unwrap().amount_krw, 400);

            p.b.sync().await.unwrap();
            let key = p.pa.issue_billing_key(&mid(), "ack", card()).await.unwrap();
            let o = order(&format!("ackk{round}"), 1_000);
            p.pb.pay_with_key(&mid(), &o, &key.billing_key)
                .await
                .unwrap();

            p.b.sync().await.unwrap();
            let o = order(&format!("ackv{round}"), 1_000);
            p.pa.net_cancel(&mid(), &o.order_id).await.unwrap();
            let err = p.pb.approve_keyed(&mid(), &o, card()).await.unwrap_err();
            assert!(
                matches!(&err, PgError::Rejected { code, .. } if code == "ORDER_VOIDED"),
                "round {round}: {err:?}"
            );
        }
        let truth = canonical(p.truth().await);
        assert_eq!(
            canonical(p.a.ledger_snapshot_shared().await.unwrap()),
            truth
        );
        assert_eq!(
            canonical(p.b.ledger_snapshot_shared().await.unwrap()),
            truth
        );
        p.shutdown().await;
    }

    #[tokio::test]
    async fn a_write_acknowledged_through_one_instance_is_seen_through_the_other() {
        for (store, _keep) in stores().await {
            acknowledged_writes_are_seen(store).await;
        }
    }

    fn is_unknown_key(e: &PgError) -> bool {
        matches!(e, PgError::Rejected { code, .. } if code == "UNKNOWN_BILLING_KEY")
    }

    async fn charge_and_delete_conflict(store: Arc<dyn Store>) {
        let p = Pair::start(store.clone()).await;
        // Deterministic: b deletes the key just before a's append of a charge with it.
        let key = p.pb.issue_billing_key(&mid(), "c-1", card()).await.unwrap();
        let pb = InProcess::new(p.b.clone());
        let bk = key.billing_key.clone();
        p.racing.before_next_append(async move {
            pb.delete_billing_key(&mid(), &bk).await.unwrap();
        });
        let o = order("k1", 1_000);
        let err =
            p.pa.pay_with_key(&mid(), &o, &key.billing_key)
                .await
                .unwrap_err();
        assert!(is_unknown_key(&err), "{err:?}");
        let truth = p.truth().await;
        assert!(
            truth.order(&o.order_id).is_none(),
            "a deleted key was charged"
        );
        assert!(p.a.ledger_snapshot().order(&o.order_id).is_none());

        // Racing for real: each round, a charges a key while b deletes it. Exactly one order
        // holds: the charge is refused as UNKNOWN_BILLING_KEY, or it was appended before the
        // delete.
        let (mut charged, mut refused) = (0, 0);
        for round in 0..30 {
            let key = p.pb.issue_billing_key(&mid(), "c-2", card()).await.unwrap();
            let o = order(&format!("r{round}"), 1_000);
            // a sees the key first, so that its charge runs on it.
            p.a.sync().await.unwrap();
            let m = mid();
            let (charge, delete) = tokio::join!(
                p.pa.pay_with_key(&m, &o, &key.billing_key),
                p.pb.delete_billing_key(&m, &key.billing_key)
            );
            delete.unwrap();
            let subjects = [
                format!("o:{}", o.order_id),
                format!("k:{}", key.billing_key),
            ];
            let rows = store.testpg_read_subjects(&subjects).await.unwrap();
            let order_seq = rows
                .iter()
                .find(|r| r.2.contains("\"t\":\"order\""))
                .map(|r| r.0);
            let delete_seq = rows
                .iter()
                .filter(|r| r.2.contains("\"deleted_at\":") && !r.2.contains("\"deleted_at\":null"))
                .map(|r| r.0)
                .next();
            let delete_seq = delete_seq.expect("the delete is in the journal");
            match charge {
                Ok(_) => {
                    charged += 1;
                    let at = order_seq.expect("an approved charge is in the journal");
                    assert!(at < delete_seq, "round {round}: charged after the delete");
                }
                Err(e) => {
                    refused += 1;
                    assert!(is_unknown_key(&e), "round {round}: {e:?}");
                    assert_eq!(
                        order_seq, None,
                        "round {round}: a refused charge was written"
                    );
                }
            }
        }
        eprintln!("charge vs delete: {charged} charged first, {refused} refused");
        let truth = canonical(p.truth().await);
        assert_eq!(
            canonical(p.a.ledger_snapshot_shared().await.unwrap()),
            truth
        );
        p.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_charge_and_a_delete_of_its_key_through_two_instances_never_both_pass() {
        for (store, _keep) in stores().await {
            charge_and_delete_conflict(store).await;
        }
    }

    async fn shutdown_joins(store: Arc<dyn Store>) {
        let p = Pair::start(store).await;
        assert_eq!(p.a.journal_tasks_live(), 2, "the appender and the pruner");
        // Operations in flight when shutdown begins: each is appended, or refused as Unknown.
        let mut charges = Vec::new();
        for i in 0..20 {
            let pa = InProcess::new(p.a.clone());
            let o = order(&format!("s{i}"), 1_000);
            charges.push(tokio::spawn(async move {
                let r = pa.approve_keyed(&mid(), &o, card()).await;
                (o, r)
            }));
        }
        tokio::task::yield_now().await;
        p.a.shutdown().await;
        p.b.shutdown().await;
        assert_eq!(
            p.a.journal_tasks_live(),
            0,
            "a journal task outlived shutdown"
        );
        assert_eq!(
            p.b.journal_tasks_live(),
            0,
            "a journal task outlived shutdown"
        );
        let truth = p.truth().await;
        for c in charges {
            match c.await.unwrap() {
                (o, Ok(_)) => assert!(truth.order(&o.order_id).is_some(), "an answer was lost"),
                (_, Err(PgError::Unknown(_))) => {}
                (_, Err(e)) => panic!("{e:?}"),
            }
        }
        let err =
            p.pa.approve_keyed(&mid(), &order("late", 1_000), card())
                .await
                .unwrap_err();
        assert!(matches!(err, PgError::Unknown(_)), "{err:?}");
    }

    #[tokio::test]
    async fn shutdown_stops_and_joins_the_appender_and_the_pruner() {
        for (store, _keep) in stores().await {
            shutdown_joins(store).await;
        }
    }
}
