//! The test PG's shared journal in the store: conflict-checked appends and retention
//! (`testpg_prune`), on SQLite and, when `PIER_TEST_DATABASE_URL` is set, PostgreSQL.

use pier_store::*;
use std::sync::Arc;

async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("s.db").display());
    let (s, _) = connect(&url, true).await.unwrap();
    (s, dir)
}

async fn postgres() -> Option<Arc<dyn Store>> {
    let base = std::env::var("PIER_TEST_DATABASE_URL").ok()?;
    let schema = format!("tpj_{}", pier_domain::ids::random_hex(6));
    let pool = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Some(connect(&url, true).await.unwrap().0)
}

fn entry(subject: &str, kind: &str, n: i64) -> (String, String) {
    (
        subject.to_owned(),
        format!("{{\"t\":\"{kind}\",\"n\":{n}}}"),
    )
}

async fn all(s: &Arc<dyn Store>) -> Vec<(i64, String)> {
    s.testpg_read_after(0, 1000, None)
        .await
        .unwrap()
        .into_iter()
        .map(|(seq, _, body)| (seq, body))
        .collect()
}

async fn retention(s: Arc<dyn Store>) {
    let ops: Vec<JournalAppend> = vec![
        JournalAppend::new(0, vec![entry("h", "header", 0)]),
        JournalAppend::new(1, vec![entry("k:1", "key", 1)]), // 2
        JournalAppend::new(2, vec![entry("o:1", "order", 1)]), // 3
        JournalAppend::new(3, vec![entry("s:a", "session", 1)]), // 4
        JournalAppend::new(4, vec![entry("o:1", "order", 2)]), // 5: replaces 3
        JournalAppend::new(5, vec![entry("o:2", "tombstone", 1)]), // 6
        JournalAppend::new(6, vec![entry("o:2", "order", 1)]), // 7: another kind, 6 stays
        JournalAppend::new(7, vec![entry("s:b", "session", 1)]), // 8
        JournalAppend::new(8, vec![entry("k:1", "key", 2)]), // 9: replaces 2
        JournalAppend::new(9, vec![entry("s:b", "session", 2)]), // 10: replaces 8, the last entry
    ];
    let written = s.testpg_append("x", &ops).await.unwrap();
    assert!(written.iter().all(|w| *w));
    let before = all(&s).await;
    assert_eq!(before.len(), 10);

    // Bounded: one pass deletes at most `limit` entries, oldest first.
    assert_eq!(s.testpg_prune(0, 1).await.unwrap(), 1);
    let seqs: Vec<i64> = all(&s).await.iter().map(|r| r.0).collect();
    assert_eq!(seqs, vec![1, 3, 4, 5, 6, 7, 8, 9, 10]);

    // Replaced entries go; sessions up to 4 have expired; the header, the tombstone (another kind
    // than the order after it) and the last entry stay.
    assert_eq!(s.testpg_prune(4, 100).await.unwrap(), 3);
    let seqs: Vec<i64> = all(&s).await.iter().map(|r| r.0).collect();
    assert_eq!(seqs, vec![1, 5, 6, 7, 9, 10]);
    assert_eq!(s.testpg_prune(4, 100).await.unwrap(), 0);

    // Even an expired session stays while it is the last entry: the next seq follows it.
    assert_eq!(s.testpg_prune(10, 100).await.unwrap(), 0);
    let w = s
        .testpg_append(
            "y",
            &[JournalAppend::new(10, vec![entry("o:3", "order", 1)])],
        )
        .await
        .unwrap();
    assert_eq!(w, vec![true]);
    let last = all(&s).await.last().cloned().unwrap();
    assert_eq!(last.0, 11);
    assert_eq!(s.testpg_prune(10, 100).await.unwrap(), 1);
    let seqs: Vec<i64> = all(&s).await.iter().map(|r| r.0).collect();
    assert_eq!(seqs, vec![1, 5, 6, 7, 9, 11]);

    // The conflict rule still holds after a prune: an op that read up to 8 and writes `k:1`
    // races the key entry 9 of another origin.
    let w = s
        .testpg_append("y", &[JournalAppend::new(8, vec![entry("k:1", "key", 3)])])
        .await
        .unwrap();
    assert_eq!(w, vec![false]);
}

#[tokio::test]
async fn the_journal_keeps_only_what_a_replica_needs() {
    let (s, _dir) = sqlite().await;
    retention(s).await;
    match postgres().await {
        Some(p) => retention(p).await,
        None => eprintln!("PIER_TEST_DATABASE_URL not set: ran on SQLite only"),
    }
}

/// Appends racing from several origins at once: `seq`s stay gap-free and of two ops that read
/// the same point and write one record, exactly one is written.
async fn racing_appends(s: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for t in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let op = JournalAppend::new(0, vec![entry(&format!("o:{t}-{i}"), "order", i)]);
                assert_eq!(
                    s.testpg_append(&format!("p{t}"), &[op]).await.unwrap(),
                    vec![true]
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let seqs: Vec<i64> = all(&s).await.iter().map(|r| r.0).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<i64>>());

    for round in 0..10 {
        let read_point = all(&s).await.last().unwrap().0;
        let subject = format!("k:{round}");
        let op_a = [JournalAppend::new(
            read_point,
            vec![entry(&subject, "key", 1)],
        )];
        let op_b = [JournalAppend::new(
            read_point,
            vec![entry(&subject, "key", 2)],
        )];
        let (a, b) = tokio::join!(s.testpg_append("a", &op_a), s.testpg_append("b", &op_b));
        let (a, b) = (a.unwrap()[0], b.unwrap()[0]);
        assert!(
            a != b,
            "round {round}: exactly one of two racing writes wins ({a}, {b})"
        );
    }
    let seqs: Vec<i64> = all(&s).await.iter().map(|r| r.0).collect();
    assert_eq!(seqs, (1..=110).collect::<Vec<i64>>());
}

#[tokio::test]
async fn racing_appends_stay_gap_free_and_one_of_two_conflicting_wins() {
    let (s, _dir) = sqlite().await;
    racing_appends(s).await;
    match postgres().await {
        Some(p) => racing_appends(p).await,
        None => eprintln!("PIER_TEST_DATABASE_URL not set: ran on SQLite only"),
    }
}

/// A subject an op only read (a charge reads its billing key) refuses it like a written one and
/// is never written; `testpg_read_subjects` answers every entry of the subjects asked, in order.
async fn reads_and_subjects(s: Arc<dyn Store>) {
    let key = |n| JournalAppend::new(n - 1, vec![entry("k:9", "key", n)]);
    assert_eq!(s.testpg_append("a", &[key(1)]).await.unwrap(), vec![true]);
    // "b" deletes the key (seq 2) while "a" charges it having read up to 1.
    assert_eq!(s.testpg_append("b", &[key(2)]).await.unwrap(), vec![true]);
    let mut charge = JournalAppend {
        reads: vec!["k:9".to_owned()],
        ..JournalAppend::new(1, vec![entry("o:9", "order", 1)])
    };
    let other = JournalAppend::new(1, vec![entry("o:10", "order", 1)]);
    let w = s
        .testpg_append("a", &[charge.clone(), other])
        .await
        .unwrap();
    assert_eq!(w, vec![false, true]);
    let seqs: Vec<i64> = all(&s).await.iter().map(|r| r.0).collect();
    assert_eq!(
        seqs,
        vec![1, 2, 3],
        "gap-free, and the read key not written"
    );
    let subjects = ["k:9", "o:9", "o:10"].map(str::to_owned);
    let rows = s.testpg_read_subjects(&subjects).await.unwrap();
    let got: Vec<(i64, &str)> = rows.iter().map(|r| (r.0, r.1.as_str())).collect();
    assert_eq!(got, vec![(1, "a"), (2, "b"), (3, "a")]);
    assert!(
        rows.iter().all(|r| r.2.starts_with("{\"t\":")),
        "with bodies"
    );
    assert!(s
        .testpg_read_subjects(&["o:none".to_owned()])
        .await
        .unwrap()
        .is_empty());
    // Having read the delete, the charge goes (and is then refused by the engine, not here).
    charge.read_point = 2;
    assert_eq!(s.testpg_append("a", &[charge]).await.unwrap(), vec![true]);
}

#[tokio::test]
async fn a_read_subject_conflicts_and_subjects_read_back_in_order() {
    let (s, _dir) = sqlite().await;
    reads_and_subjects(s).await;
    match postgres().await {
        Some(p) => reads_and_subjects(p).await,
        None => eprintln!("PIER_TEST_DATABASE_URL not set: ran on SQLite only"),
    }
}
