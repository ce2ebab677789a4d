//! Statements of the retention job (pier-server `jobs/retention.rs` decides what is old):
//! each is guarded and touches at most `limit` rows, so one pass never holds a long lock.

use crate::connect::{PgStore, SqliteStore};
use crate::error::StoreResult;
use async_trait::async_trait;

#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Open windows that expired before `now` and whose attempt never reached the PG
    /// (`ready`, `pg_state = 'none'`): `(checkout id, imp_uid)`, oldest first, at most `limit`.
    async fn expirable_checkouts(&self, now: i64, limit: i64)
        -> StoreResult<Vec<(String, String)>>;
    /// Deletes at most `limit` windows that expired before `before`; returns how many.
    async fn delete_old_checkouts(&self, before: i64, limit: i64) -> StoreResult<u64>;
    /// Deletes at most `limit` webhook events that are done (`delivered` or `dead`) and were
    /// created before `before`; pending ones are never touched.
    async fn delete_old_outbox(&self, before: i64, limit: i64) -> StoreResult<u64>;
    /// Deletes at most `limit` webhook delivery log rows written before `before`.
    async fn delete_old_deliveries(&self, before: i64, limit: i64) -> StoreResult<u64>;
}

macro_rules! impl_retention_store {
    ($store:ty, $m:ident) => {
        mod $m {
            use super::*;
            use sqlx::Row;

            #[async_trait]
            impl RetentionStore for $store {
                async fn expirable_checkouts(
                    &self,
                    now: i64,
                    limit: i64,
                ) -> StoreResult<Vec<(String, String)>> {
                    let rows = sqlx::query(
                        "SELECT c.id, c.imp_uid FROM checkout_sessions c \
                         JOIN payments p ON p.imp_uid = c.imp_uid \
                         WHERE c.state = 'open' AND c.expires_at < $1 \
                           AND p.status = 'ready' AND p.pg_state = 'none' \
                         ORDER BY c.expires_at LIMIT $2",
                    )
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows
                        .iter()
                        .map(|r| Ok((r.try_get("id")?, r.try_get("imp_uid")?)))
                        .collect::<sqlx::Result<_>>()?)
                }

                async fn delete_old_checkouts(&self, before: i64, limit: i64) -> StoreResult<u64> {
                    let r = sqlx::query(
                        "DELETE FROM checkout_sessions WHERE id IN \
                         (SELECT id FROM checkout_sessions WHERE expires_at < $1 LIMIT $2)",
                    )
                    .bind(before)
                    .bind(limit)
                    .execute(&self.pool)
                    .await?;
                    Ok(r.rows_affected())
                }

                async fn delete_old_outbox(&self, before: i64, limit: i64) -> StoreResult<u64> {
                    let r = sqlx::query(
                        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
                         WHERE state IN ('delivered', 'dead') AND created_at < $1 LIMIT $2)",
                    )
                    .bind(before)
                    .bind(limit)
                    .execute(&self.pool)
                    .await?;
                    Ok(r.rows_affected())
                }

                async fn delete_old_deliveries(&self, before: i64, limit: i64) -> StoreResult<u64> {
                    let r = sqlx::query(
                        "DELETE FROM webhook_deliveries WHERE id IN \
                         (SELECT id FROM webhook_deliveries WHERE at < $1 LIMIT $2)",
                    )
                    .bind(before)
                    .bind(limit)
                    .execute(&self.pool)
                    .await?;
                    Ok(r.rows_affected())
                }
            }
        }
    };
}

impl_retention_store!(SqliteStore, sqlite_impl);
impl_retention_store!(PgStore, pg_impl);
