//! Retention (docs/security/secrets.md): abandoned windows expire, and expired tokens, old
//! windows and old webhook history are deleted. The engine decides what is old (from its clock
//! and `Config`); the store's statements only apply that, each guarded and bounded.
//!
//! It never touches an attempt whose PG call was made: expiring a window fails its attempt only
//! while it is `ready` with `pg_state = 'none'` (the store's guard); attempts in flight or
//! unknown belong to the reconciler.

use super::window::result::WindowResult;
use super::window::types::MSG_WINDOW_EXPIRED;
use super::{Engine, Result};

/// Batches one pass runs per kind at most (with the default batch of 500, 10,000 rows), so a
/// backlog is worked off over several passes and a pass stays short.
const MAX_BATCHES: usize = 20;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RetentionReport {
    pub windows_expired: u64,
    pub tokens_deleted: u64,
    pub windows_deleted: u64,
    pub outbox_deleted: u64,
    pub deliveries_deleted: u64,
    /// Identity verifications never completed (personal data entered and abandoned).
    pub certifications_deleted: u64,
}

/// Repeats `batch` while it fills a whole batch, at most `MAX_BATCHES` times.
async fn drain<F, Fut>(limit: i64, mut batch: F) -> pier_store::StoreResult<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = pier_store::StoreResult<u64>>,
{
    let mut total = 0;
    for _ in 0..MAX_BATCHES {
        let n = batch().await?;
        total += n;
        if n < limit as u64 {
            break;
        }
    }
    Ok(total)
}

impl Engine {
    /// One retention pass; public so that the `pier` binary or a test can run it at a chosen
    /// time (`jobs::retention` runs it every `Config::retention_interval`).
    pub async fn retention_pass(&self) -> Result<RetentionReport> {
        let cfg = &self.cfg;
        let now = self.now();
        let limit = cfg.retention_batch.max(1);
        let store = &self.store;
        let mut report = RetentionReport::default();

        // Abandoned windows: fail their never-sent attempts, then close the window with that
        // result (what the buyer's page would have shown had it come back).
        for _ in 0..MAX_BATCHES {
            let due = store.expirable_checkouts(now, limit).await?;
            for (id, imp_uid) in &due {
                if let Some(p) = store
                    .fail_before_pg(imp_uid, MSG_WINDOW_EXPIRED, now)
                    .await?
                {
                    let r = WindowResult::of(
                        &p,
                        Some((
                            super::window::types::codes::SESSION_EXPIRED,
                            MSG_WINDOW_EXPIRED,
                        )),
                    );
                    store.finish_checkout(id, &r.stored(), now).await?;
                    report.windows_expired += 1;
                }
            }
            if (due.len() as i64) < limit {
                break;
            }
        }
        // Tokens are useless once expired (getToken only extends live ones).
        report.tokens_deleted = drain(limit, || store.delete_expired_tokens(now, limit)).await?;
        let before = now - cfg.checkout_retention_secs;
        report.windows_deleted = drain(limit, || store.delete_old_checkouts(before, limit)).await?;
        let before = now - cfg.webhook_log_retention_secs;
        report.outbox_deleted = drain(limit, || store.delete_old_outbox(before, limit)).await?;
        report.deliveries_deleted =
            drain(limit, || store.delete_old_deliveries(before, limit)).await?;
        // Certifications never completed keep no personal data longer than an old window is kept;
        // certified ones stay until the merchant deletes them (DELETE /certifications/{imp_uid}).
        let before = now - cfg.checkout_retention_secs;
        report.certifications_deleted =
            drain(limit, || store.delete_stale_certifications(before, limit)).await?;
        Ok(report)
    }
}
