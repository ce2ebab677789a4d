//! `GET /payments/{imp_uid}/balance` in the documented shape (OAS
//! `PaymentBalanceResponseAnnotation`): `amount` is the original total; `primary`, `secondary`,
//! `discount` and `cash_receipt` are what remains of each part, split into tax-free, supply, VAT
//! and service; `histories` has one entry per change (the approval, then each recorded cancel).
//!
//! Pier's PGs know one instrument per payment, so everything is `primary`; `secondary` (PG or
//! card points) and `discount` (PG/card discounts) are always zero. `cash_receipt` is the part
//! covered by a cash receipt that is still issued.

use super::{Engine, Result};
use pier_domain::PaymentStatus;
use pier_store::Payment;

/// One part of a balance (OAS `PaymentBalanceAnnotation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Part {
    pub tax_free: i64,
    pub supply: i64,
    pub vat: i64,
    pub service: i64,
}

impl Part {
    /// Splits `amount` with `tax_free` of it tax-free. The VAT is `vat` when the merchant gave it,
    /// else the integer 1/11 of the taxable part (Korean VAT is 10 % of supply, so the VAT inside
    /// a gross amount is gross/11; i'mport's receipts document "1/11 of the amount" and so do
    /// Pier's receipts, which use this same rule).
    pub fn split(amount: i64, tax_free: i64, vat: Option<i64>) -> Self {
        let tax_free = tax_free.clamp(0, amount.max(0));
        let taxable = (amount - tax_free).max(0);
        let vat = vat.unwrap_or(taxable / 11).clamp(0, taxable);
        Part {
            tax_free,
            supply: taxable - vat,
            vat,
            service: 0,
        }
    }

    pub fn total(&self) -> i64 {
        self.tax_free + self.supply + self.vat + self.service
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BalanceHistory {
    pub cash_receipt: Part,
    pub primary: Part,
    pub secondary: Part,
    pub discount: Part,
    pub created: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PaymentBalance {
    pub amount: i64,
    pub cash_receipt: Part,
    pub primary: Part,
    pub secondary: Part,
    pub discount: Part,
    pub histories: Vec<BalanceHistory>,
    /// Pier extension: money held by cancels whose PG outcome is not known yet (still in
    /// `primary`, but no other cancel may take it until the outcome is recorded).
    pub cancel_pending_amount: i64,
}

impl Engine {
    pub async fn payment_balance(
        &self,
        merchant_id: &str,
        imp_uid: &str,
    ) -> Result<PaymentBalance> {
        let p = self.payment_by_uid(merchant_id, imp_uid).await?;
        let receipt = self.receipt_part(&p).await?;
        let mut histories = Vec::new();
        let mut primary = Part::default();
        if matches!(p.status, PaymentStatus::Paid | PaymentStatus::Cancelled) && p.paid_at > 0 {
            primary = Part::split(p.amount, p.tax_free, p.vat_amount);
            histories.push(history(primary, receipt, p.paid_at));
            let mut cancels = p.cancel_history.clone();
            cancels.sort_by_key(|c| c.cancelled_at);
            let (mut total, mut tax_free, mut vat) = (p.amount, p.tax_free, p.vat_amount);
            for c in &cancels {
                // The request row carries the cancel's tax-free part and VAT; a cancel Pier did
                // not request itself (none so far) is taken as fully taxable.
                let (tf, cvat) = match self.store.get_cancel_request(&c.cancellation_id).await? {
                    Some(r) => (r.tax_free, r.vat_amount),
                    None => (0, None),
                };
                total = (total - c.amount).max(0);
                tax_free = (tax_free - tf).clamp(0, total);
                // A VAT the merchant fixed is reduced by what each cancel took; otherwise the
                // remainder is split afresh, so rounding never leaves a won behind: the parts
                // always add up to what remains.
                vat = vat.map(|v| v - cvat.unwrap_or(Part::split(c.amount, tf, None).vat));
                primary = Part::split(total, tax_free, vat);
                histories.push(history(primary, cap(receipt, primary), c.cancelled_at));
            }
        }
        Ok(PaymentBalance {
            amount: p.amount,
            cash_receipt: cap(receipt, primary),
            primary,
            secondary: Part::default(),
            discount: Part::default(),
            histories,
            cancel_pending_amount: p.cancel_reserved,
        })
    }
}

fn history(primary: Part, cash_receipt: Part, created: i64) -> BalanceHistory {
    BalanceHistory {
        cash_receipt,
        primary,
        secondary: Part::default(),
        discount: Part::default(),
        created,
    }
}

/// A receipt never covers more than what remains.
fn cap(receipt: Part, remaining: Part) -> Part {
    Part {
        tax_free: receipt.tax_free.min(remaining.tax_free),
        supply: receipt.supply.min(remaining.supply),
        vat: receipt.vat.min(remaining.vat),
        service: receipt.service.min(remaining.service),
    }
}

impl Engine {
    /// The part of `p` covered by its cash receipt while that receipt is issued.
    async fn receipt_part(&self, p: &Payment) -> Result<Part> {
        if !p.cash_receipt_issued {
            return Ok(Part::default());
        }
        Ok(
            match self
                .store
                .find_receipt(&p.merchant_id, "payment", &p.imp_uid)
                .await?
            {
                Some(r) if r.status == "issued" => Part::split(r.amount, r.tax_free, Some(r.vat)),
                _ => Part::default(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Part;

    #[test]
    fn split_rounds_vat_and_keeps_the_total() {
        let p = Part::split(10_000, 0, None);
        assert_eq!((p.supply, p.vat), (9091, 909));
        assert_eq!(p.total(), 10_000);
        let p = Part::split(10_000, 4_000, None);
        assert_eq!((p.tax_free, p.supply, p.vat), (4000, 5455, 545));
        // 5000/11 = 454.5: the integer part.
        assert_eq!(Part::split(5000, 0, None).vat, 454);
        let p = Part::split(10_000, 0, Some(1000));
        assert_eq!((p.supply, p.vat), (9000, 1000));
        assert_eq!(Part::split(100, 500, Some(900)).total(), 100);
    }
}
