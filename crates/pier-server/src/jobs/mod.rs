//! Background jobs, each a task with one owner that stops on shutdown: idempotency-key expiry
//! (here), the reconciler (`reconcile.rs`), and the webhook dispatcher and scheduler as they are
//! added.

mod reconcile;
pub use reconcile::{reconciler, RECONCILE_INTERVAL};

mod refunds;

pub use refunds::{cancel_retry, vbank_deposits};
pub mod retention;
pub mod scheduler;
pub mod webhooks;

use crate::engine::Engine;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Forgets idempotency keys older than twice their retention, every ten minutes.
pub async fn idempotency_expiry(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    loop {
        match engine.idem_expire().await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "expired idempotency keys"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "idempotency expiry failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            _ = stop.changed() => return,
        }
    }
}
