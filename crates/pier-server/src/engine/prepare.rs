//! Amount pre-registration (spec §3.3): `POST`/`PUT /payments/prepare`,
//! `GET /payments/prepare/{merchant_uid}`, and the check every charge makes against it.

use super::{Engine, Error, Result};
use pier_domain::{Amount, MerchantUid};
use pier_store::{Prepared, StoreError};

pub const MSG_ALREADY_PREPARED: &str =
    "이미 사전등록된 merchant_uid입니다. 금액을 변경하려면 PUT /payments/prepare를 사용해주세요. (already pre-registered; use PUT to change it)";
pub const MSG_NOT_PREPARED: &str =
    "사전등록된 결제정보가 존재하지 않습니다. (no pre-registered amount for this merchant_uid)";

impl Engine {
    pub async fn prepare_create(
        &self,
        merchant_id: &str,
        merchant_uid: MerchantUid,
        amount: Amount,
        currency: Option<String>,
    ) -> Result<Prepared> {
        let now = self.now();
        let p = Prepared {
            merchant_id: merchant_id.to_owned(),
            merchant_uid: merchant_uid.into_string(),
            amount: amount.krw(),
            currency,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_prepare(&p).await {
            Ok(()) => Ok(p),
            Err(StoreError::Conflict(_)) => Err(Error::Refused(MSG_ALREADY_PREPARED.into())),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn prepare_update(
        &self,
        merchant_id: &str,
        merchant_uid: &MerchantUid,
        amount: Amount,
        currency: Option<String>,
    ) -> Result<Prepared> {
        self.store
            .update_prepare(
                merchant_id,
                merchant_uid.as_str(),
                amount.krw(),
                currency.as_deref(),
                self.now(),
            )
            .await?
            .ok_or_else(|| Error::NotFound(MSG_NOT_PREPARED.into()))
    }

    pub async fn prepare_get(
        &self,
        merchant_id: &str,
        merchant_uid: &MerchantUid,
    ) -> Result<Prepared> {
        self.store
            .get_prepare(merchant_id, merchant_uid.as_str())
            .await?
            .ok_or_else(|| Error::NotFound(MSG_NOT_PREPARED.into()))
    }

    /// Refuses an amount that differs from the one pre-registered for the merchant_uid, before
    /// any PG call. Without a pre-registration every amount passes.
    pub(crate) async fn check_prepared(
        &self,
        merchant_id: &str,
        merchant_uid: &str,
        amount: Option<Amount>,
    ) -> Result<()> {
        let prepared = self.store.get_prepare(merchant_id, merchant_uid).await?;
        check_prepared_amount(prepared.as_ref(), merchant_uid, amount)
    }
}

/// Refuses an amount that differs from the one pre-registered for the merchant_uid (`None`:
/// 0, a window that only issues a billing key — it differs from every registered amount).
pub(crate) fn check_prepared_amount(
    prepared: Option<&Prepared>,
    merchant_uid: &str,
    amount: Option<Amount>,
) -> Result<()> {
    match prepared {
        // A stored amount outside `Amount`'s range matches no order.
        Some(p) if Amount::new(p.amount, "amount").ok() != amount => Err(Error::Refused(format!(
            "사전등록된 결제금액과 요청금액이 일치하지 않습니다. (amount {} differs from the {} pre-registered for merchant_uid {merchant_uid}; nothing was charged)",
            amount.map_or(0, Amount::krw),
            p.amount
        ))),
        _ => Ok(()),
    }
}
