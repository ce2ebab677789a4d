//! Refunds: cancel requests, the reservation of their money, and their settlement.
//!
//! The order of effects (engine `refunds.rs`): `reserve_cancel` (one guarded UPDATE that holds the
//! money in `payments.cancel_reserved`, plus the request row, in one transaction) → the PG call,
//! outside any transaction → `commit_cancel` (history row + reservation moved into
//! `cancel_amount` + webhook row, one transaction) or `release_cancel` (the PG refused) or
//! `cancel_unknown` (kept for `retry_pending_cancels`, same cancellation_id).

use crate::connect::{PgStore, SqliteStore};
use crate::error::{StoreError, StoreResult};
use crate::models::{CancelEntry, OutboxEvent, Payment, RefundState};
use crate::payment_row::cols as payment_cols;
use async_trait::async_trait;

/// The guard of an update moving a request to `to`: the states the domain lets become `to`
/// (`RefundState::can_become`), so the SQL follows the one state machine.
fn may_become(to: RefundState) -> String {
    let from: Vec<String> = RefundState::ALL
        .into_iter()
        .filter(|s| s.can_become(to))
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("state IN ({})", from.join(", "))
}

/// One cancel Pier sent, or is about to send, to the PG.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CancelRequestRow {
    pub cancellation_id: String,
    pub imp_uid: String,
    pub merchant_id: String,
    pub amount: i64,
    pub tax_free: i64,
    pub vat_amount: Option<i64>,
    pub reason: Option<String>,
    pub refund_holder: Option<String>,
    pub refund_bank: Option<String>,
    pub refund_account: Option<String>,
    pub refund_tel: Option<String>,
    pub enable_webhook: bool,
    pub state: RefundState,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[async_trait]
pub trait RefundStore: Send + Sync {
    /// Holds `r.amount` of the payment for this cancel and records the request, in one
    /// transaction. The hold is one guarded UPDATE: the payment must be paid (or partly
    /// cancelled), the unreserved balance must cover the amount, and with `checksum` the
    /// balance before this cancel (`amount - cancel_amount`) must equal it. `false` when the
    /// guard refused (the caller re-reads the payment to explain why).
    async fn reserve_cancel(
        &self,
        r: &CancelRequestRow,
        checksum: Option<i64>,
    ) -> StoreResult<bool>;
    /// Records a cancel the PG made: request `done`, history row, the reservation moved into
    /// `cancel_amount`, status `cancelled`, and `events`, in one transaction. `Stale` if the
    /// request was already settled.
    async fn commit_cancel(
        &self,
        cancellation_id: &str,
        entry: &CancelEntry,
        now: i64,
        events: &[OutboxEvent],
    ) -> StoreResult<Payment>;
    /// The PG refused: the request is `released` and its reservation given back.
    async fn release_cancel(&self, cancellation_id: &str, error: &str, now: i64)
        -> StoreResult<()>;
    /// The PG's answer is unknown: keep the reservation, look again at `next_attempt_at`.
    async fn cancel_unknown(
        &self,
        cancellation_id: &str,
        error: &str,
        next_attempt_at: i64,
        now: i64,
    ) -> StoreResult<()>;
    /// Requests whose outcome is unknown and due, and requests left in flight since before
    /// `stale_before` (a crash between the PG call and its record).
    async fn list_pending_cancels(
        &self,
        now: i64,
        stale_before: i64,
        limit: i64,
    ) -> StoreResult<Vec<CancelRequestRow>>;
    async fn get_cancel_request(
        &self,
        cancellation_id: &str,
    ) -> StoreResult<Option<CancelRequestRow>>;
    /// The webhook announcements written for a payment, oldest first (at most 100).
    async fn outbox_for_payment(&self, imp_uid: &str) -> StoreResult<Vec<OutboxEvent>>;
}

const REQUEST_COLUMNS: &str = "cancellation_id, imp_uid, merchant_id, amount, tax_free, vat_amount, \
     reason, refund_holder, refund_bank, refund_account, refund_tel, enable_webhook, state, attempts, \
     next_attempt_at, created_at, updated_at";

macro_rules! impl_refund_store {
    ($store:ty, $row:ty, $m:ident, $pm:path) => {
        mod $m {
            use super::*;
            use sqlx::Row;
            use crate::row::Row as _;
            use $pm as pm;

            fn request(r: &$row) -> sqlx::Result<CancelRequestRow> {
                Ok(CancelRequestRow {
                    cancellation_id: r.try_get("cancellation_id")?,
                    imp_uid: r.try_get("imp_uid")?,
                    merchant_id: r.try_get("merchant_id")?,
                    amount: r.try_get("amount")?,
                    tax_free: r.try_get("tax_free")?,
                    vat_amount: r.try_get("vat_amount")?,
                    reason: r.try_get("reason")?,
                    refund_holder: r.try_get("refund_holder")?,
                    refund_bank: r.try_get("refund_bank")?,
                    refund_account: r.try_get("refund_account")?,
                    refund_tel: r.try_get("refund_tel")?,
                    enable_webhook: r.try_get("enable_webhook")?,
                    state: {
                        let v: String = r.try_get("state")?;
                        v.parse().map_err(|()| sqlx::Error::ColumnDecode {
                            index: "state".into(),
                            source: format!("unknown refund state {v:?}").into(),
                        })?
                    },
                    attempts: r.try_get("attempts")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            #[async_trait]
            impl RefundStore for $store {
                async fn reserve_cancel(&self, r: &CancelRequestRow, checksum: Option<i64>) -> StoreResult<bool> {
                    let mut tx = self.pool.begin().await?;
                    let guard = "UPDATE payments SET cancel_reserved = cancel_reserved + $3, updated_at = $4 \
                         WHERE imp_uid = $1 AND merchant_id = $2 AND status IN ('paid','cancelled') AND paid_at > 0 \
                         AND amount - cancel_amount - cancel_reserved >= $3";
                    let done = match checksum {
                        Some(c) => sqlx::query(&format!("{guard} AND amount - cancel_amount = $5"))
                            .bind(&r.imp_uid)
                            .bind(&r.merchant_id)
                            .bind(r.amount)
                            .bind(r.created_at)
                            .bind(c)
                            .execute(&mut *tx)
                            .await?,
                        None => sqlx::query(guard)
                            .bind(&r.imp_uid)
                            .bind(&r.merchant_id)
                            .bind(r.amount)
                            .bind(r.created_at)
                            .execute(&mut *tx)
                            .await?,
                    };
                    if done.rows_affected() != 1 {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    sqlx::query(&format!(
                        "INSERT INTO cancel_requests ({REQUEST_COLUMNS}) \
                         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,'{}',1,0,$13,$13)",
                        RefundState::InFlight.as_str()
                    ))
                    .bind(&r.cancellation_id)
                    .bind(&r.imp_uid)
                    .bind(&r.merchant_id)
                    .bind(r.amount)
                    .bind(r.tax_free)
                    .bind(r.vat_amount)
                    .bind(&r.reason)
                    .bind(&r.refund_holder)
                    .bind(&r.refund_bank)
                    .bind(&r.refund_account)
                    .bind(&r.refund_tel)
                    .bind(r.enable_webhook)
                    .bind(r.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| crate::error::on_conflict(e, "cancellation_id already used"))?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn commit_cancel(&self, cancellation_id: &str, entry: &CancelEntry, now: i64, events: &[OutboxEvent]) -> StoreResult<Payment> {
                    let mut tx = self.pool.begin().await?;
                    let req = sqlx::query(&format!(
                        "UPDATE cancel_requests SET state = '{}', updated_at = $2, last_error = NULL \
                         WHERE cancellation_id = $1 AND {} RETURNING {REQUEST_COLUMNS}",
                        RefundState::Done.as_str(),
                        may_become(RefundState::Done)
                    ))
                    .bind(cancellation_id)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(req) = req else {
                        tx.rollback().await?;
                        return Err(StoreError::Stale(format!("cancel {cancellation_id} is already settled")));
                    };
                    let req = request(&req)?;
                    // Locks the payment row first, so the history sequence below cannot race.
                    let row = sqlx::query(&format!(
                        "UPDATE payments SET cancel_reserved = cancel_reserved - $2, cancel_amount = cancel_amount + $2, \
                         status = 'cancelled', cancelled_at = $3, cancel_reason = $4, updated_at = $5 \
                         WHERE imp_uid = $1 AND cancel_reserved >= $2 AND cancel_amount + $2 <= amount RETURNING {}",
                        payment_cols()
                    ))
                    .bind(&req.imp_uid)
                    .bind(req.amount)
                    .bind(entry.cancelled_at)
                    .bind(&entry.reason)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = row else {
                        tx.rollback().await?;
                        return Err(StoreError::Stale(format!("payment {} holds no reservation for {cancellation_id}", req.imp_uid)));
                    };
                    let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM cancel_history WHERE imp_uid = $1")
                        .bind(&req.imp_uid)
                        .fetch_one(&mut *tx)
                        .await?;
                    sqlx::query(
                        "INSERT INTO cancel_history (cancellation_id, imp_uid, seq, pg_tid, amount, cancelled_at, reason, receipt_url) \
                         VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                    )
                    .bind(cancellation_id)
                    .bind(&req.imp_uid)
                    .bind(seq)
                    .bind(&entry.pg_tid)
                    .bind(req.amount)
                    .bind(entry.cancelled_at)
                    .bind(&entry.reason)
                    .bind(&entry.receipt_url)
                    .execute(&mut *tx)
                    .await?;
                    for ev in events {
                        pm::insert_outbox(&mut *tx, ev).await?;
                    }
                    let p = pm::payment(&row)?;
                    let mut ps = pm::with_history(&mut *tx, vec![p]).await?;
                    tx.commit().await?;
                    Ok(ps.pop().expect("one payment in, one out"))
                }

                async fn release_cancel(&self, cancellation_id: &str, error: &str, now: i64) -> StoreResult<()> {
                    let mut tx = self.pool.begin().await?;
                    let req = sqlx::query(&format!(
                        "UPDATE cancel_requests SET state = '{}', updated_at = $2, last_error = $3 \
                         WHERE cancellation_id = $1 AND {} RETURNING {REQUEST_COLUMNS}",
                        RefundState::Released.as_str(),
                        may_become(RefundState::Released)
                    ))
                    .bind(cancellation_id)
                    .bind(now)
                    .bind(error)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(req) = req else {
                        tx.rollback().await?;
                        return Err(StoreError::Stale(format!("cancel {cancellation_id} is already settled")));
                    };
                    let req = request(&req)?;
                    sqlx::query("UPDATE payments SET cancel_reserved = cancel_reserved - $2, updated_at = $3 WHERE imp_uid = $1 AND cancel_reserved >= $2")
                        .bind(&req.imp_uid)
                        .bind(req.amount)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn cancel_unknown(&self, cancellation_id: &str, error: &str, next_attempt_at: i64, now: i64) -> StoreResult<()> {
                    let done = sqlx::query(&format!(
                        "UPDATE cancel_requests SET state = '{}', attempts = attempts + 1, next_attempt_at = $2, \
                         updated_at = $3, last_error = $4 WHERE cancellation_id = $1 AND {}",
                        RefundState::Unknown.as_str(),
                        may_become(RefundState::Unknown)
                    ))
                    .bind(cancellation_id)
                    .bind(next_attempt_at)
                    .bind(now)
                    .bind(error)
                    .execute(&self.pool)
                    .await?;
                    if done.rows_affected() != 1 {
                        return Err(StoreError::Stale(format!("cancel {cancellation_id} is already settled")));
                    }
                    Ok(())
                }

                async fn list_pending_cancels(&self, now: i64, stale_before: i64, limit: i64) -> StoreResult<Vec<CancelRequestRow>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {REQUEST_COLUMNS} FROM cancel_requests WHERE (state = '{}' AND next_attempt_at <= $1) \
                         OR (state = '{}' AND updated_at < $2) ORDER BY updated_at LIMIT $3",
                        RefundState::Unknown.as_str(),
                        RefundState::InFlight.as_str()
                    ))
                    .bind(now)
                    .bind(stale_before)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.iter().map(request).collect::<sqlx::Result<_>>()?)
                }

                async fn get_cancel_request(&self, cancellation_id: &str) -> StoreResult<Option<CancelRequestRow>> {
                    let row = sqlx::query(&format!("SELECT {REQUEST_COLUMNS} FROM cancel_requests WHERE cancellation_id = $1"))
                        .bind(cancellation_id)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row.as_ref().map(request).transpose()?)
                }

                async fn outbox_for_payment(&self, imp_uid: &str) -> StoreResult<Vec<OutboxEvent>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {} FROM outbox WHERE imp_uid = $1 ORDER BY created_at, id LIMIT 100",
                        OutboxEvent::LIST
                    ))
                    .bind(imp_uid)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.iter().map(OutboxEvent::read).collect::<sqlx::Result<_>>()?)
                }
            }
        }
    };
}

impl_refund_store!(
    SqliteStore,
    sqlx::sqlite::SqliteRow,
    sqlite_impl,
    crate::payments::sqlite_impl
);
impl_refund_store!(
    PgStore,
    sqlx::postgres::PgRow,
    pg_impl,
    crate::payments::pg_impl
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_follow_the_domain() {
        assert_eq!(
            may_become(RefundState::Done),
            "state IN ('in_flight', 'unknown')"
        );
        assert_eq!(
            may_become(RefundState::Unknown),
            may_become(RefundState::Done)
        );
        assert_eq!(
            may_become(RefundState::Released),
            may_become(RefundState::Done)
        );
    }
}
