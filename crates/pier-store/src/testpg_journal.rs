//! The test PG's shared journal (`migrations/0060_testpg_journal.sql`): appends of whole
//! operations with a conflict check, and range reads. pier-server adapts it to pier-pg's
//! `testpg::SharedJournal`; the semantics are documented there.

use crate::connect::{PgStore, SqliteStore};
use crate::error::StoreResult;
use async_trait::async_trait;
use std::collections::HashMap;

/// One operation to append.
#[derive(Clone, Debug, Default)]
pub struct JournalAppend {
    /// The journal `seq` its author had read up to.
    pub read_point: i64,
    /// `(subject, body)` entries, written in order.
    pub entries: Vec<(String, String)>,
    /// Subjects the operation read without writing them (a charge reads its billing key): an
    /// entry of another origin on one of them after `read_point` refuses the op too.
    pub reads: Vec<String>,
}

impl JournalAppend {
    pub fn new(read_point: i64, entries: Vec<(String, String)>) -> Self {
        Self {
            read_point,
            entries,
            reads: Vec::new(),
        }
    }

    /// Every subject whose later write by another origin refuses the op.
    fn subjects(&self) -> impl Iterator<Item = &str> {
        (self.entries.iter().map(|(s, _)| s.as_str())).chain(self.reads.iter().map(String::as_str))
    }
}

/// One stored entry: `(seq, origin, body)`.
pub type JournalEntry = (i64, String, String);

#[async_trait]
pub trait TestpgJournalStore: Send + Sync {
    /// Appends `ops` in order, each all or nothing: an op is refused (`false`) when an entry of
    /// another origin with a `seq` above its read point has one of its subjects. One transaction.
    async fn testpg_append(&self, origin: &str, ops: &[JournalAppend]) -> StoreResult<Vec<bool>>;
    /// Every stored entry of the given subjects, in `seq` order (with bodies): what a replica
    /// needs to put those records back in the journal's state after a lost race.
    async fn testpg_read_subjects(&self, subjects: &[String]) -> StoreResult<Vec<JournalEntry>>;
    /// Up to `limit` entries with `seq > after`, in order; the bodies of `skip_bodies_of`'s
    /// entries empty (their author has them).
    async fn testpg_read_after(
        &self,
        after: i64,
        limit: i64,
        skip_bodies_of: Option<&str>,
    ) -> StoreResult<Vec<JournalEntry>>;
    /// Retention: deletes up to `limit` entries that no replica needs any more, and returns how
    /// many. An entry goes when a later entry of the same subject and kind replaced it (every
    /// entry is a record in its new state), or when it is a window session's (`s:`) with
    /// `seq <= sessions_upto` (the caller knows those sessions have expired). The header and the
    /// last entry always stay (the next `seq` is the last one's plus 1).
    async fn testpg_prune(&self, sessions_upto: i64, limit: i64) -> StoreResult<u64>;
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
    for op in ops {
        let raced = op.subjects().any(|subject| {
            by_subject
                .get(subject)
                .is_some_and(|seqs| seqs.iter().any(|s| *s > op.read_point))
        });
        written.push(!raced);
        if !raced {
            for (subject, body) in &op.entries {
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

/// The PostgreSQL append as one statement (one round trip, no explicit transaction): the ops'
/// rows come as arrays (`$1` op index, `$2` its read point, `$3` subject, `$4` body — NULL for a
/// subject the op only read, checked and not written —, `$5` the origin); it answers the indexes of the refused ops and inserts the others' rows after the last
/// `seq`. Without a lock two instances appending at once read the same last `seq` (a statement's
/// snapshot misses the other's uncommitted rows) and both insert its successor: the second waits
/// on the first's key and fails with a unique violation, then runs again on a snapshot that has
/// the first's rows (so it also sees their subjects). Hence `seq`s stay gap-free, in commit
/// order, and a conflict is never missed — the same guarantees as the advisory lock, with one
/// round trip instead of five (BEGIN, lock, read, insert, COMMIT).
const APPEND_PG_SQL: &str = "WITH input AS (SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], \
     $3::TEXT[], $4::TEXT[]) WITH ORDINALITY AS t(op, rp, subj, body, n)), \
     refused AS (SELECT DISTINCT i.op FROM input i WHERE EXISTS (SELECT 1 FROM testpg_journal j \
     WHERE j.seq > i.rp AND j.subject = i.subj AND j.origin <> $5)), \
     last AS (SELECT COALESCE(MAX(seq), 0) AS m FROM testpg_journal), \
     ins AS (INSERT INTO testpg_journal (seq, origin, subject, body) \
     SELECT last.m + row_number() OVER (ORDER BY i.n), $5, i.subj, i.body FROM input i, last \
     WHERE i.body IS NOT NULL AND i.op NOT IN (SELECT op FROM refused) RETURNING seq) \
     SELECT op FROM refused";

/// A random pause in `[0, 0.2 ms × tries)` (a process-random hash: no RNG dependency here).
fn collision_pause(tries: usize) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_usize(tries);
    let bound = 200 * tries as u64;
    std::time::Duration::from_micros(h.finish() % bound.max(1))
}

/// Tries of one append that keeps colliding with other instances' appends (each collision means
/// another instance committed; more than a few in a row is pathological).
const APPEND_TRIES: usize = 16;

#[async_trait]
impl TestpgJournalStore for PgStore {
    async fn testpg_append(&self, origin: &str, ops: &[JournalAppend]) -> StoreResult<Vec<bool>> {
        let (mut op_ix, mut rps, mut subjects, mut bodies) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, op) in ops.iter().enumerate() {
            for (subject, body) in &op.entries {
                op_ix.push(i as i64);
                rps.push(op.read_point);
                subjects.push(subject.as_str());
                bodies.push(Some(body.as_str()));
            }
            for subject in &op.reads {
                op_ix.push(i as i64);
                rps.push(op.read_point);
                subjects.push(subject.as_str());
                bodies.push(None);
            }
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let res: Result<Vec<i64>, sqlx::Error> = sqlx::query_scalar(APPEND_PG_SQL)
                .bind(&op_ix)
                .bind(&rps)
                .bind(&subjects)
                .bind(&bodies)
                .bind(origin)
                .fetch_all(&self.pool)
                .await;
            match res {
                Ok(refused) => {
                    let mut written = vec![true; ops.len()];
                    for i in refused {
                        if let Some(w) = written.get_mut(i as usize) {
                            *w = false;
                        }
                    }
                    return Ok(written);
                }
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("23505") && tries < APPEND_TRIES =>
                {
                    // Appenders that collided and retry at once collide again in lockstep (4
                    // appenders hammering one journal lost 16 tries in a row in 2 runs of 5 of
                    // `racing_appends_stay_gap_free…`): a random pause of up to 0.2 ms per try
                    // so far spreads them out.
                    tokio::time::sleep(collision_pause(tries)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
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

    async fn testpg_read_subjects(&self, subjects: &[String]) -> StoreResult<Vec<JournalEntry>> {
        Ok(sqlx::query_as(
            "SELECT seq, origin, body FROM testpg_journal WHERE subject = ANY($1) ORDER BY seq",
        )
        .bind(subjects)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn testpg_prune(&self, sessions_upto: i64, limit: i64) -> StoreResult<u64> {
        // Runs without the append lock: it deletes only entries with a later one of the same
        // subject (a reader past the deleted one still finds the later one; a conflict check
        // still sees it) or expired sessions, and never the last entry.
        let done = sqlx::query(&prune_sql("strpos(l.body, ',')", "strpos(j.body, ',')"))
            .bind(sessions_upto)
            .bind(limit)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// The retention statement (`testpg_prune`); the entry's kind is its body up to the first comma
/// (`{"t":"order"`: serde writes the tag first), `pos_l`/`pos_j` find that comma per dialect.
fn prune_sql(pos_l: &str, pos_j: &str) -> String {
    format!(
        "DELETE FROM testpg_journal WHERE seq IN (SELECT j.seq FROM testpg_journal j \
         WHERE j.subject <> 'h' AND j.seq < (SELECT max(seq) FROM testpg_journal) AND ( \
         (j.subject LIKE 's:%' AND j.seq <= $1) OR EXISTS (SELECT 1 FROM testpg_journal l \
         WHERE l.subject = j.subject AND l.seq > j.seq \
         AND substr(l.body, 1, {pos_l}) = substr(j.body, 1, {pos_j}))) \
         ORDER BY j.seq LIMIT $2)"
    )
}

#[async_trait]
impl TestpgJournalStore for SqliteStore {
    async fn testpg_append(&self, origin: &str, ops: &[JournalAppend]) -> StoreResult<Vec<bool>> {
        let min_read = ops.iter().map(|o| o.read_point).min().unwrap_or(0);
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

    async fn testpg_read_subjects(&self, subjects: &[String]) -> StoreResult<Vec<JournalEntry>> {
        let mut rows = Vec::new();
        // Bounded statements: SQLite allows 32,766 parameters; an operation writes a handful.
        for chunk in subjects.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT seq, origin, body FROM testpg_journal WHERE subject IN ({marks}) ORDER BY seq"
            );
            let mut q = sqlx::query_as::<_, JournalEntry>(&sql);
            for subject in chunk {
                q = q.bind(subject);
            }
            rows.extend(q.fetch_all(&self.pool).await?);
        }
        rows.sort_by_key(|r| r.0);
        Ok(rows)
    }

    async fn testpg_prune(&self, sessions_upto: i64, limit: i64) -> StoreResult<u64> {
        let done = sqlx::query(&prune_sql("instr(l.body, ',')", "instr(j.body, ',')"))
            .bind(sessions_upto)
            .bind(limit)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(read: i64, subjects: &[&str]) -> JournalAppend {
        JournalAppend::new(
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
            // Only read o:1 (a charge reads its key): raced all the same, and nothing written.
            JournalAppend {
                reads: vec!["o:1".to_owned()],
                ..op(4, &["o:4"])
            },
            JournalAppend {
                reads: vec!["o:2".to_owned()],
                ..op(4, &[])
            },
        ];
        let (written, rows) = plan("a", &ops, &recent, 6);
        assert_eq!(written, vec![false, true, true, true, false, true]);
        assert_eq!(rows.len(), 4, "a read is never written");
        let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(seqs, vec![7, 8, 9, 10]);
        assert_eq!(rows[1].1, "o:2");
        assert_eq!(rows[2].1, "c:2");
    }
}
