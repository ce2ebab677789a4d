//! Signing in and out (`/console/login`, `/console/logout`), and `/console` itself.

use super::view::{error_page, html, message_page, see_other};
use super::{
    actor, cross_site, refused, set_cookie, Form, Post, MSG_CROSS_SITE, MSG_NO_CSRF, PRE_COOKIE,
    SESSION_COOKIE,
};
use crate::engine::console::{MSG_SIGN_IN_FAILED, SESSION_ABSOLUTE_SECS};
use crate::engine::Error;
use crate::http::AppState;
use askama::Template;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use pier_domain::ids::random_hex;

pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match actor(&state, &headers).await {
        Ok(_) => see_other("/console/dashboard"),
        Err(r) => r,
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

fn pre_token(headers: &HeaderMap) -> Option<String> {
    super::cookie(headers, PRE_COOKIE)
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The pre-session cookie lives an hour: a sign-in form left open longer is reloaded.
const PRE_COOKIE_SECS: i64 = 3600;

fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> Response {
    let pre = pre_token(headers).unwrap_or_else(|| random_hex(16));
    let csrf = state.sign_in_csrf(&pre);
    let mut res = html(
        status,
        &LoginPage {
            csrf: &csrf,
            email,
            error,
        },
    );
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            PRE_COOKIE,
            &pre,
            PRE_COOKIE_SECS,
            super::secure(state, headers),
        ),
    );
    res
}

pub async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    login_page(&state, &headers, StatusCode::OK, "", None)
}

pub async fn login(State(state): State<AppState>, req: Request) -> Response {
    let client = crate::edge::client_of(&req);
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), crate::http::BODY_LIMIT_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return message_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "요청이 너무 큽니다. (request too large)",
            )
        }
    };
    if cross_site(&state, &headers) {
        return refused(MSG_CROSS_SITE);
    }
    let form = Form::parse(&body);
    let csrf_good = pre_token(&headers)
        .is_some_and(|pre| super::csrf_ok(&state.sign_in_csrf(&pre), form.get("csrf")));
    if !csrf_good {
        return refused(MSG_NO_CSRF);
    }
    let email = form.get("email").unwrap_or("");
    let password = form.get("password").unwrap_or("");
    match state.console_sign_in(email, password, client).await {
        Ok(token) => {
            let secure = super::secure(&state, &headers);
            let mut res = see_other("/console/dashboard");
            let h = res.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &token, SESSION_ABSOLUTE_SECS, secure),
            );
            h.append(header::SET_COOKIE, set_cookie(PRE_COOKIE, "", 0, secure));
            res
        }
        Err(Error::Unauthorized) => login_page(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            email,
            Some(MSG_SIGN_IN_FAILED),
        ),
        Err(Error::RateLimited(m)) => login_page(
            &state,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            email,
            Some(&m),
        ),
        Err(e) => error_page(&e),
    }
}

/// Signing out is a form post like any other (same site, session, CSRF token).
pub async fn logout(State(state): State<AppState>, headers: HeaderMap, _: Post) -> Response {
    if let Some(token) = super::cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = state.console_sign_out(&token).await {
            return error_page(&e);
        }
    }
    let mut res = see_other("/console/login");
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, super::secure(&state, &headers)),
    );
    res
}
