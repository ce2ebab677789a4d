//! The engine's side of a shared journal (`shared`): the replica of the journal's state that
//! each instance keeps, how an operation runs on it (`Engine::run`), and how it is kept equal to
//! the journal — catch-up before each operation, repair after a lost race, a full rebuild only at
//! start and after an append whose outcome is unknown.

use super::config::EngineConfig;
use super::engine::{Books, Engine, Inner};
use super::journal::VERSION;
use super::ledger::Entry;
use super::shared::{
    appender, expired_sessions_upto, DirtyUnlessCommitted, JournalOp, JournalRow, JournalStats,
    LiveGuard, Pending, Shared, SharedJournal, CAPTURE, HEADER_OK, HEADER_OTHER_KEY, HEADER_UNSEEN,
    JOURNAL_DEADLINE, MAX_ATTEMPTS, PAGE, PRUNE_EVERY, PRUNE_LIMIT, PRUNE_ROUNDS,
};
use super::{Deposit, DepositTarget, LedgerSnapshot, SessionView};
use crate::PgError;
use pier_domain::{ids::random_hex, Clock};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch, OwnedRwLockReadGuard};

/// Prunes the journal every `PRUNE_EVERY` until `stop` (holding the engine only weakly, so a
/// dropped engine stops its pruner at the next tick too).
async fn pruner(inner: std::sync::Weak<Inner>, mut stop: watch::Receiver<bool>, _live: LiveGuard) {
    // `(unix time, seq applied then)`: sessions written at or before that seq were opened
    // before that time, so they have expired once a window's lifetime has passed since.
    let mut marks: std::collections::VecDeque<(i64, i64)> = std::collections::VecDeque::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
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

fn unknown(what: &str, e: impl std::fmt::Display) -> PgError {
    PgError::Unknown(format!("test PG journal: {what}: {e}"))
}

impl Engine {
    /// An engine whose state lives in `journal`, shared with every other engine on it. Reads
    /// the whole journal (call it at start-up) and refuses a journal written under another key.
    /// Its appender and pruner run until `shutdown`.
    pub async fn new_shared(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        journal: Arc<dyn SharedJournal>,
    ) -> io::Result<Self> {
        let origin = random_hex(8);
        let (shared, rx) = Shared::new(journal.clone(), origin.clone());
        let live = shared.background.enter();
        let stop = shared.stop.subscribe();
        shared.own(tokio::spawn(appender(journal, origin, rx, stop, live)));
        let engine = Engine::bare(config, clock, Some(shared));
        if let Some(sh) = &engine.inner.shared {
            let (live, stop) = (sh.background.enter(), sh.stop.subscribe());
            let weak = Arc::downgrade(&engine.inner);
            sh.own(tokio::spawn(pruner(weak, stop, live)));
        }
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

    /// What keeping the replica cost so far (`None` without a shared journal).
    pub fn journal_stats(&self) -> Option<JournalStats> {
        self.inner.shared.as_ref().map(Shared::stats)
    }

    /// Stops the shared journal's appender (after appending what is queued) and its pruner, and
    /// waits until they have ended; operations are refused (`Unknown`) from then on. Call it
    /// once nothing uses the engine any more (Pier's shutdown does, after joining its own
    /// tasks). A no-op without a shared journal.
    pub async fn shutdown(&self) {
        if let Some(sh) = &self.inner.shared {
            sh.shutdown().await;
        }
    }

    /// The shared journal's background tasks (appender, pruner) still running: 2 while the
    /// engine runs, 0 after `shutdown`.
    pub fn journal_tasks_live(&self) -> usize {
        self.inner
            .shared
            .as_ref()
            .map_or(0, |sh| sh.background.count())
    }

    /// Run one operation. Without a shared journal: just run it. With one: run it on the
    /// replica capturing its entries, append them, and answer only once they are committed; an
    /// operation that raced another instance runs again on the repaired replica. An operation
    /// that writes nothing answers only from a replica that caught up first.
    ///
    /// Why an operation that writes may run without catching up first when the replica read the
    /// journal's end within `FRESH` (one journal round trip, the append, instead of two; issue
    /// #20's PostgreSQL `again` path paid both), while "a
    /// write acknowledged by instance A is seen by any later operation on instance B" still
    /// holds. Let W be A's acknowledged entry, committed before B's operation started, and let B
    /// run on a replica that has not applied W (read point below W's `seq`). Then:
    /// * if W writes a record the operation writes or reads (every record an answer rests on is
    ///   written or declared with `depends_on`: the order of a charge, the key a charge uses, the
    ///   order a window opens for…), B's append is refused — W is another origin's entry above
    ///   the read point — and the operation runs again on the repaired, caught-up replica, which
    ///   has W;
    /// * otherwise W touches nothing the operation's answer or entries depend on, so running it
    ///   before or after W gives the same answer and entries: as its entries are appended after
    ///   W, the journal holds the history "W, then the operation", which is one where it saw W.
    ///
    /// An operation that writes nothing has no append to be refused, so nothing would catch a
    /// stale answer ("no such order" for an order A just approved): it runs again after a
    /// catch-up, exactly as before. Its first run cost no round trip, so reads pay what they
    /// paid, and writes one round trip less.
    pub(crate) async fn run<T>(&self, mut op: impl FnMut(&Engine) -> T) -> Result<T, PgError> {
        let Some(sh) = &self.inner.shared else {
            return Ok(op(self));
        };
        let mut catch_up_first = !sh.fresh();
        for _ in 0..MAX_ATTEMPTS {
            if sh.closing() {
                return Err(unknown("append", "the test PG is shut down"));
            }
            if sh.dirty.load(Ordering::Acquire) {
                self.rebuild().await?;
            }
            let gate = sh.gate.clone().read_owned().await;
            if sh.dirty.load(Ordering::Acquire) {
                continue;
            }
            if catch_up_first {
                self.catch_up().await?;
            }
            // A place in the appender's queue before the operation runs, so that it is queued
            // at once after (`run_queued`).
            let permit = sh
                .queue
                .reserve()
                .await
                .map_err(|_| unknown("append", "the appender stopped"))?;
            let (out, queued) = self.run_queued(sh, permit, &mut op)?;
            let Some((answer, entries)) = queued else {
                if catch_up_first {
                    return Ok(out);
                }
                // Nothing written, so nothing checked its view: again on a caught-up replica.
                catch_up_first = true;
                continue;
            };
            // The commit is a task of its own, so that its outcome is settled (committed, or
            // refused and repaired) even when this caller stops waiting (its deadline): a
            // dropped wait costs nothing, where it used to force a rebuild of the replica.
            let live = sh.commits.enter();
            let engine = self.clone();
            let commit = tokio::spawn(async move {
                let _live = live;
                engine.commit(gate, answer, entries).await
            });
            match commit.await {
                Ok(Ok(true)) => return Ok(out),
                Ok(Ok(false)) => {
                    tracing::debug!("testpg journal: an operation raced another instance; again")
                }
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(unknown("append", e)),
            }
        }
        Err(unknown(
            "append",
            "the operation kept racing other instances",
        ))
    }

    /// Runs `op` on the replica and queues its entries for the appender, in one step under
    /// `sequencer`: the journal receives the operations in the order they changed the replica.
    /// Otherwise two operations of this instance on one record could be appended the other way
    /// round (their own entries never conflict), and the later entry of the record — the one
    /// every replica keeps — would be the one written first, without the other's change.
    /// Answers the operation's result and, if it wrote anything, its append's answer and entries.
    #[allow(clippy::type_complexity)]
    fn run_queued<T>(
        &self,
        sh: &Shared,
        permit: mpsc::Permit<'_, Pending>,
        op: &mut impl FnMut(&Engine) -> T,
    ) -> Result<
        (
            T,
            Option<(oneshot::Receiver<Result<bool, String>>, Vec<Entry>)>,
        ),
        PgError,
    > {
        let _order = sh.sequencer.lock().unwrap_or_else(|e| e.into_inner());
        let read_point = sh.applied.load(Ordering::Acquire);
        CAPTURE.with(|c| *c.borrow_mut() = Some(Default::default()));
        let out = op(self);
        let captured = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
        if captured.entries.is_empty() {
            return Ok((out, None));
        }
        let mut rows = Vec::with_capacity(captured.entries.len());
        for e in &captured.entries {
            match serde_json::to_string(e) {
                Ok(body) => rows.push((e.subject(), body)),
                Err(err) => {
                    // The replica has the change and the journal never will.
                    sh.mark_dirty();
                    return Err(unknown("serializing", err));
                }
            }
        }
        let journal_op = JournalOp {
            read_point,
            entries: rows,
            reads: captured.reads,
        };
        let (tx, rx) = oneshot::channel();
        permit.send((journal_op, tx));
        Ok((out, Some((rx, captured.entries))))
    }

    /// Wait for one operation's append; `false` when another instance wrote (or, for a read
    /// subject, changed) one of its records first, in which case the replica is repaired before
    /// this answers.
    async fn commit(
        &self,
        gate: OwnedRwLockReadGuard<()>,
        answer: oneshot::Receiver<Result<bool, String>>,
        entries: Vec<Entry>,
    ) -> Result<bool, PgError> {
        let Some(sh) = &self.inner.shared else {
            return Ok(true);
        };
        let mut armed = DirtyUnlessCommitted(Some(sh));
        let written = answer
            .await
            .map_err(|_| unknown("append", "the appender stopped"))?
            .map_err(|e| unknown("append", e))?;
        // The outcome is known: refused entries are repaired below, not rebuilt.
        armed.0 = None;
        drop(gate);
        if !written {
            self.repair(&entries).await?;
        }
        Ok(written)
    }

    /// After a lost race: put every record the operation wrote back in the journal's state.
    /// They are dropped from the replica, their entries (and only theirs: an indexed read by
    /// subject) applied again in `seq` order, and the replica catches up. Exclusive like a
    /// rebuild, but its cost is what the operation touched: a few entries, one or two round
    /// trips, instead of the whole journal.
    ///
    /// Why the records come back from the journal and not from copies taken before the
    /// operation: another operation of this instance may have committed a later entry of one
    /// of them meanwhile, and the journal has it. Catching up afterwards cannot undo such an
    /// entry of ours: an entry of another origin older than it was applied before it was
    /// written (the conflict rule), so it is at or below `applied`.
    async fn repair(&self, touched: &[Entry]) -> Result<(), PgError> {
        let Some(sh) = &self.inner.shared else {
            return Ok(());
        };
        if touched.iter().any(|e| matches!(e, Entry::Header { .. })) {
            // The header race of two instances starting at once: a full read anyway.
            sh.mark_dirty();
            return Ok(());
        }
        let mut subjects: Vec<String> = touched.iter().map(Entry::subject).collect();
        subjects.sort();
        subjects.dedup();
        let _excl = sh.gate.write().await;
        if sh.dirty.load(Ordering::Acquire) {
            // A full rebuild is due anyway.
            return Ok(());
        }
        let _one = sh.catchup.lock().await;
        let repaired = async {
            let read = sh.journal.read_subjects(&subjects);
            let rows = tokio::time::timeout(JOURNAL_DEADLINE, read)
                .await
                .map_err(|_| unknown("reading", "timed out"))?
                .map_err(|e| unknown("reading", e))?;
            let parsed = self.parse(rows)?;
            sh.repairs.fetch_add(1, Ordering::AcqRel);
            sh.repaired_rows
                .fetch_add(parsed.len() as u64, Ordering::AcqRel);
            {
                let mut books = self.lock();
                for e in touched {
                    books.forget(e);
                }
                for (_, _, entry) in parsed {
                    self.apply_one(&mut books, entry);
                }
            }
            self.read_new_entries().await
        }
        .await;
        if repaired.is_err() {
            sh.mark_dirty();
        }
        repaired
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
        self.read_new_entries().await?;
        sh.done.store(mine, Ordering::Release);
        Ok(())
    }

    /// The reads of a catch-up (the caller holds `catchup`).
    async fn read_new_entries(&self) -> Result<(), PgError> {
        let Some(sh) = &self.inner.shared else {
            return Ok(());
        };
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
                sh.mark_caught_up();
                return Ok(());
            }
        }
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
        sh.rebuilds.fetch_add(1, Ordering::AcqRel);
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
        sh.mark_caught_up();
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
        let Some(sh) = &self.inner.shared else {
            return Ok(());
        };
        if sh.dirty.load(Ordering::Acquire) {
            self.rebuild().await?;
        }
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
