//! How Toss's answers map onto Pier's three-valued outcome:
//!
//! - 2xx with a readable Payment: the documented meaning of its `status`;
//! - the connection could not be made: nothing was sent, `Unreachable`;
//! - the deadline passed, the connection broke after sending, a 5xx, a 408/409 (Toss is still
//!   working on the same `Idempotency-Key`), an unreadable answer, or `PROVIDER_ERROR`: the
//!   request may have been processed, `Unknown`;
//! - a documented card refusal (`CARD_REFUSALS`): `Declined`;
//! - any other 4xx (bad request, bad key, unknown payment…): `Rejected`.

use super::wire::{Payment, TossError};
use crate::{PgError, PgResult};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

/// Toss error codes that are an issuer's refusal after a real attempt (error-codes reference).
const CARD_REFUSALS: &[&str] = &[
    "REJECT_CARD_COMPANY",
    "REJECT_CARD_PAYMENT",
    "INVALID_REJECT_CARD",
    "INVALID_STOPPED_CARD",
    "INVALID_CARD_LOST_OR_STOLEN",
    "RESTRICTED_CARD",
    "EXCEED_MAX_DAILY_PAYMENT_COUNT",
    "EXCEED_MAX_PAYMENT_AMOUNT",
    "EXCEED_MAX_AMOUNT",
    "NOT_AVAILABLE_PAYMENT",
    "INVALID_PASSWORD",
    "NOT_SUPPORTED_INSTALLMENT_PLAN_CARD_OR_MERCHANT",
    "NOT_ALLOWED_POINT_USE",
];

/// 4xx codes that say "temporary, try again": the attempt may have reached the issuer.
const TEMPORARY: &[&str] = &["PROVIDER_ERROR"];

/// An answer, by status: 2xx must decode as `T`; anything else is classified (module doc).
pub(super) fn decode<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> PgResult<T> {
    if status.is_success() {
        return serde_json::from_slice(bytes)
            .map_err(|e| PgError::Unknown(format!("unreadable Toss answer ({status}): {e}")));
    }
    let err = serde_json::from_slice::<TossError>(bytes).ok();
    Err(classify(status, err))
}

/// An answer to a read of one payment: `None` when Toss says it has no such payment (404
/// `NOT_FOUND_…`), else as `decode`.
pub(super) fn decode_found(status: StatusCode, bytes: &[u8]) -> PgResult<Option<Payment>> {
    if status == StatusCode::NOT_FOUND {
        if let Ok(err) = serde_json::from_slice::<TossError>(bytes) {
            if err.code.starts_with("NOT_FOUND") {
                return Ok(None);
            }
        }
    }
    decode(status, bytes).map(Some)
}

/// Toss's `{code, message}` (or its absence) to Pier's outcome.
pub(crate) fn classify(status: StatusCode, err: Option<TossError>) -> PgError {
    let unknown = |detail: String| PgError::Unknown(format!("Toss answered {status}: {detail}"));
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::CONFLICT
    {
        return unknown(err.map_or_else(|| "no error object".into(), |e| e.code));
    }
    let Some(err) = err else {
        // A 4xx without Toss's error object: refused by something in front of the API.
        return PgError::Rejected {
            code: format!("HTTP_{}", status.as_u16()),
            message: format!("Toss answered {status} without an error object"),
        };
    };
    if TEMPORARY.contains(&err.code.as_str()) {
        return unknown(format!("{} {}", err.code, err.message));
    }
    if CARD_REFUSALS.contains(&err.code.as_str()) {
        return PgError::Declined {
            code: err.code,
            message: err.message,
        };
    }
    PgError::Rejected {
        code: err.code,
        message: err.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_three_outcomes() {
        let e = |code: &str| {
            Some(TossError {
                code: code.into(),
                message: "m".into(),
            })
        };
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, e("REJECT_CARD_COMPANY")),
            PgError::Declined { .. }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, e("INVALID_CARD_NUMBER")),
            PgError::Rejected { .. }
        ));
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, e("UNAUTHORIZED_KEY")),
            PgError::Rejected { .. }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, e("PROVIDER_ERROR")),
            PgError::Unknown(_)
        ));
        assert!(matches!(
            classify(
                StatusCode::INTERNAL_SERVER_ERROR,
                e("FAILED_INTERNAL_SYSTEM_PROCESSING")
            ),
            PgError::Unknown(_)
        ));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, None),
            PgError::Unknown(_)
        ));
        assert!(matches!(
            classify(StatusCode::CONFLICT, e("IDEMPOTENT_REQUEST_PROCESSING")),
            PgError::Unknown(_)
        ));
    }

    /// A Payment written with the field names and value shapes of Toss's cancel-guide example

    #[test]
    fn unreadable_answers_are_unknown() {
        assert!(matches!(
            decode::<Payment>(StatusCode::OK, b"<html>proxy</html>"),
            Err(PgError::Unknown(_))
        ));
        assert!(matches!(
            decode::<Payment>(StatusCode::OK, br#"{"paymentKey": 5}"#),
            Err(PgError::Unknown(_))
        ));
        // A 4xx without Toss's error object was refused before Toss: nothing happened.
        assert!(matches!(
            decode::<Payment>(StatusCode::NOT_FOUND, b"not found"),
            Err(PgError::Rejected { .. })
        ));
    }
}
