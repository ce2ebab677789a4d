//! The scheduler's side: a tick claims due schedules, executes each exactly once (its
//! attempt fixed on the row, a previous run's payment taken as the outcome) and records the
//! outcomes in one transaction.

use super::*;
use crate::engine::charge::{AgainInput, Buyer, OrderInput};
use crate::engine::{Engine, Error, Result};
use pier_domain::{Amount, AmountPart, CustomerUid, MerchantUid};
use pier_domain::{PaymentStatus, ScheduleStatus};
use pier_store::{ChargeContext, OutboxEvent, Payment, Schedule, ScheduleFinish, ScheduleOutcome};
use std::sync::Arc;

impl Engine {
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
            let status = d.payment_status.map_or("", PaymentStatus::as_str);
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
        if !s.schedule_status.can_become(ScheduleStatus::Executed) {
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
            payment_status: status,
            fail_reason: if failed { p.fail_reason.clone() } else { None },
            executed_at: self.now(),
        };
        Ok(Step::Record(finish(s, attempt, outcome, events), Some(p)))
    }
}

/// An attempt the reconciler failed because the PG never saw it (and voided its order id).
fn never_reached_the_pg(p: &Payment) -> bool {
    p.status == PaymentStatus::Failed
        && p.fail_reason.as_deref() == Some(crate::engine::reconcile::MSG_NEVER_REACHED)
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
        payment_status: PaymentStatus::Failed,
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
            tax_free: AmountPart::new(s.tax_free, "tax_free")?,
            vat_amount: s
                .vat_amount
                .map(|v| AmountPart::new(v, "vat_amount"))
                .transpose()?,
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
