//! Admin forms of the webhooks and settings pages: the webhook target and signing secret,
//! imp_secret rotation, the default channel, operators (docs/console.md).
//!
//! A rotated secret is shown once, on the answer to the post that made it (never on a page a
//! reload or the history can bring back: every console response is `no-store`).

use super::view::{enc, error_page, html, layout, see_other, Layout};
use super::{CanAdmin, Post};
use crate::engine::console::Actor;
use crate::engine::Error;
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

#[derive(Template)]
#[template(path = "console/secret.html")]
struct SecretPage {
    layout: Layout,
    title: &'static str,
    note: &'static str,
    secret: String,
    back: &'static str,
}

#[derive(Template)]
#[template(path = "console/confirm.html")]
struct ConfirmPage {
    layout: Layout,
    title: &'static str,
    message: &'static str,
    action: &'static str,
    back: &'static str,
}

pub async fn save_webhook(
    State(state): State<AppState>,
    Post { actor: a, form, .. }: Post,
) -> Response {
    let url = form.get("url").unwrap_or("");
    let format = form.get("format").unwrap_or("");
    match state.console_set_webhook(&a, url, format).await {
        Ok(None) => see_other("/console/webhooks?saved=1"),
        // The merchant had no signing secret: the one just made is shown now, once.
        Ok(Some(secret)) => html(
            StatusCode::OK,
            &SecretPage {
                layout: layout(&state, &a, "webhooks").await,
                title: "웹훅 서명 키",
                note: "저장했습니다. 새 서명 키는 지금 한 번만 보입니다. (saved; the new signing secret is shown once)",
                secret,
                back: "/console/webhooks",
            },
        ),
        Err(e) => error_page(&e),
    }
}

/// The wording of one secret's rotation: its confirmation, then the page showing it once.
struct Rotation {
    section: &'static str,
    confirm_title: &'static str,
    confirm_message: &'static str,
    action: &'static str,
    secret_title: &'static str,
    secret_note: &'static str,
    back: &'static str,
}

/// Two steps for an admin: a confirmation (whatever holds the old secret breaks), then the
/// rotation and the new secret, once.
async fn rotate(
    state: &AppState,
    post: Post<CanAdmin>,
    r: Rotation,
    make: impl AsyncFnOnce(&Actor) -> Result<String, Error>,
) -> Response {
    let Post { actor: a, form, .. } = post;
    if form.get("confirm") != Some("1") {
        return html(
            StatusCode::OK,
            &ConfirmPage {
                layout: layout(state, &a, r.section).await,
                title: r.confirm_title,
                message: r.confirm_message,
                action: r.action,
                back: r.back,
            },
        );
    }
    match make(&a).await {
        Ok(secret) => html(
            StatusCode::OK,
            &SecretPage {
                layout: layout(state, &a, r.section).await,
                title: r.secret_title,
                note: r.secret_note,
                secret,
                back: r.back,
            },
        ),
        Err(e) => error_page(&e),
    }
}

/// The merchant's webhook verifier breaks until it has the new signing secret.
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    post: Post<CanAdmin>,
) -> Response {
    let r = Rotation {
        section: "webhooks",
        confirm_title: "웹훅 서명 키 재발급",
        confirm_message: "새 서명 키로 바꾸면 이후 웹훅은 새 키로 서명됩니다. 수신 서버의 검증 키를 바로 바꿔주세요. (webhooks are signed with the new secret from now on)",
        action: "/console/webhooks/rotate-secret",
        secret_title: "웹훅 서명 키",
        secret_note: "새 서명 키는 지금 한 번만 보입니다. (shown once)",
        back: "/console/webhooks",
    };
    rotate(&state, post, r, async |a: &Actor| {
        state.console_rotate_webhook_secret(a).await
    })
    .await
}

/// The current imp_secret and every access token stop working at once.
pub async fn rotate_imp_secret(State(state): State<AppState>, post: Post<CanAdmin>) -> Response {
    let r = Rotation {
        section: "settings",
        confirm_title: "REST API secret 재발급",
        confirm_message: "지금의 imp_secret과 발급된 모든 액세스 토큰이 즉시 무효가 됩니다. 서버 설정을 새 값으로 바꿔야 결제 API가 다시 동작합니다. (the current imp_secret and every access token stop working at once)",
        action: "/console/settings/rotate-secret",
        secret_title: "새 REST API secret (imp_secret)",
        secret_note: "새 imp_secret은 지금 한 번만 보입니다. 저장해두세요. (shown once)",
        back: "/console/settings",
    };
    rotate(&state, post, r, async |a: &Actor| {
        state.console_rotate_secret(a).await
    })
    .await
}

pub async fn default_channel(
    State(state): State<AppState>,
    Post { actor: a, form, .. }: Post,
) -> Response {
    match state
        .console_set_default_channel(&a, form.get("channel_id").unwrap_or(""))
        .await
    {
        Ok(()) => see_other("/console/settings?saved=1"),
        Err(e) => error_page(&e),
    }
}

pub async fn create_operator(
    State(state): State<AppState>,
    Post { actor: a, form, .. }: Post,
) -> Response {
    match state
        .console_create_operator(
            &a,
            form.get("email").unwrap_or(""),
            form.get("role").unwrap_or(""),
            form.get("password").unwrap_or(""),
        )
        .await
    {
        Ok(_) => see_other("/console/settings?saved=1"),
        Err(e) => error_page(&e),
    }
}

pub async fn update_operator(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Post { actor: a, form, .. }: Post,
) -> Response {
    let disabled = form.get("disabled") == Some("1");
    match state
        .console_set_operator(&a, &id, form.get("role").unwrap_or(""), disabled)
        .await
    {
        Ok(o) => see_other(&format!("/console/settings?saved=1#op-{}", enc(&o.id))),
        Err(e) => error_page(&e),
    }
}
