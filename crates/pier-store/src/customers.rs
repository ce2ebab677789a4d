//! Billing keys ("customers"): the PG's key and the masked card, never card data.

use crate::connect::{PgStore, SqliteStore};
use crate::error::StoreResult;
use crate::models::Customer;
use crate::row::{bind_row, insert_sql, Row};
pub use crate::rows::ChargeContext;
use crate::rows::{
    charge_context_keys, charge_context_sql, charge_contexts_by_key, charge_contexts_sql,
    read_charge_context,
};
use async_trait::async_trait;

#[async_trait]
pub trait CustomerStore: Send + Sync {
    /// Inserts or replaces the key of a customer_uid (re-issuing replaces the mapping;
    /// `inserted` keeps the first issue time).
    async fn upsert_customer(&self, c: &Customer) -> StoreResult<Customer>;
    async fn get_customer(
        &self,
        merchant_id: &str,
        customer_uid: &str,
    ) -> StoreResult<Option<Customer>>;
    async fn get_customers(
        &self,
        merchant_id: &str,
        customer_uids: &[String],
    ) -> StoreResult<Vec<Customer>>;
    /// Removes the key and returns what was removed.
    async fn delete_customer(
        &self,
        merchant_id: &str,
        customer_uid: &str,
    ) -> StoreResult<Option<Customer>>;
    /// The customer, its channel and the merchant_uid's pre-registration in one read (one round
    /// trip on PostgreSQL). `None` when the customer_uid is unknown.
    async fn charge_context(
        &self,
        merchant_id: &str,
        customer_uid: &str,
        merchant_uid: &str,
    ) -> StoreResult<Option<ChargeContext>>;
    /// `charge_context` for many charges in one read (a scheduler tick): one answer per key
    /// (merchant_id, customer_uid, merchant_uid), in order.
    async fn charge_contexts(
        &self,
        keys: &[(String, String, String)],
    ) -> StoreResult<Vec<Option<ChargeContext>>>;
}

/// The upsert: a re-issued key replaces every column but the key and the first issue time.
fn upsert_sql() -> &'static str {
    static S: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let set = Customer::NAMES
            .iter()
            .filter(|c| !matches!(**c, "merchant_id" | "customer_uid" | "inserted"))
            .map(|c| format!("{c} = excluded.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{} ON CONFLICT (merchant_id, customer_uid) DO UPDATE SET {set} RETURNING {}",
            insert_sql::<Customer>(),
            Customer::LIST
        )
    })
}

macro_rules! impl_customer_store {
    ($store:ty, $row:ty, $m:ident, $keys:expr) => {
        mod $m {
            use super::*;
            use crate::connect::{HasLane, HasPgReads};

            fn customer(r: &$row) -> sqlx::Result<Customer> {
                Customer::read(r)
            }

            #[async_trait]
            impl CustomerStore for $store {
                async fn charge_context(&self, merchant_id: &str, customer_uid: &str, merchant_uid: &str) -> StoreResult<Option<ChargeContext>> {
                    if let Some(lane) = self.lane() {
                        return lane.charge_context(merchant_id, customer_uid, merchant_uid);
                    }
                    if let Some(reads) = self.pg_reads() {
                        return reads.contexts.read((merchant_id.to_owned(), customer_uid.to_owned(), merchant_uid.to_owned())).await;
                    }
                    let row = sqlx::query(charge_context_sql())
                        .bind(merchant_id)
                        .bind(customer_uid)
                        .bind(merchant_uid)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row.as_ref().map(read_charge_context).transpose()?)
                }

                async fn charge_contexts(&self, keys: &[(String, String, String)]) -> StoreResult<Vec<Option<ChargeContext>>> {
                    if let Some(lane) = self.lane() {
                        // In-process point reads: nothing to batch.
                        return keys.iter().map(|(m, c, u)| lane.charge_context(m, c, u)).collect();
                    }
                    if keys.is_empty() {
                        return Ok(Vec::new());
                    }
                    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                    let rows = sqlx::query(SQL.get_or_init(|| charge_contexts_sql($keys)))
                        .bind(charge_context_keys(keys))
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(charge_contexts_by_key(keys.len(), &rows)?)
                }

                async fn upsert_customer(&self, c: &Customer) -> StoreResult<Customer> {
                    let row = bind_row(sqlx::query(upsert_sql()), c)
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(customer(&row)?)
                }

                async fn get_customer(&self, merchant_id: &str, customer_uid: &str) -> StoreResult<Option<Customer>> {
                    if let Some(lane) = self.lane() {
                        return lane.get_customer(merchant_id, customer_uid);
                    }
                    let row = sqlx::query(&format!(
                        "SELECT {} FROM customers WHERE merchant_id = $1 AND customer_uid = $2",
                        Customer::LIST
                    ))
                    .bind(merchant_id)
                    .bind(customer_uid)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(customer).transpose()?)
                }

                async fn get_customers(&self, merchant_id: &str, customer_uids: &[String]) -> StoreResult<Vec<Customer>> {
                    if customer_uids.is_empty() {
                        return Ok(Vec::new());
                    }
                    let ph: Vec<String> = (0..customer_uids.len()).map(|i| format!("${}", i + 2)).collect();
                    let sql = format!(
                        "SELECT {} FROM customers WHERE merchant_id = $1 AND customer_uid IN ({}) ORDER BY inserted, customer_uid",
                        Customer::LIST,
                        ph.join(",")
                    );
                    let mut q = sqlx::query(&sql).bind(merchant_id);
                    for u in customer_uids {
                        q = q.bind(u);
                    }
                    let rows = q.fetch_all(&self.pool).await?;
                    Ok(rows.iter().map(customer).collect::<sqlx::Result<_>>()?)
                }

                async fn delete_customer(&self, merchant_id: &str, customer_uid: &str) -> StoreResult<Option<Customer>> {
                    let row = sqlx::query(&format!(
                        "DELETE FROM customers WHERE merchant_id = $1 AND customer_uid = $2 RETURNING {}",
                        Customer::LIST
                    ))
                    .bind(merchant_id)
                    .bind(customer_uid)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(customer).transpose()?)
                }
            }
        }
    };
}

impl_customer_store!(
    SqliteStore,
    sqlx::sqlite::SqliteRow,
    sqlite_impl,
    crate::rows::SQLITE_CONTEXT_KEYS
);
impl_customer_store!(
    PgStore,
    sqlx::postgres::PgRow,
    pg_impl,
    crate::rows::PG_CONTEXT_KEYS
);
