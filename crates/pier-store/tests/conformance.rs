//! The store conformance suite: the same checks against SQLite and, when
//! `PIER_TEST_DATABASE_URL` is set, PostgreSQL (each run in a fresh schema).

use pier_store::*;
use std::sync::Arc;

/// The URL of a SQLite file in `dir`.
fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite:{}", dir.path().join("s.db").display())
}

async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let (s, kind) = connect(&url, true).await.unwrap();
    assert_eq!(kind, StoreKind::Sqlite);
    (s, dir)
}

/// A fresh schema in the test database, and a URL whose connections use it.
async fn fresh_pg_schema(base: &str) -> (String, String) {
    let schema = format!("conf_{}", pier_domain::ids::random_hex(6));
    let pool = sqlx::PgPool::connect(base)
        .await
        .expect("PIER_TEST_DATABASE_URL reachable");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    (schema, url)
}

/// A store on a fresh PostgreSQL database (cloned from the migrated template; dropped with the
/// returned handle, so keep it while the store is used).
async fn postgres() -> Option<(Arc<dyn Store>, testdb::FreshPostgres)> {
    let base = std::env::var("PIER_TEST_DATABASE_URL").ok()?;
    let db = testdb::fresh_postgres(&base).await.unwrap();
    let (s, kind) = connect(db.url(), true).await.unwrap();
    assert_eq!(kind, StoreKind::Postgres);
    Some((s, db))
}

/// Runs `$check` on SQLite, then on PostgreSQL when configured.
macro_rules! on_both {
    ($name:ident, $check:ident) => {
        #[tokio::test]
        async fn $name() {
            let (s, _dir) = sqlite().await;
            $check(s).await;
            match postgres().await {
                Some((p, _db)) => $check(p).await,
                None => eprintln!(
                    "PIER_TEST_DATABASE_URL not set: {} ran on SQLite only",
                    stringify!($name)
                ),
            }
        }
    };
}

fn merchant(code: &str, key: &str) -> Merchant {
    Merchant {
        imp_code: code.into(),
        name: "M".into(),
        imp_key: key.into(),
        secret_hash: "h".into(),
        webhook_url: None,
        webhook_format: "json".into(),
        webhook_secret: None,
        allowed_origins: None,
        is_demo: false,
        created_at: 1,
    }
}

fn channel(id: &str, m: &str, mid: &str, d: bool) -> Channel {
    Channel {
        id: id.into(),
        merchant_id: m.into(),
        pg_provider: "jtnet".into(),
        mid: mid.into(),
        is_default: d,
        sandbox: true,
        target: "inprocess".into(),
        created_at: 1,
        api_base: None,
        client_key: None,
        secret_sealed: None,
    }
}

/// A customer of `merchant` on channel c1 with a card on file (key `bk_{uid}`).
fn customer(merchant: &str, uid: &str, mid: &str) -> Customer {
    Customer {
        merchant_id: merchant.into(),
        customer_uid: uid.into(),
        channel_id: "c1".into(),
        pg_provider: "jtnet".into(),
        pg_id: mid.into(),
        sandbox: true,
        billing_key: format!("bk_{uid}"),
        customer_id: None,
        card_name: Some("신한카드".into()),
        card_code: Some("366".into()),
        card_number: Some("45184200****0000".into()),
        card_type: Some(0),
        customer_name: None,
        customer_tel: None,
        customer_email: None,
        customer_addr: None,
        customer_postcode: None,
        inserted: 1,
        updated: 1,
    }
}

fn prepared(merchant: &str, merchant_uid: &str, amount: i64) -> Prepared {
    Prepared {
        merchant_id: merchant.into(),
        merchant_uid: merchant_uid.into(),
        amount,
        currency: None,
        created_at: 1,
        updated_at: 1,
    }
}

async fn seed(s: &Arc<dyn Store>) {
    s.create_merchant(&merchant("imp1", "key1")).await.unwrap();
    s.create_merchant(&merchant("imp2", "key2")).await.unwrap();
}

fn attempt(imp: &str, m: &str, uid: &str, amount: i64, started: i64) -> Payment {
    let mut p = Payment::new(imp.into(), m.into(), uid.into(), amount, started);
    p.uid_lock = true;
    p.pg_state = PgState::InFlight;
    p
}

fn paid(at: i64) -> Settlement {
    Settlement::Paid {
        pg_tid: "tid".into(),
        apply_num: Some("12345678".into()),
        paid_at: at,
        card_code: Some("366".into()),
        card_name: Some("신한카드".into()),
        card_number: Some("45184200****0000".into()),
        card_type: Some(0),
        card_quota: 0,
        bank_code: None,
        bank_name: None,
        receipt_url: Some("http://r".into()),
    }
}

async fn merchants_channels_tokens(s: Arc<dyn Store>) {
    seed(&s).await;
    assert!(matches!(
        s.create_merchant(&merchant("imp1", "other")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_merchant(&merchant("imp3", "key1")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.get_merchant_by_key("key2")
            .await
            .unwrap()
            .unwrap()
            .imp_code,
        "imp2"
    );
    assert!(s.get_merchant("nope").await.unwrap().is_none());
    let mut m = s.get_merchant("imp1").await.unwrap().unwrap();
    m.webhook_url = Some("http://hook".into());
    s.update_merchant(&m).await.unwrap();
    assert_eq!(
        s.get_merchant("imp1")
            .await
            .unwrap()
            .unwrap()
            .webhook_url
            .as_deref(),
        Some("http://hook")
    );
    assert_eq!(s.list_merchants().await.unwrap().len(), 2);

    s.add_channel(&channel("c1", "imp1", "a", true))
        .await
        .unwrap();
    s.add_channel(&channel("c2", "imp1", "b", true))
        .await
        .unwrap();
    assert!(matches!(
        s.add_channel(&channel("c3", "imp1", "b", false)).await,
        Err(StoreError::Conflict(_))
    ));
    let cs = s.list_channels(Some("imp1")).await.unwrap();
    assert_eq!(
        cs.iter()
            .filter(|c| c.is_default)
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        vec!["c2"]
    );
    assert!(s.list_channels(Some("imp2")).await.unwrap().is_empty());
    assert_eq!(s.get_channel("c1").await.unwrap().unwrap().mid, "a");

    let t = Token {
        token_hash: "t1".into(),
        nonce: "n1".into(),
        merchant_id: "imp1".into(),
        imp_key: "key1".into(),
        expired_at: 100,
        created_at: 0,
    };
    s.insert_token(&t).await.unwrap();
    let cur = s.current_token("key1", 50).await.unwrap().unwrap();
    assert_eq!((cur.token_hash.as_str(), cur.nonce.as_str()), ("t1", "n1"));
    assert!(s.current_token("key1", 100).await.unwrap().is_none());
    s.extend_token("t1", 400).await.unwrap();
    s.extend_token("t1", 200).await.unwrap(); // never backwards
    assert_eq!(s.get_token("t1").await.unwrap().unwrap().expired_at, 400);
    s.ping().await.unwrap();
}
on_both!(merchants_channels_and_tokens, merchants_channels_tokens);

/// Revocation, rotation and expiry of tokens (docs/security/secrets.md).
async fn tokens_revoked_rotated_and_expired(s: Arc<dyn Store>) {
    seed(&s).await;
    let tok = |h: &str, m: &str, k: &str, exp: i64| Token {
        token_hash: h.into(),
        nonce: format!("n{h}"),
        merchant_id: m.into(),
        imp_key: k.into(),
        expired_at: exp,
        created_at: 0,
    };
    s.insert_token(&tok("a1", "imp1", "key1", 100))
        .await
        .unwrap();
    s.insert_token(&tok("a2", "imp1", "key1", 200))
        .await
        .unwrap();
    s.insert_token(&tok("b1", "imp2", "key2", 100))
        .await
        .unwrap();
    // Revoking imp1 leaves imp2's token alone.
    assert_eq!(s.revoke_tokens("imp1").await.unwrap(), 2);
    assert!(s.get_token("a1").await.unwrap().is_none());
    assert!(s.current_token("key1", 0).await.unwrap().is_none());
    assert!(s.get_token("b1").await.unwrap().is_some());
    // Rotation replaces the hash and deletes the merchant's tokens together.
    s.insert_token(&tok("a3", "imp1", "key1", 300))
        .await
        .unwrap();
    assert!(s.rotate_secret("imp1", "v1$new").await.unwrap());
    assert_eq!(
        s.get_merchant("imp1").await.unwrap().unwrap().secret_hash,
        "v1$new"
    );
    assert!(s.get_token("a3").await.unwrap().is_none());
    assert!(s.get_token("b1").await.unwrap().is_some());
    assert!(!s.rotate_secret("nobody", "v1$x").await.unwrap());
    // Expiry deletes in bounded batches, only what expired before the cut.
    for i in 0..5 {
        s.insert_token(&tok(&format!("e{i}"), "imp2", "key2", 10 + i))
            .await
            .unwrap();
    }
    assert_eq!(s.delete_expired_tokens(13, 2).await.unwrap(), 2);
    assert_eq!(s.delete_expired_tokens(13, 2).await.unwrap(), 1);
    assert_eq!(s.delete_expired_tokens(13, 2).await.unwrap(), 0);
    assert!(s.get_token("e3").await.unwrap().is_some());
    assert!(s.get_token("b1").await.unwrap().is_some());
}
on_both!(
    tokens_revocation_rotation_expiry,
    tokens_revoked_rotated_and_expired
);

async fn payments_guard_and_settle(s: Arc<dyn Store>) {
    seed(&s).await;
    s.insert_payment(&attempt("imp_a", "imp1", "o1", 1000, 10))
        .await
        .unwrap();
    // The guard: a second in-flight attempt for the same merchant_uid is refused…
    assert!(matches!(
        s.insert_payment(&attempt("imp_b", "imp1", "o1", 1000, 11))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // …but another merchant's, or an unguarded (window) row, is fine.
    s.insert_payment(&attempt("imp_c", "imp2", "o1", 1000, 11))
        .await
        .unwrap();
    let mut window = Payment::new("imp_w".into(), "imp1".into(), "o1".into(), 1000, 12);
    window.pay_method = Some("card".into());
    s.insert_payment(&window).await.unwrap();
    assert_eq!(
        s.locked_payment("imp1", "o1")
            .await
            .unwrap()
            .unwrap()
            .imp_uid,
        "imp_a"
    );
    assert!(matches!(
        s.lock_for_pg("imp_w", 13).await,
        Err(StoreError::Conflict(_))
    ));

    // Unknown keeps the row ready and locked, and due for the reconciler.
    let p = s
        .settle(
            "imp_a",
            &Settlement::Unknown {
                told_failed: false,
                next_reconcile_at: 20,
            },
            14,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (p.status.as_str(), p.pg_state, p.uid_lock),
        ("ready", PgState::Unknown, true)
    );
    assert!(s.list_unsettled(19, 0, 10).await.unwrap().is_empty());
    assert_eq!(
        s.list_unsettled(20, 0, 10).await.unwrap()[0].imp_uid,
        "imp_a"
    );

    // Paid, with its outbox event in the same transaction.
    let ev = OutboxEvent {
        id: "e1".into(),
        merchant_id: "imp1".into(),
        imp_uid: "imp_a".into(),
        merchant_uid: "o1".into(),
        status: PaymentStatus::Paid,
        cancellation_id: None,
        notice_urls: None,
        created_at: 15,
    };
    let p = s.settle("imp_a", &paid(15), 15, &[ev]).await.unwrap();
    assert_eq!(
        (p.status.as_str(), p.paid_at, p.card_code.as_deref()),
        ("paid", 15, Some("366"))
    );
    // Settling twice is refused: the row moved on.
    assert!(matches!(
        s.settle("imp_a", &paid(16), 16, &[]).await,
        Err(StoreError::Stale(_))
    ));
    assert!(matches!(
        s.settle(
            "imp_a",
            &Settlement::Failed {
                reason: "x".into(),
                failed_at: 16
            },
            16,
            &[]
        )
        .await,
        Err(StoreError::Stale(_))
    ));

    // A failure releases the guard.
    s.insert_payment(&attempt("imp_d", "imp1", "o2", 500, 20))
        .await
        .unwrap();
    let f = s
        .settle(
            "imp_d",
            &Settlement::Failed {
                reason: "declined".into(),
                failed_at: 21,
            },
            21,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (f.status.as_str(), f.uid_lock, f.failed_at),
        ("failed", false, 21)
    );
    s.insert_payment(&attempt("imp_e", "imp1", "o2", 500, 22))
        .await
        .unwrap();

    // Window flow: take the guard for a ready row once the other attempt is gone.
    s.insert_payment(&Payment::new(
        "imp_w2".into(),
        "imp1".into(),
        "o3".into(),
        100,
        30,
    ))
    .await
    .unwrap();
    let l = s.lock_for_pg("imp_w2", 31).await.unwrap();
    assert_eq!((l.uid_lock, l.pg_state), (true, PgState::InFlight));
    assert!(matches!(
        s.lock_for_pg("imp_w2", 32).await,
        Err(StoreError::Stale(_))
    ));

    // Stale in-flight rows are listed for crash recovery.
    let stale = s.list_unsettled(1000, 100, 10).await.unwrap();
    assert!(stale.iter().any(|p| p.imp_uid == "imp_e"));
    assert!(stale.iter().any(|p| p.imp_uid == "imp_w2"));
    s.insert_events(&[OutboxEvent {
        id: "e2".into(),
        merchant_id: "imp1".into(),
        imp_uid: "imp_a".into(),
        merchant_uid: "o1".into(),
        status: PaymentStatus::Paid,
        cancellation_id: None,
        notice_urls: None,
        created_at: 40,
    }])
    .await
    .unwrap();
    // Tenant scoping of reads.
    assert!(s
        .get_payment(Some("imp2"), "imp_a")
        .await
        .unwrap()
        .is_none());
    assert!(s
        .get_payment(Some("imp1"), "imp_a")
        .await
        .unwrap()
        .is_some());
    assert!(s.get_payment(None, "imp_a").await.unwrap().is_some());
}
on_both!(payments_guard_and_settlement, payments_guard_and_settle);

/// A store whose writes were closed (shutdown) answers `Unavailable` — retryable, and never
/// `Stale`, which callers read as "the row moved on" (issue #21).
async fn closed_writes(s: Arc<dyn Store>) {
    seed(&s).await;
    s.insert_payment(&attempt("imp_w", "imp1", "ow", 1000, 10))
        .await
        .unwrap();
    s.close_writes();
    let settled = s.settle("imp_w", &paid(15), 15, &[]).await;
    assert!(
        matches!(&settled, Err(StoreError::Unavailable(_))),
        "{settled:?}"
    );
    assert!(settled.err().is_some_and(|e| e.is_retryable()));
    let inserted = s
        .insert_payment(&attempt("imp_x", "imp1", "ox", 1000, 20))
        .await;
    assert!(
        matches!(&inserted, Err(StoreError::Unavailable(_))),
        "{inserted:?}"
    );
    // Nothing was decided: the attempt is still awaiting its answer, reads still work.
    let p = s.get_payment(None, "imp_w").await.unwrap().unwrap();
    assert_eq!(p.status.as_str(), "ready");
}
on_both!(closed_writes_are_unavailable_not_stale, closed_writes);

async fn payment_queries(s: Arc<dyn Store>) {
    seed(&s).await;
    for i in 0..5i64 {
        let imp = format!("imp_{i}");
        s.insert_payment(&attempt(
            &imp,
            "imp1",
            &format!("o{}", i % 2),
            100 * (i + 1),
            100 + i,
        ))
        .await
        .unwrap_or(());
        if i % 2 == 0 {
            let _ = s.settle(&imp, &paid(200 + i), 200 + i, &[]).await;
        } else {
            let _ = s
                .settle(
                    &imp,
                    &Settlement::Failed {
                        reason: "no".into(),
                        failed_at: 300 + i,
                    },
                    300 + i,
                    &[],
                )
                .await;
        }
    }
    let q = PaymentQuery {
        status: None,
        sorting: Sorting::default(),
        offset: 0,
        limit: 10,
    };
    let all = s.list_by_status("imp1", 0, 1000, &q).await.unwrap();
    assert!(all.total >= 2);
    let newest_first: Vec<i64> = all.items.iter().map(|p| p.started_at).collect();
    assert!(newest_first.windows(2).all(|w| w[0] >= w[1]));
    let q_paid = PaymentQuery {
        status: Some(PaymentStatus::Paid),
        sorting: Sorting::Paid { desc: false },
        offset: 0,
        limit: 10,
    };
    let paid_page = s.list_by_status("imp1", 200, 210, &q_paid).await.unwrap();
    assert!(paid_page
        .items
        .iter()
        .all(|p| p.status.as_str() == "paid" && (200..=210).contains(&p.paid_at)));
    let q1 = PaymentQuery {
        status: None,
        sorting: Sorting::default(),
        offset: 0,
        limit: 1,
    };
    let page = s.find_by_merchant_uid("imp1", "o0", &q1).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let many = s
        .get_many(
            "imp1",
            &["imp_0".to_string(), "nope".to_string()],
            &["o0".to_string()],
        )
        .await
        .unwrap();
    assert!(many.iter().any(|p| p.imp_uid == "imp_0"));
    assert!(s
        .get_many("imp2", &["imp_0".to_string()], &[])
        .await
        .unwrap()
        .is_empty());
}
on_both!(payment_lookups, payment_queries);

async fn customers_and_idempotency(s: Arc<dyn Store>) {
    seed(&s).await;
    let mut c = Customer {
        billing_key: "bk_1".into(),
        customer_name: Some("홍".into()),
        inserted: 10,
        updated: 10,
        ..customer("imp1", "cu", "mid")
    };
    s.upsert_customer(&c).await.unwrap();
    c.billing_key = "bk_2".into();
    c.inserted = 20;
    c.updated = 20;
    let r = s.upsert_customer(&c).await.unwrap();
    assert_eq!(
        (r.billing_key.as_str(), r.inserted, r.updated),
        ("bk_2", 10, 20)
    );
    assert!(s.get_customer("imp2", "cu").await.unwrap().is_none());
    assert_eq!(
        s.get_customers("imp1", &["cu".into(), "x".into()])
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.delete_customer("imp1", "cu")
            .await
            .unwrap()
            .unwrap()
            .billing_key,
        "bk_2"
    );
    assert!(s.delete_customer("imp1", "cu").await.unwrap().is_none());

    assert_eq!(
        s.idem_begin("imp1", "k", "h1", 100).await.unwrap(),
        IdemBegin::Started
    );
    assert_eq!(
        s.idem_begin("imp1", "k", "h1", 101).await.unwrap(),
        IdemBegin::InFlight {
            request_hash: "h1".into()
        }
    );
    assert_eq!(
        s.idem_begin("imp2", "k", "h9", 101).await.unwrap(),
        IdemBegin::Started
    );
    s.idem_finish("imp1", "k", 200, "{\"code\":0}")
        .await
        .unwrap();
    assert_eq!(
        s.idem_begin("imp1", "k", "h2", 102).await.unwrap(),
        IdemBegin::Done {
            request_hash: "h1".into(),
            http_status: 200,
            body: "{\"code\":0}".into()
        }
    );
    s.idem_abort("imp2", "k").await.unwrap();
    assert_eq!(
        s.idem_begin("imp2", "k", "h9", 103).await.unwrap(),
        IdemBegin::Started
    );
    assert_eq!(s.idem_purge(101).await.unwrap(), 1);
}
on_both!(customers_and_idempotency_keys, customers_and_idempotency);

fn due(m: &str, uid: &str, at: i64) -> Schedule {
    Schedule::new(m, uid, "cu", at, 1000, 1)
}

fn finish(m: &str, uid: &str, attempt: &str, status: &str) -> ScheduleFinish {
    ScheduleFinish {
        merchant_id: m.into(),
        merchant_uid: uid.into(),
        attempt: attempt.into(),
        outcome: ScheduleOutcome {
            imp_uid: Some(attempt.into()),
            payment_status: status.parse().unwrap(),
            fail_reason: (status == "failed").then(|| "declined".into()),
            executed_at: 50,
        },
        events: vec![],
    }
}

/// The scheduler's batched statements: a claim fixes fresh execution imp_uids on rows that have
/// none (a re-claimed row keeps its own), claims never overlap, and a batched finish records only
/// rows still running with the named attempt.
async fn schedule_claims(s: Arc<dyn Store>) {
    seed(&s).await;
    let rows: Vec<Schedule> = (0..5)
        .map(|i| due("imp1", &format!("s{i}"), 10 + i))
        .chain([due("imp1", "later", 1000)])
        .collect();
    s.insert_schedules(&rows).await.unwrap();
    // Fresh ids of different lengths: each claimed row gets exactly one of them, unpadded.
    let ids: Vec<String> = vec!["imp_a".into(), "imp_bbbbbbb".into(), "imp_cc".into()];
    let first = s.claim_due_schedules(100, 200, &ids).await.unwrap();
    assert_eq!(first.len(), 3);
    let mut got: Vec<String> = first
        .iter()
        .map(|r| r.attempt_imp_uid.clone().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, ids);
    assert!(first
        .iter()
        .all(|r| r.run_state == RunState::Running && r.lease_until == 200));
    // A second claim gets only the two other due rows (the lease holds; "later" is not due).
    let more: Vec<String> = (0..4).map(|i| format!("imp_x{i}")).collect();
    let second = s.claim_due_schedules(100, 200, &more).await.unwrap();
    assert_eq!(second.len(), 2);
    let firsts: Vec<&str> = first.iter().map(|r| r.merchant_uid.as_str()).collect();
    assert!(second
        .iter()
        .all(|r| !firsts.contains(&r.merchant_uid.as_str())));
    assert!(s
        .claim_due_schedules(100, 200, &more)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .claim_due_schedules(100, 200, &[])
        .await
        .unwrap()
        .is_empty());
    // Leases run out: a re-claim keeps each row's execution imp_uid.
    let again = s.claim_due_schedules(300, 400, &more).await.unwrap();
    assert_eq!(again.len(), 4);
    for r in &again {
        let before = first
            .iter()
            .chain(&second)
            .find(|b| b.merchant_uid == r.merchant_uid)
            .unwrap();
        assert_eq!(r.attempt_imp_uid, before.attempt_imp_uid);
    }
    // One batch: a right attempt is recorded, a wrong attempt and an unknown row are left alone.
    let a0 = again[0].attempt_imp_uid.clone().unwrap();
    let a1 = again[1].attempt_imp_uid.clone().unwrap();
    let done = s
        .finish_schedules(
            &[
                finish("imp1", &again[0].merchant_uid, &a0, "paid"),
                finish("imp1", &again[1].merchant_uid, &a1, "failed"),
                finish("imp1", &again[2].merchant_uid, "imp_wrong", "paid"),
                finish("imp1", "nope", "imp_a", "paid"),
            ],
            60,
        )
        .await
        .unwrap();
    assert_eq!(done.len(), 2);
    let paid = done
        .iter()
        .find(|d| d.merchant_uid == again[0].merchant_uid)
        .unwrap();
    assert_eq!(
        (
            paid.schedule_status.as_str(),
            paid.payment_status.map(PaymentStatus::as_str),
            paid.imp_uid.as_deref(),
            paid.executed_at,
            paid.run_state.as_str()
        ),
        ("executed", Some("paid"), Some(a0.as_str()), 50, "idle")
    );
    let failed = s
        .get_schedule("imp1", &again[1].merchant_uid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.fail_reason.as_deref(), Some("declined"));
    let left = s
        .get_schedule("imp1", &again[2].merchant_uid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (left.schedule_status.as_str(), left.run_state.as_str()),
        ("scheduled", "running")
    );
    // Recording twice does nothing.
    assert!(s
        .finish_schedules(&[finish("imp1", &again[0].merchant_uid, &a0, "paid")], 70)
        .await
        .unwrap()
        .is_empty());
}
on_both!(schedule_claims_and_batched_finish, schedule_claims);

/// The batched charge context: one answer per key, in order, `None` for an unknown customer.
async fn charge_contexts(s: Arc<dyn Store>) {
    seed(&s).await;
    s.add_channel(&channel("c1", "imp1", "mid1", true))
        .await
        .unwrap();
    for uid in ["cu", "cv"] {
        s.upsert_customer(&customer("imp1", uid, "mid1"))
            .await
            .unwrap();
    }
    let key = |m: &str, c: &str, u: &str| (m.to_owned(), c.to_owned(), u.to_owned());
    let got = s
        .charge_contexts(&[
            key("imp1", "cv", "o1"),
            key("imp2", "cu", "o2"),
            key("imp1", "nobody", "o3"),
            key("imp1", "cu", "o4"),
        ])
        .await
        .unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].as_ref().unwrap().customer.billing_key, "bk_cv");
    assert!(got[1].is_none(), "another merchant's customer");
    assert!(got[2].is_none());
    let last = got[3].as_ref().unwrap();
    assert_eq!(last.customer.billing_key, "bk_cu");
    assert_eq!(last.channel.as_ref().unwrap().mid, "mid1");
    assert!(last.prepared.is_none());
    assert!(s.charge_contexts(&[]).await.unwrap().is_empty());
    // Single reads at once (PostgreSQL answers concurrent ones with one statement): each gets
    // the answer for its own key, a pre-registration included.
    s.insert_prepare(&prepared("imp1", "o7", 7000))
        .await
        .unwrap();
    let mut reads = tokio::task::JoinSet::new();
    for n in 0..60 {
        let s = s.clone();
        reads.spawn(async move {
            let (c, u) = match n % 3 {
                0 => ("cu", format!("o{n}")),
                1 => ("cv", "o7".to_owned()),
                _ => ("nobody", format!("o{n}")),
            };
            (n, s.charge_context("imp1", c, &u).await.unwrap())
        });
    }
    while let Some(done) = reads.join_next().await {
        let (n, got) = done.unwrap();
        match n % 3 {
            0 => {
                let ctx = got.expect("a known customer");
                assert_eq!(ctx.customer.billing_key, "bk_cu");
                assert!(ctx.prepared.is_none());
            }
            1 => {
                let ctx = got.expect("a known customer");
                assert_eq!(ctx.customer.billing_key, "bk_cv");
                assert_eq!(ctx.prepared.expect("o7 is pre-registered").amount, 7000);
            }
            _ => assert!(got.is_none(), "read {n}: an unknown customer"),
        }
    }
    // The other reads of a charge, concurrently too (`onetime`: channels and pre-registration).
    s.add_channel(&channel("c2", "imp1", "mid2", false))
        .await
        .unwrap();
    let mut reads = tokio::task::JoinSet::new();
    for n in 0..60 {
        let s = s.clone();
        reads.spawn(async move {
            let m = if n % 2 == 0 { "imp1" } else { "imp2" };
            let u = if n % 3 == 0 { "o7" } else { "o8" };
            let channels = s.list_channels(Some(m)).await.unwrap();
            let prepared = s.get_prepare(m, u).await.unwrap();
            (m, u, channels, prepared)
        });
    }
    while let Some(done) = reads.join_next().await {
        let (m, u, channels, prepared) = done.unwrap();
        let mids: Vec<&str> = channels.iter().map(|c| c.mid.as_str()).collect();
        if m == "imp1" {
            assert_eq!(mids, ["mid1", "mid2"], "in list_channels' order");
        } else {
            assert!(mids.is_empty(), "{m} has no channel: {mids:?}");
        }
        match (m, u) {
            ("imp1", "o7") => assert_eq!(prepared.expect("o7 is pre-registered").amount, 7000),
            _ => assert!(prepared.is_none(), "{m}/{u}"),
        }
    }
}
on_both!(batched_charge_contexts, charge_contexts);

/// The store's part of a billing-key charge: `again` reads the key, its channel and the
/// merchant_uid's pre-registration (`charge_context`, batched with concurrent reads on
/// PostgreSQL), decides the attempt itself (`engine::attempt::keyed`, not the store) and the
/// store only guards its insert. Concurrent keyed charges read what the rule needs — nothing
/// for an unknown customer, another merchant's included; the pre-registered amount as
/// registered — and their inserts share batches with plain ones, each stored as given, the
/// merchant_uid guard refusing a taken one.
async fn keyed_attempts(s: Arc<dyn Store>) {
    seed(&s).await;
    s.add_channel(&channel("c1", "imp1", "mid1", true))
        .await
        .unwrap();
    let mut c = Customer {
        customer_name: Some("홍길동".into()),
        customer_tel: Some("010-1234-5678".into()),
        ..customer("imp1", "ku", "mid1")
    };
    s.upsert_customer(&c).await.unwrap();
    c.merchant_id = "imp2".into();
    c.customer_uid = "other".into();
    s.upsert_customer(&c).await.unwrap();
    s.insert_prepare(&prepared("imp1", "kp-ok", 1000))
        .await
        .unwrap();
    s.insert_prepare(&prepared("imp1", "kp-bad", 999))
        .await
        .unwrap();
    s.insert_payment(&attempt("imp_holder", "imp1", "k-taken", 1000, 40))
        .await
        .unwrap();

    // (merchant, customer_uid, merchant_uid, the key is found, pre-registered amount,
    // inserted), all at once, with plain inserts between them.
    let cases = [
        ("imp1", "ku", "k-1", true, None, true),
        ("imp1", "ku", "k-2", true, None, true),
        ("imp1", "nobody", "k-3", false, None, false),
        ("imp1", "other", "k-4", false, None, false),
        ("imp1", "ku", "kp-ok", true, Some(1000), true),
        ("imp1", "ku", "kp-bad", true, Some(999), true),
        ("imp1", "ku", "k-taken", true, None, false),
    ];
    let mut jobs = tokio::task::JoinSet::new();
    for (n, (m, cu, uid, ..)) in cases.iter().enumerate() {
        let keyed = s.clone();
        let (m, cu, uid) = (m.to_string(), cu.to_string(), uid.to_string());
        jobs.spawn(async move {
            let ctx = keyed.charge_context(&m, &cu, &uid).await.unwrap();
            // The attempt as decided outside the store: here, from whatever was read.
            let mut p = attempt(&format!("imp_k{n}"), &m, &uid, 1000, 40);
            p.customer_uid_usage = Some("payment".into());
            let inserted = match &ctx {
                Some(ctx) => {
                    let ch = ctx.channel.as_ref().expect("the key's channel");
                    p.channel_id = Some(ch.id.clone());
                    p.pg_id = Some(ch.mid.clone());
                    p.customer_uid = Some(ctx.customer.customer_uid.clone());
                    p.card_number = ctx.customer.card_number.clone();
                    p.buyer_name = ctx.customer.customer_name.clone();
                    match keyed.insert_payment(&p).await {
                        Ok(()) => true,
                        Err(StoreError::Conflict(_)) => false,
                        Err(e) => panic!("{uid}: {e}"),
                    }
                }
                None => false,
            };
            (n, Some((ctx, p, inserted)))
        });
        let s = s.clone();
        let plain = attempt(
            &format!("imp_plain{n}"),
            "imp1",
            &format!("plain-{n}"),
            500,
            40,
        );
        jobs.spawn(async move {
            s.insert_payment(&plain).await.unwrap();
            (usize::MAX, None)
        });
    }
    while let Some(done) = jobs.join_next().await {
        let (n, Some((ctx, p, inserted))) = done.unwrap() else {
            continue;
        };
        let (_, _, uid, found, prepared_amount, want_inserted) = cases[n];
        assert_eq!(ctx.is_some(), found, "{uid}: the key was (not) found");
        assert_eq!(inserted, want_inserted, "{uid}: inserted");
        let stored = s.get_payment(None, &p.imp_uid).await.unwrap();
        if let Some(ctx) = &ctx {
            assert_eq!(ctx.customer.billing_key, "bk_ku");
            assert_eq!(ctx.customer.card_code.as_deref(), Some("366"));
            assert_eq!(ctx.customer.customer_tel.as_deref(), Some("010-1234-5678"));
            let ch = ctx.channel.as_ref().unwrap();
            assert_eq!((ch.id.as_str(), ch.mid.as_str()), ("c1", "mid1"));
            assert_eq!(ctx.prepared.as_ref().map(|pp| pp.amount), prepared_amount);
        }
        if !inserted {
            assert!(stored.is_none(), "{uid}: a row was written");
            continue;
        }
        assert_eq!(stored.as_ref(), Some(&p), "{uid}: stored as given");
    }
    // The guard's holder is untouched; the plain inserts of the same batches went in as they were.
    let holder = s.get_payment(None, "imp_holder").await.unwrap().unwrap();
    assert_eq!(holder.merchant_uid, "k-taken");
    for n in 0..cases.len() {
        let p = s
            .get_payment(Some("imp1"), &format!("imp_plain{n}"))
            .await
            .unwrap();
        assert_eq!(p.map(|p| (p.amount, p.channel_id)), Some((500, None)));
    }
}

on_both!(keyed_attempt_inserts, keyed_attempts);

/// The status an event of a settle announces; an unknown outcome's attempt stays `ready`.
fn announced(how: &str) -> PaymentStatus {
    if how == "unknown" {
        PaymentStatus::Ready
    } else {
        how.parse().unwrap()
    }
}

fn event(id: String, imp_uid: &str, merchant_uid: &str, status: &str) -> OutboxEvent {
    OutboxEvent {
        id,
        merchant_id: "imp1".into(),
        imp_uid: imp_uid.into(),
        merchant_uid: merchant_uid.into(),
        status: announced(status),
        cancellation_id: None,
        notice_urls: None,
        created_at: 50,
    }
}

/// Concurrent charge writes, which the group-commit writers apply in batches (on PostgreSQL a
/// batch's inserts, approvals, declines and events are one statement): each write gets the
/// answer it would get alone, and a batch holding two settles of one attempt applies only the
/// first.
async fn batched_charge_writes(s: Arc<dyn Store>) {
    seed(&s).await;
    // 40 attempts, and for the first 5 merchant_uids a rival attempt at the same time: one of
    // each pair gets the guard.
    let mut inserts = tokio::task::JoinSet::new();
    for n in 0..45 {
        let s = s.clone();
        inserts.spawn(async move {
            let (imp, uid) = match n {
                0..40 => (format!("imp_b{n}"), format!("ob{n}")),
                _ => (format!("imp_x{n}"), format!("ob{}", n - 40)),
            };
            let r = s
                .insert_payment(&attempt(&imp, "imp1", &uid, 1000, 40))
                .await;
            (uid, imp, r)
        });
    }
    let mut holder = std::collections::HashMap::new();
    while let Some(done) = inserts.join_next().await {
        let (uid, imp, r) = done.unwrap();
        match r {
            Ok(_) => assert!(
                holder.insert(uid, imp).is_none(),
                "two attempts hold one guard"
            ),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{imp}: {e}"),
        }
    }
    assert_eq!(
        holder.len(),
        40,
        "every merchant_uid has exactly one attempt"
    );

    // Settles: 0..10 paid, 10..20 failed, 20..25 unknown, 25..30 paid twice at once, 30..35
    // failed and paid at once; 35..40 stay in flight. Each settle carries its own event.
    let mut settles = tokio::task::JoinSet::new();
    for n in 0..45usize {
        let s = s.clone();
        let (k, how) = match n {
            0..10 => (n, "paid"),
            10..20 => (n, "failed"),
            20..25 => (n, "unknown"),
            25..35 => (n, if n < 30 { "paid" } else { "failed" }),
            _ => (n - 10, "paid"), // the second settle of 25..35
        };
        let uid = format!("ob{k}");
        let imp = holder[&uid].clone();
        settles.spawn(async move {
            let st = match how {
                "paid" => paid(50),
                "failed" => Settlement::Failed {
                    reason: "declined".into(),
                    failed_at: 50,
                },
                _ => Settlement::Unknown {
                    told_failed: false,
                    next_reconcile_at: 60,
                },
            };
            let ev = event(format!("ev{n}"), &imp, &uid, how);
            (k, how, s.settle(&imp, &st, 50, &[ev]).await)
        });
    }
    let mut winners = std::collections::HashMap::new();
    while let Some(done) = settles.join_next().await {
        let (k, how, r) = done.unwrap();
        match r {
            Ok(p) => {
                let want = if how == "unknown" { "ready" } else { how };
                assert_eq!(p.status.as_str(), want, "ob{k}");
                assert!(winners.insert(k, how).is_none(), "ob{k} settled twice");
            }
            Err(StoreError::Stale(_)) => assert!((25..35).contains(&k), "ob{k}: {how} refused"),
            Err(e) => panic!("ob{k}: {e}"),
        }
    }
    assert_eq!(winners.len(), 35, "one settle of each of ob0..ob34 applied");

    for k in 0..40 {
        let uid = format!("ob{k}");
        let p = s
            .get_payment(Some("imp1"), &holder[&uid])
            .await
            .unwrap()
            .unwrap();
        let events = s
            .list_events("imp1", Some(&holder[&uid]), 10)
            .await
            .unwrap();
        match winners.get(&k) {
            None => {
                assert_eq!(p.status.as_str(), "ready", "{uid}");
                assert!(events.is_empty(), "{uid}: an event without a settle");
            }
            Some(how) => {
                let status = if *how == "unknown" { "ready" } else { how };
                assert_eq!(p.status.as_str(), status, "{uid}");
                assert_eq!(p.uid_lock, *how != "failed", "{uid}");
                assert_eq!(events.len(), 1, "{uid}: the winner's event only");
                assert_eq!(events[0].event.status, announced(how), "{uid}");
                assert_eq!(
                    events[0].state,
                    DeliveryState::Skipped,
                    "{uid}: no webhook target"
                );
            }
        }
    }
    // The reconciler sees exactly the unknown (due at 60) and the in-flight attempts.
    let mut open: Vec<String> = s
        .list_unsettled(60, 41, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.merchant_uid)
        .collect();
    open.sort_by_key(|u| u[2..].parse::<u32>().unwrap());
    let want: Vec<String> = (20..25).chain(35..40).map(|k| format!("ob{k}")).collect();
    assert_eq!(open, want);
}
on_both!(batched_charge_writes_answer_as_alone, batched_charge_writes);

/// Columns a settle writes (`payments::settle_sql`, `pg_batch::batch_sql`). No index of
/// payments may name one, as a key or in a predicate: PostgreSQL then updates the row in place
/// on its page (HOT) without touching any index, and SQLite rewrites no index entry. (An
/// approval also writes `uid_lock`, named by the guard's predicate, but keeps its value.)
const SETTLE_WRITES: &[&str] = &[
    "status",
    "pg_state",
    "updated_at",
    "pg_tid",
    "apply_num",
    "paid_at",
    "card_code",
    "card_name",
    "card_number",
    "card_type",
    "card_quota",
    "bank_code",
    "bank_name",
    "receipt_url",
    "fail_reason",
    "failed_at",
    "told_failed",
    "next_reconcile_at",
    "reconcile_attempts",
];

fn assert_no_index_names_a_settle_column(defs: &[String]) {
    assert!(defs.len() >= 5, "the payments indexes: {defs:?}");
    for def in defs {
        let words: Vec<&str> = def
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        for col in SETTLE_WRITES {
            assert!(!words.contains(col), "{def} names {col}");
        }
    }
}

#[tokio::test]
async fn a_settle_changes_no_indexed_column() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    connect(&url, true).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let defs: Vec<String> = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'payments' AND sql IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_no_index_names_a_settle_column(&defs);
    let Ok(base) = std::env::var("PIER_TEST_DATABASE_URL") else {
        return;
    };
    let (schema, url) = fresh_pg_schema(&base).await;
    connect(&url, true).await.unwrap();
    let pool = sqlx::PgPool::connect(&base).await.unwrap();
    let defs: Vec<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'payments'",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_no_index_names_a_settle_column(&defs);
    // And the settle's new row version has room on its page.
    let opts: Option<Vec<String>> = sqlx::query_scalar(
        "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = 'payments'",
    )
    .bind(&schema)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(opts, Some(vec!["fillfactor=40".to_owned()]));
}

/// The in-memory SQLite store has no fast lane: the batched statements run on sqlx there.
#[tokio::test]
async fn in_memory_sqlite_runs_the_batched_statements() {
    let (s, _) = connect("sqlite::memory:", true).await.unwrap();
    schedule_claims(s).await;
    let (s, _) = connect("sqlite::memory:", true).await.unwrap();
    charge_contexts(s).await;
    let (s, _) = connect("sqlite::memory:", true).await.unwrap();
    batched_charge_writes(s).await;
}

/// SQLite's automatic checkpoint is off on the writer's connection (`lane::Checkpointer` copies
/// the WAL back on its own thread): the WAL must still be copied back and start over, so it
/// stays bounded under a steady stream of writes, and nothing written is lost.
#[tokio::test]
async fn the_sqlite_wal_is_copied_back_and_starts_over() {
    let (s, dir) = sqlite().await;
    seed(&s).await;
    let wal = dir.path().join("s.db-wal");
    let mut tasks = Vec::new();
    for t in 0..32 {
        let (s, wal) = (s.clone(), wal.clone());
        tasks.push(tokio::spawn(async move {
            let mut peak = 0;
            for i in 0..100 {
                let imp = format!("imp_{:012}", (i * 7_919 + t * 104_729) % 1_000_000_007);
                let uid = format!("w{t}-{i}");
                s.insert_payment(&attempt(&imp, "imp1", &uid, 1000, 10))
                    .await
                    .unwrap();
                let ev = OutboxEvent {
                    id: format!("e-{imp}"),
                    merchant_id: "imp1".into(),
                    imp_uid: imp.clone(),
                    merchant_uid: uid,
                    status: PaymentStatus::Paid,
                    cancellation_id: None,
                    notice_urls: None,
                    created_at: 11,
                };
                s.settle(&imp, &paid(11), 11, &[ev]).await.unwrap();
                peak = peak.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            }
            peak
        }));
    }
    let mut peak = 0;
    for t in tasks {
        peak = peak.max(t.await.unwrap());
    }
    // 3,200 payments with their events write well over 10,000 frames of 4 KiB (> 40 MB) in
    // all; the WAL restarts after about 4,000 (lane::WAL_RESTART_FRAMES).
    let frame = 4096 + 24;
    assert!(peak > 0, "the database is in WAL mode");
    assert!(
        peak < 7_000 * frame,
        "the WAL grew to {peak} bytes: it is not being copied back and restarted"
    );
    let pool = sqlx::SqlitePool::connect(&sqlite_url(&dir)).await.unwrap();
    let paid: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payments WHERE status = 'paid' AND merchant_id = 'imp1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE id LIKE 'e-imp_%'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((paid, events), (3_200, 3_200));
}

/// The webhook claim leaves out the merchants the dispatcher names busy (those at their share of
/// delivery slots), and a released row (no attempt counted) is claimable again at once.
async fn webhook_claims_except_busy_merchants(s: Arc<dyn Store>) {
    seed(&s).await;
    let mut events = Vec::new();
    for i in 0..5 {
        events.push(event(format!("ev_a{i}"), &format!("imp_a{i}"), "a", "paid"));
    }
    let mut b = event("ev_b0".into(), "imp_b0", "b", "paid");
    b.merchant_id = "imp2".into();
    b.created_at = 60; // due after every one of imp1's events
    events.push(b);
    for e in &mut events {
        // A target, so the events are born pending (not skipped).
        e.notice_urls = Some(r#"["https://hook.example/"]"#.into());
    }
    s.insert_events(&events).await.unwrap();
    // imp1 busy: its older events are passed over, imp2's is leased.
    let got = s
        .claim_events(100, 200, 3, &["imp1".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|r| r.event.id.as_str()).collect::<Vec<_>>(),
        vec!["ev_b0"]
    );
    // Nobody busy: imp1's oldest come first.
    let got = s.claim_events(100, 200, 2, &[]).await.unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.event.merchant_id == "imp1"));
    // Given back untouched, a row is due again with no attempt counted.
    let r = &got[0];
    let u = EventUpdate {
        state: DeliveryState::Pending,
        attempts: r.attempts,
        next_attempt_at: r.next_attempt_at,
        last_error: r.last_error.clone(),
    };
    assert!(s
        .record_attempt(&r.event.id, r.leased_until, &[], &u)
        .await
        .unwrap());
    let again = s.claim_events(100, 200, 10, &[]).await.unwrap();
    assert_eq!(again.len(), 4, "the released row and the 3 never claimed");
    assert!(again
        .iter()
        .any(|x| x.event.id == r.event.id && x.attempts == 0));
}
on_both!(
    webhook_claims_leave_out_busy_merchants,
    webhook_claims_except_busy_merchants
);

/// Every text column compares bytewise on PostgreSQL, also on a database upgraded from before
/// 0020/0030/0031 (which then ran after 1008): 1010 converts what they added.
#[tokio::test]
async fn postgres_text_columns_are_bytewise_after_an_upgrade() {
    let Ok(base) = std::env::var("PIER_TEST_DATABASE_URL") else {
        return;
    };
    let (schema, url) = fresh_pg_schema(&base).await;
    connect(&url, true).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let not_c = |pool: sqlx::PgPool, schema: String| async move {
        let cols: Vec<String> = sqlx::query_scalar(
            "SELECT table_name || '.' || column_name FROM information_schema.columns \
             WHERE table_schema = $1 AND data_type = 'text' AND table_name <> '_sqlx_migrations' \
               AND collation_name IS DISTINCT FROM 'C' ORDER BY 1",
        )
        .bind(&schema)
        .fetch_all(&pool)
        .await
        .unwrap();
        cols
    };
    assert_eq!(
        not_c(pool.clone(), schema.clone()).await,
        Vec::<String>::new()
    );
    // As if 0020/0030/0031 had come after 1008: their columns at the default collation, 1010 not
    // yet applied.
    for (table, column) in [
        ("tokens", "nonce"),
        ("channels", "secret_sealed"),
        ("cash_receipts", "identifier_masked"),
        ("escrow_logis", "invoice"),
    ] {
        sqlx::query(&format!(
            "ALTER TABLE {table} ALTER COLUMN {column} TYPE text COLLATE \"default\""
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 1010")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(not_c(pool.clone(), schema.clone()).await.len(), 4);
    pool.close().await;
    connect(&url, true).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    assert_eq!(not_c(pool, schema).await, Vec::<String>::new());
}
