//! The scheduler: executes due scheduled payments (`Engine::run_due_schedules`). Several
//! instances may run it on one PostgreSQL database; claims with leases keep each schedule to
//! exactly one execution. Each instance keeps `schedule_ticks` ticks in flight, so the next
//! batch is claimed and charging while the previous one waits for its slowest charge.

use crate::engine::Engine;
use std::sync::Arc;
use tokio::sync::watch;

pub async fn scheduler(engine: Arc<Engine>, stop: watch::Receiver<bool>) {
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..engine.config().schedule_ticks.max(1) {
        loops.spawn(tick_loop(engine.clone(), stop.clone()));
    }
    while loops.join_next().await.is_some() {}
}

async fn tick_loop(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    let batch = engine.config().schedule_batch.max(1);
    loop {
        let full = match engine.run_due_schedules(batch).await {
            Ok(n) => n as i64 == batch,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler tick failed");
                false
            }
        };
        if *stop.borrow() {
            return;
        }
        if full {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(engine.config().jobs_poll_interval) => {}
            _ = stop.changed() => return,
        }
    }
}
