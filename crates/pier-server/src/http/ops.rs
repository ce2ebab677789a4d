//! Operations: liveness, readiness, Prometheus metrics, and Pier's own OpenAPI document.

use super::error::{ApiResult, Envelope};
use super::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{json, Value};
use std::sync::OnceLock;

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide metrics recorder once (several servers in one test process share it).
pub fn init_metrics() {
    PROMETHEUS.get_or_init(|| PrometheusBuilder::new().install_recorder().ok());
}

pub async fn healthz() -> Envelope<Value> {
    Envelope::ok(json!({"status": "ok"}))
}

pub async fn readyz(State(engine): State<AppState>) -> ApiResult<Envelope<Value>> {
    // The detail (host names, driver text) goes to the log, not to whoever asks.
    engine.ready().await?;
    Ok(Envelope::ok(json!({"status": "ready"})))
}

pub async fn metrics() -> impl IntoResponse {
    let body = PROMETHEUS
        .get()
        .and_then(|h| h.as_ref())
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../openapi.json"),
    )
}
