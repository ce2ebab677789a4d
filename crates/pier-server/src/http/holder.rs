//! `GET /vbanks/holder?bank_code=…&bank_num=…` → `{bank_holder}` (OAS `VbankHolderResponse`).
//!
//! Routed before `/vbanks/{imp_uid}`'s methods would see it: axum prefers the static segment, and
//! without its own GET route the path matched `/vbanks/{imp_uid}` (PUT/DELETE only) → 405.

use super::error::{ApiResult, Envelope};
use super::params::Query;
use super::AppState;
use crate::engine::holder::BANK_NUM_MAX_CHARS;
use axum::extract::State;
use serde_json::{json, Value};

pub async fn holder(State(engine): State<AppState>, Query(q): Query) -> ApiResult<Envelope<Value>> {
    // Bank codes are 3 digits (KFTC); 4 leaves room for the OAS's maxLength.
    let bank_code = q.str_req("bank_code", 4)?;
    let bank_num = q.str_req("bank_num", BANK_NUM_MAX_CHARS)?;
    let bank_holder = engine.account_holder(&bank_code, &bank_num)?;
    Ok(Envelope::ok(json!({ "bank_holder": bank_holder })))
}
