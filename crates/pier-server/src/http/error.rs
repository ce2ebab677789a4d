//! The i'mport envelope `{code, message, response}` and the one error type every handler returns.
//!
//! Status conventions (spec §1.3): business refusals of POST endpoints are HTTP 200 with code 1
//! (Pier refused) or -1 (the PG refused); unknown ids in a path are 404/-1; bad parameters 400/-1;
//! missing or bad tokens 401/-1 `Unauthorized`. Nothing a client sends may produce a 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: i64,
    pub message: String,
    /// The answer is not final (unknown PG outcome, storage hiccup): an idempotency key is not
    /// bound to it, so a retry runs again.
    pub retryable: bool,
}

/// Response header marking a non-final answer (read by the idempotency layer).
pub const RETRYABLE_HEADER: &str = "x-pier-retryable";

impl ApiError {
    pub fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retryable: false,
        }
    }
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }
    /// 400: a parameter is missing or malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, -1, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, -1, "Unauthorized")
    }
    /// 404 for an unknown id in the path.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, -1, message)
    }
    /// HTTP 200, code 1: Pier refused a business operation.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(StatusCode::OK, 1, message)
    }
    /// HTTP 200, code -1: the PG or card company refused.
    pub fn pg_refused(message: impl Into<String>) -> Self {
        Self::new(StatusCode::OK, -1, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, -1, message)
    }
    pub fn too_many(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, -1, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, -1, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, -1, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl From<pier_domain::FieldError> for ApiError {
    fn from(e: pier_domain::FieldError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl From<pier_store::StoreError> for ApiError {
    fn from(e: pier_store::StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        Self::unavailable("일시적인 저장소 오류입니다. 잠시 후 다시 시도해주세요. (storage temporarily unavailable)").retryable()
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(
            &json!({"code": self.code, "message": self.message, "response": null}),
        )
        .unwrap_or_default();
        let mut res = json_response(self.status, body);
        if self.retryable || self.status.is_server_error() {
            res.headers_mut()
                .insert(RETRYABLE_HEADER, HeaderValue::from_static("true"));
        }
        res
    }
}

/// A successful envelope: `{code: 0, message: null, response}`.
pub struct Envelope<T>(pub StatusCode, pub T);

impl<T: Serialize> Envelope<T> {
    pub fn ok(response: T) -> Self {
        Self(StatusCode::OK, response)
    }
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a, T> {
            code: i64,
            message: Option<&'a str>,
            response: &'a T,
        }
        match serde_json::to_vec(&Body {
            code: 0,
            message: None,
            response: &self.1,
        }) {
            Ok(body) => json_response(self.0, body),
            Err(e) => ApiError::internal(format!("serialization failed: {e}")).into_response(),
        }
    }
}

/// A code-0 envelope that carries a message (a declined payment: code 0, `status:"failed"`).
pub struct EnvelopeWithMessage<T>(pub String, pub T);

impl<T: Serialize> IntoResponse for EnvelopeWithMessage<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&json!({"code": 0, "message": self.0, "response": self.1})) {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(e) => ApiError::internal(format!("serialization failed: {e}")).into_response(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<crate::engine::Error> for ApiError {
    fn from(e: crate::engine::Error) -> Self {
        use crate::engine::Error as E;
        match e {
            E::Invalid(m) => Self::bad_request(m),
            E::Unauthorized => Self::unauthorized(),
            E::NotFound(m) => Self::not_found(m),
            // "Another attempt is in progress" is not final: not stored under an Idempotency-Key.
            E::Busy(m) => Self::refused(m).retryable(),
            E::Refused(m) => Self::refused(m),
            E::PgRefused(m) => Self::pg_refused(m),
            E::PgUnknown { message, imp_uid } => {
                Self::pg_refused(format!("{message} (imp_uid: {imp_uid})")).retryable()
            }
            E::Conflict(m) => Self::conflict(m).retryable(),
            E::RateLimited(m) => Self::too_many(m).retryable(),
            E::Unavailable(m) => Self::unavailable(m).retryable(),
        }
    }
}
