//! `GET /payments/{imp_uid}/balance` → OAS `PaymentBalanceResponseAnnotation` (engine `balance`).

use super::error::{ApiResult, Envelope};
use super::{AppState, Merchant};
use crate::engine::balance::PaymentBalance;
use axum::extract::{Path, State};
use axum::Extension;

pub async fn balance(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(imp_uid): Path<String>,
) -> ApiResult<Envelope<PaymentBalance>> {
    Ok(Envelope::ok(engine.payment_balance(&m, &imp_uid).await?))
}
