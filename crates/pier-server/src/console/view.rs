//! What every console page shares: the signed-in frame, rendering, the message and error
//! pages, and the number and URL formats.

use crate::engine::console::{Actor, MSG_FORBIDDEN};
use crate::engine::Error;
use crate::http::AppState;
use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

/// What every signed-in page's frame shows.
pub struct Layout {
    pub email: String,
    pub role: &'static str,
    pub csrf: String,
    pub test_mode: bool,
    pub nav: &'static str,
}

pub(super) async fn layout(state: &AppState, a: &Actor, nav: &'static str) -> Layout {
    Layout {
        email: a.email.clone(),
        role: a.role.label(),
        csrf: a.csrf.clone(),
        // A store error here only hides the banner; the page itself reports its own errors.
        test_mode: state.console_test_mode(a).await.unwrap_or(false),
        nav,
    }
}

pub(super) fn html(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "페이지를 만들지 못했습니다. (render failed)",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage<'a> {
    message: &'a str,
}

pub fn message_page(status: StatusCode, message: &str) -> Response {
    html(status, &MessagePage { message })
}

pub fn error_page(e: &Error) -> Response {
    let status = match e {
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        Error::Unauthorized => return message_page(StatusCode::FORBIDDEN, MSG_FORBIDDEN),
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Refused(_) | Error::PgRefused(_) | Error::Busy(_) | Error::Conflict(_) => {
            StatusCode::CONFLICT
        }
        Error::PgUnknown { .. } => StatusCode::ACCEPTED,
        Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    message_page(status, &e.to_string())
}

pub(super) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// `1234567` → `1,234,567`.
pub fn won(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

pub(super) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money() {
        assert_eq!(won(0), "0");
        assert_eq!(won(1000), "1,000");
        assert_eq!(won(1234567), "1,234,567");
        assert_eq!(won(-1500), "-1,500");
    }
}
