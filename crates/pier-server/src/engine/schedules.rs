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

use super::charge::{AgainInput, Buyer, OrderInput};
use super::{Engine, Error, Result};
use pier_domain::PaymentStatus;
use pier_domain::{Amount, CustomerUid, MerchantUid};
use pier_pg::CardData;
use pier_store::{
    ChargeContext, OutboxEvent, Page, Payment, Schedule, ScheduleFinish, ScheduleOutcome,
    ScheduleQuery, StoreError,
};
use std::sync::Arc;

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
                    tax_free: o.tax_free,
                    vat_amount: o.vat_amount,
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
            .filter(|s| s.payment_status.as_deref() == Some("paid"))
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
                    s.payment_status = Some("cancelled".into());
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
                let state = if s.schedule_status == "scheduled" && s.run_state == "running" {
                    "running".to_owned()
                } else if s.schedule_status == "executed" {
                    format!("executed/{}", s.payment_status.as_deref().unwrap_or("?"))
                } else {
                    s.schedule_status
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

    /// One scheduler tick: claims up to `limit` due schedules (fixing each one's execution
    /// imp_uid in the same statement), executes them (at most `schedule_concurrency` at once)
    /// and records all their outcomes in one transaction. Returns how many were claimed.
    pub async fn run_due_schedules(self: &Arc<Self>, limit: i64) -> Result<usize> {
        let now = self.now();
        let fresh: Vec<String> = (0..limit.max(0))
            .map(|_| pier_domain::ImpUid::generate().into_string())
            .collect();
        let claimed = self
            .store
            .claim_due_schedules(now, now + self.cfg.schedule_lease_secs, &fresh)
            .await?;
        let n = claimed.len();
        let fresh: std::collections::HashSet<String> = fresh.into_iter().collect();
        // Every claimed schedule's key, channel and pre-registration in one read.
        let keys: Vec<(String, String, String)> = claimed
            .iter()
            .map(|s| {
                (
                    s.merchant_id.clone(),
                    s.customer_uid.clone(),
                    s.merchant_uid.clone(),
                )
            })
            .collect();
        let contexts = self.store.charge_contexts(&keys).await?;
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.cfg.schedule_concurrency.max(1),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for (s, ctx) in claimed.into_iter().zip(contexts) {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let is_fresh = s
                .attempt_imp_uid
                .as_ref()
                .is_some_and(|a| fresh.contains(a));
            let this = self.clone();
            tasks.spawn(async move {
                let key = (s.merchant_id.clone(), s.merchant_uid.clone());
                let step = this.run_schedule(s, is_fresh, Some(ctx)).await;
                drop(permit);
                match step {
                    Ok(Step::Record(f, _)) => Some(f),
                    Ok(Step::Pending(_)) => None,
                    Err(e) => {
                        tracing::warn!(merchant_uid = %key.1, error = %e, "schedule run failed; will retry");
                        let now = this.now();
                        let _ = this
                            .store
                            .release_schedule(&key.0, &key.1, now + ERROR_RETRY_SECS, now)
                            .await;
                        None
                    }
                }
            });
        }
        let mut outcomes = Vec::with_capacity(n);
        while let Some(r) = tasks.join_next().await {
            if let Ok(Some(f)) = r {
                outcomes.push(f);
            }
        }
        // A failure here leaves the rows claimed: once their leases run out the next claimer
        // finds each payment by its execution imp_uid and records it, never charging again.
        self.record(&outcomes).await?;
        Ok(n)
    }

    /// Records executions' outcomes in one transaction and counts the rows recorded.
    async fn record(&self, outcomes: &[ScheduleFinish]) -> Result<Vec<Schedule>> {
        let done = self.store.finish_schedules(outcomes, self.now()).await?;
        for d in &done {
            let status = d.payment_status.clone().unwrap_or_default();
            metrics::counter!("pier_schedules_executed_total", "payment_status" => status)
                .increment(1);
        }
        Ok(done)
    }

    /// Executes one claimed schedule and records its outcome (the retry endpoint's path).
    pub async fn execute_schedule(self: &Arc<Self>, s: Schedule, fresh: bool) -> Result<Executed> {
        match self.run_schedule(s, fresh, None).await? {
            Step::Pending(p) => Ok(Executed::Pending(p)),
            Step::Record(f, p) => match self.record(&[f]).await?.pop() {
                Some(done) => Ok(Executed::Done(Box::new(done), p)),
                None => Ok(Executed::Pending(p)),
            },
        }
    }

    /// Charges a claimed schedule (see the module comment for the order of effects) and says
    /// what to record. `fresh`: its execution imp_uid was fixed by this claim, so no earlier run
    /// can have made a payment with it. `ctx`: the charge context when already read.
    async fn run_schedule(
        self: &Arc<Self>,
        mut s: Schedule,
        fresh: bool,
        ctx: Option<Option<ChargeContext>>,
    ) -> Result<Step> {
        let (m, uid) = (s.merchant_id.clone(), s.merchant_uid.clone());
        let Some(mut attempt) = s.attempt_imp_uid.clone() else {
            return Ok(Step::Pending(None));
        };
        if s.schedule_status != "scheduled" {
            return Ok(Step::Pending(None));
        }
        if !fresh {
            if let Some(p) = self.store.get_payment(Some(&m), &attempt).await? {
                if !never_reached_the_pg(&p) {
                    // A previous run got as far as the charge: record its outcome, never
                    // charge again.
                    return self.step_with_payment(&s, &attempt, p).await;
                }
                // The previous run died before its charge reached the PG and the reconciler
                // voided that order id there: nothing was charged, so this is not the
                // customer's failure. Charge under a new execution imp_uid.
                let next = pier_domain::ImpUid::generate().into_string();
                let now = self.now();
                let lease = now + self.cfg.schedule_lease_secs;
                let Some(moved) = self
                    .store
                    .reattempt_schedule(&m, &uid, &attempt, &next, lease, now)
                    .await?
                else {
                    return Ok(Step::Pending(None));
                };
                tracing::info!(merchant_uid = %uid, old = %attempt, new = %next, "schedule's attempt never reached the PG; charging again");
                (s, attempt) = (moved, next);
            }
        }
        let input = match again_input(&s) {
            Ok(i) => i,
            Err(e) => {
                return Ok(step_without_payment(
                    &s,
                    &attempt,
                    e.to_string(),
                    self.now(),
                ))
            }
        };
        let ctx = match ctx {
            Some(c) => c,
            None => {
                self.store
                    .charge_context(&m, &s.customer_uid, &s.merchant_uid)
                    .await?
            }
        };
        let res = match self.again_with(&m, input, Some(attempt.clone()), ctx).await {
            Ok(o) => return self.step_with_payment(&s, &attempt, o.payment).await,
            Err(e) => e,
        };
        // The charge may have got as far as a record before the error.
        if let Some(p) = self.store.get_payment(Some(&m), &attempt).await? {
            return self.step_with_payment(&s, &attempt, p).await;
        }
        match res {
            // Another attempt holds the merchant_uid right now: look again later.
            Error::Busy(_) => {
                self.release_later(&s, self.recheck_secs()).await?;
                Ok(Step::Pending(None))
            }
            Error::Refused(msg) | Error::PgRefused(msg) | Error::Invalid(msg) => {
                Ok(step_without_payment(&s, &attempt, msg, self.now()))
            }
            e => {
                tracing::warn!(merchant_uid = %uid, error = %e, "scheduled charge did not run; will retry");
                self.release_later(&s, ERROR_RETRY_SECS).await?;
                Ok(Step::Pending(None))
            }
        }
    }

    /// Delay before a schedule whose payment has no outcome yet is looked at again: at most the
    /// lease, so a short lease (tests, impatient operators) means prompt re-checks.
    fn recheck_secs(&self) -> i64 {
        UNKNOWN_RECHECK_SECS.min(self.cfg.schedule_lease_secs.max(1))
    }

    async fn release_later(&self, s: &Schedule, secs: i64) -> Result<()> {
        let now = self.now();
        self.store
            .release_schedule(&s.merchant_id, &s.merchant_uid, now + secs, now)
            .await?;
        Ok(())
    }

    async fn step_with_payment(&self, s: &Schedule, attempt: &str, p: Payment) -> Result<Step> {
        let status = match p.status {
            PaymentStatus::Paid | PaymentStatus::Cancelled => PaymentStatus::Paid,
            PaymentStatus::Failed => PaymentStatus::Failed,
            // Outcome unknown (reconciler) or still in flight: keep the claim, look again later.
            _ => {
                self.release_later(s, self.recheck_secs()).await?;
                return Ok(Step::Pending(Some(p)));
            }
        };
        // A paid charge announced itself with its approval; a declined scheduled charge is
        // announced with the schedule's record, in the same transaction.
        let failed = status == PaymentStatus::Failed;
        let events: Vec<OutboxEvent> = if failed {
            vec![self.event_for(&p, PaymentStatus::Failed, None)]
        } else {
            Vec::new()
        };
        let outcome = ScheduleOutcome {
            imp_uid: Some(p.imp_uid.clone()),
            payment_status: status.as_str().into(),
            fail_reason: if failed { p.fail_reason.clone() } else { None },
            executed_at: self.now(),
        };
        Ok(Step::Record(finish(s, attempt, outcome, events), Some(p)))
    }
}

/// An attempt the reconciler failed because the PG never saw it (and voided its order id).
fn never_reached_the_pg(p: &Payment) -> bool {
    p.status == PaymentStatus::Failed
        && p.fail_reason.as_deref() == Some(super::reconcile::MSG_NEVER_REACHED)
}

/// What a run leaves to do.
enum Step {
    /// Record this outcome (`executed`); the payment when one was made.
    Record(ScheduleFinish, Option<Payment>),
    /// Leave the claim for a later tick (outcome unknown, another attempt holds the merchant_uid).
    Pending(Option<Payment>),
}

/// A schedule that failed without a payment (the key is gone, the input no longer validates).
fn step_without_payment(s: &Schedule, attempt: &str, reason: String, now: i64) -> Step {
    let outcome = ScheduleOutcome {
        imp_uid: None,
        payment_status: "failed".into(),
        fail_reason: Some(reason),
        executed_at: now,
    };
    Step::Record(finish(s, attempt, outcome, Vec::new()), None)
}

/// The record of one execution of `s` under the execution imp_uid `attempt`.
fn finish(
    s: &Schedule,
    attempt: &str,
    outcome: ScheduleOutcome,
    events: Vec<OutboxEvent>,
) -> ScheduleFinish {
    ScheduleFinish {
        merchant_id: s.merchant_id.clone(),
        merchant_uid: s.merchant_uid.clone(),
        attempt: attempt.to_owned(),
        outcome,
        events,
    }
}

fn again_input(s: &Schedule) -> Result<AgainInput> {
    let notice_urls = s
        .notice_urls
        .as_deref()
        .and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
        .unwrap_or_default();
    Ok(AgainInput {
        order: OrderInput {
            merchant_uid: MerchantUid::parse(&s.merchant_uid)?,
            amount: Amount::new(s.amount, "amount")?,
            currency: s.currency.clone(),
            tax_free: s.tax_free,
            vat_amount: s.vat_amount,
            name: s.name.clone(),
            buyer: Buyer {
                name: s.buyer_name.clone(),
                email: s.buyer_email.clone(),
                tel: s.buyer_tel.clone(),
                addr: s.buyer_addr.clone(),
                postcode: s.buyer_postcode.clone(),
            },
            card_quota: s.card_quota,
            custom_data: s.custom_data.clone(),
            notice_urls,
            pg: None,
        },
        customer_uid: CustomerUid::parse(&s.customer_uid)?,
        usage: "payment.scheduled",
    })
}
