//! A journal shared by several Pier instances, so that they run one test PG between them.
//!
//! The engine's state is event-sourced already (`ledger::Entry`, replayed by `State::apply`).
//! With a shared journal the entries live in a table of Pier's database instead of a file
//! (`SharedJournal`, implemented by pier-store), and each instance keeps a replica of the state
//! in memory:
//!
//! * Before an operation the instance catches up: one indexed range read of the entries after the
//!   last one it applied (`seq > applied`). Concurrent operations share one read (single flight).
//! * The operation runs on the replica under the engine's lock as before; the entries it writes
//!   are captured instead of being sent to a file, and appended before the operation answers.
//!   Appends of concurrent operations go out together (group commit: one transaction per batch).
//! * An append is refused for an operation that raced another instance: when an entry of
//!   another instance, appended after the operation's read point, writes one of its subjects
//!   (the same order, billing key, session…) or one it read (a charge reads its billing key, so
//!   a charge and a delete of the key through two instances never both pass). The journal's
//!   unique, gap-free `seq` order decides who was first. The loser repairs its replica: the
//!   records the operation wrote are dropped and read back from the journal (their entries
//!   only), the replica catches up, and the operation runs again on the truth. So the ledger in
//!   the database stays the one truth that the chaos and reliability tests compare against, no
//!   two instances ever both approve one order, and a lost race costs what the operation
//!   touched, not the whole journal (`replica::repair`; a full rebuild is left for an append
//!   whose outcome is unknown).
//!
//! This file is the journal side (no engine in it); `replica` is the engine's side.
//!
//! The journal's first entry is a header proving the key that sealed its cards (the key derives
//! from the server key): an instance started with another server key says so at start.

use super::ledger::Entry;
use async_trait::async_trait;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Mutex, Notify, RwLock};
use tokio::task::JoinHandle;

/// One operation's entries, appended all together or not at all.
#[derive(Clone, Debug)]
pub struct JournalOp {
    /// The last `seq` this instance had applied when the operation ran.
    pub read_point: i64,
    /// `(subject, entry as JSON)`, in order. See `Entry::subject`.
    pub entries: Vec<(String, String)>,
    /// Subjects the operation read without writing them (a charge reads its billing key). Not
    /// written; a later entry of another origin on one of them refuses the op all the same.
    pub reads: Vec<String>,
}

/// One stored entry.
#[derive(Clone, Debug)]
pub struct JournalRow {
    pub seq: i64,
    /// The engine instance that appended it.
    pub origin: String,
    pub body: String,
}

/// Where a shared journal is kept (Pier's database: pier-store's `testpg_journal` table).
#[async_trait]
pub trait SharedJournal: Send + Sync + 'static {
    /// Appends `ops` in order, each atomically, under one lock so that `seq`s are gap-free and
    /// become visible in order. An op is refused (`false`, nothing written) when a stored entry of
    /// another origin with a `seq` above the op's `read_point` has one of the op's subjects
    /// (written or read).
    async fn append(&self, origin: &str, ops: &[JournalOp]) -> Result<Vec<bool>, String>;

    /// Up to `limit` entries with `seq > after`, in `seq` order. The bodies of entries of
    /// `skip_bodies_of` (an origin) are left empty: their author has them already.
    async fn read_after(
        &self,
        after: i64,
        limit: i64,
        skip_bodies_of: Option<&str>,
    ) -> Result<Vec<JournalRow>, String>;

    /// Every stored entry of the given subjects, in `seq` order, with bodies (an indexed read:
    /// what a replica reads back after losing a race, `replica::repair`).
    async fn read_subjects(&self, subjects: &[String]) -> Result<Vec<JournalRow>, String>;

    /// Retention: deletes up to `limit` entries no replica needs (replaced by a later entry of
    /// the same record, or window sessions with `seq <= sessions_upto`); returns how many.
    async fn prune(&self, sessions_upto: i64, limit: i64) -> Result<u64, String>;
}

/// Entries read per round trip when catching up or rebuilding.
pub(crate) const PAGE: i64 = 2_000;
/// Operations appended in one transaction at most (a batch is whatever queued while the previous
/// one was written; 512 bounds the statement's size at a few hundred KB).
const MAX_BATCH: usize = 512;
/// Operations waiting for the appender before callers wait (bounded like everything else).
const QUEUE: usize = 8_192;
/// Bound of one journal round trip; past it the operation's outcome is unknown.
pub(crate) const JOURNAL_DEADLINE: Duration = Duration::from_secs(10);
/// How long a replica counts as fresh after reading the journal to its end: a writing operation
/// runs on a fresh replica without catching up first (`replica::run` says why that is sound). The
/// bound is not for soundness but for cost: an instance that only writes still catches up once
/// a second, so its read point lags by a second at most — few conflicts, and the next catch-up
/// reads a second of the other instances' entries, not everything since it last read.
pub(crate) const FRESH: Duration = Duration::from_secs(1);
/// Tries of one operation that keeps racing other instances (each loss means another
/// instance made progress on the same record, so more than a few is pathological).
pub(crate) const MAX_ATTEMPTS: usize = 8;

/// How often the journal is pruned. Every entry is a record in its new state, so the journal
/// needs one entry per record: a payment charged then cancelled twice leaves 1 order and 2 cancel
/// entries instead of 3 order entries, and a window's 3-4 session entries go once it expired.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Entries deleted per statement at most (a few MB of dead rows at ~300 bytes each; the next
/// statement follows at once while there is more).
pub(crate) const PRUNE_LIMIT: i64 = 10_000;
/// Statements per pass at most, so that one pass stays bounded (10 × 10k = 100k entries).
pub(crate) const PRUNE_ROUNDS: usize = 10;

pub(crate) const HEADER_UNSEEN: u8 = 0;
pub(crate) const HEADER_OK: u8 = 1;
pub(crate) const HEADER_OTHER_KEY: u8 = 2;

/// What the running operation wrote and read.
#[derive(Default)]
pub(crate) struct Capture {
    pub entries: Vec<Entry>,
    pub reads: Vec<String>,
}

thread_local! {
    /// The capture of the operation running on this thread (operations never await).
    pub(crate) static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

pub(crate) type Pending = (JournalOp, oneshot::Sender<Result<bool, String>>);

/// How much work keeping the replica cost (tests read it to tell a repair from a rebuild).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Full reads of the journal (one at start, two on a new journal, then one per append whose
    /// outcome was unknown).
    pub rebuilds: u64,
    /// Lost races repaired by reading back only the records the operation wrote.
    pub repairs: u64,
    /// Entries those repairs read.
    pub repaired_rows: u64,
}

/// Counts live tasks; the guard decrements on drop, so a task that panics is counted out too.
#[derive(Default)]
pub(crate) struct Live {
    n: AtomicUsize,
    idle: Notify,
}

pub(crate) struct LiveGuard(Arc<Live>);

impl Live {
    pub fn enter(self: &Arc<Self>) -> LiveGuard {
        self.n.fetch_add(1, Ordering::AcqRel);
        LiveGuard(self.clone())
    }

    pub fn count(&self) -> usize {
        self.n.load(Ordering::Acquire)
    }

    pub async fn idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            // Registered before the check, so an exit between the check and the wait is seen.
            idle.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

pub(crate) struct Shared {
    pub journal: Arc<dyn SharedJournal>,
    pub origin: String,
    /// The last `seq` applied to this replica (written under the engine's lock).
    pub applied: AtomicI64,
    /// The replica may hold changes the journal refused or lost: rebuild before the next use.
    pub dirty: AtomicBool,
    pub header: AtomicU8,
    /// Operations hold it shared from catch-up to commit; a rebuild or a repair exclusively.
    pub gate: Arc<RwLock<()>>,
    /// Single flight of catch-ups: `epoch` counts started ones, `done` the last finished.
    pub catchup: Mutex<()>,
    pub epoch: AtomicU64,
    pub done: AtomicU64,
    pub queue: mpsc::Sender<Pending>,
    /// Held while an operation runs on the replica and queues its entries (`replica::run`).
    pub sequencer: std::sync::Mutex<()>,
    /// When the replica last read the journal up to its end (`Shared::mark_caught_up`).
    pub caught_up_at_ms: AtomicU64,
    pub started: std::time::Instant,
    pub rebuilds: AtomicU64,
    pub repairs: AtomicU64,
    pub repaired_rows: AtomicU64,
    /// Set by `shutdown` first: operations are refused from then on.
    pub closing: AtomicBool,
    /// Set by `shutdown` once no commit is in flight: the appender drains and ends, the pruner
    /// ends.
    pub stop: watch::Sender<bool>,
    /// The appender and the pruner, joined by `shutdown`.
    pub tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// The appender and the pruner while they run.
    pub background: Arc<Live>,
    /// Commits in flight (`replica::commit`): each ends within one journal deadline.
    pub commits: Arc<Live>,
}

impl Shared {
    /// A journal's shared state and its appender's receiving end.
    pub fn new(journal: Arc<dyn SharedJournal>, origin: String) -> (Self, mpsc::Receiver<Pending>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let shared = Shared {
            journal,
            origin,
            applied: AtomicI64::new(0),
            dirty: AtomicBool::new(true),
            header: AtomicU8::new(HEADER_UNSEEN),
            gate: Arc::new(RwLock::new(())),
            catchup: Mutex::new(()),
            epoch: AtomicU64::new(0),
            done: AtomicU64::new(0),
            queue,
            sequencer: std::sync::Mutex::new(()),
            caught_up_at_ms: AtomicU64::new(0),
            started: std::time::Instant::now(),
            rebuilds: AtomicU64::new(0),
            repairs: AtomicU64::new(0),
            repaired_rows: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            stop: watch::Sender::new(false),
            tasks: std::sync::Mutex::new(Vec::new()),
            background: Arc::default(),
            commits: Arc::default(),
        };
        (shared, rx)
    }

    /// Take an entry of the running operation.
    pub fn capture(&self, entry: Entry) {
        let taken = CAPTURE.with(|c| match c.borrow_mut().as_mut() {
            Some(cap) => {
                cap.entries.push(entry);
                true
            }
            None => false,
        });
        if !taken {
            // A change made outside `Engine::run` cannot be journalled: forget it.
            tracing::error!("testpg: a change outside a journalled operation; rebuilding");
            self.mark_dirty();
        }
    }

    /// Note a subject the running operation's outcome depends on without writing it.
    pub fn capture_read(&self, subject: String) {
        CAPTURE.with(|c| {
            if let Some(cap) = c.borrow_mut().as_mut() {
                cap.reads.push(subject);
            }
        });
    }

    /// Whether an operation of `Engine::run` is running on this thread.
    pub fn capturing(&self) -> bool {
        CAPTURE.with(|c| c.borrow().is_some())
    }

    pub fn mark_caught_up(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.caught_up_at_ms.fetch_max(ms, Ordering::AcqRel);
    }

    /// Whether the replica read the journal to its end within `FRESH`.
    pub fn fresh(&self) -> bool {
        let ms = self.started.elapsed().as_millis() as u64;
        ms.saturating_sub(self.caught_up_at_ms.load(Ordering::Acquire)) < FRESH.as_millis() as u64
    }

    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> JournalStats {
        JournalStats {
            rebuilds: self.rebuilds.load(Ordering::Acquire),
            repairs: self.repairs.load(Ordering::Acquire),
            repaired_rows: self.repaired_rows.load(Ordering::Acquire),
        }
    }

    /// Keep a background task, to be joined by `shutdown`.
    pub fn own(&self, task: JoinHandle<()>) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    /// Stops and joins the appender and the pruner, after the commits in flight (each bounded
    /// by `JOURNAL_DEADLINE`) have ended; what was queued is appended first.
    pub async fn shutdown(&self) {
        self.closing.store(true, Ordering::Release);
        self.commits.idle().await;
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            if let Err(e) = t.await {
                tracing::warn!(error = %e, "a test PG journal task failed");
            }
        }
    }
}

/// Marks the replica dirty when dropped armed: an append whose outcome is not known (failed, or
/// its task was dropped) leaves changes the journal may not have.
pub(crate) struct DirtyUnlessCommitted<'a>(pub Option<&'a Shared>);

impl Drop for DirtyUnlessCommitted<'_> {
    fn drop(&mut self) {
        if let Some(sh) = self.0 {
            sh.mark_dirty();
        }
    }
}

/// Appends what operations queue, in batches, until `stop`: then it stops taking new ones,
/// appends what is queued, and ends.
pub(crate) async fn appender(
    journal: Arc<dyn SharedJournal>,
    origin: String,
    mut rx: mpsc::Receiver<Pending>,
    mut stop: watch::Receiver<bool>,
    _live: LiveGuard,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    loop {
        if stopping {
            if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        } else {
            tokio::select! {
                // `recv_many` is cancel-safe: nothing is lost when the stop wins.
                n = rx.recv_many(&mut batch, MAX_BATCH) => if n == 0 { return },
                _ = stop.wait_for(|s| *s) => {
                    stopping = true;
                    rx.close();
                    continue;
                }
            }
        }
        let (ops, answers): (Vec<JournalOp>, Vec<_>) = batch.drain(..).unzip();
        let res = tokio::time::timeout(JOURNAL_DEADLINE, journal.append(&origin, &ops))
            .await
            .unwrap_or_else(|_| Err("the journal append timed out".to_owned()));
        match res {
            Ok(written) if written.len() == answers.len() => {
                for (tx, ok) in answers.into_iter().zip(written) {
                    let _ = tx.send(Ok(ok));
                }
            }
            Ok(_) => {
                for tx in answers {
                    let _ = tx.send(Err("the journal answered for other operations".into()));
                }
            }
            Err(e) => {
                for tx in answers {
                    let _ = tx.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Notes `(now, applied)` in `marks` and answers the last `seq` whose window sessions have surely
/// expired: the `applied` of the newest mark older than a window's lifetime plus one minute (a
/// request that read a session just before it expired), or 0. That mark stays (re-dated to the
/// horizon), so that later passes never answer less.
pub(crate) fn expired_sessions_upto(
    marks: &mut std::collections::VecDeque<(i64, i64)>,
    now: i64,
    applied: i64,
    session_ttl_secs: i64,
) -> i64 {
    marks.push_back((now, applied));
    let horizon = now - session_ttl_secs - 60;
    let mut upto = 0;
    while let Some(&(at, seq)) = marks.front() {
        if at > horizon {
            break;
        }
        upto = seq;
        marks.pop_front();
    }
    if upto > 0 {
        marks.push_front((horizon, upto));
    }
    upto
}

#[cfg(test)]
mod tests {
    use super::expired_sessions_upto;
    use std::collections::VecDeque;

    #[test]
    fn sessions_expire_a_window_lifetime_after_the_mark_that_saw_them() {
        let ttl = 1800;
        let mut marks = VecDeque::new();
        // Pruned every 600 s; the journal was at seq 10, 20, 30… at each pass.
        assert_eq!(expired_sessions_upto(&mut marks, 0, 10, ttl), 0);
        assert_eq!(expired_sessions_upto(&mut marks, 600, 20, ttl), 0);
        assert_eq!(expired_sessions_upto(&mut marks, 1200, 30, ttl), 0);
        assert_eq!(expired_sessions_upto(&mut marks, 1800, 40, ttl), 0);
        // 1860 s after the first mark: sessions up to seq 10 were opened before time 0.
        assert_eq!(expired_sessions_upto(&mut marks, 1860, 45, ttl), 10);
        assert_eq!(expired_sessions_upto(&mut marks, 2400, 50, ttl), 10);
        assert_eq!(expired_sessions_upto(&mut marks, 2460, 55, ttl), 20);
        // Marks stay bounded: one per pass within a window's lifetime, plus the deciding one.
        assert!(marks.len() <= 6, "{marks:?}");
        // A long pause (no pass for an hour) expires everything seen before it.
        assert_eq!(expired_sessions_upto(&mut marks, 6000, 60, ttl), 55);
        assert_eq!(expired_sessions_upto(&mut marks, 6001, 60, ttl), 55);
    }
}
