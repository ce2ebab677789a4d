//! Conformance of the certification store (migration 0040) on SQLite and, when
//! `PIER_TEST_DATABASE_URL` is set, PostgreSQL: tenant scoping, the guarded transitions (a second
//! certify changes nothing, wrong codes count up to `failed`, expired codes do not certify),
//! deletion and the retention of abandoned requests.

use pier_store::*;
use std::sync::Arc;

/// The stores to check, and what must outlive them (the SQLite file's directory, the PostgreSQL
/// database's handle).
async fn stores() -> (
    Vec<Arc<dyn Store>>,
    (tempfile::TempDir, Option<testdb::FreshPostgres>),
) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("s.db").display());
    let mut out = vec![connect(&url, true).await.unwrap().0];
    let mut pg = None;
    if let Ok(base) = std::env::var("PIER_TEST_DATABASE_URL") {
        let db = testdb::fresh_postgres(&base).await.unwrap();
        out.push(connect(db.url(), true).await.unwrap().0);
        pg = Some(db);
    } else {
        eprintln!("PIER_TEST_DATABASE_URL not set: certification conformance ran on SQLite only");
    }
    (out, (dir, pg))
}

fn cert(imp: &str, m: &str, status: &str, expires_at: i64) -> Certification {
    Certification {
        imp_uid: imp.into(),
        merchant_id: m.into(),
        pg_provider: "danal".into(),
        pg_tid: "testid_1".into(),
        status: status.parse().unwrap(),
        sealed: Some("v1:AAAA".into()),
        created_at: 100,
        expires_at,
        ..Default::default()
    }
}

fn certified(now: i64) -> CertStep {
    CertStep::Certified {
        unique_key: "ci".into(),
        unique_in_site: "di".into(),
        now,
    }
}

#[tokio::test]
async fn certification_transitions_are_guarded() {
    let (stores, _dir) = stores().await;
    for s in stores {
        s.insert_certification(&cert("imp_1", "m1", "requested", 280))
            .await
            .unwrap();
        // Another merchant sees and changes nothing.
        assert!(s.get_certification("m2", "imp_1").await.unwrap().is_none());
        assert!(s
            .step_certification("m2", "imp_1", &certified(200))
            .await
            .unwrap()
            .is_none());
        assert!(s
            .delete_certification("m2", "imp_1")
            .await
            .unwrap()
            .is_none());
        // An expired code does not certify.
        assert!(s
            .step_certification("m1", "imp_1", &certified(281))
            .await
            .unwrap()
            .is_none());
        let c = s
            .step_certification("m1", "imp_1", &certified(200))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.status.as_str(), c.certified_at, c.unique_key.as_deref()),
            ("certified", 200, Some("ci"))
        );
        // A second certify, a wrong code, an end: nothing changes.
        for step in [
            certified(210),
            CertStep::WrongCode {
                max_attempts: 5,
                reason: "x".into(),
            },
            CertStep::Ended {
                status: CertificationStatus::Cancelled,
                reason: "x".into(),
            },
        ] {
            assert!(s
                .step_certification("m1", "imp_1", &step)
                .await
                .unwrap()
                .is_none());
        }
        assert_eq!(
            s.get_certification("m1", "imp_1").await.unwrap().unwrap(),
            c
        );

        // Wrong codes count up and fail the request at the limit.
        s.insert_certification(&cert("imp_2", "m1", "requested", 280))
            .await
            .unwrap();
        let wrong = CertStep::WrongCode {
            max_attempts: 3,
            reason: "too many".into(),
        };
        for n in 1..=3 {
            let c = s
                .step_certification("m1", "imp_2", &wrong)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(c.otp_attempts, n);
            assert_eq!(
                c.status.as_str(),
                if n < 3 { "requested" } else { "failed" }
            );
        }
        assert!(s
            .step_certification("m1", "imp_2", &certified(200))
            .await
            .unwrap()
            .is_none());

        // A window: found by its id, then requested, then cancelled.
        let mut w = cert("imp_3", "m1", "window", 1_900);
        w.window_id = Some("w".repeat(32));
        s.insert_certification(&w).await.unwrap();
        let found = s
            .certification_by_window(&"w".repeat(32))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.imp_uid, "imp_3");
        let req = CertStep::Requested {
            sealed: "v1:BBBB".into(),
            expires_at: 280,
        };
        let r = s
            .step_certification("m1", "imp_3", &req)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((r.status.as_str(), r.expires_at), ("requested", 280));
        let end = CertStep::Ended {
            status: CertificationStatus::Cancelled,
            reason: "bye".into(),
        };
        let e = s
            .step_certification("m1", "imp_3", &end)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (e.status.as_str(), e.fail_reason.as_deref()),
            ("cancelled", Some("bye"))
        );
        assert!(s
            .step_certification("m1", "imp_3", &req)
            .await
            .unwrap()
            .is_none());
        // Duplicate window ids and imp_uids are conflicts.
        let mut dup = cert("imp_4", "m1", "window", 1_900);
        dup.window_id = Some("w".repeat(32));
        assert!(matches!(
            s.insert_certification(&dup).await,
            Err(StoreError::Conflict(_))
        ));

        // Retention: only what never completed and expired before the cut.
        assert_eq!(s.delete_stale_certifications(281, 100).await.unwrap(), 2);
        assert!(s.get_certification("m1", "imp_1").await.unwrap().is_some());
        assert!(s.get_certification("m1", "imp_2").await.unwrap().is_none());
        assert!(s.get_certification("m1", "imp_3").await.unwrap().is_none());

        // Delete answers the row once.
        let d = s
            .delete_certification("m1", "imp_1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.unique_in_site.as_deref(), Some("di"));
        assert!(s
            .delete_certification("m1", "imp_1")
            .await
            .unwrap()
            .is_none());
    }
}
