//! The webhook dispatcher: leases due outbox rows and delivers them, at most
//! `webhook_concurrency` at once, on its own tasks, so a slow or dead endpoint never holds up
//! request handling or other merchants' webhooks for longer than one delivery timeout per slot.

use crate::engine::webhooks::WebhookSender;
use crate::engine::Engine;
use std::sync::Arc;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Most untargeted events one sweep marks skipped.
const SWEEP_BATCH: i64 = 1000;

pub async fn dispatcher(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    let sender = match WebhookSender::new(&engine.cfg) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "webhook dispatcher cannot start");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(engine.cfg.webhook_concurrency.max(1)));
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
            let claimed = match engine.claim_webhooks(free).await {
                Ok(rows) => {
                    full_batch |= rows.len() == free;
                    engine.skip_untargeted(rows).await
                }
                Err(e) => Err(e),
            };
            match claimed {
                Ok(rows) => {
                    for row in rows {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let (engine, sender) = (engine.clone(), sender.clone());
                        tasks.spawn(async move {
                            let id = row.event.id.clone();
                            if let Err(e) = engine.deliver_webhook(&sender, row).await {
                                // The lease runs out and the event is delivered again.
                                tracing::warn!(event_id = %id, error = %e, "webhook attempt not recorded");
                            }
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
            _ = tokio::time::sleep(engine.cfg.jobs_poll_interval) => {}
            _ = stop.changed() => break,
        }
    }
    // Let deliveries under way finish (each is bounded by the delivery timeout); anything cut
    // short is delivered again once its lease expires.
    let grace = engine.cfg.webhook_timeout + std::time::Duration::from_secs(1);
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tasks.abort_all();
    }
}
