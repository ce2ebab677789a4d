//! Stripe-style idempotency keys: the first request with a key runs, later ones with the same
//! key and body get its stored response, a different body is refused, and a repeat while the
//! first is still running is told to wait (409).

use crate::connect::{PgStore, SqliteStore};
use crate::error::StoreResult;
use async_trait::async_trait;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdemBegin {
    /// This request owns the key: run it, then `idem_finish`.
    Started,
    /// Another request with this key is running.
    InFlight { request_hash: String },
    /// Already answered: replay.
    Done {
        request_hash: String,
        http_status: i64,
        body: String,
    },
}

/// A key still `in_flight` this long after it was taken belongs to a request that can no
/// longer be running (Pier ends every request within 30 s): its process died, and a retry
/// may take the key over.
pub const IN_FLIGHT_ABANDONED_SECS: i64 = 60;

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    async fn idem_begin(
        &self,
        merchant_id: &str,
        key: &str,
        request_hash: &str,
        now: i64,
    ) -> StoreResult<IdemBegin>;
    async fn idem_finish(
        &self,
        merchant_id: &str,
        key: &str,
        http_status: i64,
        body: &str,
    ) -> StoreResult<()>;
    /// Forgets an in-flight key whose request ended without a response worth replaying.
    async fn idem_abort(&self, merchant_id: &str, key: &str) -> StoreResult<()>;
    /// Drops keys created before `before`; returns how many.
    async fn idem_purge(&self, before: i64) -> StoreResult<u64>;
}

macro_rules! impl_idem_store {
    ($store:ty, $m:ident) => {
        mod $m {
            use super::*;
            use sqlx::Row;

            #[async_trait]
            impl IdempotencyStore for $store {
                async fn idem_begin(&self, merchant_id: &str, key: &str, request_hash: &str, now: i64) -> StoreResult<IdemBegin> {
                    // A key left in flight by a crashed process would block its retries forever.
                    sqlx::query(
                        "DELETE FROM idempotency_keys WHERE merchant_id = $1 AND idem_key = $2 \
                         AND state = 'in_flight' AND created_at < $3",
                    )
                    .bind(merchant_id)
                    .bind(key)
                    .bind(now - IN_FLIGHT_ABANDONED_SECS)
                    .execute(&self.pool)
                    .await?;
                    let inserted = sqlx::query(
                        "INSERT INTO idempotency_keys (merchant_id, idem_key, request_hash, state, created_at) \
                         VALUES ($1,$2,$3,'in_flight',$4) ON CONFLICT (merchant_id, idem_key) DO NOTHING",
                    )
                    .bind(merchant_id)
                    .bind(key)
                    .bind(request_hash)
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    if inserted == 1 {
                        return Ok(IdemBegin::Started);
                    }
                    let row = sqlx::query(
                        "SELECT request_hash, state, http_status, response_body FROM idempotency_keys \
                         WHERE merchant_id = $1 AND idem_key = $2",
                    )
                    .bind(merchant_id)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some(row) = row else {
                        // Aborted between our insert and read: the caller may simply retry.
                        return Ok(IdemBegin::InFlight { request_hash: request_hash.to_owned() });
                    };
                    let state: String = row.try_get("state")?;
                    let hash: String = row.try_get("request_hash")?;
                    if state == "done" {
                        Ok(IdemBegin::Done {
                            request_hash: hash,
                            http_status: row.try_get("http_status")?,
                            body: row.try_get::<Option<String>, _>("response_body")?.unwrap_or_default(),
                        })
                    } else {
                        Ok(IdemBegin::InFlight { request_hash: hash })
                    }
                }

                async fn idem_finish(&self, merchant_id: &str, key: &str, http_status: i64, body: &str) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE idempotency_keys SET state = 'done', http_status = $3, response_body = $4 \
                         WHERE merchant_id = $1 AND idem_key = $2",
                    )
                    .bind(merchant_id)
                    .bind(key)
                    .bind(http_status)
                    .bind(body)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn idem_abort(&self, merchant_id: &str, key: &str) -> StoreResult<()> {
                    sqlx::query("DELETE FROM idempotency_keys WHERE merchant_id = $1 AND idem_key = $2 AND state = 'in_flight'")
                        .bind(merchant_id)
                        .bind(key)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn idem_purge(&self, before: i64) -> StoreResult<u64> {
                    Ok(sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                        .bind(before)
                        .execute(&self.pool)
                        .await?
                        .rows_affected())
                }
            }
        }
    };
}

impl_idem_store!(SqliteStore, sqlite_impl);
impl_idem_store!(PgStore, pg_impl);
