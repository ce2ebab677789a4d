//! The audit log (`/console/audit`).

use super::view::{enc, error_page, html, layout, Layout};
use super::{Form, Signed};
use crate::engine::console::{kst_time, PAGE_SIZE};
use crate::http::AppState;
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    layout: Layout,
    rows: Vec<AuditRow>,
    next: Option<String>,
}

pub async fn audit(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    Signed(a): Signed,
) -> Response {
    let form = Form::parse(query.unwrap_or_default().as_bytes());
    let before = form
        .get("before")
        .and_then(|b| b.split_once(':'))
        .and_then(|(t, id)| Some((t.parse::<i64>().ok()?, id.to_owned())));
    let rows = match state.console_audit(&a, before).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let next = (rows.len() as i64 == PAGE_SIZE)
        .then(|| rows.last())
        .flatten()
        .map(|r| {
            format!(
                "/console/audit?before={}",
                enc(&format!("{}:{}", r.at, r.id))
            )
        });
    let page = AuditPage {
        layout: layout(&state, &a, "audit").await,
        rows: rows
            .into_iter()
            .map(|r| AuditRow {
                at: kst_time(r.at),
                actor: r.actor,
                action: r.action,
                target: r.target.unwrap_or_default(),
                detail: r.detail.unwrap_or_default(),
            })
            .collect(),
        next,
    };
    html(StatusCode::OK, &page)
}
