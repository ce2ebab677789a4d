//! Cash receipts and escrow delivery information (migration 0031).
//!
//! Issuing a receipt of a payment and setting the payment's `cash_receipt_issued` are one
//! transaction, and so are cancelling it and clearing the flag; a second issued receipt for the
//! same payment or external merchant_uid fails on a partial unique index (`Conflict`).

use crate::connect::{PgStore, SqliteStore};
use crate::error::{on_conflict, StoreResult};
use async_trait::async_trait;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CashReceipt {
    pub receipt_id: String,
    pub merchant_id: String,
    /// `payment` or `external`.
    pub kind: String,
    pub imp_uid: Option<String>,
    pub merchant_uid: String,
    pub receipt_tid: String,
    pub apply_num: String,
    /// `person` or `company`.
    pub receipt_type: String,
    /// Masked: the identifier itself is never stored.
    pub identifier_masked: String,
    pub identifier_type: Option<String>,
    pub name: Option<String>,
    pub pay_method: Option<String>,
    pub amount: i64,
    pub vat: i64,
    pub tax_free: i64,
    pub receipt_url: String,
    /// `issued` or `cancelled`.
    pub status: String,
    pub applied_at: i64,
    pub cancelled_at: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EscrowLogis {
    pub imp_uid: String,
    pub merchant_id: String,
    pub company: String,
    pub invoice: String,
    pub sent_at: i64,
    pub applied_at: i64,
    pub updated_at: i64,
}

#[async_trait]
pub trait ReceiptStore: Send + Sync {
    /// Records an issued receipt (and, for a payment's receipt, sets `cash_receipt_issued`).
    /// `Conflict` when one is already issued for that payment or external merchant_uid.
    async fn insert_receipt(&self, r: &CashReceipt) -> StoreResult<()>;
    /// The merchant's issued receipt for `key` (an imp_uid for `payment`, a merchant_uid for
    /// `external`), else the latest cancelled one.
    async fn find_receipt(
        &self,
        merchant_id: &str,
        kind: &str,
        key: &str,
    ) -> StoreResult<Option<CashReceipt>>;
    /// Marks an issued receipt cancelled (clearing the payment's flag). `None` if it was not
    /// issued any more (a concurrent cancel won).
    async fn cancel_receipt(
        &self,
        merchant_id: &str,
        receipt_id: &str,
        now: i64,
    ) -> StoreResult<Option<CashReceipt>>;
    /// Registers (`create`: `Conflict` if present) or replaces (`!create`: `None` if absent)
    /// the delivery information of an escrow payment.
    async fn put_escrow_logis(
        &self,
        e: &EscrowLogis,
        create: bool,
    ) -> StoreResult<Option<EscrowLogis>>;
    async fn get_escrow_logis(
        &self,
        merchant_id: &str,
        imp_uid: &str,
    ) -> StoreResult<Option<EscrowLogis>>;
}

const COLS: &str = "receipt_id, merchant_id, kind, imp_uid, merchant_uid, receipt_tid, apply_num, \
     receipt_type, identifier_masked, identifier_type, name, pay_method, amount, vat, tax_free, \
     receipt_url, status, applied_at, cancelled_at";
const LOGIS_COLS: &str = "imp_uid, merchant_id, company, invoice, sent_at, applied_at, updated_at";

macro_rules! impl_receipt_store {
    ($store:ty, $row:ty, $m:ident) => {
        mod $m {
            use super::*;
            use sqlx::Row;

            fn receipt(r: &$row) -> sqlx::Result<CashReceipt> {
                Ok(CashReceipt {
                    receipt_id: r.try_get("receipt_id")?,
                    merchant_id: r.try_get("merchant_id")?,
                    kind: r.try_get("kind")?,
                    imp_uid: r.try_get("imp_uid")?,
                    merchant_uid: r.try_get("merchant_uid")?,
                    receipt_tid: r.try_get("receipt_tid")?,
                    apply_num: r.try_get("apply_num")?,
                    receipt_type: r.try_get("receipt_type")?,
                    identifier_masked: r.try_get("identifier_masked")?,
                    identifier_type: r.try_get("identifier_type")?,
                    name: r.try_get("name")?,
                    pay_method: r.try_get("pay_method")?,
                    amount: r.try_get("amount")?,
                    vat: r.try_get("vat")?,
                    tax_free: r.try_get("tax_free")?,
                    receipt_url: r.try_get("receipt_url")?,
                    status: r.try_get("status")?,
                    applied_at: r.try_get("applied_at")?,
                    cancelled_at: r.try_get("cancelled_at")?,
                })
            }

            fn logis(r: &$row) -> sqlx::Result<EscrowLogis> {
                Ok(EscrowLogis {
                    imp_uid: r.try_get("imp_uid")?,
                    merchant_id: r.try_get("merchant_id")?,
                    company: r.try_get("company")?,
                    invoice: r.try_get("invoice")?,
                    sent_at: r.try_get("sent_at")?,
                    applied_at: r.try_get("applied_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            #[async_trait]
            impl ReceiptStore for $store {
                async fn insert_receipt(&self, r: &CashReceipt) -> StoreResult<()> {
                    let mut tx = self.pool.begin().await?;
                    sqlx::query(&format!(
                        "INSERT INTO cash_receipts ({COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)"
                    ))
                    .bind(&r.receipt_id)
                    .bind(&r.merchant_id)
                    .bind(&r.kind)
                    .bind(&r.imp_uid)
                    .bind(&r.merchant_uid)
                    .bind(&r.receipt_tid)
                    .bind(&r.apply_num)
                    .bind(&r.receipt_type)
                    .bind(&r.identifier_masked)
                    .bind(&r.identifier_type)
                    .bind(&r.name)
                    .bind(&r.pay_method)
                    .bind(r.amount)
                    .bind(r.vat)
                    .bind(r.tax_free)
                    .bind(&r.receipt_url)
                    .bind(&r.status)
                    .bind(r.applied_at)
                    .bind(r.cancelled_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| on_conflict(e, "a cash receipt is already issued"))?;
                    if let Some(imp) = &r.imp_uid {
                        sqlx::query(
                            "UPDATE payments SET cash_receipt_issued = TRUE, updated_at = $3 \
                             WHERE imp_uid = $1 AND merchant_id = $2",
                        )
                        .bind(imp)
                        .bind(&r.merchant_id)
                        .bind(r.applied_at)
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn find_receipt(&self, merchant_id: &str, kind: &str, key: &str) -> StoreResult<Option<CashReceipt>> {
                    let col = if kind == "payment" { "imp_uid" } else { "merchant_uid" };
                    let row = sqlx::query(&format!(
                        "SELECT {COLS} FROM cash_receipts WHERE merchant_id = $1 AND kind = $2 AND {col} = $3 \
                         ORDER BY CASE WHEN status = 'issued' THEN 0 ELSE 1 END, applied_at DESC, receipt_id DESC LIMIT 1"
                    ))
                    .bind(merchant_id)
                    .bind(kind)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(receipt).transpose()?)
                }

                async fn cancel_receipt(&self, merchant_id: &str, receipt_id: &str, now: i64) -> StoreResult<Option<CashReceipt>> {
                    let mut tx = self.pool.begin().await?;
                    let row = sqlx::query(&format!(
                        "UPDATE cash_receipts SET status = 'cancelled', cancelled_at = $3 \
                         WHERE merchant_id = $1 AND receipt_id = $2 AND status = 'issued' RETURNING {COLS}"
                    ))
                    .bind(merchant_id)
                    .bind(receipt_id)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(r) = row.as_ref().map(receipt).transpose()? else {
                        return Ok(None);
                    };
                    if let Some(imp) = &r.imp_uid {
                        sqlx::query(
                            "UPDATE payments SET cash_receipt_issued = FALSE, updated_at = $3 \
                             WHERE imp_uid = $1 AND merchant_id = $2",
                        )
                        .bind(imp)
                        .bind(merchant_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(Some(r))
                }

                async fn put_escrow_logis(&self, e: &EscrowLogis, create: bool) -> StoreResult<Option<EscrowLogis>> {
                    let row = if create {
                        sqlx::query(&format!(
                            "INSERT INTO escrow_logis ({LOGIS_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING {LOGIS_COLS}"
                        ))
                        .bind(&e.imp_uid)
                        .bind(&e.merchant_id)
                        .bind(&e.company)
                        .bind(&e.invoice)
                        .bind(e.sent_at)
                        .bind(e.applied_at)
                        .bind(e.updated_at)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(|err| on_conflict(err, "escrow delivery information is already registered"))?
                    } else {
                        sqlx::query(&format!(
                            "UPDATE escrow_logis SET company = $3, invoice = $4, sent_at = $5, updated_at = $6 \
                             WHERE imp_uid = $1 AND merchant_id = $2 RETURNING {LOGIS_COLS}"
                        ))
                        .bind(&e.imp_uid)
                        .bind(&e.merchant_id)
                        .bind(&e.company)
                        .bind(&e.invoice)
                        .bind(e.sent_at)
                        .bind(e.updated_at)
                        .fetch_optional(&self.pool)
                        .await?
                    };
                    Ok(row.as_ref().map(logis).transpose()?)
                }

                async fn get_escrow_logis(&self, merchant_id: &str, imp_uid: &str) -> StoreResult<Option<EscrowLogis>> {
                    let row = sqlx::query(&format!(
                        "SELECT {LOGIS_COLS} FROM escrow_logis WHERE merchant_id = $1 AND imp_uid = $2"
                    ))
                    .bind(merchant_id)
                    .bind(imp_uid)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(logis).transpose()?)
                }
            }
        }
    };
}

impl_receipt_store!(SqliteStore, sqlx::sqlite::SqliteRow, sqlite_impl);
impl_receipt_store!(PgStore, sqlx::postgres::PgRow, pg_impl);
