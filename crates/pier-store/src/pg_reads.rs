//! PostgreSQL's batched point reads of the charge path.
//!
//! Each `again` or `onetime` reads a little before it charges (the billing key's context; the
//! merchant's channels and the merchant_uid's pre-registration). Alone, every such read costs a
//! pool checkout and a round trip on both sides of the socket — worth more than a quarter of
//! `again`'s throughput on the 2-core box (docs/PERFORMANCE.md). Concurrent reads of one kind
//! are queued instead to a reader task that answers whatever is queued with one statement
//! (`BatchedReads`); a lone read waits for nothing. SQLite reads inline (`lane`) and needs none
//! of this.
//!
//! This is machinery below the per-table files: the statements come from the rows'
//! declarations (`rows`, `payment_row`), and the per-table files only queue their reads here.

use crate::batch::{ask, take_queued};
use crate::error::{StoreError, StoreResult};
use crate::models::{Channel, Payment};
use crate::owner::Owner;
use crate::payment_row::{p_cols, read_payment};
use crate::payment_write::pg::with_history;
use crate::row::{qualified, Row};
use crate::rows::{
    charge_context_keys, charge_contexts_by_key, charge_contexts_sql, ChargeContext, Prepared,
    PG_CONTEXT_KEYS,
};
use sqlx::postgres::PgPool;
use sqlx::Row as _;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot, Mutex};

/// Most reads one statement answers.
const MAX_READ_BATCH: usize = 128;
/// Reader tasks per kind of read. One: a read statement costs PostgreSQL far more than its
/// rows (~200 µs of backend CPU for a handful of keys), so fewer, fuller batches won; a second
/// reader made `again` ~5 % slower (docs/PERFORMANCE.md).
const READERS: usize = 1;

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'a>>;
type Pending<K, V> = (K, oneshot::Sender<StoreResult<V>>);
/// Answers a batch of keys: one answer per key, in order.
type Many<K, V> = for<'a> fn(&'a PgPool, &'a [K]) -> BoxFut<'a, Vec<V>>;

/// One kind of read shared by concurrent callers.
pub(crate) struct BatchedReads<K, V> {
    tx: mpsc::Sender<Pending<K, V>>,
}

impl<K, V> std::fmt::Debug for BatchedReads<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchedReads")
    }
}

/// What a reader does next.
enum Next<T> {
    /// A batch to answer; `None`: the queue is closed and drained, the reader ends.
    Batch(Option<T>),
    /// The store is shutting down: close the queue, answer what is in it, end.
    Stop,
}

impl<K: Send + Sync + 'static, V: Send + 'static> BatchedReads<K, V> {
    /// Starts the readers, as tasks of `owner`. A batch that fails is retried key by key, so
    /// that each caller gets its own answer or error.
    fn start(pool: &PgPool, owner: &Owner, name: &'static str, many: Many<K, V>) -> Self {
        let (tx, rx) = mpsc::channel::<Pending<K, V>>(crate::batch::QUEUE_DEPTH);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..READERS {
            let (pool, rx, mut stop) = (pool.clone(), rx.clone(), owner.stopping());
            owner.spawn(name, async move {
                loop {
                    let next = tokio::select! {
                        biased;
                        b = take_queued(&rx, MAX_READ_BATCH) => Next::Batch(b),
                        _ = stop.wait_for(|s| *s) => Next::Stop,
                    };
                    match next {
                        Next::Stop => rx.lock().await.close(),
                        Next::Batch(None) => break,
                        Next::Batch(Some(batch)) => answer(&pool, many, batch).await,
                    }
                }
            });
        }
        Self { tx }
    }

    pub(crate) async fn read(&self, key: K) -> StoreResult<V> {
        ask(&self.tx, key, "readers").await
    }
}

/// Answers one batch: with one statement, or key by key if that failed.
async fn answer<K, V>(pool: &PgPool, many: Many<K, V>, batch: Vec<Pending<K, V>>) {
    let (keys, replies): (Vec<K>, Vec<_>) = batch.into_iter().unzip();
    match many(pool, &keys).await {
        Ok(found) if found.len() == keys.len() => {
            for (reply, v) in replies.into_iter().zip(found) {
                let _ = reply.send(Ok(v));
            }
        }
        _ => {
            for (k, reply) in keys.iter().zip(replies) {
                let one = many(pool, std::slice::from_ref(k)).await.and_then(|v| {
                    v.into_iter()
                        .next()
                        .ok_or_else(|| StoreError::Stale("a batched read answered nothing".into()))
                });
                let _ = reply.send(one);
            }
        }
    }
}

pub(crate) type ContextKey = (String, String, String);

/// The batched reads of one PostgreSQL store.
#[derive(Debug)]
pub(crate) struct PgReads {
    /// `charge_context` by (merchant_id, customer_uid, merchant_uid).
    pub(crate) contexts: BatchedReads<ContextKey, Option<ChargeContext>>,
    /// `list_channels` of one merchant.
    pub(crate) channels: BatchedReads<String, Vec<Channel>>,
    /// `get_prepare` by (merchant_id, merchant_uid).
    pub(crate) prepares: BatchedReads<(String, String), Option<Prepared>>,
    /// `get_payment` of one merchant by (merchant_id, imp_uid): the lookups' point read.
    pub(crate) payments: BatchedReads<(String, String), Option<Payment>>,
}

impl PgReads {
    /// Starts the readers on `pool`, as tasks of `owner`.
    pub(crate) fn start(pool: &PgPool, owner: &Owner) -> Self {
        Self {
            contexts: BatchedReads::start(pool, owner, "pg-read-contexts", contexts_of),
            channels: BatchedReads::start(pool, owner, "pg-read-channels", channels_of),
            prepares: BatchedReads::start(pool, owner, "pg-read-prepares", prepares_of),
            payments: BatchedReads::start(pool, owner, "pg-read-payments", payments_of),
        }
    }
}

/// The answer of key `n` (`WITH ORDINALITY` counts from 1).
fn slot<T>(out: &mut [T], n: i64) -> StoreResult<&mut T> {
    usize::try_from(n - 1)
        .ok()
        .and_then(|i| out.get_mut(i))
        .ok_or_else(|| StoreError::Stale(format!("batched read answered key {n}")))
}

/// The charge context of each key (`CustomerStore::charge_contexts`'s statement).
fn contexts_of<'a>(
    pool: &'a PgPool,
    keys: &'a [ContextKey],
) -> BoxFut<'a, Vec<Option<ChargeContext>>> {
    Box::pin(async move {
        static SQL: OnceLock<String> = OnceLock::new();
        let rows = sqlx::query(SQL.get_or_init(|| charge_contexts_sql(PG_CONTEXT_KEYS)))
            .bind(charge_context_keys(keys))
            .fetch_all(pool)
            .await?;
        Ok(charge_contexts_by_key(keys.len(), &rows)?)
    })
}

/// The channels of each merchant, each list ordered as `list_channels` orders it.
fn channels_of<'a>(pool: &'a PgPool, merchants: &'a [String]) -> BoxFut<'a, Vec<Vec<Channel>>> {
    Box::pin(async move {
        static SQL: OnceLock<String> = OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "SELECT k.n, {} FROM UNNEST($1::text[]) WITH ORDINALITY AS k(m, n) \
                 JOIN channels c ON c.merchant_id = k.m ORDER BY k.n, c.created_at, c.id",
                qualified::<Channel>("c")
            )
        });
        let rows = sqlx::query(sql).bind(merchants).fetch_all(pool).await?;
        let mut out: Vec<Vec<Channel>> = vec![Vec::new(); merchants.len()];
        for r in &rows {
            slot(&mut out, r.try_get("n")?)?.push(Channel::read(r)?);
        }
        Ok(out)
    })
}

/// The pre-registration of each (merchant_id, merchant_uid), if any.
fn prepares_of<'a>(
    pool: &'a PgPool,
    keys: &'a [(String, String)],
) -> BoxFut<'a, Vec<Option<Prepared>>> {
    Box::pin(async move {
        static SQL: OnceLock<String> = OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "SELECT k.n, {} FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS k(m, u, n) \
                 JOIN payment_prepares p ON p.merchant_id = k.m AND p.merchant_uid = k.u",
                qualified::<Prepared>("p")
            )
        });
        let merchants: Vec<&str> = keys.iter().map(|(m, _)| m.as_str()).collect();
        let uids: Vec<&str> = keys.iter().map(|(_, u)| u.as_str()).collect();
        let rows = sqlx::query(sql)
            .bind(&merchants)
            .bind(&uids)
            .fetch_all(pool)
            .await?;
        let mut out: Vec<Option<Prepared>> = vec![None; keys.len()];
        for r in &rows {
            *slot(&mut out, r.try_get("n")?)? = Some(Prepared::read(r)?);
        }
        Ok(out)
    })
}

/// The payment of each (merchant_id, imp_uid), if any, with its cancel history.
fn payments_of<'a>(
    pool: &'a PgPool,
    keys: &'a [(String, String)],
) -> BoxFut<'a, Vec<Option<Payment>>> {
    Box::pin(async move {
        static SQL: OnceLock<String> = OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "SELECT k.n, {} FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS k(m, i, n) \
                 JOIN payments p ON p.imp_uid = k.i AND p.merchant_id = k.m",
                p_cols()
            )
        });
        let merchants: Vec<&str> = keys.iter().map(|(m, _)| m.as_str()).collect();
        let imp_uids: Vec<&str> = keys.iter().map(|(_, i)| i.as_str()).collect();
        let rows = sqlx::query(sql)
            .bind(&merchants)
            .bind(&imp_uids)
            .fetch_all(pool)
            .await?;
        // A batch may ask for one payment several times: read each once, history included.
        let mut slots = Vec::with_capacity(rows.len());
        let mut unique: HashMap<String, Payment> = HashMap::new();
        for r in &rows {
            let p = read_payment(r)?;
            slots.push((r.try_get::<i64, _>("n")?, p.imp_uid.clone()));
            unique.entry(p.imp_uid.clone()).or_insert(p);
        }
        let found = with_history(pool, unique.into_values().collect()).await?;
        let found: HashMap<&str, &Payment> =
            found.iter().map(|p| (p.imp_uid.as_str(), p)).collect();
        let mut out: Vec<Option<Payment>> = vec![None; keys.len()];
        for (n, imp_uid) in slots {
            *slot(&mut out, n)? = found.get(imp_uid.as_str()).map(|p| (*p).clone());
        }
        Ok(out)
    })
}
