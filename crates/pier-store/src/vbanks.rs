//! Virtual accounts: issue, re-issue, revoke, deposit. The payment row is the one of
//! `PaymentStore` (`pay_method = 'vbank'`); these are its vbank-only transitions, each guarded on
//! `status = 'ready'`.

use crate::connect::{PgStore, SqliteStore};
use crate::error::{StoreError, StoreResult};
use crate::models::{OutboxEvent, Payment};
use crate::payment_row::cols;
use async_trait::async_trait;

/// An account as the PG issued it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VbankAccount {
    pub pg_tid: String,
    pub bank_code: String,
    pub bank_name: String,
    pub num: String,
    pub holder: String,
    pub due: i64,
    pub issued_at: i64,
}

#[async_trait]
pub trait VbankStore: Send + Sync {
    /// Records the account the PG issued on a `ready` vbank attempt whose call was under way,
    /// with the `ready` webhook row, in one transaction. `Stale` if the row moved on.
    async fn vbank_issued(
        &self,
        imp_uid: &str,
        a: &VbankAccount,
        now: i64,
        events: &[OutboxEvent],
    ) -> StoreResult<Payment>;
    /// Replaces the account of a waiting vbank (new amount or due; the PG issued a new one
    /// under `pg_order_id`). `None` if it is no longer waiting on `old_pg_tid`.
    async fn vbank_reissued(
        &self,
        imp_uid: &str,
        old_pg_tid: &str,
        pg_order_id: &str,
        amount: i64,
        a: &VbankAccount,
        now: i64,
    ) -> StoreResult<Option<Payment>>;
    /// Revokes a waiting account: `cancelled`. `None` if it is not waiting.
    async fn vbank_revoked(
        &self,
        merchant_id: &str,
        imp_uid: &str,
        reason: &str,
        now: i64,
    ) -> StoreResult<Option<Payment>>;
    /// A waiting (or already paid) vbank payment by the PG transaction id of its account.
    async fn vbank_by_pg_tid(&self, pg_tid: &str) -> StoreResult<Option<Payment>>;
    /// The deposit arrived: `paid`, with `events`, in one transaction. `None` if the payment
    /// was not waiting on that account (a repeated notification, a revoked account).
    async fn vbank_deposited(
        &self,
        imp_uid: &str,
        pg_tid: &str,
        paid_at: i64,
        now: i64,
        events: &[OutboxEvent],
    ) -> StoreResult<Option<Payment>>;
    /// The PG's order id of a payment (the imp_uid unless the account was re-issued).
    async fn pg_order_id(&self, imp_uid: &str) -> StoreResult<String>;
}

macro_rules! impl_vbank_store {
    ($store:ty, $m:ident, $pm:path) => {
        mod $m {
            use super::*;
            use $pm as pm;

            #[async_trait]
            impl VbankStore for $store {
                async fn vbank_issued(&self, imp_uid: &str, a: &VbankAccount, now: i64, events: &[OutboxEvent]) -> StoreResult<Payment> {
                    let mut tx = self.pool.begin().await?;
                    let row = sqlx::query(&format!(
                        "UPDATE payments SET pg_state = 'none', pg_tid = $2, vbank_tid = $2, vbank_code = $3, vbank_name = $4, vbank_num = $5, \
                         vbank_holder = $6, vbank_date = $7, vbank_issued_at = $8, updated_at = $9 \
                         WHERE imp_uid = $1 AND status = 'ready' AND pay_method = 'vbank' AND pg_state IN ('in_flight','unknown') \
                         RETURNING {}",
                        cols()
                    ))
                    .bind(imp_uid)
                    .bind(&a.pg_tid)
                    .bind(&a.bank_code)
                    .bind(&a.bank_name)
                    .bind(&a.num)
                    .bind(&a.holder)
                    .bind(a.due)
                    .bind(a.issued_at)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = row else {
                        tx.rollback().await?;
                        return Err(StoreError::Stale(format!("{imp_uid} is not a vbank awaiting its account")));
                    };
                    for ev in events {
                        pm::insert_outbox(&mut *tx, ev).await?;
                    }
                    tx.commit().await?;
                    Ok(pm::payment(&row)?)
                }

                async fn vbank_reissued(&self, imp_uid: &str, old_pg_tid: &str, pg_order_id: &str, amount: i64, a: &VbankAccount, now: i64) -> StoreResult<Option<Payment>> {
                    let row = sqlx::query(&format!(
                        "UPDATE payments SET pg_tid = $3, vbank_tid = $3, vbank_code = $4, vbank_name = $5, vbank_num = $6, vbank_holder = $7, \
                         vbank_date = $8, vbank_issued_at = $9, amount = $10, pg_order_id = $11, updated_at = $12 \
                         WHERE imp_uid = $1 AND pg_tid = $2 AND status = 'ready' AND pay_method = 'vbank' RETURNING {}",
                        cols()
                    ))
                    .bind(imp_uid)
                    .bind(old_pg_tid)
                    .bind(&a.pg_tid)
                    .bind(&a.bank_code)
                    .bind(&a.bank_name)
                    .bind(&a.num)
                    .bind(&a.holder)
                    .bind(a.due)
                    .bind(a.issued_at)
                    .bind(amount)
                    .bind(pg_order_id)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(pm::payment).transpose()?)
                }

                async fn vbank_revoked(&self, merchant_id: &str, imp_uid: &str, reason: &str, now: i64) -> StoreResult<Option<Payment>> {
                    let row = sqlx::query(&format!(
                        "UPDATE payments SET status = 'cancelled', cancelled_at = $3, cancel_reason = $4, updated_at = $3 \
                         WHERE imp_uid = $1 AND merchant_id = $2 AND status = 'ready' AND pay_method = 'vbank' RETURNING {}",
                        cols()
                    ))
                    .bind(imp_uid)
                    .bind(merchant_id)
                    .bind(now)
                    .bind(reason)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(pm::payment).transpose()?)
                }

                async fn vbank_by_pg_tid(&self, pg_tid: &str) -> StoreResult<Option<Payment>> {
                    let row = sqlx::query(&format!(
                        "SELECT {} FROM payments WHERE vbank_tid = $1 ORDER BY started_at DESC LIMIT 1",
                        cols()
                    ))
                    .bind(pg_tid)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(pm::payment).transpose()?)
                }

                async fn vbank_deposited(&self, imp_uid: &str, pg_tid: &str, paid_at: i64, now: i64, events: &[OutboxEvent]) -> StoreResult<Option<Payment>> {
                    let mut tx = self.pool.begin().await?;
                    // The merchant_uid guard is taken unless another attempt already holds it
                    // (the money arrived anyway: record it, never lose it).
                    let row = sqlx::query(&format!(
                        "UPDATE payments SET status = 'paid', paid_at = $3, pg_state = 'settled', updated_at = $4, \
                         uid_lock = NOT EXISTS (SELECT 1 FROM payments o WHERE o.merchant_id = payments.merchant_id \
                           AND o.merchant_uid = payments.merchant_uid AND o.uid_lock = TRUE AND o.imp_uid <> payments.imp_uid) \
                         WHERE imp_uid = $1 AND pg_tid = $2 AND status = 'ready' AND pay_method = 'vbank' RETURNING {}",
                        cols()
                    ))
                    .bind(imp_uid)
                    .bind(pg_tid)
                    .bind(paid_at)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = row else {
                        tx.rollback().await?;
                        return Ok(None);
                    };
                    for ev in events {
                        pm::insert_outbox(&mut *tx, ev).await?;
                    }
                    tx.commit().await?;
                    Ok(Some(pm::payment(&row)?))
                }

                async fn pg_order_id(&self, imp_uid: &str) -> StoreResult<String> {
                    let v: Option<Option<String>> = sqlx::query_scalar("SELECT pg_order_id FROM payments WHERE imp_uid = $1")
                        .bind(imp_uid)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(v.flatten().unwrap_or_else(|| imp_uid.to_owned()))
                }
            }
        }
    };
}

impl_vbank_store!(SqliteStore, sqlite_impl, crate::payments::sqlite_impl);
impl_vbank_store!(PgStore, pg_impl, crate::payments::pg_impl);
