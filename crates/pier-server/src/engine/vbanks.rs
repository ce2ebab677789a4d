//! Virtual accounts (spec §3.8): issue (`POST /vbanks`), change (`PUT /vbanks/{imp_uid}`),
//! revoke (`DELETE /vbanks/{imp_uid}`), and deposits announced by the PG (`PgEvent`), from the
//! in-process test PG's subscription (`jobs::vbank_deposits`) or pgsim's notify POST.
//!
//! Issue follows the charge order: the attempt is inserted `ready` with `pg_state = in_flight`,
//! the PG is called outside any transaction, and the account is recorded with its `ready`
//! webhook row in one transaction. A waiting account does not hold the merchant_uid guard (one
//! merchant_uid may own several waiting accounts); the deposit takes it.

use super::charge::{order_of, Buyer, MSG_ALREADY_PAID, MSG_IN_PROGRESS};
use super::{Engine, Error, Result};
use pier_domain::PaymentStatus;
use pier_domain::{Amount, AmountPart, ImpUid, MerchantUid};
use pier_pg::{Inquiry, Mid, Pg, PgError, PgEvent, VbankIssued, VbankRequest};
use pier_store::{Channel, Payment, Settlement, VbankAccount};
use std::sync::Arc;

pub const MSG_NOT_WAITING: &str =
    "입금대기 상태의 가상계좌가 아닙니다. (not a virtual account awaiting its deposit)";
/// Longest due time accepted for a new account.
pub const MAX_VBANK_DUE_SECS: i64 = 90 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct VbankInput {
    pub merchant_uid: MerchantUid,
    pub amount: Amount,
    pub tax_free: AmountPart,
    pub vat_amount: Option<AmountPart>,
    pub vbank_code: String,
    pub vbank_due: i64,
    pub vbank_holder: Option<String>,
    pub name: Option<String>,
    pub buyer: Buyer,
    pub custom_data: Option<String>,
    pub notice_urls: Vec<String>,
    pub pg: Option<String>,
    /// `escrow: true`: an escrow payment (delivery information via `/escrows/logis/{imp_uid}`).
    pub escrow: bool,
}

fn account(v: &VbankIssued) -> VbankAccount {
    VbankAccount {
        pg_tid: v.pg_tid.clone(),
        bank_code: v.bank_code.clone(),
        bank_name: v.bank_name.clone(),
        num: v.account_num.clone(),
        holder: v.holder.clone(),
        due: v.due_unix,
        issued_at: v.issued_at,
    }
}

fn pg_text(prefix: &str, e: &PgError) -> String {
    match e {
        PgError::Declined { code, message } | PgError::Rejected { code, message } => {
            format!("{prefix}([{code}] {message})")
        }
        PgError::Unreachable(why) => format!("{prefix}(PG unreachable: {why})"),
        PgError::Unknown(why) => format!("{prefix}(PG outcome unknown: {why})"),
    }
}

impl Engine {
    fn check_due(&self, due: i64) -> Result<()> {
        let now = self.now();
        if due <= now {
            return Err(Error::Invalid(
                "vbank_due must be in the future (unix seconds)".into(),
            ));
        }
        if due > now + MAX_VBANK_DUE_SECS {
            return Err(Error::Invalid("vbank_due must be within 90 days".into()));
        }
        Ok(())
    }

    async fn pg_of(&self, p: &Payment) -> Result<(Channel, Arc<dyn Pg>)> {
        let channel = match &p.channel_id {
            Some(id) => self.store.get_channel(id).await?,
            None => None,
        };
        let channel = channel.ok_or_else(|| {
            Error::Refused(
                "결제에 사용된 PG 설정정보가 존재하지 않습니다. (the payment's channel is gone)"
                    .into(),
            )
        })?;
        let pg = self.pgs.for_channel(&channel);
        Ok((channel, pg))
    }

    fn deadline(&self) -> std::time::Duration {
        self.cfg.pg_deadline + std::time::Duration::from_secs(1)
    }

    pub async fn issue_vbank(
        self: &Arc<Self>,
        merchant_id: &str,
        v: VbankInput,
    ) -> Result<Payment> {
        if pier_domain::codes::bank_name(&v.vbank_code).is_none() {
            return Err(Error::Invalid(format!(
                "vbank_code must be a bank code (see GET /banks): {:?}",
                v.vbank_code
            )));
        }
        self.check_due(v.vbank_due)?;
        let channel = self.select_channel(merchant_id, v.pg.as_deref()).await?;
        self.check_prepared(merchant_id, v.merchant_uid.as_str(), Some(v.amount))
            .await?;
        if let Some(h) = self
            .store
            .locked_payment(merchant_id, v.merchant_uid.as_str())
            .await?
        {
            return Err(if h.status == PaymentStatus::Ready {
                Error::Busy(MSG_IN_PROGRESS.into())
            } else {
                Error::Refused(MSG_ALREADY_PAID.into())
            });
        }
        let order = super::attempt::Order {
            merchant_uid: v.merchant_uid.as_str(),
            amount: Some(v.amount),
            currency: None,
            tax_free: v.tax_free,
            vat_amount: v.vat_amount,
            name: &v.name,
            buyer: &v.buyer,
            custom_data: &v.custom_data,
            notice_urls: &v.notice_urls,
            escrow: v.escrow,
            card_quota: 0,
        };
        let p = super::attempt::attempt(
            pier_domain::ImpUid::generate().into_string(),
            merchant_id,
            &order,
            &super::attempt::Flow::ApiVbank,
            Some(&channel),
            self.now(),
        );
        self.store.insert_payment(&p).await?;
        let this = self.clone();
        let task = self.tasks.spawn(async move {
            let pg = this.pgs.for_channel(&channel);
            let mid = Mid(channel.mid.clone());
            let req = VbankRequest {
                order: order_of(&p),
                bank_code: v.vbank_code.clone(),
                due_unix: v.vbank_due,
                holder: v.vbank_holder.clone(),
            };
            let answer =
                super::pg_call("issue_vbank", this.deadline(), pg.issue_vbank(&mid, &req)).await;
            this.record_vbank_issue(&p, &pg, &mid, answer).await
        });
        match task.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "vbank task failed");
                Err(Error::Unavailable(
                    "가상계좌 발급 중 오류가 발생했습니다. (internal error)".into(),
                ))
            }
        }
    }

    async fn record_vbank_issue(
        &self,
        p: &Payment,
        pg: &Arc<dyn Pg>,
        mid: &Mid,
        answer: std::result::Result<VbankIssued, PgError>,
    ) -> Result<Payment> {
        let now = self.now();
        let fail = |reason: String| Settlement::Failed {
            reason,
            failed_at: now,
        };
        match answer {
            Ok(issued) => {
                let ev = self.event_for(p, PaymentStatus::Ready, None);
                Ok(self
                    .store
                    .vbank_issued(&p.imp_uid, &account(&issued), now, &[ev])
                    .await?)
            }
            Err(PgError::Unknown(why)) => {
                // An account may exist at the PG: void it, so no deposit can arrive on it.
                tracing::warn!(imp_uid = %p.imp_uid, %why, "vbank issue outcome unknown; voiding");
                let voided = super::pg_call(
                    "net_cancel",
                    self.deadline(),
                    pg.net_cancel(mid, &p.imp_uid),
                )
                .await;
                if voided.is_ok() {
                    let reason = "가상계좌 발급 결과를 확인하지 못해 발급을 취소했습니다. (the PG's answer was lost; the account was voided)".to_string();
                    self.store
                        .settle(&p.imp_uid, &fail(reason.clone()), now, &[])
                        .await?;
                    return Err(Error::PgRefused(reason));
                }
                let s = Settlement::Unknown {
                    told_failed: false,
                    next_reconcile_at: now + super::charge::FIRST_RECONCILE_DELAY_SECS,
                };
                self.store.settle(&p.imp_uid, &s, now, &[]).await?;
                Err(Error::PgUnknown {
                    message: super::charge::MSG_UNKNOWN.into(),
                    imp_uid: p.imp_uid.clone(),
                })
            }
            Err(e) => {
                let reason = pg_text("가상계좌 발급에 실패하였습니다.", &e);
                self.store
                    .settle(&p.imp_uid, &fail(reason.clone()), now, &[])
                    .await?;
                Err(Error::PgRefused(reason))
            }
        }
    }

    /// A waiting account of the merchant, or why not (404 unknown, 400 not a waiting vbank).
    async fn waiting_vbank(&self, merchant_id: &str, imp_uid: &str) -> Result<Payment> {
        let p = self.payment_by_uid(merchant_id, imp_uid).await?;
        if p.pay_method.as_deref() != Some("vbank")
            || p.status != PaymentStatus::Ready
            || p.pg_tid.is_none()
        {
            return Err(Error::Invalid(MSG_NOT_WAITING.into()));
        }
        Ok(p)
    }

    /// Refuses when the money already arrived (the deposit will be recorded by its event).
    async fn ensure_not_deposited(
        &self,
        pg: &Arc<dyn Pg>,
        mid: &Mid,
        order_id: &str,
    ) -> Result<()> {
        let answer = super::pg_call("inquire", self.deadline(), pg.inquire(mid, order_id)).await;
        match answer {
            Ok(Inquiry::Approved(_)) => Err(Error::Invalid(
                "이미 입금된 가상계좌입니다. (the deposit already arrived)".into(),
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(Error::PgRefused(pg_text(
                "가상계좌 조회에 실패하였습니다.",
                &e,
            ))),
        }
    }

    /// `DELETE /vbanks/{imp_uid}`: void the account at the PG, then mark it `cancelled`.
    pub async fn revoke_vbank(&self, merchant_id: &str, imp_uid: &ImpUid) -> Result<Payment> {
        let p = self.waiting_vbank(merchant_id, imp_uid.as_str()).await?;
        let (channel, pg) = self.pg_of(&p).await?;
        let mid = Mid(channel.mid.clone());
        let order_id = self.store.pg_order_id(&p.imp_uid).await?;
        self.ensure_not_deposited(&pg, &mid, &order_id).await?;
        super::pg_call(
            "net_cancel",
            self.deadline(),
            pg.net_cancel(&mid, &order_id),
        )
        .await
        .map_err(|e| Error::PgRefused(pg_text("가상계좌 해지에 실패하였습니다.", &e)))?;
        self.store
            .vbank_revoked(
                merchant_id,
                imp_uid.as_str(),
                "가상계좌 발급취소",
                self.now(),
            )
            .await?
            .ok_or_else(|| Error::Invalid(MSG_NOT_WAITING.into()))
    }

    /// `PUT /vbanks/{imp_uid}`: a new amount and/or due time. The PG cannot change an account,
    /// so the old one is voided and a new one issued under a new order id.
    pub async fn update_vbank(
        &self,
        merchant_id: &str,
        imp_uid: &ImpUid,
        amount: Option<Amount>,
        due: Option<i64>,
    ) -> Result<Payment> {
        let p = self.waiting_vbank(merchant_id, imp_uid.as_str()).await?;
        let amount = match amount {
            Some(a) => a,
            None => Amount::new(p.amount, "amount")?,
        };
        let due = due.unwrap_or(p.vbank_date);
        self.check_due(due)?;
        if !amount.covers(AmountPart::new(p.tax_free, "tax_free")?) {
            return Err(Error::Invalid(
                "amount must not be below the tax-free amount".into(),
            ));
        }
        let (channel, pg) = self.pg_of(&p).await?;
        let mid = Mid(channel.mid.clone());
        let old_order = self.store.pg_order_id(&p.imp_uid).await?;
        self.ensure_not_deposited(&pg, &mid, &old_order).await?;
        super::pg_call(
            "net_cancel",
            self.deadline(),
            pg.net_cancel(&mid, &old_order),
        )
        .await
        .map_err(|e| Error::PgRefused(pg_text("가상계좌 변경에 실패하였습니다.", &e)))?;
        let new_order = format!("{}_r{}", p.imp_uid, pier_domain::ids::random_hex(3));
        let mut order = order_of(&p);
        order.order_id = new_order.clone();
        order.amount_krw = amount.krw();
        let req = VbankRequest {
            order,
            bank_code: p.vbank_code.clone().unwrap_or_default(),
            due_unix: due,
            holder: p.vbank_holder.clone(),
        };
        let issued =
            super::pg_call("issue_vbank", self.deadline(), pg.issue_vbank(&mid, &req)).await;
        let issued = match issued {
            Ok(i) => i,
            Err(e) => {
                // The old account is void and no new one exists: the payment cannot be paid.
                let _ = super::pg_call(
                    "net_cancel",
                    self.deadline(),
                    pg.net_cancel(&mid, &new_order),
                )
                .await;
                let text = pg_text("가상계좌 변경에 실패하였습니다.", &e);
                self.store
                    .vbank_revoked(merchant_id, imp_uid.as_str(), &text, self.now())
                    .await?;
                return Err(Error::PgRefused(text));
            }
        };
        let old_tid = p.pg_tid.clone().unwrap_or_default();
        match self
            .store
            .vbank_reissued(
                imp_uid.as_str(),
                &old_tid,
                &new_order,
                amount.krw(),
                &account(&issued),
                self.now(),
            )
            .await?
        {
            Some(done) => Ok(done),
            None => {
                let _ = super::pg_call(
                    "net_cancel",
                    self.deadline(),
                    pg.net_cancel(&mid, &new_order),
                )
                .await;
                Err(Error::Invalid(MSG_NOT_WAITING.into()))
            }
        }
    }

    /// A PG announcement. Deposits mark the waiting account's payment paid (with its `paid`
    /// webhook row); repeats and unknown accounts are ignored. `verify` asks the PG first
    /// whether the money really arrived (events from the network).
    pub async fn on_pg_event(&self, ev: &PgEvent, verify: bool) -> Result<Option<Payment>> {
        let PgEvent::VbankDeposited {
            mid,
            order_id,
            amount_krw,
            pg_tid,
            deposited_at,
            ..
        } = ev;
        let Some(p) = self.store.vbank_by_pg_tid(pg_tid).await? else {
            tracing::warn!(%pg_tid, "deposit on an account Pier does not know");
            return Ok(None);
        };
        if p.pg_id.as_deref() != Some(mid.as_str()) || p.amount != *amount_krw {
            tracing::warn!(imp_uid = %p.imp_uid, %pg_tid, "deposit does not match the account's MID or amount; ignored");
            return Ok(None);
        }
        if p.status != PaymentStatus::Ready {
            return Ok(None);
        }
        let (channel, pg) = self.pg_of(&p).await?;
        if verify {
            // By the account's own PG transaction id where the PG can (Toss: its paymentKey),
            // and the approval must be that transaction.
            let answer = super::pg_call(
                "inquire",
                self.deadline(),
                pg.inquire_tid(&Mid(channel.mid.clone()), order_id, pg_tid),
            )
            .await;
            if !matches!(&answer, Ok(Inquiry::Approved(a)) if a.pg_tid == *pg_tid) {
                tracing::warn!(imp_uid = %p.imp_uid, "the PG does not confirm the announced deposit; ignored");
                return Ok(None);
            }
        }
        let now = self.now();
        let ev = self.event_for(&p, PaymentStatus::Paid, None);
        let paid_at = if *deposited_at > 0 {
            *deposited_at
        } else {
            now
        };
        Ok(self
            .store
            .vbank_deposited(&p.imp_uid, pg_tid, paid_at, now, &[ev])
            .await?)
    }

    /// Test channels only: a simulated deposit on one of the merchant's waiting accounts, via
    /// the in-process test PG (`POST /testpg/vbank/deposit`).
    pub async fn testpg_deposit(
        &self,
        merchant_id: &str,
        imp_uid: &str,
        amount: Option<i64>,
    ) -> Result<Payment> {
        let p = self.waiting_vbank(merchant_id, imp_uid).await?;
        let (channel, pg) = self.pg_of(&p).await?;
        if channel.target != "inprocess" {
            return Err(Error::Invalid(
                "deposits can be simulated here only on in-process test channels (use pgsim's admin API for a pgsim channel)".into(),
            ));
        }
        let order_id = self.store.pg_order_id(&p.imp_uid).await?;
        let ev = super::pg_call(
            "simulate_deposit",
            self.cfg.pg_deadline,
            pg.simulate_deposit(&order_id, amount),
        )
        .await
        .map_err(|e| Error::PgRefused(pg_text("가상계좌 입금에 실패하였습니다.", &e)))?;
        // The deposit job records it too; whichever comes first wins the guarded update.
        self.on_pg_event(&ev, false).await?;
        self.payment_by_uid(merchant_id, imp_uid).await
    }
}
