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
//!   (the same order, billing key, session…). The journal's unique, gap-free `seq` order decides
//!   who was first; the loser's replica is rebuilt from the journal and the operation runs again
//!   on the truth (`run`). So the ledger in the database stays the one truth that the chaos and
//!   reliability tests compare against, and no two instances ever both approve one order.
//!
//! The journal's first entry is a header proving the key that sealed its cards (the key derives
//! from the server key): an instance started with another server key says so at start.

use super::engine::{Books, Engine, EngineConfig};
use super::journal::VERSION;
use super::ledger::Entry;
use super::{Deposit, DepositTarget, LedgerSnapshot, SessionView};
use crate::PgError;
use async_trait::async_trait;
use pier_domain::{ids::random_hex, Clock};
use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex, RwLock};

/// One operation's entries, appended all together or not at all.
#[derive(Clone, Debug)]
pub struct JournalOp {
    /// The last `seq` this instance had applied when the operation ran.
    pub read_point: i64,
    /// `(subject, entry as JSON)`, in order. See `Entry::subject`.
    pub entries: Vec<(String, String)>,
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
    /// another origin with a `seq` above the op's `read_point` has one of the op's subjects.
    async fn append(&self, origin: &str, ops: &[JournalOp]) -> Result<Vec<bool>, String>;

    /// Up to `limit` entries with `seq > after`, in `seq` order. The bodies of entries of
    /// `skip_bodies_of` (an origin) are left empty: their author has them already.
    async fn read_after(
        &self,
        after: i64,
        limit: i64,
        skip_bodies_of: Option<&str>,
    ) -> Result<Vec<JournalRow>, String>;

    /// Retention: deletes up to `limit` entries no replica needs (replaced by a later entry of
    /// the same record, or window sessions with `seq <= sessions_upto`); returns how many.
    async fn prune(&self, sessions_upto: i64, limit: i64) -> Result<u64, String>;
}

/// Entries read per round trip when catching up or rebuilding.
const PAGE: i64 = 2_000;
/// Operations appended in one transaction at most (a batch is whatever queued while the previous
/// one was written; 512 bounds the statement's size at a few hundred KB).
const MAX_BATCH: usize = 512;
/// Operations waiting for the appender before callers wait (bounded like everything else).
const QUEUE: usize = 8_192;
/// Bound of one journal round trip; past it the operation's outcome is unknown.
const JOURNAL_DEADLINE: Duration = Duration::from_secs(10);
/// Tries of one operation that keeps racing other instances (each loss means another
/// instance made progress on the same record, so more than a few is pathological).
const MAX_ATTEMPTS: usize = 8;

/// How often the journal is pruned. Every entry is a record in its new state, so the journal
/// needs one entry per record: a payment charged then cancelled twice leaves 1 order and 2 cancel
/// entries instead of 3 order entries, and a window's 3-4 session entries go once it expired.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Entries deleted per statement at most (a few MB of dead rows at ~300 bytes each; the next
/// statement follows at once while there is more).
const PRUNE_LIMIT: i64 = 10_000;
/// Statements per pass at most, so that one pass stays bounded (10 × 10k = 100k entries).
const PRUNE_ROUNDS: usize = 10;

const HEADER_UNSEEN: u8 = 0;
const HEADER_OK: u8 = 1;
const HEADER_OTHER_KEY: u8 = 2;

thread_local! {
    /// The entries of the operation running on this thread (operations never await).
    static CAPTURE: RefCell<Option<Vec<Entry>>> = const { RefCell::new(None) };
}

type Pending = (JournalOp, oneshot::Sender<Result<bool, String>>);

pub(crate) struct Shared {
    journal: Arc<dyn SharedJournal>,
    origin: String,
    /// The last `seq` applied to this replica (written under the engine's lock).
    applied: AtomicI64,
    /// The replica may hold changes the journal refused or lost: rebuild before the next use.
    dirty: AtomicBool,
    header: AtomicU8,
    /// Operations hold it shared from catch-up to commit; a rebuild holds it exclusively.
    gate: RwLock<()>,
    /// Single flight of catch-ups: `epoch` counts started ones, `done` the last finished.
    catchup: Mutex<()>,
    epoch: AtomicU64,
    done: AtomicU64,
    queue: mpsc::Sender<Pending>,
}

impl Shared {
    /// Take an entry of the running operation.
    pub(crate) fn capture(&self, entry: Entry) {
        let taken = CAPTURE.with(|c| match c.borrow_mut().as_mut() {
            Some(v) => {
                v.push(entry);
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

    /// Whether an operation of `Engine::run` is running on this thread.
    pub(crate) fn capturing(&self) -> bool {
        CAPTURE.with(|c| c.borrow().is_some())
    }

    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }
}

/// Marks the replica dirty when dropped armed: an append whose outcome is not known (refused,
/// failed, or its caller gave up waiting) leaves changes the journal may not have.
struct DirtyUnlessCommitted<'a>(Option<&'a Shared>);

impl Drop for DirtyUnlessCommitted<'_> {
    fn drop(&mut self) {
        if let Some(sh) = self.0 {
            sh.mark_dirty();
        }
    }
}

async fn appender(
    journal: Arc<dyn SharedJournal>,
    origin: String,
    mut rx: mpsc::Receiver<Pending>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
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

/// Prunes the journal every `PRUNE_EVERY` while the engine lives (holding it only weakly, so a
/// stopped engine stops its pruner at the next tick).
async fn pruner(inner: std::sync::Weak<super::engine::Inner>) {
    // `(unix time, seq applied then)`: sessions written at or before that seq were opened
    // before that time, so they have expired once a window's lifetime has passed since.
    let mut marks: std::collections::VecDeque<(i64, i64)> = std::collections::VecDeque::new();
    loop {
        tokio::time::sleep(PRUNE_EVERY).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let engine = Engine { inner };
        match engine.prune_once(&mut marks).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "testpg journal pruned"),
            Err(e) => tracing::warn!(error = %e, "pruning the test PG journal"),
        }
    }
}

/// Notes `(now, applied)` in `marks` and answers the last `seq` whose window sessions have surely
/// expired: the `applied` of the newest mark older than a window's lifetime plus one minute (a
/// request that read a session just before it expired), or 0. That mark stays (re-dated to the
/// horizon), so that later passes never answer less.
fn expired_sessions_upto(
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

fn unknown(what: &str, e: impl std::fmt::Display) -> PgError {
    PgError::Unknown(format!("test PG journal: {what}: {e}"))
}

impl Engine {
    /// An engine whose state lives in `journal`, shared with every other engine on it. Reads
    /// the whole journal (call it at start-up) and refuses a journal written under another key.
    pub async fn new_shared(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        journal: Arc<dyn SharedJournal>,
    ) -> io::Result<Self> {
        let origin = random_hex(8);
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(appender(journal.clone(), origin.clone(), rx));
        let shared = Shared {
            journal,
            origin,
            applied: AtomicI64::new(0),
            dirty: AtomicBool::new(true),
            header: AtomicU8::new(HEADER_UNSEEN),
            gate: RwLock::new(()),
            catchup: Mutex::new(()),
            epoch: AtomicU64::new(0),
            done: AtomicU64::new(0),
            queue,
        };
        let engine = Engine::bare(config, clock, Some(shared));
        tokio::spawn(pruner(Arc::downgrade(&engine.inner)));
        let io_err = |e: PgError| io::Error::other(e.to_string());
        engine.rebuild().await.map_err(io_err)?;
        if engine.header() == HEADER_UNSEEN {
            // A new journal: write its header (two instances starting at once race on its
            // subject; the loser catches up and finds the winner's).
            let key_check = engine.key_check();
            engine
                .run(|e| {
                    if e.header() == HEADER_UNSEEN {
                        e.log(|| Entry::Header {
                            version: VERSION,
                            key_check: key_check.clone(),
                        });
                    }
                })
                .await
                .map_err(io_err)?;
            if let Some(sh) = &engine.inner.shared {
                sh.mark_dirty();
            }
            engine.rebuild().await.map_err(io_err)?;
        }
        match engine.header() {
            HEADER_OK => Ok(engine),
            HEADER_OTHER_KEY => {
                // Loud, not fatal: the database may have been used with another key before (a
                // test database, a key rotated by hand). Cards sealed under it stay unreadable
                // (`BILLING_KEY_UNREADABLE`) and its window sessions are skipped.
                tracing::error!(
                    "the test PG journal in the database was written under another server key: \
                     its billing keys cannot be charged here (every instance on one database \
                     needs the same server key)"
                );
                Ok(engine)
            }
            _ => Err(io::Error::other("the test PG journal has no header")),
        }
    }

    fn header(&self) -> u8 {
        self.inner
            .shared
            .as_ref()
            .map_or(HEADER_OK, |sh| sh.header.load(Ordering::Acquire))
    }

    /// Run one operation. Without a shared journal: just run it. With one: catch up, run it on
    /// the replica capturing its entries, append them, and answer only once they are committed;
    /// an operation that raced another instance runs again on the rebuilt replica.
    pub(crate) async fn run<T>(&self, mut op: impl FnMut(&Engine) -> T) -> Result<T, PgError> {
        let Some(sh) = &self.inner.shared else {
            return Ok(op(self));
        };
        for _ in 0..MAX_ATTEMPTS {
            if sh.dirty.load(Ordering::Acquire) {
                self.rebuild().await?;
            }
            let gate = sh.gate.read().await;
            if sh.dirty.load(Ordering::Acquire) {
                continue;
            }
            self.catch_up().await?;
            let read_point = sh.applied.load(Ordering::Acquire);
            CAPTURE.with(|c| *c.borrow_mut() = Some(Vec::new()));
            let out = op(self);
            let entries = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
            if entries.is_empty() {
                return Ok(out);
            }
            let mut armed = DirtyUnlessCommitted(Some(sh));
            let mut rows = Vec::with_capacity(entries.len());
            for e in &entries {
                rows.push((
                    e.subject(),
                    serde_json::to_string(e).map_err(|e| unknown("serializing", e))?,
                ));
            }
            let (tx, rx) = oneshot::channel();
            let op_rows = JournalOp {
                read_point,
                entries: rows,
            };
            sh.queue
                .send((op_rows, tx))
                .await
                .map_err(|_| unknown("append", "the appender stopped"))?;
            let written = rx
                .await
                .map_err(|_| unknown("append", "the appender stopped"))?
                .map_err(|e| unknown("append", e))?;
            if written {
                armed.0 = None;
                return Ok(out);
            }
            // Another instance wrote one of these records first: its entry is the truth.
            drop(armed);
            drop(gate);
            tracing::debug!("testpg journal: an operation raced another instance; again");
        }
        Err(unknown(
            "append",
            "the operation kept racing other instances",
        ))
    }

    /// One retention pass (`pruner`; tests call it with a manual clock): notes the seq applied
    /// now in `marks`, and deletes replaced entries and the sessions of marks older than a
    /// window's lifetime. Returns the entries deleted.
    pub async fn prune_once(
        &self,
        marks: &mut std::collections::VecDeque<(i64, i64)>,
    ) -> Result<u64, PgError> {
        let Some(sh) = &self.inner.shared else {
            return Ok(0);
        };
        let now = self.inner.clock.now_unix();
        let applied = sh.applied.load(Ordering::Acquire);
        let sessions_upto =
            expired_sessions_upto(marks, now, applied, self.inner.config.session_ttl_secs);
        let mut total = 0;
        for _ in 0..PRUNE_ROUNDS {
            let n = tokio::time::timeout(
                JOURNAL_DEADLINE,
                sh.journal.prune(sessions_upto, PRUNE_LIMIT),
            )
            .await
            .map_err(|_| unknown("pruning", "timed out"))?
            .map_err(|e| unknown("pruning", e))?;
            total += n;
            if n < PRUNE_LIMIT as u64 {
                break;
            }
        }
        Ok(total)
    }

    /// Apply what other instances appended since this replica's last entry.
    async fn catch_up(&self) -> Result<(), PgError> {
        let Some(sh) = &self.inner.shared else {
            return Ok(());
        };
        let arrival = sh.epoch.load(Ordering::Acquire);
        let _one = sh.catchup.lock().await;
        if sh.done.load(Ordering::Acquire) > arrival {
            // A catch-up that started after this call arrived has finished: it saw enough.
            return Ok(());
        }
        let mine = sh.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        loop {
            let from = sh.applied.load(Ordering::Acquire);
            let rows = self.read_page(from, Some(&sh.origin)).await?;
            let full = rows.len() as i64 >= PAGE;
            let last = rows.last().map(|r| r.seq);
            // Our own entries were applied when their operation ran (and come without bodies).
            let theirs = rows.into_iter().filter(|r| r.origin != sh.origin).collect();
            let parsed = self.parse(theirs)?;
            let mut books = self.lock();
            for (_, _, entry) in parsed {
                self.apply_one(&mut books, entry);
            }
            if let Some(seq) = last {
                sh.applied.store(seq, Ordering::Release);
            }
            drop(books);
            if !full {
                break;
            }
        }
        sh.done.store(mine, Ordering::Release);
        Ok(())
    }

    /// Replace the replica with the journal's state, read from the start. Exclusive: no
    /// operation runs meanwhile.
    async fn rebuild(&self) -> Result<(), PgError> {
        let Some(sh) = &self.inner.shared else {
            return Ok(());
        };
        let _excl = sh.gate.write().await;
        if !sh.dirty.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one = sh.catchup.lock().await;
        let mut books = Books::default();
        let mut applied = 0;
        sh.header.store(HEADER_UNSEEN, Ordering::Release);
        loop {
            let rows = self.read_page(applied, None).await?;
            let full = rows.len() as i64 >= PAGE;
            for (seq, _, entry) in self.parse(rows)? {
                self.apply_one(&mut books, entry);
                applied = seq;
            }
            if !full {
                break;
            }
        }
        *self.lock() = books;
        sh.applied.store(applied, Ordering::Release);
        sh.dirty.store(false, Ordering::Release);
        Ok(())
    }

    async fn read_page(
        &self,
        after: i64,
        skip_bodies_of: Option<&str>,
    ) -> Result<Vec<JournalRow>, PgError> {
        let Some(sh) = &self.inner.shared else {
            return Ok(Vec::new());
        };
        let read = sh.journal.read_after(after, PAGE, skip_bodies_of);
        tokio::time::timeout(JOURNAL_DEADLINE, read)
            .await
            .map_err(|_| unknown("reading", "timed out"))?
            .map_err(|e| unknown("reading", e))
    }

    fn parse(&self, rows: Vec<JournalRow>) -> Result<Vec<(i64, String, Entry)>, PgError> {
        rows.into_iter()
            .map(|r| {
                serde_json::from_str::<Entry>(&r.body)
                    .map(|e| (r.seq, r.origin, e))
                    .map_err(|e| unknown(&format!("entry {} is unreadable", r.seq), e))
            })
            .collect()
    }

    fn apply_one(&self, books: &mut Books, entry: Entry) {
        match entry {
            Entry::Header { version, key_check } => {
                let Some(sh) = &self.inner.shared else {
                    return;
                };
                let ok = version == VERSION && self.key_matches(&key_check);
                // The first header decides; a later one can only be a lost race's leftover.
                if sh.header.load(Ordering::Acquire) == HEADER_UNSEEN {
                    let v = if ok { HEADER_OK } else { HEADER_OTHER_KEY };
                    sh.header.store(v, Ordering::Release);
                }
            }
            other => books.apply(other, &self.inner.sealer),
        }
    }

    // ---- entry points for callers outside the connector (window pages, Pier's deposits) ----

    /// Catch up with the other instances (no-op without a shared journal).
    pub async fn sync(&self) -> Result<(), PgError> {
        if self.inner.shared.is_none() {
            return Ok(());
        }
        let sh_dirty = self
            .inner
            .shared
            .as_ref()
            .is_some_and(|sh| sh.dirty.load(Ordering::Acquire));
        if sh_dirty {
            self.rebuild().await?;
        }
        let Some(sh) = &self.inner.shared else {
            return Ok(());
        };
        let _gate = sh.gate.read().await;
        self.catch_up().await
    }

    /// `deposit`, journalled: the deposit is announced to subscribers once it is committed.
    pub async fn deposit_shared(
        &self,
        target: &DepositTarget,
        amount_krw: Option<i64>,
    ) -> Result<Deposit, PgError> {
        let d = self.run(|e| e.deposit(target, amount_krw)).await??;
        if self.is_shared() {
            let _ = self.inner.events.send(d.clone().into());
        }
        Ok(d)
    }

    /// `ledger_snapshot` after catching up with the other instances.
    pub async fn ledger_snapshot_shared(&self) -> Result<LedgerSnapshot, PgError> {
        self.sync().await?;
        Ok(self.ledger_snapshot())
    }

    /// `session` after catching up (`None` also when the journal cannot be read).
    pub async fn session_shared(&self, session_id: &str) -> Option<SessionView> {
        if let Err(e) = self.sync().await {
            tracing::warn!(error = %e, "testpg window");
            return None;
        }
        self.session(session_id)
    }
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
