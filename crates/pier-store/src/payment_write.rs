//! The charge path's writes through sqlx: the single-row insert and settle (with the
//! settle's webhook rows), the cancel history every read of a payment completes it with
//! (`with_history`), and the group-commit writer task that applies queued writes
//! (`batch`), a batch at a time. On PostgreSQL a batch is one multi-row statement
//! (`pg_batch`, reached through `batch::MultiRow`); SQLite's hot writes normally go through
//! the lane's writer thread instead (`lane`), this one serving a store opened without it.
//! The statements come from the row's declaration (`payment_row`).

use crate::batch::{Op, OpResult};
use crate::error::on_conflict;
use crate::models::{OutboxEvent, Payment, Settlement};
use crate::outbox_row::{outbox_insert_sql, NO_WEBHOOK_TARGET};
use crate::payment_row::{
    insert_sql, numbered, read_cancel_entry, read_payment, vals, CANCEL_HISTORY_COLS,
};
use crate::payment_settle::{settle_sql, settle_vals};
use crate::row::{bind_row, bind_val};

macro_rules! impl_payment_write {
    ($db:ty, $m:ident) => {
        pub(crate) mod $m {
            use super::*;

            pub(crate) async fn insert_outbox<'e, E>(exec: E, ev: &OutboxEvent) -> sqlx::Result<()>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                bind_row(sqlx::query(outbox_insert_sql()), ev)
                    .bind(NO_WEBHOOK_TARGET)
                    .execute(exec)
                    .await?;
                Ok(())
            }

            /// Fills `cancel_history` of payments that have cancels, in one query.
            pub(crate) async fn with_history<'e, E>(
                exec: E,
                mut ps: Vec<Payment>,
            ) -> sqlx::Result<Vec<Payment>>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                let ids: Vec<&str> = ps
                    .iter()
                    .filter(|p| p.cancel_amount > 0 || p.cancelled_at > 0)
                    .map(|p| p.imp_uid.as_str())
                    .collect();
                if ids.is_empty() {
                    return Ok(ps);
                }
                let sql = format!(
                    "SELECT {CANCEL_HISTORY_COLS} FROM cancel_history WHERE imp_uid IN ({}) \
                     ORDER BY imp_uid, seq",
                    numbered(1, ids.len())
                );
                let rows = ids
                    .iter()
                    .fold(sqlx::query(&sql), |q, id| q.bind(*id))
                    .fetch_all(exec)
                    .await?;
                for r in &rows {
                    let (imp_uid, e) = read_cancel_entry(r)?;
                    if let Some(p) = ps.iter_mut().find(|p| p.imp_uid == imp_uid) {
                        p.cancel_history.push(e);
                    }
                }
                Ok(ps)
            }

            /// Records the PG's answer on an attempt awaiting it, with its outbox rows, inside `tx`.
            /// `None` when the row had moved on.
            pub(crate) async fn settle_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                imp_uid: &str,
                s: &Settlement,
                now: i64,
                events: &[OutboxEvent],
            ) -> sqlx::Result<Option<Payment>> {
                let (kind, vals) = settle_vals(imp_uid, now, s);
                let q = vals
                    .into_iter()
                    .fold(sqlx::query(settle_sql(kind)), bind_val);
                let Some(row) = q.fetch_optional(&mut **tx).await? else {
                    return Ok(None);
                };
                for ev in events {
                    insert_outbox(&mut **tx, ev).await?;
                }
                Ok(Some(read_payment(&row)?))
            }

            /// The group-commit writer: takes a batch of queued writes, runs them in one
            /// transaction (one fsync for the lot), and answers each. If the batch fails, each
            /// write is retried alone so one bad write cannot fail the others.
            pub(crate) async fn run_writer(pool: sqlx::Pool<$db>, queue: crate::batch::Queue) {
                loop {
                    let batch = match crate::batch::next_batch(&queue).await {
                        Some(b) => b,
                        None => return,
                    };
                    let ops: Vec<&Op> = batch.iter().map(|(op, _)| op).collect();
                    let attempt: sqlx::Result<Vec<OpResult>> =
                        match <$db as crate::batch::MultiRow>::write_batch(&pool, &ops).await {
                            Some(r) => r,
                            None => {
                                async {
                                    let mut tx = pool.begin().await?;
                                    let mut results = Vec::with_capacity(ops.len());
                                    for op in &ops {
                                        results.push(apply(&mut tx, op).await?);
                                    }
                                    tx.commit().await?;
                                    Ok(results)
                                }
                                .await
                            }
                        };
                    match attempt {
                        Ok(results) => {
                            for ((_, reply), r) in batch.into_iter().zip(results) {
                                let _ = reply.send(Ok(r));
                            }
                        }
                        Err(_) if batch.len() > 1 => {
                            for (op, reply) in batch {
                                let one: sqlx::Result<OpResult> = async {
                                    let mut tx = pool.begin().await?;
                                    let r = apply(&mut tx, &op).await?;
                                    tx.commit().await?;
                                    Ok(r)
                                }
                                .await;
                                let _ =
                                    reply.send(one.map_err(|e| on_conflict(e, "payment exists")));
                            }
                        }
                        Err(e) => {
                            if let Some((_, reply)) = batch.into_iter().next() {
                                let _ = reply.send(Err(on_conflict(e, "payment exists")));
                            }
                        }
                    }
                }
            }

            async fn apply(tx: &mut sqlx::Transaction<'_, $db>, op: &Op) -> sqlx::Result<OpResult> {
                Ok(match op {
                    Op::Insert(p) => OpResult::Inserted(insert_exec(&mut **tx, p).await?),
                    Op::Settle {
                        imp_uid,
                        s,
                        now,
                        events,
                    } => OpResult::Settled(
                        settle_tx(tx, imp_uid, s, *now, events).await?.map(Box::new),
                    ),
                })
            }

            /// Inserts an attempt; 0 rows when the merchant_uid guard is taken.
            pub(crate) async fn insert_exec<'e, E>(exec: E, p: &Payment) -> sqlx::Result<u64>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                Ok(vals(p)
                    .fold(sqlx::query(insert_sql()), bind_val)
                    .execute(exec)
                    .await?
                    .rows_affected())
            }
        }
    };
}

impl_payment_write!(sqlx::Sqlite, sqlite);
impl_payment_write!(sqlx::Postgres, pg);
