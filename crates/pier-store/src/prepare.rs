//! Amount pre-registration (`/payments/prepare`): the amount a merchant_uid must be paid with.

use crate::connect::{PgStore, SqliteStore};
use crate::error::{on_conflict, StoreResult};
use crate::row::{bind_row, insert_sql};
pub use crate::rows::Prepared;
use async_trait::async_trait;

#[async_trait]
pub trait PrepareStore: Send + Sync {
    /// `Conflict` when the merchant_uid is already registered.
    async fn insert_prepare(&self, p: &Prepared) -> StoreResult<()>;
    /// `None` when the merchant_uid is not registered.
    async fn update_prepare(
        &self,
        merchant_id: &str,
        merchant_uid: &str,
        amount: i64,
        currency: Option<&str>,
        now: i64,
    ) -> StoreResult<Option<Prepared>>;
    async fn get_prepare(
        &self,
        merchant_id: &str,
        merchant_uid: &str,
    ) -> StoreResult<Option<Prepared>>;
}

macro_rules! impl_prepare_store {
    ($store:ty, $row:ty, $m:ident) => {
        mod $m {
            use super::*;
            use crate::row::Row as _;
            use crate::connect::{HasLane, HasPgReads};

            fn prepared(r: &$row) -> sqlx::Result<Prepared> {
                Prepared::read(r)
            }

            #[async_trait]
            impl PrepareStore for $store {
                async fn insert_prepare(&self, p: &Prepared) -> StoreResult<()> {
                    bind_row(sqlx::query(&insert_sql::<Prepared>()), p)
                        .execute(&self.pool)
                        .await
                        .map_err(|e| on_conflict(e, "merchant_uid is already prepared"))?;
                    Ok(())
                }

                async fn update_prepare(&self, merchant_id: &str, merchant_uid: &str, amount: i64, currency: Option<&str>, now: i64) -> StoreResult<Option<Prepared>> {
                    let row = sqlx::query(&format!(
                        "UPDATE payment_prepares SET amount = $3, currency = $4, updated_at = $5 \
                         WHERE merchant_id = $1 AND merchant_uid = $2 RETURNING {}",
                        Prepared::LIST
                    ))
                    .bind(merchant_id)
                    .bind(merchant_uid)
                    .bind(amount)
                    .bind(currency)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(prepared).transpose()?)
                }

                async fn get_prepare(&self, merchant_id: &str, merchant_uid: &str) -> StoreResult<Option<Prepared>> {
                    if let Some(lane) = self.lane() {
                        return lane.get_prepare(merchant_id, merchant_uid);
                    }
                    if let Some(reads) = self.pg_reads() {
                        return reads.prepares.read((merchant_id.to_owned(), merchant_uid.to_owned())).await;
                    }
                    let row = sqlx::query(&format!(
                        "SELECT {} FROM payment_prepares WHERE merchant_id = $1 AND merchant_uid = $2",
                        Prepared::LIST
                    ))
                    .bind(merchant_id)
                    .bind(merchant_uid)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(prepared).transpose()?)
                }
            }
        }
    };
}

impl_prepare_store!(SqliteStore, sqlx::sqlite::SqliteRow, sqlite_impl);
impl_prepare_store!(PgStore, sqlx::postgres::PgRow, pg_impl);
