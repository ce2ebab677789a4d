//! The test PG's shared journal (`migrations/0060_testpg_journal.sql`): appends of whole
//! operations with a conflict check, and range reads. pier-server adapts it to pier-pg's
//! `testpg::SharedJournal`; the semantics are documented there.

use crate::connect::{PgStore, SqliteStore};
use crate::error::StoreResult;
use async_trait::async_trait;
use std::collections::HashMap;

/// One operation to append: the journal `seq` its author had read up to, and its
/// `(subject, body)` entries.
pub type JournalAppend = (i64, Vec<(String, String)>);

/// One stored entry: `(seq, origin, body)`.
pub type JournalEntry = (i64, String, String);

/// The advisory lock (PostgreSQL) that serializes appends, so that `seq`s are gap-free and
/// commit in order ("pier tpgj" in ASCII; any constant no other code uses).
const APPEND_LOCK: i64 = 0x7069_6572_7470_676a;

#[async_trait]
pub trait TestpgJournalStore: Send + Sync {
    /// Appends `ops` in order, each all or nothing: an op is refused (`false`) when an entry of
    /// another origin with a `seq` above its read point has one of its subjects. One transaction.
    async fn testpg_append(&self, origin: &str, ops: &[JournalAppend]) -> StoreResult<Vec<bool>>;
    /// Up to `limit` entries with `seq > after`, in order; the bodies of `skip_bodies_of`'s
    /// entries empty (their author has them).
    async fn testpg_read_after(
        &self,
        after: i64,
        limit: i64,
        skip_bodies_of: Option<&str>,
    ) -> StoreResult<Vec<JournalEntry>>;
}

/// Decide which ops are written, given the entries stored after the smallest read point
/// (`(seq, origin, subject)`), and build the rows to insert: `(seq, subject, body)`.
fn plan(
    origin: &str,
    ops: &[JournalAppend],
    recent: &[(i64, String, String)],
    max_seq: i64,
) -> (Vec<bool>, Vec<(i64, String, String)>) {
    let mut by_subject: HashMap<&str, Vec<i64>> = HashMap::new();
    for (seq, o, subject) in recent {
        if o != origin {
            by_subject.entry(subject.as_str()).or_default().push(*seq);
        }
    }
    let mut next = max_seq;
    let mut written = Vec::with_capacity(ops.len());
    let mut rows = Vec::new();
    for (read_point, entries) in ops {
        let raced = entries.iter().any(|(subject, _)| {
            by_subject
                .get(subject.as_str())
                .is_some_and(|seqs| seqs.iter().any(|s| s > read_point))
        });
        written.push(!raced);
        if !raced {
            for (subject, body) in entries {
                next += 1;
                rows.push((next, subject.clone(), body.clone()));
            }
        }
    }
    (written, rows)
}

const RECENT_SQL: &str = "SELECT seq, origin, subject FROM testpg_journal WHERE seq > $1 \
     UNION ALL SELECT * FROM (SELECT seq, origin, subject FROM testpg_journal \
     ORDER BY seq DESC LIMIT 1) AS last";

const READ_SQL: &str = "SELECT seq, origin, \
     CASE WHEN origin = $3 THEN '' ELSE body END AS body \
     FROM testpg_journal WHERE seq > $1 ORDER BY seq LIMIT $2";

fn max_of(recent: &[(i64, String, String)]) -> i64 {
    recent.iter().map(|r| r.0).max().unwrap_or(0)
}

#[async_trait]
impl TestpgJournalStore for PgStore {
    async fn testpg_append(&self, origin: &str, ops: &[JournalAppend]) -> StoreResult<Vec<bool>> {
        let min_read = ops.iter().map(|o| o.0).min().unwrap_or(0);
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK)
            .execute(&mut *tx)
            .await?;
        let recent: Vec<(i64, String, String)> = sqlx::query_as(RECENT_SQL)
            .bind(min_read)
            .fetch_all(&mut *tx)
            .await?;
        let (written, rows) = plan(origin, ops, &recent, max_of(&recent));
        if !rows.is_empty() {
            let (mut seqs, mut subjects, mut bodies) = (Vec::new(), Vec::new(), Vec::new());
            for (seq, subject, body) in rows {
                seqs.push(seq);
                subjects.push(subject);
                bodies.push(body);
            }
            sqlx::query(
                "INSERT INTO testpg_journal (seq, origin, subject, body) \
                 SELECT s, $2, subj, b FROM UNNEST($1::BIGINT[], $3::TEXT[], $4::TEXT[]) \
                 AS t(s, subj, b)",
            )
            .bind(&seqs)
            .bind(origin)
            .bind(&subjects)
            .bind(&bodies)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    async fn testpg_read_after(
        &self,
        after: i64,
        limit: i64,
        skip_bodies_of: Option<&str>,
    ) -> StoreResult<Vec<JournalEntry>> {
        Ok(sqlx::query_as(READ_SQL)
            .bind(after)
            .bind(limit)
            .bind(skip_bodies_of)
            .fetch_all(&self.pool)
            .await?)
    }
}

#[async_trait]
impl TestpgJournalStore for SqliteStore {
    async fn testpg_append(&self, origin: &str, ops: &[JournalAppend]) -> StoreResult<Vec<bool>> {
        let min_read = ops.iter().map(|o| o.0).min().unwrap_or(0);
        // SQLite has one writer at a time: the transaction's first write takes the lock, and a
        // write-first statement makes it taken before the read below.
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM testpg_journal WHERE 0")
            .execute(&mut *tx)
            .await?;
        let recent: Vec<(i64, String, String)> = sqlx::query_as(RECENT_SQL)
            .bind(min_read)
            .fetch_all(&mut *tx)
            .await?;
        let (written, rows) = plan(origin, ops, &recent, max_of(&recent));
        for (seq, subject, body) in rows {
            sqlx::query(
                "INSERT INTO testpg_journal (seq, origin, subject, body) VALUES ($1, $2, $3, $4)",
            )
            .bind(seq)
            .bind(origin)
            .bind(subject)
            .bind(body)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    async fn testpg_read_after(
        &self,
        after: i64,
        limit: i64,
        skip_bodies_of: Option<&str>,
    ) -> StoreResult<Vec<JournalEntry>> {
        Ok(sqlx::query_as(READ_SQL)
            .bind(after)
            .bind(limit)
            .bind(skip_bodies_of)
            .fetch_all(&self.pool)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(read: i64, subjects: &[&str]) -> JournalAppend {
        (
            read,
            subjects
                .iter()
                .map(|s| ((*s).to_owned(), format!("{{\"{s}\":1}}")))
                .collect(),
        )
    }

    #[test]
    fn an_op_racing_another_origin_on_a_subject_is_refused() {
        let recent = vec![
            (5, "b".to_owned(), "o:1".to_owned()),
            (6, "a".to_owned(), "o:2".to_owned()),
        ];
        let ops = [
            op(4, &["o:1"]),        // b wrote o:1 at 5, after our read point 4
            op(5, &["o:1"]),        // already seen
            op(4, &["o:2", "c:2"]), // our own entry: never a race
            op(4, &["o:3"]),
        ];
        let (written, rows) = plan("a", &ops, &recent, 6);
        assert_eq!(written, vec![false, true, true, true]);
        let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(seqs, vec![7, 8, 9, 10]);
        assert_eq!(rows[1].1, "o:2");
        assert_eq!(rows[2].1, "c:2");
    }
}
