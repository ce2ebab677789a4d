//! Scheduled payments (spec §3.7, §5.2–§5.3): register, read, move, revoke, re-arm, retry, and
//! the scheduler's tick that executes due schedules exactly once.
//!
//! Execution order for one schedule:
//! 1. claim it with a lease (guarded UPDATE; `FOR UPDATE SKIP LOCKED` on PostgreSQL) and, in
//!    the same statement, fix the execution's imp_uid on the row (`attempt_imp_uid`) unless a
//!    previous claimer did;
//! 2. if a payment with that imp_uid exists, a previous run got that far: take its outcome;
//!    otherwise charge the billing key (`again`, usage `payment.scheduled`) with the schedule's
//!    merchant_uid — the payments guard refuses a concurrent second attempt;
//! 3. record `executed` with the outcome and, for a failure, the `failed` webhook in the same
//!    transaction (a `paid` webhook was already written with the approval). A tick records all
//!    its outcomes in one transaction.
//!
//! An outcome that is not known yet (PG timeout → reconciler) keeps the schedule claimed; its
//! lease runs out and a later tick picks up the settled payment.

use super::charge::OrderInput;
use super::{Engine, Error, Result};
use pier_domain::{AmountPart, CustomerUid};
use pier_domain::{PaymentStatus, RunState, ScheduleStatus};
use pier_pg::CardData;
use pier_store::{Page, Payment, Schedule, ScheduleQuery, StoreError};
use std::sync::Arc;

mod run;

pub const MSG_NO_CUSTOMER: &str = "등록된 고객정보가 없습니다.";
pub const MSG_NOTHING_TO_REVOKE: &str = "취소할 예약결제 기록이 존재하지 않습니다.";
pub const MSG_NO_SCHEDULE: &str =
    "존재하지 않는 예약결제입니다. (no schedule with this merchant_uid)";
/// Delay before a schedule whose outcome is not known yet is looked at again.
pub const UNKNOWN_RECHECK_SECS: i64 = 30;
/// Delay before a schedule whose run hit a storage error is tried again.
pub const ERROR_RETRY_SECS: i64 = 10;

/// One item of `POST /subscribe/payments/schedule`, validated.
#[derive(Debug, Clone)]
pub struct ScheduleItem {
    pub order: OrderInput,
    pub schedule_at: i64,
}

/// What an execution led to.
#[derive(Debug)]
pub enum Executed {
    /// Recorded `executed` (paid or failed); the payment when one was made.
    Done(Box<Schedule>, Option<Payment>),
    /// Left claimed for a later tick (outcome unknown, another instance is on it, store error).
    Pending(Option<Payment>),
}

impl Engine {
    /// Registers schedules, issuing the billing key first when the customer is unknown and card
    /// data was given.
    pub async fn create_schedules(
        self: &Arc<Self>,
        merchant_id: &str,
        customer_uid: CustomerUid,
        card: Option<CardData>,
        pg: Option<&str>,
        customer_id: Option<String>,
        items: Vec<ScheduleItem>,
    ) -> Result<Vec<Schedule>> {
        let mut uids: Vec<&str> = items
            .iter()
            .map(|i| i.order.merchant_uid.as_str())
            .collect();
        uids.sort_unstable();
        if let Some(w) = uids.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Refused(format!(
                "중복된 merchant_uid가 있습니다. (merchant_uid {} appears twice)",
                w[0]
            )));
        }
        let customer = match self
            .store
            .get_customer(merchant_id, customer_uid.as_str())
            .await?
        {
            Some(c) => c,
            None => match card {
                None => return Err(Error::Refused(MSG_NO_CUSTOMER.into())),
                Some(card) => {
                    let fields = super::customers::CustomerFields {
                        customer_id: customer_id.clone(),
                        ..Default::default()
                    };
                    self.issue_customer(merchant_id, customer_uid.clone(), card, pg, fields)
                        .await?
                }
            },
        };
        for i in &items {
            if let Some(p) = self
                .store
                .locked_payment(merchant_id, i.order.merchant_uid.as_str())
                .await?
            {
                if p.status != PaymentStatus::Ready {
                    return Err(Error::Refused(format!(
                        "{} (merchant_uid {})",
                        super::charge::MSG_ALREADY_PAID,
                        p.merchant_uid
                    )));
                }
            }
        }
        let now = self.now();
        let rows: Vec<Schedule> = items
            .into_iter()
            .map(|i| {
                let o = i.order;
                Schedule {
                    customer_id: customer_id.clone().or(customer.customer_id.clone()),
                    currency: o.currency,
                    tax_free: o.tax_free.krw(),
                    vat_amount: o.vat_amount.map(AmountPart::krw),
                    card_quota: o.card_quota,
                    name: o.name,
                    buyer_name: o.buyer.name.or(customer.customer_name.clone()),
                    buyer_email: o.buyer.email.or(customer.customer_email.clone()),
                    buyer_tel: o.buyer.tel.or(customer.customer_tel.clone()),
                    buyer_addr: o.buyer.addr.or(customer.customer_addr.clone()),
                    buyer_postcode: o.buyer.postcode.or(customer.customer_postcode.clone()),
                    custom_data: o.custom_data,
                    notice_urls: (!o.notice_urls.is_empty())
                        .then(|| serde_json::to_string(&o.notice_urls).ok())
                        .flatten(),
                    pg_provider: Some(customer.pg_provider.clone()),
                    pg_id: Some(customer.pg_id.clone()),
                    ..Schedule::new(
                        merchant_id,
                        o.merchant_uid.as_str(),
                        &customer.customer_uid,
                        i.schedule_at,
                        o.amount.krw(),
                        now,
                    )
                }
            })
            .collect();
        match self.store.insert_schedules(&rows).await {
            Ok(()) => Ok(rows),
            Err(StoreError::Conflict(m)) => Err(Error::Refused(format!(
                "이미 등록된 예약결제 merchant_uid입니다. ({m})"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_schedule(&self, merchant_id: &str, merchant_uid: &str) -> Result<Schedule> {
        let s = self
            .store
            .get_schedule(merchant_id, merchant_uid)
            .await?
            .ok_or_else(|| Error::NotFound(MSG_NO_SCHEDULE.into()))?;
        Ok(self.decorate(merchant_id, vec![s]).await?.remove(0))
    }

    pub async fn list_schedules(
        &self,
        merchant_id: &str,
        q: &ScheduleQuery<'_>,
    ) -> Result<Page<Schedule>> {
        let page = self.store.list_schedules(merchant_id, q).await?;
        Ok(Page {
            total: page.total,
            items: self.decorate(merchant_id, page.items).await?,
        })
    }

    /// `payment_status` is `cancelled` once an executed schedule's payment was refunded.
    async fn decorate(&self, merchant_id: &str, mut list: Vec<Schedule>) -> Result<Vec<Schedule>> {
        let paid: Vec<String> = list
            .iter()
            .filter(|s| s.payment_status == Some(PaymentStatus::Paid))
            .filter_map(|s| s.imp_uid.clone())
            .collect();
        if paid.is_empty() {
            return Ok(list);
        }
        let payments = self.store.get_many(merchant_id, &paid, &[]).await?;
        for s in &mut list {
            if let Some(p) = payments
                .iter()
                .find(|p| Some(&p.imp_uid) == s.imp_uid.as_ref())
            {
                if p.status == PaymentStatus::Cancelled {
                    s.payment_status = Some(PaymentStatus::Cancelled);
                }
            }
        }
        Ok(list)
    }

    pub async fn unschedule(
        &self,
        merchant_id: &str,
        customer_uid: Option<&str>,
        merchant_uids: &[String],
    ) -> Result<Vec<Schedule>> {
        if customer_uid.is_none() && merchant_uids.is_empty() {
            return Err(Error::Invalid(
                "customer_uid or merchant_uid is required".into(),
            ));
        }
        let revoked = self
            .store
            .revoke_schedules(merchant_id, merchant_uids, customer_uid, self.now())
            .await?;
        if revoked.is_empty() {
            return Err(Error::Refused(MSG_NOTHING_TO_REVOKE.into()));
        }
        Ok(revoked)
    }

    fn future_time(&self, schedule_at: i64) -> Result<()> {
        if schedule_at <= self.now() {
            return Err(Error::Invalid("schedule_at must be in the future".into()));
        }
        Ok(())
    }

    /// Why a guarded update matched nothing: 404 for an unknown schedule, else 400.
    async fn wrong_state(&self, merchant_id: &str, merchant_uid: &str, want: &str) -> Error {
        match self.store.get_schedule(merchant_id, merchant_uid).await {
            Ok(None) => Error::NotFound(MSG_NO_SCHEDULE.into()),
            Ok(Some(s)) => {
                let state = match s.schedule_status {
                    ScheduleStatus::Scheduled if s.run_state == RunState::Running => {
                        s.run_state.to_string()
                    }
                    ScheduleStatus::Executed => format!(
                        "{}/{}",
                        s.schedule_status,
                        s.payment_status.map_or("?", PaymentStatus::as_str)
                    ),
                    st => st.to_string(),
                };
                Error::Invalid(format!(
                    "예약결제 상태({state})에서는 요청을 처리할 수 없습니다. (needs {want})"
                ))
            }
            Err(e) => e.into(),
        }
    }

    /// `PUT /subscribe/payments/schedule/{merchant_uid}`: move a pending schedule.
    pub async fn move_schedule(
        &self,
        merchant_id: &str,
        merchant_uid: &str,
        schedule_at: i64,
    ) -> Result<Schedule> {
        self.future_time(schedule_at)?;
        match self
            .store
            .move_schedule(merchant_id, merchant_uid, schedule_at, self.now())
            .await?
        {
            Some(s) => Ok(s),
            None => Err(self
                .wrong_state(merchant_id, merchant_uid, "a pending schedule")
                .await),
        }
    }

    /// `POST …/{merchant_uid}/reschedule`: re-arm a failed or revoked schedule.
    pub async fn reschedule(
        &self,
        merchant_id: &str,
        merchant_uid: &str,
        schedule_at: i64,
    ) -> Result<Schedule> {
        self.future_time(schedule_at)?;
        match self
            .store
            .rearm_schedule(merchant_id, merchant_uid, schedule_at, None, self.now())
            .await?
        {
            Some(s) => Ok(s),
            None => Err(self
                .wrong_state(merchant_id, merchant_uid, "a failed or revoked schedule")
                .await),
        }
    }

    /// `POST …/{merchant_uid}/retry`: execute a failed or revoked schedule now.
    pub async fn retry_schedule(
        self: &Arc<Self>,
        merchant_id: &str,
        merchant_uid: &str,
    ) -> Result<Payment> {
        let now = self.now();
        let attempt = pier_domain::ImpUid::generate().into_string();
        let lease = now + self.cfg.schedule_lease_secs;
        let Some(s) = self
            .store
            .rearm_schedule(merchant_id, merchant_uid, now, Some((&attempt, lease)), now)
            .await?
        else {
            return Err(self
                .wrong_state(merchant_id, merchant_uid, "a failed or revoked schedule")
                .await);
        };
        match self.execute_schedule(s, true).await? {
            Executed::Done(_, Some(p)) | Executed::Pending(Some(p)) => Ok(p),
            Executed::Done(s, None) => Err(Error::Refused(
                s.fail_reason
                    .unwrap_or_else(|| "예약결제를 실행하지 못했습니다.".into()),
            )),
            Executed::Pending(None) => Err(Error::Unavailable(
                "예약결제를 실행하지 못했습니다. 잠시 후 조회해주세요. (the schedule will be retried)".into(),
            )),
        }
    }

    /// Revokes the pending schedules of a deleted billing key.
    pub(crate) async fn revoke_customer_schedules(&self, merchant_id: &str, customer_uid: &str) {
        match self
            .store
            .revoke_schedules(merchant_id, &[], Some(customer_uid), self.now())
            .await
        {
            Ok(v) if !v.is_empty() => {
                tracing::info!(
                    customer_uid,
                    revoked = v.len(),
                    "billing key deleted: schedules revoked"
                )
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(customer_uid, error = %e, "revoking schedules of a deleted key failed")
            }
        }
    }
}
