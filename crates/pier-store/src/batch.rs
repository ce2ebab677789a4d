//! Group commit for the hot writes of a charge (insert the attempt, record the PG's answer).
//!
//! Each write is still acknowledged only after its transaction committed — durability is
//! unchanged — but concurrent writes share one transaction and so one fsync (SQLite,
//! `synchronous=FULL`) or one WAL flush (PostgreSQL). Writers take whatever is queued, up to
//! `MAX_BATCH`, so a lone write is not delayed.

use crate::error::{StoreError, StoreResult};
use crate::models::{OutboxEvent, Payment, Settlement};
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Most writes one transaction carries.
pub const MAX_BATCH: usize = 256;
/// Bound of the queue in front of the writers.
pub const QUEUE_DEPTH: usize = 4096;

pub(crate) enum Op {
    Insert(Box<Payment>),
    Settle {
        imp_uid: String,
        s: Box<Settlement>,
        now: i64,
        events: Vec<OutboxEvent>,
    },
}

pub(crate) enum OpResult {
    /// Rows inserted (0 = the merchant_uid guard was taken).
    Inserted(u64),
    Settled(Option<Box<Payment>>),
    /// PostgreSQL's batch answers with rows, which the waiting caller decodes: the writer's
    /// connection does not wait on the decoding of a whole batch before its next statement.
    SettledRow(Box<sqlx::postgres::PgRow>),
}

impl OpResult {
    /// The answer to an `Op::Settle`: the settled row, or `None` if it had moved on.
    pub(crate) fn into_settled(self) -> StoreResult<Option<Payment>> {
        Ok(match self {
            OpResult::Settled(p) => p.map(|b| *b),
            OpResult::SettledRow(r) => Some(crate::payment_row::read_payment(&*r)?),
            _ => None,
        })
    }
}

/// The databases whose writer can apply a whole batch with multi-row statements.
#[async_trait]
pub(crate) trait MultiRow: sqlx::Database {
    /// Applies the batch atomically (all of it or none). `None`: not supported, apply the
    /// writes one by one in a transaction.
    async fn write_batch(
        pool: &sqlx::Pool<Self>,
        ops: &[&Op],
    ) -> Option<sqlx::Result<Vec<OpResult>>>;
}

#[async_trait]
impl MultiRow for sqlx::Sqlite {
    async fn write_batch(
        _pool: &sqlx::Pool<Self>,
        _ops: &[&Op],
    ) -> Option<sqlx::Result<Vec<OpResult>>> {
        None
    }
}

pub(crate) type Reply = oneshot::Sender<StoreResult<OpResult>>;
pub(crate) type Queue = Arc<Mutex<mpsc::Receiver<(Op, Reply)>>>;

/// The sending side of the writers' queue. `close` drops it: the writers drain what was queued
/// and end, and every later write is answered `Unavailable` (shutdown; the tests that stop the
/// writer in the middle of a request).
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    tx: Arc<std::sync::RwLock<Option<Sender>>>,
}

type Sender = mpsc::Sender<(Op, Reply)>;

impl Writer {
    pub(crate) fn new() -> (Self, Queue) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        (
            Self {
                tx: Arc::new(std::sync::RwLock::new(Some(tx))),
            },
            Arc::new(Mutex::new(rx)),
        )
    }

    pub(crate) async fn submit(&self, op: Op) -> StoreResult<OpResult> {
        // A clone of the sender (one atomic increment) so the lock is not held across the await.
        let tx = match self.tx.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        match tx {
            Some(tx) => ask(&tx, op, "writer").await,
            None => Err(StoreError::Unavailable(
                "the store's writer has stopped".into(),
            )),
        }
    }

    /// Stops taking writes; the writers finish what is queued and end.
    pub(crate) fn close(&self) {
        let mut guard = match self.tx.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.take();
    }
}

/// Queues `item` to the store's background `who` (writer, readers) and waits for its answer.
pub(crate) async fn ask<T, V>(
    tx: &mpsc::Sender<(T, oneshot::Sender<StoreResult<V>>)>,
    item: T,
    who: &str,
) -> StoreResult<V> {
    let (reply, answer) = oneshot::channel();
    tx.send((item, reply))
        .await
        .map_err(|_| StoreError::Unavailable(format!("the store's {who} has stopped")))?;
    answer
        .await
        .map_err(|_| StoreError::Unavailable(format!("the store's {who} dropped a request")))?
}

/// Waits for one write, then takes what else is queued (up to `MAX_BATCH`). `None` when closed.
pub(crate) async fn next_batch(queue: &Queue) -> Option<Vec<(Op, Reply)>> {
    take_queued(queue, MAX_BATCH).await
}

/// Waits for one item, then takes what else is queued (up to `max`), so a lone item waits for
/// nothing. `None` when the queue is closed. Shared by the writers and the batched reads.
pub(crate) async fn take_queued<T>(queue: &Mutex<mpsc::Receiver<T>>, max: usize) -> Option<Vec<T>> {
    let mut rx = queue.lock().await;
    let first = rx.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// `next_batch` for a writer on its own thread, holding the receiver.
pub(crate) fn next_batch_blocking(
    rx: &mut mpsc::Receiver<(Op, Reply)>,
) -> Option<Vec<(Op, Reply)>> {
    let first = rx.blocking_recv()?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}
