//! Billing keys ("customers"): the PG's key and the masked card, never card data.

use crate::connect::{PgStore, SqliteStore};
use crate::error::StoreResult;
use crate::models::{Channel, Customer};
pub use crate::rows::ChargeContext;
use crate::rows::{channel_from_row, customer_from_row, Prepared, CHANNEL_AS_CH, CUSTOMER_COLS};
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

/// The `charge_context` join: customer columns by their names, channel and prepare columns
/// prefixed `ch_` / `pp_`.
fn charge_context_sql() -> &'static str {
    static S: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        format!(
            "SELECT {} FROM customers c LEFT JOIN channels ch ON ch.id = c.channel_id \
             LEFT JOIN payment_prepares pp ON pp.merchant_id = c.merchant_id AND pp.merchant_uid = $3 \
             WHERE c.merchant_id = $1 AND c.customer_uid = $2",
            charge_context_cols()
        )
    })
}

/// The batched join: `keys` yields rows (km, kc, ku, kn) = (merchant_id, customer_uid,
/// merchant_uid, position) from the JSON array bound as `$1`.
fn charge_contexts_sql(keys: &str) -> String {
    format!(
        "SELECT {}, kn FROM {keys} JOIN customers c ON c.merchant_id = km AND c.customer_uid = kc \
         LEFT JOIN channels ch ON ch.id = c.channel_id \
         LEFT JOIN payment_prepares pp ON pp.merchant_id = km AND pp.merchant_uid = ku",
        charge_context_cols()
    )
}

fn charge_context_cols() -> String {
    let customer: Vec<String> = CUSTOMER_COLS
        .split(',')
        .map(|c| format!("c.{}", c.trim()))
        .collect();
    format!(
        "{}, {CHANNEL_AS_CH}, pp.amount AS pp_amount, pp.currency AS pp_currency, \
         pp.created_at AS pp_created_at, pp.updated_at AS pp_updated_at",
        customer.join(", ")
    )
}

macro_rules! impl_customer_store {
    ($store:ty, $row:ty, $m:ident, $keys:expr) => {
        mod $m {
            use super::*;
            use sqlx::Row;
            use crate::connect::{HasLane, HasPgReads};

            fn customer(r: &$row) -> sqlx::Result<Customer> {
                Ok(customer_from_row!(r, try_get))
            }

            fn charge_context(r: &$row, merchant_uid: &str) -> sqlx::Result<ChargeContext> {
                let customer = customer(r)?;
                let channel = match r.try_get::<Option<String>, _>("ch_id")? {
                    None => None,
                    Some(_) => Some(channel_from_row!(r, try_get, "ch_")),
                };
                let prepared = match r.try_get::<Option<i64>, _>("pp_amount")? {
                    None => None,
                    Some(amount) => Some(Prepared {
                        merchant_id: customer.merchant_id.clone(),
                        merchant_uid: merchant_uid.to_owned(),
                        amount,
                        currency: r.try_get("pp_currency")?,
                        created_at: r.try_get("pp_created_at")?,
                        updated_at: r.try_get("pp_updated_at")?,
                    }),
                };
                Ok(ChargeContext { customer, channel, prepared })
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
                    Ok(row.as_ref().map(|r| charge_context(r, merchant_uid)).transpose()?)
                }

                async fn charge_contexts(&self, keys: &[(String, String, String)]) -> StoreResult<Vec<Option<ChargeContext>>> {
                    if let Some(lane) = self.lane() {
                        // In-process point reads: nothing to batch.
                        return keys.iter().map(|(m, c, u)| lane.charge_context(m, c, u)).collect();
                    }
                    let mut out: Vec<Option<ChargeContext>> = vec![None; keys.len()];
                    if keys.is_empty() {
                        return Ok(out);
                    }
                    let json = serde_json::Value::Array(
                        keys.iter()
                            .enumerate()
                            .map(|(n, (m, c, u))| serde_json::json!({"km": m, "kc": c, "ku": u, "kn": n as i64}))
                            .collect(),
                    )
                    .to_string();
                    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                    let rows = sqlx::query(SQL.get_or_init(|| charge_contexts_sql($keys)))
                        .bind(json)
                        .fetch_all(&self.pool)
                        .await?;
                    for r in &rows {
                        let n: i64 = r.try_get("kn")?;
                        if let Some((_, _, u)) = usize::try_from(n).ok().and_then(|i| keys.get(i)) {
                            out[n as usize] = Some(charge_context(r, u)?);
                        }
                    }
                    Ok(out)
                }

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
                    if let Some(lane) = self.lane() {
                        return lane.get_customer(merchant_id, customer_uid);
                    }
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

impl_customer_store!(
    SqliteStore,
    sqlx::sqlite::SqliteRow,
    sqlite_impl,
    "(SELECT json_extract(value, '$.km') AS km, json_extract(value, '$.kc') AS kc, \
     json_extract(value, '$.ku') AS ku, json_extract(value, '$.kn') AS kn FROM json_each($1)) AS k"
);
impl_customer_store!(
    PgStore,
    sqlx::postgres::PgRow,
    pg_impl,
    "json_to_recordset($1::json) AS k(km text, kc text, ku text, kn int8)"
);
