//! Payment-window sessions (browser SDK) and the payment transitions only the window flow makes:
//! a window abandoned before any PG call, and a virtual account issued through the window.

use crate::connect::{PgStore, SqliteStore};
use crate::error::{StoreError, StoreResult};
use crate::models::{CheckoutState, OutboxEvent, Payment};
use crate::payment_row::cols as payment_cols;
use async_trait::async_trait;

/// One opened payment window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutSession {
    /// Random capability naming the window (`/checkout/window/{id}`).
    pub id: String,
    pub imp_uid: String,
    pub merchant_id: String,
    /// `iframe`, `popup` or `redirect`.
    pub mode: String,
    /// The merchant page's origin: the only target of the result `postMessage`.
    pub parent_origin: Option<String>,
    pub m_redirect_url: Option<String>,
    pub confirm_url: Option<String>,
    pub customer_id: Option<String>,
    pub pg_session_id: String,
    pub pg_window_url: String,
    pub state: CheckoutState,
    /// The result object (JSON) once done.
    pub result: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub updated_at: i64,
}

/// A virtual account issued through the window: the payment stays `ready` until the deposit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VbankIssue {
    pub pg_tid: String,
    pub vbank_code: String,
    pub vbank_name: String,
    pub vbank_num: String,
    pub vbank_holder: String,
    pub vbank_date: i64,
    pub vbank_issued_at: i64,
}

#[async_trait]
pub trait CheckoutStore: Send + Sync {
    async fn insert_checkout(&self, c: &CheckoutSession) -> StoreResult<()>;
    async fn get_checkout(&self, id: &str) -> StoreResult<Option<CheckoutSession>>;
    async fn checkout_by_pg_session(
        &self,
        pg_session_id: &str,
    ) -> StoreResult<Option<CheckoutSession>>;
    /// Stores the result of an open window. `false` if it was already done (the first result
    /// stays).
    async fn finish_checkout(&self, id: &str, result: &str, now: i64) -> StoreResult<bool>;
    /// Fails a window attempt that never reached the PG (`ready`, no PG call): buyer cancel,
    /// refused before approval. `None` if the row had moved on.
    async fn fail_before_pg(
        &self,
        imp_uid: &str,
        reason: &str,
        now: i64,
    ) -> StoreResult<Option<Payment>>;
    /// Records a virtual account issued for an attempt whose PG call was under way, with its
    /// `ready` webhook announcement, in one transaction. `Stale` if the row had moved on.
    async fn record_vbank_issued(
        &self,
        imp_uid: &str,
        v: &VbankIssue,
        now: i64,
        events: &[OutboxEvent],
    ) -> StoreResult<Payment>;
}

const CHECKOUT_COLS: &str =
    "id, imp_uid, merchant_id, mode, parent_origin, m_redirect_url, confirm_url, \
     customer_id, pg_session_id, pg_window_url, state, result, created_at, expires_at, updated_at";

macro_rules! impl_checkout_store {
    ($store:ty, $row:ty, $m:ident, $pm:ident) => {
        mod $m {
            use super::*;
            use crate::payments::$pm::{insert_outbox, payment};
            use sqlx::Row;

            fn checkout(r: &$row) -> sqlx::Result<CheckoutSession> {
                Ok(CheckoutSession {
                    id: r.try_get("id")?,
                    imp_uid: r.try_get("imp_uid")?,
                    merchant_id: r.try_get("merchant_id")?,
                    mode: r.try_get("mode")?,
                    parent_origin: r.try_get("parent_origin")?,
                    m_redirect_url: r.try_get("m_redirect_url")?,
                    confirm_url: r.try_get("confirm_url")?,
                    customer_id: r.try_get("customer_id")?,
                    pg_session_id: r.try_get("pg_session_id")?,
                    pg_window_url: r.try_get("pg_window_url")?,
                    state: {
                        let v: String = r.try_get("state")?;
                        v.parse().map_err(|()| sqlx::Error::ColumnDecode {
                            index: "state".into(),
                            source: format!("unknown checkout state {v:?}").into(),
                        })?
                    },
                    result: r.try_get("result")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            #[async_trait]
            impl CheckoutStore for $store {
                async fn insert_checkout(&self, c: &CheckoutSession) -> StoreResult<()> {
                    sqlx::query(&format!(
                        "INSERT INTO checkout_sessions ({CHECKOUT_COLS}) VALUES \
                         ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)"
                    ))
                    .bind(&c.id)
                    .bind(&c.imp_uid)
                    .bind(&c.merchant_id)
                    .bind(&c.mode)
                    .bind(&c.parent_origin)
                    .bind(&c.m_redirect_url)
                    .bind(&c.confirm_url)
                    .bind(&c.customer_id)
                    .bind(&c.pg_session_id)
                    .bind(&c.pg_window_url)
                    .bind(c.state.as_str())
                    .bind(&c.result)
                    .bind(c.created_at)
                    .bind(c.expires_at)
                    .bind(c.updated_at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| crate::error::on_conflict(e, "checkout session exists"))?;
                    Ok(())
                }

                async fn get_checkout(&self, id: &str) -> StoreResult<Option<CheckoutSession>> {
                    let row = sqlx::query(&format!(
                        "SELECT {CHECKOUT_COLS} FROM checkout_sessions WHERE id = $1"
                    ))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(checkout).transpose()?)
                }

                async fn checkout_by_pg_session(
                    &self,
                    pg_session_id: &str,
                ) -> StoreResult<Option<CheckoutSession>> {
                    let row = sqlx::query(&format!(
                        "SELECT {CHECKOUT_COLS} FROM checkout_sessions WHERE pg_session_id = $1 \
                         ORDER BY created_at DESC LIMIT 1"
                    ))
                    .bind(pg_session_id)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(checkout).transpose()?)
                }

                async fn finish_checkout(&self, id: &str, result: &str, now: i64) -> StoreResult<bool> {
                    // Open → done, the one move `CheckoutState::can_become` allows.
                    let done = sqlx::query(&format!(
                        "UPDATE checkout_sessions SET state = '{}', result = $2, updated_at = $3 \
                         WHERE id = $1 AND state = '{}'",
                        CheckoutState::Done.as_str(),
                        CheckoutState::Open.as_str()
                    ))
                    .bind(id)
                    .bind(result)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn fail_before_pg(
                    &self,
                    imp_uid: &str,
                    reason: &str,
                    now: i64,
                ) -> StoreResult<Option<Payment>> {
                    let row = sqlx::query(&format!(
                        "UPDATE payments SET status = 'failed', pg_state = 'settled', uid_lock = FALSE, \
                         fail_reason = $2, failed_at = $3, updated_at = $3 \
                         WHERE imp_uid = $1 AND status = 'ready' AND pg_state = 'none' RETURNING {}",
                        payment_cols()
                    ))
                    .bind(imp_uid)
                    .bind(reason)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(payment).transpose()?)
                }

                async fn record_vbank_issued(
                    &self,
                    imp_uid: &str,
                    v: &VbankIssue,
                    now: i64,
                    events: &[OutboxEvent],
                ) -> StoreResult<Payment> {
                    let sql = format!(
                        "UPDATE payments SET pg_state = 'settled', updated_at = $2, pg_tid = $3, vbank_tid = $3, \
                         vbank_code = $4, vbank_name = $5, vbank_num = $6, vbank_holder = $7, \
                         vbank_date = $8, vbank_issued_at = $9 \
                         WHERE imp_uid = $1 AND status = 'ready' AND pg_state IN ('in_flight','unknown') \
                         RETURNING {}",
                        payment_cols()
                    );
                    let mut tx = self.pool.begin().await?;
                    let row = sqlx::query(&sql)
                        .bind(imp_uid)
                        .bind(now)
                        .bind(&v.pg_tid)
                        .bind(&v.vbank_code)
                        .bind(&v.vbank_name)
                        .bind(&v.vbank_num)
                        .bind(&v.vbank_holder)
                        .bind(v.vbank_date)
                        .bind(v.vbank_issued_at)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(row) = row else {
                        return Err(StoreError::Stale(format!(
                            "{imp_uid} is no longer awaiting the PG"
                        )));
                    };
                    for ev in events {
                        insert_outbox(&mut *tx, ev).await?;
                    }
                    tx.commit().await?;
                    Ok(payment(&row)?)
                }
            }
        }
    };
}

impl_checkout_store!(
    SqliteStore,
    sqlx::sqlite::SqliteRow,
    sqlite_checkout,
    sqlite_impl
);
impl_checkout_store!(PgStore, sqlx::postgres::PgRow, pg_checkout, pg_impl);
