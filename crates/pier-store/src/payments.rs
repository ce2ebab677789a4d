//! Payments and their cancel history: insert an attempt, record the PG's answer, look up.

use crate::batch::{Op, OpResult};
use crate::connect::{PgStore, SqliteStore};
use crate::error::{on_conflict, StoreError, StoreResult};
use crate::models::{OutboxEvent, Page, Payment, PaymentStatus, Settlement, Sorting};
pub use crate::outbox_row::NO_WEBHOOK_TARGET;
use async_trait::async_trait;

/// Filters of the lookup endpoints. `status: None` means every status.
#[derive(Clone, Debug, Default)]
pub struct PaymentQuery {
    pub status: Option<PaymentStatus>,
    pub sorting: Sorting,
    pub offset: i64,
    pub limit: i64,
}

#[async_trait]
pub trait PaymentStore: Send + Sync {
    /// Inserts a new attempt. With `uid_lock` set, a second locked row for the same
    /// (merchant, merchant_uid) is refused with `Conflict`: the double-charge guard.
    async fn insert_payment(&self, p: &Payment) -> StoreResult<()>;
    /// `merchant_id: None` reads across merchants (reconciler, PG notifications).
    async fn get_payment(
        &self,
        merchant_id: Option<&str>,
        imp_uid: &str,
    ) -> StoreResult<Option<Payment>>;
    /// The attempt holding the merchant_uid guard (in flight or paid), if any.
    async fn locked_payment(
        &self,
        merchant_id: &str,
        merchant_uid: &str,
    ) -> StoreResult<Option<Payment>>;
    /// Takes the merchant_uid guard for a `ready` attempt that is about to call the PG
    /// (window flow). `Conflict` when another attempt holds it.
    async fn lock_for_pg(&self, imp_uid: &str, now: i64) -> StoreResult<Payment>;
    /// Records the PG's answer on a `ready` attempt whose call was under way or unknown, with
    /// the webhook announcements in the same transaction. `Stale` if the row had moved on.
    async fn settle(
        &self,
        imp_uid: &str,
        s: &Settlement,
        now: i64,
        events: &[OutboxEvent],
    ) -> StoreResult<Payment>;
    async fn find_by_merchant_uid(
        &self,
        merchant_id: &str,
        merchant_uid: &str,
        q: &PaymentQuery,
    ) -> StoreResult<Page<Payment>>;
    /// Payments whose status time (started/paid/cancelled/failed by status) is in `[from, to]`.
    async fn list_by_status(
        &self,
        merchant_id: &str,
        from: i64,
        to: i64,
        q: &PaymentQuery,
    ) -> StoreResult<Page<Payment>>;
    async fn get_many(
        &self,
        merchant_id: &str,
        imp_uids: &[String],
        merchant_uids: &[String],
    ) -> StoreResult<Vec<Payment>>;
    async fn list_by_customer(
        &self,
        merchant_id: &str,
        customer_uid: &str,
        q: &PaymentQuery,
    ) -> StoreResult<Page<Payment>>;
    /// Attempts whose PG outcome is unknown and due for another look, and attempts left in
    /// flight before `stale_before` (a crash between the call and its record).
    async fn list_unsettled(
        &self,
        now: i64,
        stale_before: i64,
        limit: i64,
    ) -> StoreResult<Vec<Payment>>;
    /// Writes webhook announcements on their own (e.g. a redelivery).
    async fn insert_events(&self, events: &[OutboxEvent]) -> StoreResult<()>;
}

pub(crate) use crate::payment_row::cols;
use crate::payment_row::{get_sql, numbered as placeholders};

/// The column a status filter's time window applies to (spec §3.1).
fn time_column(status: Option<PaymentStatus>) -> &'static str {
    match status {
        Some(PaymentStatus::Paid) => "paid_at",
        Some(PaymentStatus::Cancelled) => "cancelled_at",
        Some(PaymentStatus::Failed) => "failed_at",
        Some(PaymentStatus::Ready) | None => "started_at",
    }
}

macro_rules! impl_payment_store {
    ($store:ty, $db:ty, $row:ty, $m:ident, $w:ident) => {
        pub(crate) mod $m {
            use super::*;
            pub(crate) use crate::payment_write::$w::{insert_outbox, with_history};
            use crate::payment_write::$w::{insert_exec, settle_tx};
            use crate::connect::{HasLane, HasPgReads};

            pub(crate) fn payment(r: &$row) -> sqlx::Result<Payment> {
                crate::payment_row::read_payment(r)
            }

            async fn page(store: &$store, count_sql: String, list_sql: String, binds: Vec<BindVal<'_>>, q: &PaymentQuery) -> StoreResult<Page<Payment>> {
                let mut cq = sqlx::query_scalar::<_, i64>(&count_sql);
                for b in &binds {
                    cq = match b {
                        BindVal::S(s) => cq.bind(*s),
                        BindVal::I(i) => cq.bind(*i),
                    };
                }
                let total = cq.fetch_one(&store.pool).await?;
                let mut lq = sqlx::query(&list_sql);
                for b in &binds {
                    lq = match b {
                        BindVal::S(s) => lq.bind(*s),
                        BindVal::I(i) => lq.bind(*i),
                    };
                }
                let rows = lq.bind(q.limit).bind(q.offset).fetch_all(&store.pool).await?;
                let ps = rows.iter().map(payment).collect::<sqlx::Result<Vec<_>>>()?;
                Ok(Page { total, items: with_history(&store.pool, ps).await? })
            }

            enum BindVal<'a> {
                S(&'a str),
                I(i64),
            }

            #[async_trait]
            impl PaymentStore for $store {
                async fn insert_payment(&self, p: &Payment) -> StoreResult<()> {
                    let inserted = match &self.writer {
                        Some(w) => match w.submit(Op::Insert(Box::new(p.clone()))).await? {
                            OpResult::Inserted(n) => n,
                            _ => 0,
                        },
                        None => insert_exec(&self.pool, p).await.map_err(|e| on_conflict(e, "payment exists"))?,
                    };
                    if inserted == 0 {
                        return Err(StoreError::Conflict("merchant_uid is locked by another attempt".into()));
                    }
                    Ok(())
                }

                async fn get_payment(&self, merchant_id: Option<&str>, imp_uid: &str) -> StoreResult<Option<Payment>> {
                    if let Some(lane) = self.lane() {
                        return lane.get_payment(merchant_id, imp_uid);
                    }
                    if let (Some(m), Some(reads)) = (merchant_id, self.pg_reads()) {
                        return reads.payments.read((m.to_owned(), imp_uid.to_owned())).await;
                    }
                    let row = match merchant_id {
                        Some(m) => sqlx::query(get_sql(true))
                            .bind(imp_uid)
                            .bind(m)
                            .fetch_optional(&self.pool)
                            .await?,
                        None => sqlx::query(get_sql(false))
                            .bind(imp_uid)
                            .fetch_optional(&self.pool)
                            .await?,
                    };
                    match row {
                        None => Ok(None),
                        Some(r) => {
                            let p = payment(&r)?;
                            Ok(with_history(&self.pool, vec![p]).await?.pop())
                        }
                    }
                }

                async fn locked_payment(&self, merchant_id: &str, merchant_uid: &str) -> StoreResult<Option<Payment>> {
                    let row = sqlx::query(&format!(
                        "SELECT {} FROM payments WHERE merchant_id = $1 AND merchant_uid = $2 AND uid_lock = TRUE",
                        cols()
                    ))
                    .bind(merchant_id)
                    .bind(merchant_uid)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(payment).transpose()?)
                }

                async fn lock_for_pg(&self, imp_uid: &str, now: i64) -> StoreResult<Payment> {
                    let row = sqlx::query(&format!(
                        "UPDATE payments SET uid_lock = TRUE, pg_state = 'in_flight', updated_at = $2 \
                         WHERE imp_uid = $1 AND status = 'ready' AND pg_state = 'none' RETURNING {}",
                        cols()
                    ))
                    .bind(imp_uid)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| on_conflict(e, "merchant_uid is locked by another attempt"))?;
                    match row {
                        Some(r) => Ok(payment(&r)?),
                        None => Err(StoreError::Stale(format!("{imp_uid} is not a ready attempt"))),
                    }
                }

                async fn settle(&self, imp_uid: &str, s: &Settlement, now: i64, events: &[OutboxEvent]) -> StoreResult<Payment> {
                    let row = match &self.writer {
                        Some(w) => w
                            .submit(Op::Settle { imp_uid: imp_uid.to_owned(), s: Box::new(s.clone()), now, events: events.to_vec() })
                            .await?
                            .into_settled()?,
                        None => {
                            let mut tx = self.pool.begin().await?;
                            let p = settle_tx(&mut tx, imp_uid, s, now, events).await?;
                            tx.commit().await?;
                            p
                        }
                    };
                    row.ok_or_else(|| StoreError::Stale(format!("{imp_uid} is no longer awaiting the PG")))
                }

                async fn find_by_merchant_uid(&self, merchant_id: &str, merchant_uid: &str, q: &PaymentQuery) -> StoreResult<Page<Payment>> {
                    let mut binds = vec![BindVal::S(merchant_id), BindVal::S(merchant_uid)];
                    let mut filter = String::from("merchant_id = $1 AND merchant_uid = $2");
                    if let Some(st) = q.status {
                        binds.push(BindVal::S(st.as_str()));
                        filter.push_str(" AND status = $3");
                    }
                    let n = binds.len();
                    let count_sql = format!("SELECT COUNT(*) FROM payments WHERE {filter}");
                    let list_sql = format!(
                        "SELECT {} FROM payments WHERE {filter} ORDER BY {} LIMIT ${} OFFSET ${}",
                        cols(),
                        q.sorting.order_by(),
                        n + 1,
                        n + 2
                    );
                    page(self, count_sql, list_sql, binds, q).await
                }

                async fn list_by_status(&self, merchant_id: &str, from: i64, to: i64, q: &PaymentQuery) -> StoreResult<Page<Payment>> {
                    let tcol = time_column(q.status);
                    let mut binds = vec![BindVal::S(merchant_id), BindVal::I(from), BindVal::I(to)];
                    let mut filter = format!("merchant_id = $1 AND {tcol} >= $2 AND {tcol} <= $3");
                    if let Some(st) = q.status {
                        binds.push(BindVal::S(st.as_str()));
                        filter.push_str(" AND status = $4");
                    }
                    let n = binds.len();
                    let count_sql = format!("SELECT COUNT(*) FROM payments WHERE {filter}");
                    let list_sql = format!(
                        "SELECT {} FROM payments WHERE {filter} ORDER BY {} LIMIT ${} OFFSET ${}",
                        cols(),
                        q.sorting.order_by(),
                        n + 1,
                        n + 2
                    );
                    page(self, count_sql, list_sql, binds, q).await
                }

                async fn get_many(&self, merchant_id: &str, imp_uids: &[String], merchant_uids: &[String]) -> StoreResult<Vec<Payment>> {
                    let mut out = Vec::new();
                    if !imp_uids.is_empty() {
                        let sql = format!(
                            "SELECT {} FROM payments WHERE merchant_id = $1 AND imp_uid IN ({}) ORDER BY started_at DESC, imp_uid",
                            cols(),
                            placeholders(2, imp_uids.len())
                        );
                        let mut q = sqlx::query(&sql).bind(merchant_id);
                        for u in imp_uids {
                            q = q.bind(u);
                        }
                        for r in q.fetch_all(&self.pool).await? {
                            out.push(payment(&r)?);
                        }
                    }
                    if !merchant_uids.is_empty() {
                        // The latest attempt of each merchant_uid, as `find` would return it.
                        for m in merchant_uids {
                            let row = sqlx::query(&format!(
                                "SELECT {} FROM payments WHERE merchant_id = $1 AND merchant_uid = $2 \
                                 ORDER BY started_at DESC, imp_uid DESC LIMIT 1",
                                cols()
                            ))
                            .bind(merchant_id)
                            .bind(m)
                            .fetch_optional(&self.pool)
                            .await?;
                            if let Some(r) = row {
                                let p = payment(&r)?;
                                if !out.iter().any(|o| o.imp_uid == p.imp_uid) {
                                    out.push(p);
                                }
                            }
                        }
                    }
                    Ok(with_history(&self.pool, out).await?)
                }

                async fn list_by_customer(&self, merchant_id: &str, customer_uid: &str, q: &PaymentQuery) -> StoreResult<Page<Payment>> {
                    let binds = vec![BindVal::S(merchant_id), BindVal::S(customer_uid)];
                    let filter = "merchant_id = $1 AND customer_uid = $2";
                    let count_sql = format!("SELECT COUNT(*) FROM payments WHERE {filter}");
                    let list_sql = format!(
                        "SELECT {} FROM payments WHERE {filter} ORDER BY {} LIMIT $3 OFFSET $4",
                        cols(),
                        q.sorting.order_by()
                    );
                    page(self, count_sql, list_sql, binds, q).await
                }

                async fn list_unsettled(&self, now: i64, stale_before: i64, limit: i64) -> StoreResult<Vec<Payment>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {} FROM payments WHERE imp_uid IN (SELECT imp_uid FROM payments_unsettled) \
                         AND ((pg_state = 'unknown' AND next_reconcile_at <= $1) \
                         OR (pg_state = 'in_flight' AND updated_at < $2)) ORDER BY updated_at LIMIT $3",
                        cols()
                    ))
                    .bind(now)
                    .bind(stale_before)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.iter().map(payment).collect::<sqlx::Result<_>>()?)
                }

                async fn insert_events(&self, events: &[OutboxEvent]) -> StoreResult<()> {
                    let mut tx = self.pool.begin().await?;
                    for ev in events {
                        insert_outbox(&mut *tx, ev).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }
            }
        }
    };
}

impl_payment_store!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    sqlite_impl,
    sqlite
);
impl_payment_store!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow, pg_impl, pg);
