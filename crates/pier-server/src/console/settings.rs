//! The settings page (`/console/settings`) and its allowed-origins form; the other settings
//! forms are in `admin`.

use super::view::{error_page, html, layout, see_other, Layout};
use super::{Post, Signed};
use crate::engine::console::kst_time;
use crate::http::AppState;
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

pub struct OperatorRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub disabled: bool,
    pub created: String,
}

pub struct ChannelRow {
    pub id: String,
    pub pg: String,
    pub sandbox: bool,
    pub is_default: bool,
}

#[derive(Template)]
#[template(path = "console/settings.html")]
struct SettingsPage {
    layout: Layout,
    imp_code: String,
    imp_key: String,
    origins: String,
    is_admin: bool,
    channels: Vec<ChannelRow>,
    operators: Vec<OperatorRow>,
    roles: [&'static str; 3],
    flash: Option<&'static str>,
}

pub async fn settings(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    Signed(a): Signed,
) -> Response {
    let (m, channels) =
        match tokio::try_join!(state.console_merchant(&a), state.console_channels(&a)) {
            Ok(x) => x,
            Err(e) => return error_page(&e),
        };
    let operators = if a.role.can_admin() {
        match state.console_operators(&a).await {
            Ok(o) => o,
            Err(e) => return error_page(&e),
        }
    } else {
        Vec::new()
    };
    let origins = crate::engine::origins::stored_origins(&m)
        .map(|l| l.join("\n"))
        .unwrap_or_default();
    let page = SettingsPage {
        layout: layout(&state, &a, "settings").await,
        imp_code: m.imp_code,
        imp_key: m.imp_key,
        origins,
        is_admin: a.role.can_admin(),
        channels: channels
            .into_iter()
            .map(|c| ChannelRow {
                pg: format!("{}.{}", c.pg_provider, c.mid),
                id: c.id,
                sandbox: c.sandbox,
                is_default: c.is_default,
            })
            .collect(),
        operators: operators
            .into_iter()
            .map(|o| OperatorRow {
                id: o.id,
                email: o.email,
                role: o.role,
                disabled: o.disabled,
                created: kst_time(o.created_at),
            })
            .collect(),
        roles: ["admin", "operator", "viewer"],
        flash: (query.as_deref() == Some("saved=1")).then_some("저장했습니다. (saved)"),
    };
    html(StatusCode::OK, &page)
}

pub async fn save_origins(
    State(state): State<AppState>,
    Post { actor: a, form, .. }: Post,
) -> Response {
    match state
        .console_set_origins(&a, form.get("origins").unwrap_or(""))
        .await
    {
        Ok(_) => see_other("/console/settings?saved=1"),
        Err(e) => error_page(&e),
    }
}
