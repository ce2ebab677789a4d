//! PostgreSQL's batched point reads of the charge path.
//!
//! Each `again` or `onetime` reads a little before it charges (the billing key's context; the
//! merchant's channels and the merchant_uid's pre-registration). Alone, every such read costs a
//! pool checkout and a round trip on both sides of the socket — worth more than a quarter of
//! `again`'s throughput on the 2-core box (docs/PERFORMANCE.md). Concurrent reads of one kind
//! are queued instead to a reader task that answers whatever is queued with one statement
//! (`BatchedReads`); a lone read waits for nothing. SQLite reads inline (`lane`) and needs none
//! of this.

use crate::batch::{ask, take_queued};
use crate::connect::PgStore;
use crate::customers::CustomerStore;
use crate::error::{StoreError, StoreResult};
use crate::merchants::MerchantStore;
use crate::models::{Channel, Payment};
use crate::payment_row::p_cols;
use crate::payments::{pg_impl, PaymentStore};
use crate::prepare::PrepareStore;
use crate::rows::{channel_from_row, prepared_from_row, ChargeContext, Prepared, PREPARE_COLS};
use sqlx::Row;
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

/// One kind of read shared by concurrent callers.
pub(crate) struct BatchedReads<K, V> {
    tx: mpsc::Sender<Pending<K, V>>,
}

impl<K, V> std::fmt::Debug for BatchedReads<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchedReads")
    }
}

impl<K: Send + Sync + 'static, V: Send + 'static> BatchedReads<K, V> {
    /// Starts the readers: `many` answers a batch (one answer per key, in order) and `one` a
    /// single key — used when a batch fails, so that each caller gets its own answer or error.
    fn start(
        store: Arc<PgStore>,
        many: for<'a> fn(&'a PgStore, &'a [K]) -> BoxFut<'a, Vec<V>>,
        one: for<'a> fn(&'a PgStore, &'a K) -> BoxFut<'a, V>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Pending<K, V>>(crate::batch::QUEUE_DEPTH);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..READERS {
            let (store, rx) = (store.clone(), rx.clone());
            tokio::spawn(async move {
                while let Some(batch) = take_queued(&rx, MAX_READ_BATCH).await {
                    let (keys, replies): (Vec<K>, Vec<_>) = batch.into_iter().unzip();
                    match many(&store, &keys).await {
                        Ok(found) if found.len() == keys.len() => {
                            for (reply, v) in replies.into_iter().zip(found) {
                                let _ = reply.send(Ok(v));
                            }
                        }
                        _ => {
                            for (k, reply) in keys.iter().zip(replies) {
                                let _ = reply.send(one(&store, k).await);
                            }
                        }
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
    /// `direct` must be a store without batched reads of its own (it answers the batches).
    pub(crate) fn start(direct: PgStore) -> Self {
        let direct = Arc::new(direct);
        Self {
            contexts: BatchedReads::start(
                direct.clone(),
                |s, keys| s.charge_contexts(keys),
                |s, (m, c, u)| s.charge_context(m, c, u),
            ),
            channels: BatchedReads::start(direct.clone(), channels_of, |s, m| {
                s.list_channels(Some(m))
            }),
            prepares: BatchedReads::start(direct.clone(), prepares_of, |s, (m, u)| {
                s.get_prepare(m, u)
            }),
            payments: BatchedReads::start(direct, payments_of, |s, (m, i)| {
                s.get_payment(Some(m), i)
            }),
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

/// The channels of each merchant, each list ordered as `list_channels` orders it.
fn channels_of<'a>(s: &'a PgStore, merchants: &'a [String]) -> BoxFut<'a, Vec<Vec<Channel>>> {
    Box::pin(async move {
        let rows = sqlx::query(
            "SELECT k.n, c.id, c.merchant_id, c.pg_provider, c.mid, c.is_default, c.sandbox, c.target, \
             c.created_at, c.api_base, c.client_key, c.secret_sealed FROM UNNEST($1::text[]) WITH ORDINALITY AS k(m, n) \
             JOIN channels c ON c.merchant_id = k.m ORDER BY k.n, c.created_at, c.id",
        )
        .bind(merchants)
        .fetch_all(&s.pool)
        .await?;
        let mut out: Vec<Vec<Channel>> = vec![Vec::new(); merchants.len()];
        for r in &rows {
            slot(&mut out, r.try_get("n")?)?.push(channel_from_row!(r, try_get));
        }
        Ok(out)
    })
}

/// The pre-registration of each (merchant_id, merchant_uid), if any.
fn prepares_of<'a>(
    s: &'a PgStore,
    keys: &'a [(String, String)],
) -> BoxFut<'a, Vec<Option<Prepared>>> {
    Box::pin(async move {
        let merchants: Vec<&str> = keys.iter().map(|(m, _)| m.as_str()).collect();
        let uids: Vec<&str> = keys.iter().map(|(_, u)| u.as_str()).collect();
        let cols: Vec<String> = PREPARE_COLS
            .split(',')
            .map(|c| format!("p.{}", c.trim()))
            .collect();
        let rows = sqlx::query(&format!(
            "SELECT k.n, {} FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS k(m, u, n) \
             JOIN payment_prepares p ON p.merchant_id = k.m AND p.merchant_uid = k.u",
            cols.join(", ")
        ))
        .bind(&merchants)
        .bind(&uids)
        .fetch_all(&s.pool)
        .await?;
        let mut out: Vec<Option<Prepared>> = vec![None; keys.len()];
        for r in &rows {
            *slot(&mut out, r.try_get("n")?)? = Some(prepared_from_row!(r, try_get));
        }
        Ok(out)
    })
}

/// The payment of each (merchant_id, imp_uid), if any, with its cancel history.
fn payments_of<'a>(
    s: &'a PgStore,
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
            .fetch_all(&s.pool)
            .await?;
        // A batch may ask for one payment several times: read each once, history included.
        let mut slots = Vec::with_capacity(rows.len());
        let mut unique: HashMap<String, Payment> = HashMap::new();
        for r in &rows {
            let p = pg_impl::payment(r)?;
            slots.push((r.try_get::<i64, _>("n")?, p.imp_uid.clone()));
            unique.entry(p.imp_uid.clone()).or_insert(p);
        }
        let found = pg_impl::with_history(&s.pool, unique.into_values().collect()).await?;
        let found: HashMap<&str, &Payment> =
            found.iter().map(|p| (p.imp_uid.as_str(), p)).collect();
        let mut out: Vec<Option<Payment>> = vec![None; keys.len()];
        for (n, imp_uid) in slots {
            *slot(&mut out, n)? = found.get(imp_uid.as_str()).map(|p| (*p).clone());
        }
        Ok(out)
    })
}
