//! The payments an operator may see, their refund, webhook deliveries and the audit log.

use super::{Actor, MAX_REASON_CHARS, MAX_SEARCH_CHARS, PAGE_SIZE};
use crate::engine::refunds::CancelInput;
use crate::engine::{Engine, Error, Result};
use pier_store::{AuditEntry, ConsoleFilter, Delivery, Payment};
use std::sync::Arc;

/// One page of the payments list and the cursor of the next (`None`: last page).
pub struct PaymentPage {
    pub items: Vec<Payment>,
    pub next: Option<(i64, String)>,
}

impl Engine {
    pub async fn console_payments(&self, a: &Actor, f: &ConsoleFilter) -> Result<PaymentPage> {
        if f.search
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_SEARCH_CHARS)
        {
            return Err(Error::Invalid(format!(
                "검색어는 {MAX_SEARCH_CHARS}자 이하입니다. (search text too long)"
            )));
        }
        let mut items = self
            .store
            .console_payments(&a.merchant_id, f, PAGE_SIZE + 1)
            .await?;
        let next = if items.len() as i64 > PAGE_SIZE {
            items.truncate(PAGE_SIZE as usize);
            items.last().map(|p| (p.started_at, p.imp_uid.clone()))
        } else {
            None
        };
        Ok(PaymentPage { items, next })
    }

    /// A payment of the actor's merchant (another merchant's is `NotFound`, as a missing one),
    /// with its webhook deliveries.
    pub async fn console_payment(
        &self,
        a: &Actor,
        imp_uid: &str,
    ) -> Result<(Payment, Vec<Delivery>)> {
        let p = self.payment_by_uid(&a.merchant_id, imp_uid).await?;
        let d = self
            .webhook_deliveries(&a.merchant_id, Some(imp_uid), 0, 20)
            .await?;
        Ok((p, d.items))
    }

    /// A refund through the REST cancel use case; `nonce` (from the confirmation form) makes a
    /// repeated submit the same cancel.
    pub async fn console_refund(
        self: &Arc<Self>,
        a: &Actor,
        imp_uid: &str,
        amount: Option<i64>,
        reason: &str,
        nonce: &str,
    ) -> Result<Payment> {
        a.must_operate()?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::Invalid(
                "환불 사유를 입력해주세요. (a reason is required)".into(),
            ));
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(Error::Invalid(format!(
                "환불 사유는 {MAX_REASON_CHARS}자 이하입니다. (reason too long)"
            )));
        }
        if amount.is_some_and(|x| x <= 0) {
            return Err(Error::Invalid(
                "환불 금액은 0보다 커야 합니다. (amount must be positive)".into(),
            ));
        }
        if nonce.len() != 24 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid("invalid confirmation".into()));
        }
        // Another merchant's payment is "not found", as on the detail page.
        self.payment_by_uid(&a.merchant_id, imp_uid).await?;
        let input = CancelInput {
            imp_uid: Some(imp_uid.to_owned()),
            amount: amount
                .map(|x| pier_domain::Amount::new(x, "amount"))
                .transpose()?,
            reason: Some(reason.to_owned()),
            idempotency_key: Some(format!("console:{nonce}")),
            ..Default::default()
        };
        let p = self.cancel_payment(&a.merchant_id, input).await?;
        let shown = amount.map_or_else(|| "전액".to_owned(), |x| x.to_string());
        self.audit(
            a,
            "payment.refund",
            Some(imp_uid),
            Some(format!("amount={shown} reason={reason}")),
        )
        .await;
        Ok(p)
    }

    pub async fn console_deliveries(&self, a: &Actor, offset: i64) -> Result<Vec<Delivery>> {
        Ok(self
            .webhook_deliveries(&a.merchant_id, None, offset.max(0), PAGE_SIZE)
            .await?
            .items)
    }

    pub async fn console_redeliver(&self, a: &Actor, event_id: &str) -> Result<()> {
        a.must_operate()?;
        let row = self.redeliver(&a.merchant_id, event_id).await?;
        self.audit(
            a,
            "webhook.redeliver",
            Some(&row.event.imp_uid),
            Some(event_id.to_owned()),
        )
        .await;
        Ok(())
    }

    pub async fn console_audit(
        &self,
        a: &Actor,
        before: Option<(i64, String)>,
    ) -> Result<Vec<AuditEntry>> {
        Ok(self
            .store
            .list_audit(&a.merchant_id, before, PAGE_SIZE)
            .await?)
    }
}
