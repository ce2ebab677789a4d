//! The retention job: runs the engine's retention pass (`engine/retention.rs`) on a timer.

pub use crate::engine::retention::RetentionReport;
use crate::engine::Engine;
use std::sync::Arc;
use tokio::sync::watch;

/// Runs a pass every `Config::retention_interval` until stopped.
pub async fn retention(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    loop {
        match engine.retention_pass().await {
            Ok(r) if r != RetentionReport::default() => tracing::info!(?r, "retention pass"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention pass failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(engine.config().retention_interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One pass now (the `pier` binary and tests run it at a chosen time).
pub async fn retention_pass(engine: &Engine) -> crate::engine::Result<RetentionReport> {
    engine.retention_pass().await
}
