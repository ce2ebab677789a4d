//! Payment lookups (spec §3.1). Every read is scoped to the caller's merchant.

use super::{Engine, Error, Result};
use pier_domain::{ImpUid, MerchantUid};
use pier_store::{Page, Payment, PaymentQuery};

pub const MSG_NO_PAYMENT: &str = "존재하지 않는 결제정보입니다.";
/// `/payments/status` looks back at most this far (spec: 90 days).
pub const STATUS_WINDOW_SECS: i64 = 90 * 24 * 3600;

impl Engine {
    /// Unsettled attempts of every merchant tried at least `min_attempts` times, oldest first
    /// (the operator's `pier reconcile`; merchants see theirs through `unsettled`).
    pub async fn stuck_everywhere(&self, min_attempts: i64, limit: i64) -> Result<Vec<Payment>> {
        Ok(self.store.list_stuck(None, min_attempts, limit).await?)
    }

    /// `GET /payments/{imp_uid}`.
    pub async fn payment(&self, merchant_id: &str, imp_uid: &ImpUid) -> Result<Payment> {
        self.payment_by_uid(merchant_id, imp_uid.as_str()).await
    }

    /// A payment of the merchant by an imp_uid read from the store (or not yet typed).
    pub(crate) async fn payment_by_uid(&self, merchant_id: &str, imp_uid: &str) -> Result<Payment> {
        self.store
            .get_payment(Some(merchant_id), imp_uid)
            .await?
            .ok_or_else(|| Error::NotFound(MSG_NO_PAYMENT.into()))
    }

    pub async fn payments_many(
        &self,
        merchant_id: &str,
        imp_uids: &[String],
        merchant_uids: &[String],
    ) -> Result<Vec<Payment>> {
        Ok(self
            .store
            .get_many(merchant_id, imp_uids, merchant_uids)
            .await?)
    }

    /// First attempt of a merchant_uid by `q.sorting` (and status, when given).
    pub async fn find_payment(
        &self,
        merchant_id: &str,
        merchant_uid: &MerchantUid,
        q: PaymentQuery,
    ) -> Result<Payment> {
        let q = PaymentQuery {
            offset: 0,
            limit: 1,
            ..q
        };
        let page = self
            .store
            .find_by_merchant_uid(merchant_id, merchant_uid.as_str(), &q)
            .await?;
        page.items
            .into_iter()
            .next()
            .ok_or_else(|| Error::NotFound(MSG_NO_PAYMENT.into()))
    }

    pub async fn find_all_payments(
        &self,
        merchant_id: &str,
        merchant_uid: &MerchantUid,
        q: PaymentQuery,
    ) -> Result<Page<Payment>> {
        let page = self
            .store
            .find_by_merchant_uid(merchant_id, merchant_uid.as_str(), &q)
            .await?;
        if page.total == 0 {
            return Err(Error::NotFound(MSG_NO_PAYMENT.into()));
        }
        Ok(page)
    }

    pub async fn payments_by_status(
        &self,
        merchant_id: &str,
        from: Option<i64>,
        to: Option<i64>,
        q: PaymentQuery,
    ) -> Result<Page<Payment>> {
        let to = to.unwrap_or_else(|| self.now());
        let from = from.unwrap_or(to.saturating_sub(STATUS_WINDOW_SECS));
        if from > to {
            return Err(Error::Invalid("from must not be after to".into()));
        }
        if to.saturating_sub(from) > STATUS_WINDOW_SECS {
            return Err(Error::Invalid(
                "the from–to window must be at most 90 days".into(),
            ));
        }
        Ok(self.store.list_by_status(merchant_id, from, to, &q).await?)
    }

    pub async fn customer_payments(
        &self,
        merchant_id: &str,
        customer_uid: &str,
        q: PaymentQuery,
    ) -> Result<Page<Payment>> {
        if self
            .store
            .get_customer(merchant_id, customer_uid)
            .await?
            .is_none()
        {
            return Err(super::customers::not_registered(customer_uid));
        }
        Ok(self
            .store
            .list_by_customer(merchant_id, customer_uid, &q)
            .await?)
    }
}
