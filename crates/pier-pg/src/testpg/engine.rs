//! The engine: one simulated acquirer with its ledger, billing-key vault and virtual accounts.
//!
//! All state sits behind one mutex, held for a few microseconds per call and never across an
//! `.await`: every operation is "check, decide, record" in one critical section, which is what
//! makes the PG-side idempotency hold under concurrency (two approvals of one `order_id` cannot
//! both pass the duplicate check). Outcomes are decided by the card number before the lock is
//! taken (see `cards`), so the critical section is only map lookups and one record write.
//!
//! This file is the engine itself (its state and what every operation uses); the operations
//! live by subject: `ops` (charges, billing keys, cancels), `vbank` (virtual accounts and
//! deposits), `auth` and `complete` (the payment window), `replica` (a shared journal).

use super::config::EngineConfig;
use super::crypto::Sealer;
use super::journal::Journal;
use super::ledger::{Entry, LedgerSnapshot, State};
use super::rules::rejected;
use super::session::Sessions;
use super::shared::Shared;
use crate::{PgError, PgEvent};
use pier_domain::Clock;
use rand::Rng;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

const KEY_CHECK: &[u8] = b"pier testpg journal";

#[derive(Default)]
pub(crate) struct Books {
    pub ledger: State,
    pub sessions: Sessions,
}

impl Books {
    /// Replay one entry of a shared journal (ledger records and window sessions).
    pub fn apply(&mut self, entry: Entry, sealer: &Sealer) {
        match entry {
            Entry::Session { id, sealed } => self.sessions.apply_sealed(id, &sealed, sealer),
            other => self.ledger.apply(other),
        }
    }

    /// Drop the record `entry` writes (`State::forget`, `Sessions::forget`).
    pub fn forget(&mut self, entry: &Entry) {
        match entry {
            Entry::Session { id, .. } => self.sessions.forget(id),
            other => self.ledger.forget(other),
        }
    }
}

pub(crate) struct Inner {
    pub base_url: String,
    pub config: EngineConfig,
    pub clock: Arc<dyn Clock>,
    pub sealer: Sealer,
    pub books: Mutex<Books>,
    pub journal: Option<Journal>,
    pub events: broadcast::Sender<PgEvent>,
    /// Random per engine start, so transaction ids never repeat across restarts.
    pub tid_prefix: u32,
    pub seq: AtomicU64,
    /// The journal in Pier's database that every instance shares (`Engine::new_shared`).
    pub shared: Option<Shared>,
}

/// The simulated acquirer. Cheap to clone (an `Arc` inside); all clones share one ledger.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Build an engine. With a journal this reads and replays it (blocking file IO: call it at
    /// start-up, not per request) and fails if it was written under another key.
    pub fn new(config: EngineConfig, clock: Arc<dyn Clock>) -> io::Result<Self> {
        let sealer = Sealer::new(&config.encryption_key);
        let (journal, ledger) = match &config.journal_path {
            Some(path) => {
                let key_check = sealer.seal(KEY_CHECK, b"journal-header");
                let check =
                    |blob: &str| sealer.open(blob, b"journal-header").as_deref() == Some(KEY_CHECK);
                let (journal, state) = Journal::open(path, key_check, check)?;
                (Some(journal), state)
            }
            None => (None, State::default()),
        };
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        Ok(Self {
            inner: Arc::new(Inner {
                base_url,
                clock,
                sealer,
                books: Mutex::new(Books {
                    ledger,
                    sessions: Sessions::default(),
                }),
                journal,
                events,
                tid_prefix: rand::thread_rng().gen(),
                seq: AtomicU64::new(1),
                config,
                shared: None,
            }),
        })
    }

    /// An engine with no state yet, around an optional shared journal (`shared::new_shared`).
    pub(crate) fn bare(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        shared: Option<Shared>,
    ) -> Self {
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        Self {
            inner: Arc::new(Inner {
                base_url,
                clock,
                sealer: Sealer::new(&config.encryption_key),
                books: Mutex::new(Books::default()),
                journal: None,
                events,
                tid_prefix: rand::thread_rng().gen(),
                seq: AtomicU64::new(1),
                config,
                shared,
            }),
        }
    }

    /// The key check a journal's header carries (sealed, so only the same key opens it).
    pub(crate) fn key_check(&self) -> String {
        self.inner.sealer.seal(KEY_CHECK, b"journal-header")
    }

    pub(crate) fn key_matches(&self, key_check: &str) -> bool {
        self.inner
            .sealer
            .open(key_check, b"journal-header")
            .as_deref()
            == Some(KEY_CHECK)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Base URL of the test PG's pages, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Events the PG sends on its own (virtual-account deposits). A receiver that falls more than
    /// `event_capacity` behind loses the oldest ones (`RecvError::Lagged`); see `PgEvent`.
    pub fn subscribe(&self) -> broadcast::Receiver<PgEvent> {
        self.inner.events.subscribe()
    }

    pub fn ledger_snapshot(&self) -> LedgerSnapshot {
        let now = self.now();
        self.lock().ledger.snapshot(now)
    }

    /// Wait until every change so far is written to the journal file (no-op without one).
    pub async fn flush_journal(&self) -> io::Result<()> {
        match &self.inner.journal {
            Some(j) => j.flush().await,
            None => Ok(()),
        }
    }

    pub(crate) fn now(&self) -> i64 {
        self.inner.clock.now_unix()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Books> {
        // A panic while holding the lock leaves records whole (each change is one assignment), so
        // a poisoned lock is still usable.
        self.inner.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn log(&self, entry: impl FnOnce() -> Entry) {
        if let Some(sh) = &self.inner.shared {
            sh.capture(entry());
        } else if let Some(j) = &self.inner.journal {
            j.append(entry());
        }
    }

    /// Note that the running operation's outcome rests on a record it does not write (shared
    /// journals only): its append is refused if another instance wrote that record since the
    /// operation's read point, as for the records it writes (`shared`).
    pub(crate) fn depends_on(&self, subject: impl FnOnce() -> String) {
        if let Some(sh) = &self.inner.shared {
            sh.capture_read(subject());
        }
    }

    /// The refusal of a public change method called directly on an engine with a shared journal:
    /// its change could not be journalled (the `*_shared` methods and the window pages are).
    pub(crate) fn outside_run(&self) -> Result<(), PgError> {
        match &self.inner.shared {
            Some(sh) if !sh.capturing() => Err(rejected(
                "JOURNALLED_ONLY",
                "with a shared journal, changes go through the journalled entry points",
            )),
            _ => Ok(()),
        }
    }

    /// Whether the state lives in a shared journal (see `shared`).
    pub(crate) fn is_shared(&self) -> bool {
        self.inner.shared.is_some()
    }

    /// An entry that could not be journalled: with a shared journal the local state is no longer
    /// the journal's, so it is rebuilt from the journal before the next operation.
    pub(crate) fn lost_entry(&self, why: &str) {
        tracing::error!(error = why, "testpg journal: an entry was lost");
        if let Some(sh) = &self.inner.shared {
            sh.mark_dirty();
        }
    }

    pub(crate) fn next_tid(&self, kind: char) -> String {
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        format!("TPG{kind}{:08X}{seq:010}", self.inner.tid_prefix)
    }

    pub(crate) fn receipt_url(&self, tid: &str) -> String {
        format!("{}/testpg/receipts/{tid}", self.inner.base_url)
    }
}
