//! Billing keys and their schedules (`/console/billing`, docs/console.md).

use super::view::{enc, error_page, html, layout, see_other, won, Layout};
use super::{CanOperate, Form, Post, Signed};
use crate::engine::console::mask_card;
use crate::engine::console::{kst_time, PAGE_SIZE};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use pier_store::{Customer, RunState, ScheduleStatus};

pub struct KeyRow {
    pub customer_uid: String,
    pub link: String,
    pub card: String,
    pub card_name: String,
    pub pg: String,
    pub channel: String,
    pub name: String,
    pub inserted: String,
}

fn key_row(c: &Customer) -> KeyRow {
    KeyRow {
        link: format!("/console/billing/{}", enc(&c.customer_uid)),
        customer_uid: c.customer_uid.clone(),
        card: mask_card(c.card_number.as_deref()),
        card_name: c.card_name.clone().unwrap_or_default(),
        pg: format!("{}.{}", c.pg_provider, c.pg_id),
        channel: c.channel_id.clone(),
        name: c.customer_name.clone().unwrap_or_default(),
        inserted: kst_time(c.inserted),
    }
}

#[derive(Template)]
#[template(path = "console/billing.html")]
struct BillingPage {
    layout: Layout,
    rows: Vec<KeyRow>,
    next: Option<String>,
    flash: Option<&'static str>,
}

pub async fn billing(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    Signed(a): Signed,
) -> Response {
    let q = Form::parse(query.as_deref().unwrap_or("").as_bytes());
    let list = match state.console_customers(&a, q.get("after")).await {
        Ok(l) => l,
        Err(e) => return error_page(&e),
    };
    let next = (list.len() as i64 == PAGE_SIZE)
        .then(|| list.last())
        .flatten()
        .map(|c| format!("/console/billing?after={}", enc(&c.customer_uid)));
    let page = BillingPage {
        layout: layout(&state, &a, "billing").await,
        rows: list.iter().map(key_row).collect(),
        next,
        flash: (q.get("deleted") == Some("1"))
            .then_some("빌링키를 삭제했습니다. (billing key deleted)"),
    };
    html(StatusCode::OK, &page)
}

pub struct ScheduleRow {
    pub merchant_uid: String,
    pub at: String,
    pub amount: String,
    pub name: String,
    pub status: String,
    pub payment: String,
    /// Only waiting, idle schedules can be revoked.
    pub revocable: bool,
}

#[derive(Template)]
#[template(path = "console/billing_key.html")]
struct KeyPage {
    layout: Layout,
    key: KeyRow,
    scheduled: i64,
    schedules: Vec<ScheduleRow>,
    next: Option<String>,
    can_change: bool,
    flash: Option<&'static str>,
}

pub async fn key(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    RawQuery(query): RawQuery,
    Signed(a): Signed,
) -> Response {
    let q = Form::parse(query.as_deref().unwrap_or("").as_bytes());
    let offset = q
        .get("offset")
        .and_then(|o| o.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    let (k, page) = match state.console_customer(&a, &uid, offset).await {
        Ok(x) => x,
        Err(e) => return error_page(&e),
    };
    let next = (offset + PAGE_SIZE < page.total).then(|| {
        format!(
            "/console/billing/{}?offset={}",
            enc(&uid),
            offset + PAGE_SIZE
        )
    });
    let p = KeyPage {
        layout: layout(&state, &a, "billing").await,
        key: key_row(&k.customer),
        scheduled: k.scheduled,
        schedules: page
            .items
            .iter()
            .map(|s| ScheduleRow {
                merchant_uid: s.merchant_uid.clone(),
                at: kst_time(s.schedule_at),
                amount: won(s.amount),
                name: s.name.clone().unwrap_or_default(),
                status: s.schedule_status.as_str().into(),
                payment: s.payment_status.map_or("", |p| p.as_str()).into(),
                revocable: s.schedule_status == ScheduleStatus::Scheduled
                    && s.run_state == RunState::Idle,
            })
            .collect(),
        next,
        can_change: a.role.can_operate(),
        flash: (q.get("unscheduled") == Some("1"))
            .then_some("예약을 취소했습니다. (schedule revoked)"),
    };
    html(StatusCode::OK, &p)
}

#[derive(Template)]
#[template(path = "console/billing_delete.html")]
struct DeleteConfirmPage {
    layout: Layout,
    key: KeyRow,
    scheduled: i64,
}

/// Step 1 (no `confirm`): what deleting the key revokes. Step 2 (`confirm=1`): deletes.
pub async fn delete(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    Post { actor: a, form, .. }: Post<CanOperate>,
) -> Response {
    if form.get("confirm") != Some("1") {
        let (k, _) = match state.console_customer(&a, &uid, 0).await {
            Ok(x) => x,
            Err(e) => return error_page(&e),
        };
        let p = DeleteConfirmPage {
            layout: layout(&state, &a, "billing").await,
            key: key_row(&k.customer),
            scheduled: k.scheduled,
        };
        return html(StatusCode::OK, &p);
    }
    match state.console_delete_customer(&a, &uid).await {
        Ok(()) => see_other("/console/billing?deleted=1"),
        Err(e) => error_page(&e),
    }
}

pub async fn unschedule(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    Post { actor: a, form, .. }: Post,
) -> Response {
    let merchant_uid = form.get("merchant_uid").unwrap_or("");
    match state.console_unschedule(&a, &uid, merchant_uid).await {
        Ok(()) => see_other(&format!("/console/billing/{}?unscheduled=1", enc(&uid))),
        Err(e) => error_page(&e),
    }
}
