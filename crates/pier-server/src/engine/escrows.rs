//! Escrow delivery information (`POST`/`PUT`/`GET /escrows/logis/{imp_uid}`): the courier and
//! invoice of a paid escrow payment (`request_pay({escrow: true})`), which the PG needs before it
//! releases the money.
//!
//! The sender and receiver (names, phones, addresses) are personal data the PG receives; Pier's
//! PGs are simulated and the documented answer (OAS `EscrowLogisAnnotation`: company, invoice,
//! sent_at, applied_at) does not contain them, so they are validated and never stored or logged.

use super::{Engine, Error, Result};
use pier_domain::PaymentStatus;
use pier_store::{EscrowLogis, StoreError};

/// The delivery information of one registration or change.
#[derive(Clone, Debug)]
pub struct LogisInput {
    pub company: String,
    pub invoice: String,
    pub sent_at: i64,
}

impl Engine {
    /// Registers (`create`) or changes the delivery information of a paid escrow payment.
    pub async fn put_escrow_logis(
        &self,
        merchant_id: &str,
        imp_uid: &str,
        input: LogisInput,
        create: bool,
    ) -> Result<EscrowLogis> {
        let p = self.payment_by_uid(merchant_id, imp_uid).await?;
        if !p.escrow {
            return Err(Error::Invalid(
                "에스크로 결제건이 아닙니다. (not an escrow payment: pay with escrow: true)".into(),
            ));
        }
        if p.status != PaymentStatus::Paid || p.paid_at == 0 {
            return Err(Error::Conflict(
                "결제완료(paid)된 에스크로 결제건에만 배송정보를 등록할 수 있습니다. (the payment is not paid)".into(),
            ));
        }
        let now = self.now();
        let e = EscrowLogis {
            imp_uid: p.imp_uid.clone(),
            merchant_id: merchant_id.to_owned(),
            company: input.company,
            invoice: input.invoice,
            sent_at: input.sent_at,
            applied_at: now,
            updated_at: now,
        };
        match self.store.put_escrow_logis(&e, create).await {
            Ok(Some(saved)) => Ok(saved),
            Ok(None) if create => Err(Error::Conflict(
                "이미 배송정보가 등록되었습니다. (delivery information is already registered; change it with PUT)".into(),
            )),
            Ok(None) => Err(Error::Conflict(
                "등록된 배송정보가 존재하지 않습니다. (no delivery information is registered; register it with POST)".into(),
            )),
            Err(StoreError::Conflict(_)) => Err(Error::Conflict(
                "이미 배송정보가 등록되었습니다. (delivery information is already registered; change it with PUT)".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_escrow_logis(&self, merchant_id: &str, imp_uid: &str) -> Result<EscrowLogis> {
        self.payment_by_uid(merchant_id, imp_uid).await?;
        self.store
            .get_escrow_logis(merchant_id, imp_uid)
            .await?
            .ok_or_else(|| {
                Error::Conflict(
                    "등록된 배송정보가 존재하지 않습니다. (no delivery information is registered)"
                        .into(),
                )
            })
    }
}
