//! What a simulator handler answers (Toss's `{code, message}` shape for errors), and how it
//! reads a request body.

use crate::testpg::cards::{self, Decline};
use crate::toss::wire::{kst, TossError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// What a handler decided, and what becomes of its answer.
pub(super) struct Outcome {
    pub(super) status: StatusCode,
    pub(super) body: Vec<u8>,
    pub(super) after: After,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum After {
    Answer,
    /// Not processed and never answered (the test PG's timeout card).
    Hang,
    /// Processed (and stored under its idempotency key), then the answer is lost.
    Lose,
}

impl Outcome {
    pub(super) fn ok<T: Serialize>(value: &T) -> Self {
        Self {
            status: StatusCode::OK,
            body: serde_json::to_vec(value).unwrap_or_default(),
            after: After::Answer,
        }
    }

    pub(super) fn err(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let e = TossError {
            code: code.into(),
            message: message.into(),
        };
        Self {
            status,
            body: serde_json::to_vec(&e).unwrap_or_default(),
            after: After::Answer,
        }
    }

    pub(super) fn bad(code: &str, message: impl Into<String>) -> Self {
        Self::err(StatusCode::BAD_REQUEST, code, message)
    }

    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self::bad("INVALID_REQUEST", message)
    }

    pub(super) fn declined(d: Decline) -> Self {
        let code = if d == cards::LOST_OR_STOLEN {
            "INVALID_CARD_LOST_OR_STOLEN"
        } else if d == cards::SUSPENDED {
            "INVALID_STOPPED_CARD"
        } else {
            "REJECT_CARD_COMPANY"
        };
        Self::bad(code, d.message)
    }

    pub(super) fn hang() -> Self {
        Self {
            status: StatusCode::GATEWAY_TIMEOUT,
            body: Vec::new(),
            after: After::Hang,
        }
    }

    pub(super) fn lost(mut self) -> Self {
        self.after = After::Lose;
        self
    }

    /// `lost()` when `lose` (a card whose behaviour is to lose the answer).
    pub(super) fn lost_if(self, lose: bool) -> Self {
        if lose {
            self.lost()
        } else {
            self
        }
    }

    pub(super) fn into_response(self) -> Response {
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.body,
        )
            .into_response()
    }
}

pub(super) fn now_kst() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::Utc::now().with_timezone(&kst())
}

pub(super) fn ts(t: chrono::DateTime<chrono::FixedOffset>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// Parse a request body strictly; the error names a field at most, never a value.
pub(super) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Outcome> {
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        if text.starts_with("unknown field") || text.starts_with("missing field") {
            let field = text.split('`').nth(1).unwrap_or("?");
            let what = if text.starts_with("unknown") {
                "알 수 없는 필드"
            } else {
                "필수 필드 누락"
            };
            Outcome::invalid(format!("잘못된 요청입니다. ({what}: {field})"))
        } else {
            Outcome::invalid(format!(
                "잘못된 요청입니다. (line {} column {})",
                e.line(),
                e.column()
            ))
        }
    })
}

pub(super) fn duplicated_order() -> Outcome {
    Outcome::bad(
        "DUPLICATED_ORDER_ID",
        "이미 승인 및 취소가 진행된 중복된 주문번호 입니다. 다른 주문번호로 진행해주세요.",
    )
}

pub(super) fn not_found_payment() -> Outcome {
    Outcome::err(
        StatusCode::NOT_FOUND,
        "NOT_FOUND_PAYMENT",
        "존재하지 않는 결제 정보 입니다.",
    )
}

/// A billing key (or window authorization) used with another `customerKey` than its own.
pub(super) fn customer_key_mismatch() -> Outcome {
    Outcome::bad(
        "NOT_MATCHES_CUSTOMER_KEY",
        "빌링 인증 고객키와 결제 요청 고객키가 일치하지 않습니다.",
    )
}
