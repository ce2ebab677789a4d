//! Operator endpoints of a merchant (token-authenticated, scoped to the token's merchant):
//! `GET /admin/unsettled` lists attempts whose PG outcome is still unknown.

use super::error::{ApiError, ApiResult, Envelope};
use super::params::Query;
use super::{wire, AppState, Merchant};
use crate::engine::reconcile::STUCK_AFTER_ATTEMPTS;
use axum::extract::State;
use axum::Extension;
use serde_json::{json, Value};

/// `GET /admin/unsettled[?stuck=true]`: the merchant's attempts whose PG outcome is unknown
/// (the reconciler is on them), or only those past the retry limit that need an operator.
/// Each is the usual payment object plus `reconcile_attempts` and `next_reconcile_at`.
pub async fn unsettled(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Query(q): Query,
) -> ApiResult<Envelope<Value>> {
    let stuck_only = q.bool_opt("stuck")?.unwrap_or(false);
    let min = if stuck_only { STUCK_AFTER_ATTEMPTS } else { 0 };
    let list = engine.unsettled(&m, min).await.map_err(ApiError::from)?;
    let items: Vec<Value> = list
        .iter()
        .map(|p| {
            let mut v = wire::payment(p);
            if let Some(o) = v.as_object_mut() {
                o.insert("reconcile_attempts".into(), json!(p.reconcile_attempts));
                o.insert("next_reconcile_at".into(), json!(p.next_reconcile_at));
                o.insert(
                    "needs_operator".into(),
                    json!(p.reconcile_attempts >= STUCK_AFTER_ATTEMPTS),
                );
            }
            v
        })
        .collect();
    Ok(Envelope::ok(json!({"total": items.len(), "list": items})))
}
