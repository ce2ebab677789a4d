//! Webhook deliveries (`/console/webhooks`) and their redelivery; the webhook settings forms
//! are in `admin`.

use super::view::{error_page, html, layout, see_other, Layout};
use super::{Post, Signed};
use crate::engine::console::kst_time;
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

pub struct DeliveryRow {
    pub event_id: String,
    pub imp_uid: String,
    pub status: String,
    pub url: String,
    pub attempt: i64,
    pub status_code: i64,
    pub latency_ms: i64,
    pub error: String,
    pub at: String,
}

pub(super) fn delivery_row(d: &pier_store::Delivery) -> DeliveryRow {
    DeliveryRow {
        event_id: d.event_id.clone(),
        imp_uid: d.imp_uid.clone(),
        status: d.status.as_str().to_owned(),
        url: d.url.clone(),
        attempt: d.attempt,
        status_code: d.status_code,
        latency_ms: d.latency_ms,
        error: d.error.clone().unwrap_or_default(),
        at: kst_time(d.at),
    }
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct WebhooksPage {
    layout: Layout,
    webhook_url: String,
    webhook_format: String,
    has_secret: bool,
    rows: Vec<DeliveryRow>,
    can_redeliver: bool,
    is_admin: bool,
    flash: Option<&'static str>,
}

pub async fn webhooks(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    Signed(a): Signed,
) -> Response {
    let (m, rows) =
        match tokio::try_join!(state.console_merchant(&a), state.console_deliveries(&a, 0)) {
            Ok(x) => x,
            Err(e) => return error_page(&e),
        };
    let page = WebhooksPage {
        layout: layout(&state, &a, "webhooks").await,
        webhook_url: m.webhook_url.unwrap_or_default(),
        webhook_format: m.webhook_format,
        has_secret: m.webhook_secret.is_some(),
        rows: rows.iter().map(delivery_row).collect(),
        can_redeliver: a.role.can_operate(),
        is_admin: a.role.can_admin(),
        flash: match query.as_deref() {
            Some("redelivered=1") => Some("재전송을 예약했습니다. (redelivery queued)"),
            Some("saved=1") => Some("저장했습니다. (saved)"),
            _ => None,
        },
    };
    html(StatusCode::OK, &page)
}

pub async fn redeliver(
    State(state): State<AppState>,
    Path(event_id): Path<String>,
    Post { actor: a, .. }: Post,
) -> Response {
    match state.console_redeliver(&a, &event_id).await {
        Ok(()) => see_other("/console/webhooks?redelivered=1"),
        Err(e) => error_page(&e),
    }
}
