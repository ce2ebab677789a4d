//! The reconciler: settles attempts whose PG outcome Pier does not know.
//!
//! An attempt ends up here two ways: its PG call timed out or came back unreadable
//! (`pg_state = 'unknown'`, recorded by `charge.rs`), or the process died between the call and
//! its record (`pg_state = 'in_flight'` and not touched for longer than any live call may take).
//! For each, one pass:
//!
//! 1. **claims** it with a short lease (a guarded UPDATE that also turns a stale `in_flight` into
//!    `unknown` and moves `next_reconcile_at` past the lease), so of several Pier instances one
//!    looks at it, and a crashed look is retried when the lease runs out;
//! 2. **asks the PG** (`inquire` by order id = imp_uid), with the usual deadline;
//! 3. **records** what the PG says through the same guarded `settle` as a live request, so if a
//!    late live request and the reconciler both try, exactly one wins and the other is a no-op:
//!    - approved → `paid` (with its `paid` webhook row), unless the client was already told the
//!      attempt failed: then the approval is voided first (net-cancel), and the attempt `failed`;
//!    - not found → net-cancel first (the PG remembers the order id, so a request still on its way
//!      is refused when it arrives), then `failed`, which releases the merchant_uid guard;
//!    - declined or voided → `failed`;
//!    - no answer → tried again later, with exponential backoff.
//!
//! An attempt that stays unknown for `STUCK_AFTER_ATTEMPTS` looks is never dropped: it keeps being
//! retried (every minute), is logged as an error, counted in the `pier_reconcile_stuck` gauge,
//! and listed for the operator by `GET /admin/unsettled`.

use super::{Engine, Result};
use pier_pg::{Inquiry, Mid, PgError};
use pier_store::{Payment, PaymentStatus, Settlement, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// Attempts claimed per pass at most (a pass is repeated while it finds work).
pub const BATCH: i64 = 100;
/// Looks after which an unknown attempt is flagged for an operator.
pub const STUCK_AFTER_ATTEMPTS: i64 = 8;
/// Backoff: 5 s, 10 s, 20 s, 40 s, then every minute.
///
/// Why a minute and not an hour: an unknown attempt holds its merchant_uid (the buyer is told
/// "in progress") and, if the PG did approve it, money the buyer may have been told failed. PG
/// faults come in bursts, so a look that failed five times says nothing about the sixth: with an
/// hour cap, 5 failed looks put the next one 320 s away and 9 put it an hour away, however soon
/// the PG answered again (one payment of a chaos run stayed unknown > 600 s that way,
/// docs/RELIABILITY.md). A look is one inquiry (two for a net-cancel), and a pass makes them one
/// after another, so even a thousand unknown attempts cost the PG at most one call in flight per
/// Pier instance; an attempt still unknown after `STUCK_AFTER_ATTEMPTS` looks (~5 minutes) is
/// flagged for an operator either way.
pub const BACKOFF_BASE_SECS: i64 = 5;
pub const BACKOFF_MAX_SECS: i64 = 60;
/// Slack added to the PG deadline before an `in_flight` attempt counts as abandoned.
pub const STALE_SLACK_SECS: i64 = 10;
/// The fail reason of an attempt the PG never saw (its order id voided there first, so it can
/// never be approved): nothing was charged, and the order may be charged again under a new id.
pub const MSG_NEVER_REACHED: &str =
    "PG사에 결제 요청이 도달하지 않았습니다. (the PG never saw this attempt; nothing was charged)";

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PassReport {
    /// Attempts due for a look.
    pub due: u64,
    /// Taken by another reconciler (or settled) before this one could claim them.
    pub skipped: u64,
    pub paid: u64,
    pub failed: u64,
    /// Approvals (or unseen orders) voided at the PG by a net-cancel.
    pub net_cancelled: u64,
    /// No answer: tried again later.
    pub deferred: u64,
    /// Settled by someone else between the claim and the record (harmless).
    pub lost_races: u64,
    /// Unknown attempts past `STUCK_AFTER_ATTEMPTS`, after this pass.
    pub stuck: u64,
}

/// The outcome of one attempt's look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Looked {
    Paid,
    Failed { net_cancelled: bool },
    Deferred,
    LostRace,
}

/// Delay before look number `attempts + 1`.
pub fn backoff_secs(attempts: i64) -> i64 {
    let exp = attempts.clamp(0, 20) as u32;
    BACKOFF_BASE_SECS
        .saturating_mul(1i64 << exp)
        .min(BACKOFF_MAX_SECS)
}

impl Engine {
    /// How long the PG may take on one call, plus the slack of the spawned task (seconds).
    fn pg_call_secs(&self) -> i64 {
        self.cfg.pg_deadline.as_secs() as i64 + 2
    }

    /// An `in_flight` attempt untouched since before this is abandoned (its process died).
    pub fn stale_before(&self, now: i64) -> i64 {
        now - self.pg_call_secs() - STALE_SLACK_SECS
    }

    /// One reconciliation pass over every attempt due now. Safe to run concurrently in several
    /// instances and alongside live requests.
    pub async fn reconcile_pass(self: &Arc<Self>) -> Result<PassReport> {
        let mut report = PassReport::default();
        // A bounded number of batches: work that keeps appearing waits for the next pass.
        for _ in 0..10 {
            let now = self.now();
            let due = self
                .store
                .list_unsettled(now, self.stale_before(now), BATCH)
                .await?;
            if due.is_empty() {
                break;
            }
            let n = due.len() as i64;
            for p in due {
                report.due += 1;
                match self.reconcile_one(&p.imp_uid).await? {
                    None => report.skipped += 1,
                    Some(Looked::Paid) => report.paid += 1,
                    Some(Looked::Failed { net_cancelled }) => {
                        report.failed += 1;
                        if net_cancelled {
                            report.net_cancelled += 1;
                        }
                    }
                    Some(Looked::Deferred) => report.deferred += 1,
                    Some(Looked::LostRace) => report.lost_races += 1,
                }
            }
            if n < BATCH {
                break;
            }
        }
        let stuck = self.store.count_stuck(STUCK_AFTER_ATTEMPTS).await?;
        metrics::gauge!("pier_reconcile_stuck").set(stuck as f64);
        report.stuck = stuck.max(0) as u64;
        if report.due > 0 {
            tracing::info!(?report, "reconcile pass");
        }
        Ok(report)
    }

    /// Claims and settles one attempt; `None` if it was not (or no longer) due.
    async fn reconcile_one(&self, imp_uid: &str) -> Result<Option<Looked>> {
        let now = self.now();
        let lease_until = now + 2 * self.pg_call_secs() + 5;
        let Some(p) = self
            .store
            .claim_unsettled(imp_uid, now, self.stale_before(now), lease_until)
            .await?
        else {
            return Ok(None);
        };
        let looked = self.look(&p).await?;
        let outcome = match looked {
            Looked::Paid => PaymentStatus::Paid.as_str(),
            Looked::Failed { .. } => PaymentStatus::Failed.as_str(),
            Looked::Deferred => "deferred",
            Looked::LostRace => "lost_race",
        };
        metrics::counter!("pier_reconcile_attempts_total", "outcome" => outcome).increment(1);
        Ok(Some(looked))
    }

    async fn look(&self, p: &Payment) -> Result<Looked> {
        let channel = match &p.channel_id {
            Some(id) => self.store.get_channel(id).await?,
            None => None,
        };
        let Some(channel) = channel else {
            tracing::error!(imp_uid = %p.imp_uid, "unknown attempt without a usable channel");
            return self.defer(p, "the attempt's channel is gone").await;
        };
        let pg = self.pgs.for_channel(&channel);
        let mid = Mid(channel.mid.clone());
        let deadline = self.cfg.pg_deadline + Duration::from_secs(1);
        let answer = super::pg_call("inquire", deadline, pg.inquire(&mid, &p.imp_uid)).await;
        let inquiry = match answer {
            Ok(i) => i,
            Err(e) => return self.defer(p, &e.to_string()).await,
        };
        match inquiry {
            Inquiry::Approved(a) if !p.told_failed => match self.settle_paid(p, &a).await {
                Ok(_) => {
                    tracing::info!(imp_uid = %p.imp_uid, "reconciled: paid");
                    Ok(Looked::Paid)
                }
                Err(super::Error::Refused(_)) => self.after_lost_race(p).await,
                Err(e) => Err(e),
            },
            Inquiry::Approved(_) => {
                // The client was told it failed: the money must not stay taken.
                if let Err(e) = self.net_cancel(&pg, &mid, p).await {
                    return self.defer(p, &format!("net-cancel failed: {e}")).await;
                }
                self.settle_failed(
                    p,
                    "결제 승인 응답을 받지 못해 승인을 취소하였습니다. (the approval's answer was lost; it was voided)",
                    true,
                )
                .await
            }
            Inquiry::NotFound => {
                // At a PG that cannot void an order id it has not seen, "not found" means
                // "not yet" until no request of this attempt can still arrive.
                let grace = i64::try_from(pg.unseen_order_grace().as_secs()).unwrap_or(i64::MAX);
                let age = self.now() - p.started_at;
                if age < grace {
                    return self
                        .defer(
                            p,
                            &format!(
                                "not found at a PG that cannot void an order id it has not seen: \
                                 trusted {grace} s after the attempt began ({age} s so far)"
                            ),
                        )
                        .await;
                }
                // Void the order id at the PG first, so a request still on its way cannot
                // approve after we released the merchant_uid guard.
                if let Err(e) = self.net_cancel(&pg, &mid, p).await {
                    return self.defer(p, &format!("net-cancel failed: {e}")).await;
                }
                self.settle_failed(p, MSG_NEVER_REACHED, true).await
            }
            Inquiry::Declined { code, message } => {
                let reason = if message.starts_with('[') || code.is_empty() {
                    message
                } else {
                    format!("[{code}] {message}")
                };
                self.settle_failed(p, &reason, false).await
            }
            Inquiry::Voided { .. } => {
                self.settle_failed(
                    p,
                    "PG사에서 승인이 취소된 거래입니다. (voided at the PG)",
                    false,
                )
                .await
            }
        }
    }

    async fn net_cancel(
        &self,
        pg: &Arc<dyn pier_pg::Pg>,
        mid: &Mid,
        p: &Payment,
    ) -> std::result::Result<(), PgError> {
        let deadline = self.cfg.pg_deadline + Duration::from_secs(1);
        let r = super::pg_call("net_cancel", deadline, pg.net_cancel(mid, &p.imp_uid)).await;
        if r.is_ok() {
            metrics::counter!("pier_net_cancels_total").increment(1);
            tracing::info!(imp_uid = %p.imp_uid, "net-cancelled at the PG");
        }
        r
    }

    async fn settle_failed(
        &self,
        p: &Payment,
        reason: &str,
        net_cancelled: bool,
    ) -> Result<Looked> {
        let now = self.now();
        let s = Settlement::Failed {
            reason: reason.to_owned(),
            failed_at: now,
        };
        match self.store.settle(&p.imp_uid, &s, now, &[]).await {
            Ok(_) => {
                tracing::info!(imp_uid = %p.imp_uid, %reason, "reconciled: failed");
                Ok(Looked::Failed { net_cancelled })
            }
            Err(StoreError::Stale(_)) => self.after_lost_race(p).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Someone else recorded the outcome between our claim and our record. Harmless by
    /// construction (`settle` is guarded); log what won.
    async fn after_lost_race(&self, p: &Payment) -> Result<Looked> {
        let now_state = self.store.get_payment(None, &p.imp_uid).await?;
        tracing::info!(
            imp_uid = %p.imp_uid,
            status = now_state.as_ref().map(|x| x.status.as_str()).unwrap_or("-"),
            "reconcile: the attempt was settled concurrently"
        );
        Ok(Looked::LostRace)
    }

    async fn defer(&self, p: &Payment, why: &str) -> Result<Looked> {
        let now = self.now();
        let attempts = p.reconcile_attempts + 1;
        let next = now + backoff_secs(attempts);
        match self.store.defer_reconcile(&p.imp_uid, now, next).await? {
            Some(n) if n >= STUCK_AFTER_ATTEMPTS => {
                tracing::error!(
                    imp_uid = %p.imp_uid,
                    merchant_id = %p.merchant_id,
                    merchant_uid = %p.merchant_uid,
                    attempts = n,
                    %why,
                    "payment outcome still unknown: operator attention needed (GET /admin/unsettled)"
                );
                Ok(Looked::Deferred)
            }
            Some(n) => {
                tracing::warn!(imp_uid = %p.imp_uid, attempts = n, %why, next_at = next, "reconcile: PG gave no answer; will retry");
                Ok(Looked::Deferred)
            }
            None => self.after_lost_race(p).await,
        }
    }

    /// Unknown attempts of a merchant that need an operator (or all, for `min_attempts = 0`).
    pub async fn unsettled(&self, merchant_id: &str, min_attempts: i64) -> Result<Vec<Payment>> {
        Ok(self
            .store
            .list_stuck(Some(merchant_id), min_attempts, 1000)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_secs(0), 5);
        assert_eq!(backoff_secs(1), 10);
        assert_eq!(backoff_secs(3), 40);
        assert_eq!(backoff_secs(4), 60, "capped from the fifth look on");
        assert_eq!(backoff_secs(10), BACKOFF_MAX_SECS);
        assert_eq!(backoff_secs(1_000), BACKOFF_MAX_SECS);
        assert_eq!(backoff_secs(-3), 5);
    }
}
