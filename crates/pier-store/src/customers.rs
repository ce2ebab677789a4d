//! Billing keys ("customers"): the PG's key and the masked card, never card data.

use crate::connect::{PgStore, SqliteStore};
use crate::error::StoreResult;
use crate::models::Customer;
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
}

const CUSTOMER_COLS: &str = "merchant_id, customer_uid, channel_id, pg_provider, pg_id, sandbox, billing_key, \
     customer_id, card_name, card_code, card_number, card_type, customer_name, customer_tel, customer_email, \
     customer_addr, customer_postcode, inserted, updated";

macro_rules! impl_customer_store {
    ($store:ty, $row:ty, $m:ident) => {
        mod $m {
            use super::*;
            use sqlx::Row;

            fn customer(r: &$row) -> sqlx::Result<Customer> {
                Ok(Customer {
                    merchant_id: r.try_get("merchant_id")?,
                    customer_uid: r.try_get("customer_uid")?,
                    channel_id: r.try_get("channel_id")?,
                    pg_provider: r.try_get("pg_provider")?,
                    pg_id: r.try_get("pg_id")?,
                    sandbox: r.try_get("sandbox")?,
                    billing_key: r.try_get("billing_key")?,
                    customer_id: r.try_get("customer_id")?,
                    card_name: r.try_get("card_name")?,
                    card_code: r.try_get("card_code")?,
                    card_number: r.try_get("card_number")?,
                    card_type: r.try_get("card_type")?,
                    customer_name: r.try_get("customer_name")?,
                    customer_tel: r.try_get("customer_tel")?,
                    customer_email: r.try_get("customer_email")?,
                    customer_addr: r.try_get("customer_addr")?,
                    customer_postcode: r.try_get("customer_postcode")?,
                    inserted: r.try_get("inserted")?,
                    updated: r.try_get("updated")?,
                })
            }

            #[async_trait]
            impl CustomerStore for $store {
                async fn upsert_customer(&self, c: &Customer) -> StoreResult<Customer> {
                    let row = sqlx::query(&format!(
                        "INSERT INTO customers ({CUSTOMER_COLS}) VALUES \
                         ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19) \
                         ON CONFLICT (merchant_id, customer_uid) DO UPDATE SET channel_id = excluded.channel_id, \
                         pg_provider = excluded.pg_provider, pg_id = excluded.pg_id, sandbox = excluded.sandbox, \
                         billing_key = excluded.billing_key, customer_id = excluded.customer_id, \
                         card_name = excluded.card_name, card_code = excluded.card_code, \
                         card_number = excluded.card_number, card_type = excluded.card_type, \
                         customer_name = excluded.customer_name, customer_tel = excluded.customer_tel, \
                         customer_email = excluded.customer_email, customer_addr = excluded.customer_addr, \
                         customer_postcode = excluded.customer_postcode, updated = excluded.updated \
                         RETURNING {CUSTOMER_COLS}"
                    ))
                    .bind(&c.merchant_id)
                    .bind(&c.customer_uid)
                    .bind(&c.channel_id)
                    .bind(&c.pg_provider)
                    .bind(&c.pg_id)
                    .bind(c.sandbox)
                    .bind(&c.billing_key)
                    .bind(&c.customer_id)
                    .bind(&c.card_name)
                    .bind(&c.card_code)
                    .bind(&c.card_number)
                    .bind(c.card_type)
                    .bind(&c.customer_name)
                    .bind(&c.customer_tel)
                    .bind(&c.customer_email)
                    .bind(&c.customer_addr)
                    .bind(&c.customer_postcode)
                    .bind(c.inserted)
                    .bind(c.updated)
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(customer(&row)?)
                }

                async fn get_customer(&self, merchant_id: &str, customer_uid: &str) -> StoreResult<Option<Customer>> {
                    let row = sqlx::query(&format!(
                        "SELECT {CUSTOMER_COLS} FROM customers WHERE merchant_id = $1 AND customer_uid = $2"
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
                        "SELECT {CUSTOMER_COLS} FROM customers WHERE merchant_id = $1 AND customer_uid IN ({}) ORDER BY inserted, customer_uid",
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
                        "DELETE FROM customers WHERE merchant_id = $1 AND customer_uid = $2 RETURNING {CUSTOMER_COLS}"
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

impl_customer_store!(SqliteStore, sqlx::sqlite::SqliteRow, sqlite_impl);
impl_customer_store!(PgStore, sqlx::postgres::PgRow, pg_impl);
