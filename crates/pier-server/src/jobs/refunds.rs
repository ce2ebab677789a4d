//! Money that moves after the request: virtual-account deposits announced by the in-process test
//! PG, and cancels whose PG outcome was unknown.

use crate::engine::Engine;
use pier_pg::PgEvent;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// How often cancels with an unknown outcome are looked at.
pub const CANCEL_RETRY_EVERY: Duration = Duration::from_secs(5);

/// Marks virtual accounts paid as the in-process test PG announces their deposits. Guarded on
/// `status = 'ready'`, so a repeat (or the admin deposit route recording it first) is a no-op.
pub async fn vbank_deposits(
    engine: Arc<Engine>,
    mut events: broadcast::Receiver<PgEvent>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            _ = stop.changed() => return,
        };
        match ev {
            Ok(ev) => {
                if let Err(e) = engine.on_pg_event(&ev, false).await {
                    tracing::warn!(error = %e, "recording a deposit failed");
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "deposit events lost (the test PG's inquire still knows them)"
                )
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Retries cancels whose outcome is unknown, with the same cancellation_id.
pub async fn cancel_retry(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CANCEL_RETRY_EVERY) => {}
            _ = stop.changed() => return,
        }
        match engine.retry_pending_cancels().await {
            Ok(n) if n > 0 => tracing::info!(settled = n, "pending cancels settled"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cancel retry failed"),
        }
    }
}
