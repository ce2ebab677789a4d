//! Refunds (`POST /payments/cancel`, spec §3.2, §9.5) and what remains refundable.
//!
//! The money-safe order, as for charges:
//! 1. reserve: ONE guarded UPDATE holds the amount in `cancel_reserved` (status paid/cancelled,
//!    unreserved balance covers it, and with `checksum` the balance before this cancel equals it),
//!    in the same transaction as the `cancel_requests` row. Two concurrent cancels can never both
//!    take the last won;
//! 2. call the PG (`Pg::cancel` with a fresh `cancellation_id`) in a spawned task with a
//!    deadline, outside any transaction;
//! 3. record: success → history row + reservation moved into `cancel_amount` (+ `cancelled`
//!    webhook row when asked), one transaction; refusal → reservation released; unknown →
//!    reservation kept and the request retried later by `retry_pending_cancels` with the SAME
//!    cancellation_id, which the PG treats as the same cancel (never a second refund).

use super::{Engine, Error, Result};
use pier_domain::{Amount, AmountPart, PaymentStatus, RefundState};
use pier_pg::{CancelOutcome, CancelRequest, Mid, PgError};
use pier_store::{CancelEntry, CancelRequestRow, Payment, PaymentQuery, StoreError};
use std::sync::Arc;

pub const MSG_NO_CANCEL_TARGET: &str = "취소할 결제건이 존재하지 않습니다.";
pub const MSG_ALREADY_CANCELLED: &str = "이미 전액취소된 주문입니다.";
pub const MSG_NOT_PAID: &str =
    "결제완료된 거래건이 아니므로 취소할 수 없습니다. (only paid payments can be cancelled; revoke a waiting virtual account with DELETE /vbanks/{imp_uid})";
pub const MSG_CANCEL_BUSY: &str =
    "다른 취소 요청이 처리중입니다. 잠시 후 다시 시도해주세요. (another cancel of this payment is in progress)";
pub const MSG_CANCEL_UNKNOWN: &str =
    "PG사로부터 취소 결과를 확인하지 못했습니다. 취소 결과는 자동으로 확인되며, 잠시 후 결제 내역을 조회해주세요. (the PG's answer to this cancel is unknown; Pier retries it with the same cancellation_id)";
/// Delay before a cancel with an unknown outcome is tried again, doubled per attempt: 5, 10,
/// 20, 40 s, then every minute. Capped at a minute rather than an hour for the reason the
/// reconciler's backoff is (`reconcile::BACKOFF_MAX_SECS`): PG faults come in bursts, and with
/// an hour's cap a refund whose retries met a burst waited up to an hour after the PG answered
/// again (a 3×-fault chaos run left one pending past the harness's 180 s wait). The retry names
/// the same cancellation_id, so retrying sooner can never refund twice.
pub const CANCEL_RETRY_BASE_SECS: i64 = 5;
pub const CANCEL_RETRY_MAX_SECS: i64 = 60;
/// A request still `in_flight` this long after its last update was cut short (a crash).
pub const CANCEL_STALE_SECS: i64 = 120;
/// Pending cancels handled per retry run.
pub const CANCEL_RETRY_BATCH: i64 = 100;

/// Who is being refunded, for virtual-account refunds (spec §3.2).
#[derive(Debug, Clone, Default)]
pub struct RefundAccount {
    pub holder: Option<String>,
    pub bank: Option<String>,
    pub account: Option<String>,
    pub tel: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CancelInput {
    pub imp_uid: Option<String>,
    pub merchant_uid: Option<String>,
    /// `None` (or 0 on the wire): the whole remaining balance.
    pub amount: Option<Amount>,
    pub tax_free: Option<AmountPart>,
    pub vat_amount: Option<AmountPart>,
    pub checksum: Option<i64>,
    pub reason: Option<String>,
    pub refund: RefundAccount,
    pub enable_webhook: bool,
    /// The request's Idempotency-Key. A retry with the same key names the same cancel (same
    /// cancellation_id), so a cancel whose first answer was unknown is never made twice.
    pub idempotency_key: Option<String>,
}

impl Engine {
    pub async fn cancel_payment(
        self: &Arc<Self>,
        merchant_id: &str,
        input: CancelInput,
    ) -> Result<Payment> {
        let p = self.cancel_target(merchant_id, &input).await?;
        let cancellation_id = match &input.idempotency_key {
            Some(key) => {
                let h = self
                    .auth
                    .keyed_hash(format!("cancel\n{merchant_id}\n{key}").as_bytes());
                format!("cnl_k{}", &h[..23])
            }
            None => format!("cnl_{}", pier_domain::ids::random_hex(12)),
        };
        if input.idempotency_key.is_some() {
            if let Some(prior) = self.store.get_cancel_request(&cancellation_id).await? {
                return match prior.state {
                    // Made already: answer with the payment as it stands.
                    RefundState::Done => self.payment_by_uid(merchant_id, &prior.imp_uid).await,
                    RefundState::Released => Err(Error::PgRefused(
                        "결제취소에 실패하였습니다. (this Idempotency-Key's cancel was refused by the PG)".into(),
                    )),
                    // Still unknown or under way: Pier is finishing it; ask again later.
                    RefundState::InFlight | RefundState::Unknown => Err(Error::PgUnknown {
                        message: format!("{MSG_CANCEL_UNKNOWN} cancellation_id: {cancellation_id}"),
                        imp_uid: prior.imp_uid,
                    }),
                };
            }
        }
        // A revoked virtual account is `cancelled` too, but was never paid.
        if !matches!(p.status, PaymentStatus::Paid | PaymentStatus::Cancelled) || p.paid_at == 0 {
            return Err(Error::Refused(MSG_NOT_PAID.into()));
        }
        // What is left to cancel, and of it what no other cancel holds right now.
        let Some(before) = Amount::remaining(p.amount, p.cancel_amount) else {
            return Err(Error::Refused(MSG_ALREADY_CANCELLED.into()));
        };
        if let Some(c) = input.checksum {
            if c != before.krw() {
                return Err(checksum_mismatch(c, before));
            }
        }
        let free = before.checked_sub_krw(p.cancel_reserved);
        let amount = match input.amount {
            Some(a) => a,
            None => free.ok_or_else(|| Error::Refused(MSG_CANCEL_BUSY.into()))?,
        };
        if amount > before {
            return Err(over_balance(amount, before));
        }
        if free.is_none_or(|f| amount > f) {
            return Err(Error::Refused(MSG_CANCEL_BUSY.into()));
        }
        let tax_free = input.tax_free.unwrap_or(AmountPart::ZERO);
        if !amount.covers(tax_free) {
            return Err(Error::Invalid(
                "tax_free must not exceed the cancel amount".into(),
            ));
        }
        if input.vat_amount.is_some_and(|v| !amount.covers(v)) {
            return Err(Error::Invalid(
                "vat_amount must not exceed the cancel amount".into(),
            ));
        }
        if p.pay_method.as_deref() == Some("vbank") {
            check_refund_account(&input.refund)?;
        }
        let now = self.now();
        let req = CancelRequestRow {
            cancellation_id,
            imp_uid: p.imp_uid.clone(),
            merchant_id: merchant_id.to_owned(),
            amount: amount.krw(),
            tax_free: tax_free.krw(),
            vat_amount: input.vat_amount.map(AmountPart::krw),
            reason: input.reason.clone(),
            refund_holder: input.refund.holder.clone(),
            refund_bank: input.refund.bank.clone(),
            refund_account: input.refund.account.clone(),
            refund_tel: input.refund.tel.clone(),
            enable_webhook: input.enable_webhook,
            state: RefundState::InFlight,
            attempts: 1,
            next_attempt_at: 0,
            created_at: now,
            updated_at: now,
        };
        if !self.store.reserve_cancel(&req, input.checksum).await? {
            return Err(self
                .explain_refused_reserve(&p, amount, input.checksum)
                .await);
        }
        let this = self.clone();
        // Detached: the cancel gets its record even if the client disconnects.
        let task = self.tasks.spawn(async move {
            let answer = this.call_pg_cancel(&p, &req).await;
            this.record_cancel(&p, &req, answer).await
        });
        match task.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cancel task failed");
                Err(Error::Unavailable(
                    "결제취소 처리 중 오류가 발생했습니다. (internal error)".into(),
                ))
            }
        }
    }

    /// The payment a cancel names: `imp_uid` wins; by `merchant_uid`, the paid attempt.
    async fn cancel_target(&self, merchant_id: &str, input: &CancelInput) -> Result<Payment> {
        let none = || Error::Refused(MSG_NO_CANCEL_TARGET.into());
        if let Some(imp_uid) = &input.imp_uid {
            return self
                .store
                .get_payment(Some(merchant_id), imp_uid)
                .await?
                .ok_or_else(none);
        }
        let Some(merchant_uid) = &input.merchant_uid else {
            return Err(Error::Invalid("imp_uid or merchant_uid is required".into()));
        };
        if let Some(locked) = self.store.locked_payment(merchant_id, merchant_uid).await? {
            if locked.status != PaymentStatus::Ready {
                // Re-read with its cancel history.
                return self
                    .store
                    .get_payment(Some(merchant_id), &locked.imp_uid)
                    .await?
                    .ok_or_else(none);
            }
        }
        // No attempt holds the guard as paid: a paid/cancelled attempt if any, else the latest.
        for status in [PaymentStatus::Paid, PaymentStatus::Cancelled] {
            let q = PaymentQuery {
                status: Some(status),
                limit: 1,
                ..Default::default()
            };
            let page = self
                .store
                .find_by_merchant_uid(merchant_id, merchant_uid, &q)
                .await?;
            if let Some(p) = page.items.into_iter().next() {
                return Ok(p);
            }
        }
        let q = PaymentQuery {
            limit: 1,
            ..Default::default()
        };
        let page = self
            .store
            .find_by_merchant_uid(merchant_id, merchant_uid, &q)
            .await?;
        page.items.into_iter().next().ok_or_else(none)
    }

    /// The guarded reservation matched nothing: say why, from a fresh read.
    async fn explain_refused_reserve(
        &self,
        p: &Payment,
        amount: Amount,
        checksum: Option<i64>,
    ) -> Error {
        let fresh = match self.store.get_payment(None, &p.imp_uid).await {
            Ok(Some(f)) => f,
            Ok(None) => return Error::Refused(MSG_NO_CANCEL_TARGET.into()),
            Err(e) => return e.into(),
        };
        let Some(before) = Amount::remaining(fresh.amount, fresh.cancel_amount) else {
            return Error::Refused(MSG_ALREADY_CANCELLED.into());
        };
        if let Some(c) = checksum.filter(|c| *c != before.krw()) {
            return checksum_mismatch(c, before);
        }
        if amount > before {
            return over_balance(amount, before);
        }
        Error::Refused(MSG_CANCEL_BUSY.into())
    }

    async fn call_pg_cancel(
        &self,
        p: &Payment,
        req: &CancelRequestRow,
    ) -> std::result::Result<CancelOutcome, PgError> {
        let channel = match &p.channel_id {
            Some(id) => self.store.get_channel(id).await.ok().flatten(),
            None => None,
        };
        let Some(channel) = channel else {
            return Err(PgError::Unreachable(
                "the payment's PG channel no longer exists".into(),
            ));
        };
        let order_id = match self.store.pg_order_id(&p.imp_uid).await {
            Ok(o) => o,
            Err(e) => return Err(PgError::Unreachable(format!("storage: {e}"))),
        };
        let pg = self.pgs.for_channel(&channel);
        let call = CancelRequest {
            order_id,
            pg_tid: p.pg_tid.clone().unwrap_or_default(),
            amount_krw: req.amount,
            tax_free_krw: req.tax_free,
            reason: req.reason.clone(),
            cancellation_id: req.cancellation_id.clone(),
            // Checked complete for a virtual account by `check_refund_account`.
            refund_account: match (&req.refund_bank, &req.refund_account, &req.refund_holder) {
                (Some(bank), Some(account), Some(holder)) => Some(pier_pg::RefundAccount {
                    bank_code: bank.clone(),
                    account_number: account.clone(),
                    holder: holder.clone(),
                }),
                _ => None,
            },
        };
        let mid = Mid(channel.mid.clone());
        let deadline = self.cfg.pg_deadline + std::time::Duration::from_secs(1);
        super::pg_call("cancel", deadline, pg.cancel(&mid, &call)).await
    }

    /// Records the PG's answer to a cancel request.
    async fn record_cancel(
        &self,
        p: &Payment,
        req: &CancelRequestRow,
        answer: std::result::Result<CancelOutcome, PgError>,
    ) -> Result<Payment> {
        let now = self.now();
        match answer {
            Ok(o) => {
                let entry = CancelEntry {
                    cancellation_id: req.cancellation_id.clone(),
                    pg_tid: Some(o.pg_cancel_tid.clone()),
                    amount: req.amount,
                    cancelled_at: if o.cancelled_at > 0 {
                        o.cancelled_at
                    } else {
                        now
                    },
                    reason: req.reason.clone(),
                    receipt_url: o.receipt_url.clone(),
                };
                let events = if req.enable_webhook {
                    vec![self.event_for(
                        p,
                        PaymentStatus::Cancelled,
                        Some(req.cancellation_id.clone()),
                    )]
                } else {
                    Vec::new()
                };
                match self
                    .store
                    .commit_cancel(&req.cancellation_id, &entry, now, &events)
                    .await
                {
                    Ok(mut done) => {
                        // A full cancel cancels the payment's cash receipt (engine/receipts.rs).
                        self.cancel_receipt_of_cancelled(&mut done).await;
                        Ok(done)
                    }
                    // Settled concurrently (a retry run): the payment as it now is.
                    Err(StoreError::Stale(_)) => {
                        self.payment_by_uid(&p.merchant_id, &p.imp_uid).await
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(PgError::Declined { code, message } | PgError::Rejected { code, message }) => {
                let text = cancel_failed_text(&code, &message);
                self.release(req, &text, now).await?;
                Err(Error::PgRefused(text))
            }
            Err(PgError::Unreachable(why)) => {
                tracing::warn!(imp_uid = %p.imp_uid, %why, "PG unreachable for a cancel");
                let text = format!(
                    "결제취소에 실패하였습니다.(PG unreachable; nothing was cancelled: {why})"
                );
                self.release(req, &text, now).await?;
                Err(Error::PgRefused(text))
            }
            Err(PgError::Unknown(why)) => {
                tracing::warn!(imp_uid = %p.imp_uid, cancellation_id = %req.cancellation_id, %why, "cancel outcome unknown; will retry");
                metrics::counter!("pier_pg_unknown_cancels_total").increment(1);
                let attempts = req.attempts.max(1);
                let delay =
                    (CANCEL_RETRY_BASE_SECS << (attempts - 1).min(10)).min(CANCEL_RETRY_MAX_SECS);
                match self
                    .store
                    .cancel_unknown(&req.cancellation_id, &why, now + delay, now)
                    .await
                {
                    Ok(()) | Err(StoreError::Stale(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                Err(Error::PgUnknown {
                    message: format!(
                        "{MSG_CANCEL_UNKNOWN} cancellation_id: {}",
                        req.cancellation_id
                    ),
                    imp_uid: p.imp_uid.clone(),
                })
            }
        }
    }

    async fn release(&self, req: &CancelRequestRow, why: &str, now: i64) -> Result<()> {
        match self
            .store
            .release_cancel(&req.cancellation_id, why, now)
            .await
        {
            Ok(()) | Err(StoreError::Stale(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Asks the PG again about cancels whose outcome is unknown (same cancellation_id, so a
    /// cancel the PG already made is answered, not repeated). Returns how many were settled.
    pub async fn retry_pending_cancels(self: &Arc<Self>) -> Result<usize> {
        let now = self.now();
        let pending = self
            .store
            .list_pending_cancels(now, now - CANCEL_STALE_SECS, CANCEL_RETRY_BATCH)
            .await?;
        let mut settled = 0;
        for req in pending {
            let Some(p) = self.store.get_payment(None, &req.imp_uid).await? else {
                continue;
            };
            let answer = self.call_pg_cancel(&p, &req).await;
            let unknown = matches!(answer, Err(PgError::Unknown(_)));
            let req = CancelRequestRow {
                attempts: req.attempts + 1,
                ..req
            };
            match self.record_cancel(&p, &req, answer).await {
                Ok(_) => settled += 1,
                Err(_) if !unknown => settled += 1,
                Err(_) => {}
            }
        }
        Ok(settled)
    }
}

fn checksum_mismatch(checksum: i64, balance: Amount) -> Error {
    Error::Refused(format!(
        "checksum이 취소가능 잔액과 일치하지 않습니다. (checksum {checksum} != refundable balance {}; nothing was cancelled)",
        balance.krw()
    ))
}

fn over_balance(amount: Amount, balance: Amount) -> Error {
    Error::Refused(format!(
        "취소 요청금액이 취소가능 잔액보다 큽니다. (requested {} > refundable balance {})",
        amount.krw(),
        balance.krw()
    ))
}

fn cancel_failed_text(code: &str, message: &str) -> String {
    if message.starts_with("결제취소에 실패하였습니다") {
        message.to_owned()
    } else if code.is_empty() {
        format!("결제취소에 실패하였습니다.({message})")
    } else {
        format!("결제취소에 실패하였습니다.([{code}] {message})")
    }
}

/// Refunds of a paid virtual account go to a bank account the caller names.
fn check_refund_account(r: &RefundAccount) -> Result<()> {
    let missing: Vec<&str> = [
        ("refund_holder", &r.holder),
        ("refund_bank", &r.bank),
        ("refund_account", &r.account),
    ]
    .iter()
    .filter(|(_, v)| v.is_none())
    .map(|(k, _)| *k)
    .collect();
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "가상계좌 환불에는 환불계좌 정보가 필요합니다. ({} required to refund a virtual account)",
            missing.join(", ")
        )));
    }
    let bank = r.bank.as_deref().unwrap_or_default();
    if pier_domain::codes::bank_name(bank).is_none() {
        return Err(Error::Invalid(format!(
            "refund_bank must be a bank code (see GET /banks): {bank:?}"
        )));
    }
    let acct = r.account.as_deref().unwrap_or_default();
    if !acct.chars().all(|c| c.is_ascii_digit() || c == '-') || acct.len() < 6 {
        return Err(Error::Invalid(
            "refund_account must be an account number (digits and dashes)".into(),
        ));
    }
    Ok(())
}
