//! KFTC code lists: `/cards`, `/cards/{code}`, `/banks`, `/banks/{code}` (spec §3.10).

use super::error::{ApiError, ApiResult, Envelope};
use axum::extract::Path;
use pier_domain::codes::{Code, BANKS, CARDS};
use serde_json::{json, Value};

fn list(codes: &[Code]) -> Value {
    Value::Array(
        codes
            .iter()
            .map(|c| json!({"code": c.code, "name": c.name}))
            .collect(),
    )
}

fn one(codes: &[Code], code: &str, what: &str) -> ApiResult<Envelope<Value>> {
    codes
        .iter()
        .find(|c| c.code == code)
        .map(|c| Envelope::ok(json!({"code": c.code, "name": c.name})))
        .ok_or_else(|| ApiError::not_found(format!("존재하지 않는 {what} 코드입니다. ({code})")))
}

pub async fn cards() -> Envelope<Value> {
    Envelope::ok(list(CARDS))
}

pub async fn card(Path(code): Path<String>) -> ApiResult<Envelope<Value>> {
    one(CARDS, &code, "카드사")
}

pub async fn banks() -> Envelope<Value> {
    Envelope::ok(list(BANKS))
}

pub async fn bank(Path(code): Path<String>) -> ApiResult<Envelope<Value>> {
    one(BANKS, &code, "은행")
}
