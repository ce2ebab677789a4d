//! The SQLite fast lane: the hot reads and the group-commit writer of the charge path, on
//! rusqlite instead of sqlx.
//!
//! Why: sqlx-sqlite runs every statement on a per-connection worker thread and hands the
//! results back over channels; on this 2-core machine that costs ~50 µs a statement, which
//! capped `GET /payments/{imp_uid}` at ~24k req/s and made the group-commit writer spend its
//! time in thread hand-offs. rusqlite calls SQLite directly (same bundled library, same file,
//! same WAL): a point read by primary key takes a few microseconds, so reads run inline on the
//! calling task, and the writer is one dedicated OS thread that owns its connection.
//!
//! Coherence is SQLite's own: the lane reads committed data through ordinary connections to the
//! same file (WAL readers never wait for the writer), so there is no cache to invalidate and
//! other processes (`pier reconcile`, the CLI) are seen at once. Everything else in the store
//! still goes through sqlx; the SQL text and row mappings are shared with it.

use crate::batch::{Op, OpResult, Queue, Reply};
use crate::error::{StoreError, StoreResult};
use crate::models::{Channel, Customer, OutboxEvent, Payment, Settlement};
use crate::outbox_row::{outbox_insert_sql, NO_WEBHOOK_TARGET};
use crate::owner::Owner;
use crate::payment_row::{
    get_sql, insert_sql, read_cancel_entry, vals, CANCEL_HISTORY_COLS, CANCEL_HISTORY_ONE,
};
use crate::payment_settle::{settle_sql, settle_vals};
use crate::row::{select_sql, ReadRow, Row, Val};
use crate::rows::{ChargeContext, Prepared};
use rusqlite::{Connection, OpenFlags, OptionalExtension, ToSql, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

/// Idle reader connections kept (more are opened under load and closed after).
const MAX_IDLE_READERS: usize = 16;

#[derive(Debug)]
pub(crate) struct Lane {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
}

impl Lane {
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            readers: Mutex::new(Vec::new()),
        }
    }

    /// A connection with the store's settings (WAL is a property of the file, set by sqlx).
    fn connect(&self) -> rusqlite::Result<Connection> {
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(Duration::from_secs(10))?;
        c.pragma_update(None, "synchronous", "FULL")?;
        c.pragma_update(None, "foreign_keys", true)?;
        c.set_prepared_statement_cache_capacity(32);
        Ok(c)
    }

    /// Runs a read on a pooled connection, inline (a point read takes microseconds).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.connect().map_err(db)?,
        };
        let out = f(&conn).map_err(db);
        let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    pub(crate) fn get_payment(
        &self,
        merchant_id: Option<&str>,
        imp_uid: &str,
    ) -> StoreResult<Option<Payment>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(get_sql(merchant_id.is_some()))?;
            let found = match merchant_id {
                Some(m) => stmt.query_row([imp_uid, m], read::<Payment>),
                None => stmt.query_row([imp_uid], read::<Payment>),
            }
            .optional()?;
            let Some(mut p) = found else {
                return Ok(None);
            };
            if p.cancel_amount > 0 || p.cancelled_at > 0 {
                let mut h = c.prepare_cached(CANCEL_HISTORY_ONE)?;
                static NAMES: OnceLock<Vec<&str>> = OnceLock::new();
                let cols = names(CANCEL_HISTORY_COLS, &NAMES);
                let rows = h.query_map([imp_uid], |r| {
                    let r = Cols::new(r, cols);
                    Ok(read_cancel_entry(&r)?.1)
                })?;
                p.cancel_history = rows.collect::<rusqlite::Result<_>>()?;
            }
            Ok(Some(p))
        })
    }

    pub(crate) fn get_customer(
        &self,
        merchant_id: &str,
        customer_uid: &str,
    ) -> StoreResult<Option<Customer>> {
        static SQL: OnceLock<String> = OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "{} WHERE merchant_id = $1 AND customer_uid = $2",
                select_sql::<Customer>()
            )
        });
        self.read(|c| {
            c.prepare_cached(sql)?
                .query_row([merchant_id, customer_uid], read)
                .optional()
        })
    }

    /// Three point reads, inline (on SQLite a read costs microseconds, so no join is needed).
    pub(crate) fn charge_context(
        &self,
        merchant_id: &str,
        customer_uid: &str,
        merchant_uid: &str,
    ) -> StoreResult<Option<ChargeContext>> {
        let Some(customer) = self.get_customer(merchant_id, customer_uid)? else {
            return Ok(None);
        };
        let channel = self.get_channel(&customer.channel_id)?;
        let prepared = self.get_prepare(merchant_id, merchant_uid)?;
        Ok(Some(ChargeContext {
            customer,
            channel,
            prepared,
        }))
    }

    pub(crate) fn get_channel(&self, id: &str) -> StoreResult<Option<Channel>> {
        static SQL: OnceLock<String> = OnceLock::new();
        let sql = SQL.get_or_init(|| format!("{} WHERE id = $1", select_sql::<Channel>()));
        self.read(|c| c.prepare_cached(sql)?.query_row([id], read).optional())
    }

    pub(crate) fn merchant_channels(&self, merchant_id: &str) -> StoreResult<Vec<Channel>> {
        static SQL: OnceLock<String> = OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "{} WHERE merchant_id = $1 ORDER BY created_at, id",
                select_sql::<Channel>()
            )
        });
        self.read(|c| {
            c.prepare_cached(sql)?
                .query_map([merchant_id], read)?
                .collect()
        })
    }

    pub(crate) fn get_prepare(
        &self,
        merchant_id: &str,
        merchant_uid: &str,
    ) -> StoreResult<Option<Prepared>> {
        static SQL: OnceLock<String> = OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "{} WHERE merchant_id = $1 AND merchant_uid = $2",
                select_sql::<Prepared>()
            )
        });
        self.read(|c| {
            c.prepare_cached(sql)?
                .query_row([merchant_id, merchant_uid], read)
                .optional()
        })
    }
}

/// By-name column access to a rusqlite row at index speed. rusqlite resolves a name by asking
/// SQLite for every column's name and comparing (the profile showed a quarter of a lookup spent
/// there); the mappings read columns in the order of their column lists, so the next index is
/// tried first and a name search is the fallback.
struct Cols<'a, 'r> {
    row: &'a rusqlite::Row<'r>,
    names: &'static [&'static str],
    next: std::cell::Cell<usize>,
}

impl<'a, 'r> Cols<'a, 'r> {
    fn new(row: &'a rusqlite::Row<'r>, names: &'static [&'static str]) -> Self {
        Self {
            row,
            names,
            next: std::cell::Cell::new(0),
        }
    }

    fn get<T: rusqlite::types::FromSql>(&self, name: &str) -> rusqlite::Result<T> {
        let hint = self.next.get();
        let i = if self.names.get(hint) == Some(&name) {
            hint
        } else {
            self.names
                .iter()
                .position(|c| *c == name)
                .ok_or_else(|| rusqlite::Error::InvalidColumnName(name.to_owned()))?
        };
        self.next.set(i + 1);
        self.row.get(i)
    }
}

/// A `"a, b, c"` column list as names.
fn names(
    list: &'static str,
    cell: &'static OnceLock<Vec<&'static str>>,
) -> &'static [&'static str] {
    cell.get_or_init(|| list.split(',').map(str::trim).collect())
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(e.to_string())
}

/// The group-commit writer (see `batch`): one OS thread owning one connection. It takes what is
/// queued (up to `MAX_BATCH`), runs it in one `BEGIN IMMEDIATE` transaction — one fsync for the
/// lot — and answers each write. If the batch fails, each write is retried alone so one bad
/// write cannot fail the others. The thread (and its checkpointer's) is one of the store's
/// (`owner`); it ends when the queue is closed (`Writer::close`, or the store dropped) and
/// drained.
pub(crate) fn spawn_writer(lane: Arc<Lane>, queue: Queue, owner: &Owner) -> std::io::Result<()> {
    let owner_ = owner.clone();
    owner.spawn_thread("pier-sqlite-writer", move || {
        let mut rx = queue.blocking_lock();
        let mut conn = loop {
            match lane.connect() {
                Ok(c) => break c,
                // Closed while it could not open the database: nothing to write.
                Err(_) if rx.is_closed() && rx.is_empty() => return,
                Err(e) => {
                    tracing::error!(error = %e, "sqlite writer cannot open the database; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        };
        let checkpointer = Checkpointer::start(&lane, &conn, &owner_);
        drop(owner_);
        while let Some(batch) = crate::batch::next_batch_blocking(&mut rx) {
            run_batch(&mut conn, batch);
            if let Some(c) = &checkpointer {
                c.after_commit(&conn);
            }
        }
    })
}

/// WAL frames after which the writer completes a checkpoint itself, so that its next
/// transaction starts the WAL over (SQLite restarts it only when every frame is back in the
/// database file). About 16 MB of WAL at the default 4 KiB page.
const WAL_RESTART_FRAMES: i64 = 4000;
/// `wal_autocheckpoint` of the store's other (sqlx) connections: past the writer's restart
/// point, so that they checkpoint only when the lane's writer has not (it was idle while they
/// wrote); at SQLite's default of 1,000 most of their commits would copy pages back.
pub(crate) const SQLX_WAL_AUTOCHECKPOINT: i64 = 2 * WAL_RESTART_FRAMES;
/// The checkpointer's pause between runs while commits keep coming.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(20);

/// Copies the WAL back into the database file on a thread of its own. SQLite's automatic
/// checkpoint runs inside the commit that crosses 1,000 frames: on this machine that was a
/// quarter of the writer thread's time under `again` (reading and writing each page, then an
/// fsync of the database file of ~5 ms), and every write queued behind it waited. Here the
/// writer's connection has `wal_autocheckpoint = 0`, each commit wakes this thread (without
/// waiting for it), and a passive checkpoint — which never blocks the writer — does the copying
/// and the fsync. The writer only finishes off what is left when the WAL has grown past
/// `WAL_RESTART_FRAMES`. Durability is unchanged: a commit is on disk when its WAL fsync returns
/// (`synchronous = FULL`), whoever copies it later.
struct Checkpointer {
    wake: mpsc::SyncSender<()>,
    /// The WAL's length in frames at the checkpointer's latest run (0 after the writer copied
    /// it all back).
    wal_frames: Arc<AtomicI64>,
}

impl Checkpointer {
    /// `None` (SQLite's automatic checkpoint stays on) if the thread cannot be set up.
    fn start(lane: &Lane, writer: &Connection, owner: &Owner) -> Option<Self> {
        let wal_frames = Arc::new(AtomicI64::new(0));
        let wake = Self::spawn(lane, wal_frames.clone(), owner)
            .map_err(|e| tracing::warn!(error = %e, "no sqlite checkpointer; checkpointing in the writer"))
            .ok()?;
        if let Err(e) = writer.pragma_update(None, "wal_autocheckpoint", 0) {
            tracing::warn!(error = %e, "cannot turn off the writer's automatic checkpoint");
        }
        Some(Self { wake, wal_frames })
    }

    /// The checkpointer thread, with its own connection; it ends when the writer (the sender)
    /// is gone. A wake-up sent during its pause stays in the channel, so the next run starts
    /// right after it.
    fn spawn(
        lane: &Lane,
        frames: Arc<AtomicI64>,
        owner: &Owner,
    ) -> Result<mpsc::SyncSender<()>, Box<dyn std::error::Error>> {
        let conn = lane.connect()?;
        let (wake, rx) = mpsc::sync_channel::<()>(1);
        owner.spawn_thread("pier-sqlite-ckpt", move || {
            while rx.recv().is_ok() {
                if let Some((log, _)) = checkpoint(&conn) {
                    frames.store(log, Ordering::Relaxed);
                }
                std::thread::sleep(CHECKPOINT_PAUSE);
            }
        })?;
        Ok(wake)
    }

    fn after_commit(&self, writer: &Connection) {
        let _ = self.wake.try_send(());
        if self.wal_frames.load(Ordering::Relaxed) >= WAL_RESTART_FRAMES {
            // Most frames are copied already; a run that finds the checkpointer busy returns
            // at once and is retried after the next commit.
            if matches!(checkpoint(writer), Some((log, done)) if done == log) {
                self.wal_frames.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// A passive checkpoint: the WAL's frames and how many of them are in the database file now
/// (all of them: the next write transaction restarts the WAL); `None` if another checkpoint
/// was running.
fn checkpoint(c: &Connection) -> Option<(i64, i64)> {
    let (busy, log, done) = c
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(|e| tracing::warn!(error = %e, "sqlite checkpoint failed"))
        .ok()?;
    (busy == 0).then_some((log, done))
}

fn run_batch(conn: &mut Connection, batch: Vec<(Op, Reply)>) {
    let ops: Vec<&Op> = batch.iter().map(|(op, _)| op).collect();
    match in_transaction(conn, &ops) {
        Ok(results) => {
            for ((_, reply), r) in batch.into_iter().zip(results) {
                let _ = reply.send(Ok(r));
            }
        }
        Err(_) if batch.len() > 1 => {
            for (op, reply) in batch {
                let _ = reply.send(
                    in_transaction(conn, &[&op])
                        .map(|mut r| r.pop().expect("one result per write")),
                );
            }
        }
        Err(e) => {
            if let Some((_, reply)) = batch.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
    }
}

fn in_transaction(conn: &mut Connection, ops: &[&Op]) -> StoreResult<Vec<OpResult>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        out.push(apply(&tx, op).map_err(db)?);
    }
    tx.commit().map_err(db)?;
    Ok(out)
}

fn apply(c: &Connection, op: &Op) -> rusqlite::Result<OpResult> {
    Ok(match op {
        Op::Insert(p) => OpResult::Inserted(insert(c, p)? as u64),
        Op::Settle {
            imp_uid,
            s,
            now,
            events,
        } => {
            let settled = settle(c, imp_uid, s, *now)?;
            if settled.is_some() {
                for ev in events {
                    insert_outbox(c, ev)?;
                }
            }
            OpResult::Settled(settled.map(Box::new))
        }
    })
}

/// Inserts an attempt (`payment_row::vals`); 0 rows when the guard is taken.
fn insert(c: &Connection, p: &Payment) -> rusqlite::Result<usize> {
    c.prepare_cached(insert_sql())?
        .execute(rusqlite::params_from_iter(vals(p)))
}

/// Binds `vals[i]` to the parameter named `$i+1` (SQLite numbers `$n` parameters in order of
/// first appearance, which in the settle statements is not `n`).
fn bind_numbered(stmt: &mut rusqlite::Statement<'_>, vals: &[&dyn ToSql]) -> rusqlite::Result<()> {
    for (i, v) in vals.iter().enumerate() {
        let name = format!("${}", i + 1);
        if let Some(idx) = stmt.parameter_index(&name)? {
            stmt.raw_bind_parameter(idx, v)?;
        }
    }
    Ok(())
}

fn settle(
    c: &Connection,
    imp_uid: &str,
    s: &Settlement,
    now: i64,
) -> rusqlite::Result<Option<Payment>> {
    let (kind, vals) = settle_vals(imp_uid, now, s);
    let vals: Vec<&dyn ToSql> = vals.iter().map(|v| v as &dyn ToSql).collect();
    let mut stmt = c.prepare_cached(settle_sql(kind))?;
    bind_numbered(&mut stmt, &vals)?;
    let mut rows = stmt.raw_query();
    match rows.next()? {
        Some(r) => Ok(Some(read(r)?)),
        None => Ok(None),
    }
}

/// A declared row from its columns, in declared order.
fn read<T: Row>(r: &rusqlite::Row<'_>) -> rusqlite::Result<T> {
    T::read(&Cols::new(r, T::NAMES))
}

impl ReadRow for Cols<'_, '_> {
    type Error = rusqlite::Error;
    fn text(&self, col: &str) -> rusqlite::Result<String> {
        self.get(col)
    }
    fn opt_text(&self, col: &str) -> rusqlite::Result<Option<String>> {
        self.get(col)
    }
    fn int(&self, col: &str) -> rusqlite::Result<i64> {
        self.get(col)
    }
    fn opt_int(&self, col: &str) -> rusqlite::Result<Option<i64>> {
        self.get(col)
    }
    fn boolean(&self, col: &str) -> rusqlite::Result<bool> {
        self.get(col)
    }
    fn invalid(col: &str, value: &str) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            Box::new(crate::row::Invalid(format!(
                "{col}: unknown value {value:?}"
            ))),
        )
    }
}

/// Inserts an event (`outbox_row`): its declared columns, then `NO_WEBHOOK_TARGET`.
fn insert_outbox(c: &Connection, ev: &OutboxEvent) -> rusqlite::Result<usize> {
    let vals = ev.vals().chain([Val::Text(Some(NO_WEBHOOK_TARGET))]);
    c.prepare_cached(outbox_insert_sql())?
        .execute(rusqlite::params_from_iter(vals))
}
