//! The reconciler job: a pass at start (crash recovery: attempts a previous process left in
//! flight or unknown), then one every `RECONCILE_INTERVAL`. See `engine::reconcile`.

use crate::engine::Engine;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Time between two passes. Each pass is one indexed query when there is nothing to do.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(2);

pub async fn reconciler(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = engine.reconcile_pass().await {
            tracing::warn!(error = %e, "reconcile pass failed; retrying next interval");
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONCILE_INTERVAL) => {}
            _ = stop.changed() => return,
        }
    }
}
