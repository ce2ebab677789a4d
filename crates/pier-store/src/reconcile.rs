//! The reconciler's side of payments: claim an attempt whose PG outcome is unknown (or whose
//! call was left in flight by a crash) with a short lease, put it off with backoff, and list the
//! attempts that stayed unknown too long for an operator.
//!
//! Every write is a guarded `UPDATE … RETURNING`: of several reconcilers (or a reconciler and a
//! live request) only one can take an attempt, and recording its outcome still goes through
//! `PaymentStore::settle`, guarded on `status = 'ready'`.

use crate::connect::{PgStore, SqliteStore};
use crate::error::StoreResult;
use crate::models::Payment;
use crate::payment_row::cols;
use async_trait::async_trait;

#[async_trait]
pub trait ReconcileStore: Send + Sync {
    /// Takes `imp_uid` for one look until `lease_until`: an `unknown` attempt due at `now`, or an
    /// `in_flight` attempt last touched before `stale_before` (which becomes `unknown`, so a live
    /// request that wakes up late finds the reconciler owning it). `None` when another
    /// reconciler took it first or it settled meanwhile.
    async fn claim_unsettled(
        &self,
        imp_uid: &str,
        now: i64,
        stale_before: i64,
        lease_until: i64,
    ) -> StoreResult<Option<Payment>>;
    /// After a look that settled nothing: one more attempt counted, next look at `next_at`.
    /// Returns the new attempt count, or `None` if the attempt settled meanwhile.
    async fn defer_reconcile(
        &self,
        imp_uid: &str,
        now: i64,
        next_at: i64,
    ) -> StoreResult<Option<i64>>;
    /// Unknown attempts that have had at least `min_attempts` looks, oldest first; `merchant_id:
    /// None` lists every merchant's (metrics, CLI).
    async fn list_stuck(
        &self,
        merchant_id: Option<&str>,
        min_attempts: i64,
        limit: i64,
    ) -> StoreResult<Vec<Payment>>;
    /// How many attempts are `unknown` with at least `min_attempts` looks.
    async fn count_stuck(&self, min_attempts: i64) -> StoreResult<i64>;
}

macro_rules! impl_reconcile_store {
    ($store:ty, $m:ident, $pm:ident) => {
        mod $m {
            use super::*;
            use crate::payments::$pm::payment;

            #[async_trait]
            impl ReconcileStore for $store {
                async fn claim_unsettled(&self, imp_uid: &str, now: i64, stale_before: i64, lease_until: i64) -> StoreResult<Option<Payment>> {
                    let row = sqlx::query(&format!(
                        "UPDATE payments SET pg_state = 'unknown', next_reconcile_at = $4, updated_at = $2 \
                         WHERE imp_uid = $1 AND status = 'ready' AND \
                         ((pg_state = 'unknown' AND next_reconcile_at <= $2) OR (pg_state = 'in_flight' AND updated_at < $3)) \
                         RETURNING {}",
                        cols()
                    ))
                    .bind(imp_uid)
                    .bind(now)
                    .bind(stale_before)
                    .bind(lease_until)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(payment).transpose()?)
                }

                async fn defer_reconcile(&self, imp_uid: &str, now: i64, next_at: i64) -> StoreResult<Option<i64>> {
                    let n = sqlx::query_scalar::<_, i64>(
                        "UPDATE payments SET reconcile_attempts = reconcile_attempts + 1, next_reconcile_at = $3, \
                         updated_at = $2 WHERE imp_uid = $1 AND status = 'ready' AND pg_state = 'unknown' \
                         RETURNING reconcile_attempts",
                    )
                    .bind(imp_uid)
                    .bind(now)
                    .bind(next_at)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(n)
                }

                async fn list_stuck(&self, merchant_id: Option<&str>, min_attempts: i64, limit: i64) -> StoreResult<Vec<Payment>> {
                    let rows = match merchant_id {
                        Some(m) => sqlx::query(&format!(
                            "SELECT {} FROM payments WHERE imp_uid IN (SELECT imp_uid FROM payments_unsettled) \
                             AND pg_state = 'unknown' AND status = 'ready' \
                             AND reconcile_attempts >= $1 AND merchant_id = $2 ORDER BY started_at, imp_uid LIMIT $3",
                            cols()
                        ))
                        .bind(min_attempts)
                        .bind(m)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?,
                        None => sqlx::query(&format!(
                            "SELECT {} FROM payments WHERE imp_uid IN (SELECT imp_uid FROM payments_unsettled) \
                             AND pg_state = 'unknown' AND status = 'ready' \
                             AND reconcile_attempts >= $1 ORDER BY started_at, imp_uid LIMIT $2",
                            cols()
                        ))
                        .bind(min_attempts)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?,
                    };
                    Ok(rows.iter().map(payment).collect::<sqlx::Result<_>>()?)
                }

                async fn count_stuck(&self, min_attempts: i64) -> StoreResult<i64> {
                    Ok(sqlx::query_scalar::<_, i64>(
                        "SELECT COUNT(*) FROM payments WHERE imp_uid IN (SELECT imp_uid FROM payments_unsettled) \
                             AND pg_state = 'unknown' AND status = 'ready' \
                         AND reconcile_attempts >= $1",
                    )
                    .bind(min_attempts)
                    .fetch_one(&self.pool)
                    .await?)
                }
            }
        }
    };
}

impl_reconcile_store!(SqliteStore, sqlite_impl, sqlite_impl);
impl_reconcile_store!(PgStore, pg_impl, pg_impl);
