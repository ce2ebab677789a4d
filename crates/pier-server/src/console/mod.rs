//! The merchant console (`/console`, docs/console.md): server-rendered HTML (askama templates
//! under `templates/console/`, checked at compile time), one small script and one stylesheet
//! embedded in the binary, a strict CSP (no inline script or style).
//!
//! This layer parses forms, checks the request's provenance (session cookie, CSRF token,
//! `Origin` / `Sec-Fetch-Site`), calls one engine use case (engine/console.rs) and renders.
//!
//! Every handler gets its actor from one of two extractors: `Signed` (a page: the session, or a
//! redirect to sign-in) or `Post<Need>` (a form: same site, the session, its CSRF token, and
//! the role `Need` asks for). One page or form per file: `sign_in`, `dashboard`, `payments`
//! (the list), `export` (its CSV), `payment` (one payment and its refund), `webhooks`,
//! `settings`, `audit`, `billing`, `admin` (the admin forms); `view` holds what they share.

mod admin;
mod audit;
mod billing;
mod dashboard;
mod export;
mod payment;
mod payments;
mod settings;
mod sign_in;
mod view;
mod webhooks;

use crate::engine::console::{Actor, Role};
use crate::engine::Error;
use crate::http::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{from_fn, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use std::marker::PhantomData;
use subtle::ConstantTimeEq;

/// The session cookie and the sign-in form's pre-session cookie.
pub const SESSION_COOKIE: &str = "pier_console";
pub const PRE_COOKIE: &str = "pier_console_pre";

const MSG_CROSS_SITE: &str =
    "다른 사이트에서 보낸 요청은 받지 않습니다. (cross-site request refused)";
const MSG_NO_CSRF: &str = "보안 토큰이 없거나 올바르지 않습니다. 페이지를 새로 고친 뒤 다시 시도해주세요. (missing or wrong CSRF token)";

/// Nothing but this origin's own script, style and images; no framing; forms post here only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const JS: &str = include_str!("console.js");
const CSS: &str = include_str!("console.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(sign_in::home))
        .route("/console/", get(sign_in::home))
        .route(
            "/console/login",
            get(sign_in::login_form).post(sign_in::login),
        )
        .route("/console/logout", post(sign_in::logout))
        .route("/console/dashboard", get(dashboard::dashboard))
        .route("/console/payments", get(payments::payments))
        .route("/console/payments.csv", get(export::payments_csv))
        .route("/console/payments/{imp_uid}", get(payment::payment))
        .route("/console/payments/{imp_uid}/refund", post(payment::refund))
        .route("/console/billing", get(billing::billing))
        .route("/console/billing/{customer_uid}", get(billing::key))
        .route(
            "/console/billing/{customer_uid}/delete",
            post(billing::delete),
        )
        .route(
            "/console/billing/{customer_uid}/unschedule",
            post(billing::unschedule),
        )
        .route("/console/webhooks", get(webhooks::webhooks))
        .route("/console/webhooks/settings", post(admin::save_webhook))
        .route(
            "/console/webhooks/rotate-secret",
            post(admin::rotate_webhook_secret),
        )
        .route(
            "/console/webhooks/{event_id}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/console/settings", get(settings::settings))
        .route("/console/settings/origins", post(settings::save_origins))
        .route(
            "/console/settings/rotate-secret",
            post(admin::rotate_imp_secret),
        )
        .route(
            "/console/settings/default-channel",
            post(admin::default_channel),
        )
        .route("/console/settings/operators", post(admin::create_operator))
        .route(
            "/console/settings/operators/{id}",
            post(admin::update_operator),
        )
        .route("/console/audit", get(audit::audit))
        .route("/console/static/console.js", get(js))
        .route("/console/static/console.css", get(css))
        .route_layer(from_fn(headers))
}

/// Security headers of every console response.
async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// The assets change only with the binary: an hour of caching (they are tiny anyway).
const ASSET_CACHE: &str = "public, max-age=3600";

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        JS,
    )
        .into_response()
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        CSS,
    )
        .into_response()
}

/// A cookie's value from the request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Whether cookies get `Secure`: the public URL is https, or the browser posted from an https
/// origin (behind a TLS-terminating proxy).
pub(crate) fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state
        .config()
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
        || headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|o| o.starts_with("https://"))
}

pub(crate) fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let s = format!(
        "{name}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Refuses a post another site made: `Sec-Fetch-Site` other than `same-origin`, or an
/// `Origin` whose host is not this request's `Host` (nor the public URL's).
pub(crate) fn cross_site(state: &AppState, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        if site.as_bytes() != b"same-origin" {
            return true;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let Some(origin) = origin
        .to_str()
        .ok()
        .and_then(|o| url::Url::parse(o).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
    else {
        return true; // "null" (sandboxed pages, opaque origins) and anything malformed
    };
    let authority = |u: &url::Url| match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => String::new(),
    };
    let own = authority(&origin);
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    if host.as_deref() == Some(own.as_str()) {
        return false;
    }
    let public = state
        .config()
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok());
    !public.is_some_and(|p| p.origin() == origin.origin())
}

pub(crate) fn csrf_ok(expected: &str, given: Option<&str>) -> bool {
    given.is_some_and(|g| {
        !expected.is_empty() && bool::from(g.as_bytes().ct_eq(expected.as_bytes()))
    })
}

/// The session's actor, or a redirect to the sign-in page.
pub(crate) async fn actor(state: &AppState, headers: &HeaderMap) -> Result<Actor, Response> {
    let to_login = || Redirect::to("/console/login").into_response();
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Err(to_login());
    };
    match state.console_session(&token).await {
        Ok(a) => Ok(a),
        Err(Error::Unauthorized) => Err(to_login()),
        Err(e) => Err(view::error_page(&e)),
    }
}

/// Checks a console post: same site, a session, the session's CSRF token.
async fn post_actor(state: &AppState, headers: &HeaderMap, form: &Form) -> Result<Actor, Response> {
    if cross_site(state, headers) {
        return Err(refused(MSG_CROSS_SITE));
    }
    let a = actor(state, headers).await?;
    if !csrf_ok(&a.csrf, form.get("csrf")) {
        return Err(refused(MSG_NO_CSRF));
    }
    Ok(a)
}

/// A signed-in request: the session's actor (a page view). Without a live session the answer is
/// a redirect to the sign-in page.
pub(crate) struct Signed(pub Actor);

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        actor(state, &parts.headers).await.map(Signed)
    }
}

/// What role a console form asks for (checked after the session and its CSRF token).
pub(crate) trait Need {
    fn allows(role: Role) -> bool;
}

/// Any signed-in operator (the engine decides per use case).
pub(crate) struct Anyone;
/// Refunds, redeliveries, billing keys: operators and admins.
pub(crate) struct CanOperate;
/// Settings and secrets: admins.
pub(crate) struct CanAdmin;

impl Need for Anyone {
    fn allows(_: Role) -> bool {
        true
    }
}
impl Need for CanOperate {
    fn allows(role: Role) -> bool {
        role.can_operate()
    }
}
impl Need for CanAdmin {
    fn allows(role: Role) -> bool {
        role.can_admin()
    }
}

/// A console form post, checked in this order: same site, a live session, the session's CSRF
/// token (`post_actor`), then the role `N`; any refusal is the answer.
pub(crate) struct Post<N: Need = Anyone> {
    pub actor: Actor,
    pub form: Form,
    need: PhantomData<N>,
}

impl<N: Need> FromRequest<AppState> for Post<N> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = Form::parse(&body);
        let actor = post_actor(state, &headers, &form).await?;
        if !N::allows(actor.role) {
            return Err(view::error_page(&Error::Unauthorized));
        }
        Ok(Self {
            actor,
            form,
            need: PhantomData,
        })
    }
}

pub(crate) fn refused(message: &str) -> Response {
    view::message_page(StatusCode::FORBIDDEN, message)
}

/// A url-encoded form body (bounded by the app's body limit).
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(body: &[u8]) -> Self {
        Self(serde_urlencoded::from_bytes(body).unwrap_or_default())
    }
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
}
