//! The webhook dispatcher: leases due outbox rows and delivers them, at most
//! `webhook_concurrency` at once, on its own tasks, so a slow or dead endpoint never holds up
//! request handling. Each merchant gets at most `webhook_merchant_concurrency` of those slots:
//! a merchant at its share is left out of the next claim, so one merchant's slow or hanging
//! targets (its own URL, or notice_urls an anonymous checkout named) cannot take every slot
//! and stall other merchants' webhooks.

use crate::engine::webhooks::WebhookSender;
use crate::engine::Engine;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Most untargeted events one sweep marks skipped.
const SWEEP_BATCH: i64 = 1000;

pub async fn dispatcher(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    let sender = match WebhookSender::new(engine.config()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "webhook dispatcher cannot start");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(engine.config().webhook_concurrency.max(1)));
    let per_merchant = engine.config().webhook_merchant_concurrency.max(1);
    // Deliveries in flight per merchant; an entry is removed when it reaches 0.
    let in_flight: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let free = slots.available_permits();
        let mut full_batch = match engine.sweep_untargeted(SWEEP_BATCH).await {
            Ok(n) => n as i64 == SWEEP_BATCH,
            Err(e) => {
                tracing::warn!(error = %e, "skipping untargeted webhooks failed");
                false
            }
        };
        if free > 0 {
            let busy: Vec<String> = lock(&in_flight)
                .iter()
                .filter(|(_, n)| **n >= per_merchant)
                .map(|(m, _)| m.clone())
                .collect();
            let claimed = match engine.claim_webhooks_except(free, &busy).await {
                Ok(rows) => {
                    full_batch |= rows.len() == free;
                    engine.skip_untargeted(rows).await
                }
                Err(e) => Err(e),
            };
            match claimed {
                Ok(rows) => {
                    for row in rows {
                        let merchant = row.event.merchant_id.clone();
                        let admitted = {
                            let mut f = lock(&in_flight);
                            let n = f.entry(merchant.clone()).or_insert(0);
                            if *n < per_merchant {
                                *n += 1;
                                true
                            } else {
                                false
                            }
                        };
                        if !admitted {
                            // This merchant filled its share within this batch: give the row
                            // back (still due, no attempt counted); it is claimed again once
                            // one of the merchant's deliveries is done.
                            if let Err(e) = engine.release_webhook(&row).await {
                                tracing::warn!(event_id = %row.event.id, error = %e, "releasing a webhook failed; its lease runs out instead");
                            }
                            continue;
                        }
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let (engine, sender) = (engine.clone(), sender.clone());
                        let share = Share {
                            in_flight: in_flight.clone(),
                            merchant,
                        };
                        tasks.spawn(async move {
                            let id = row.event.id.clone();
                            if let Err(e) = engine.deliver_webhook(&sender, row).await {
                                // The lease runs out and the event is delivered again.
                                tracing::warn!(event_id = %id, error = %e, "webhook attempt not recorded");
                            }
                            drop(share);
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming webhooks failed"),
            }
        }
        if full_batch {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(engine.config().jobs_poll_interval) => {}
            _ = stop.changed() => break,
        }
    }
    // Let deliveries under way finish (each is bounded by the delivery timeout); anything cut
    // short is delivered again once its lease expires.
    let grace = engine.config().webhook_timeout + std::time::Duration::from_secs(1);
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tasks.abort_all();
    }
}

/// One of a merchant's delivery slots, given back when dropped (also if the task panics or is
/// aborted at shutdown).
struct Share {
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
    merchant: String,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut f = lock(&self.in_flight);
        if let Some(n) = f.get_mut(&self.merchant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                f.remove(&self.merchant);
            }
        }
    }
}

/// The in-flight counts; a poisoned lock (a panicked delivery task) still holds valid counts.
fn lock(m: &Mutex<HashMap<String, usize>>) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
