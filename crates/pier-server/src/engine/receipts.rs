//! Cash receipts (현금영수증): of a Pier payment made by account transfer or virtual account
//! (`/receipts/{imp_uid}`), and of a sale made outside Pier (`/receipts/external/{merchant_uid}`).
//!
//! The receipt number is made here, not by a PG connector: none of Pier's PGs (the in-process
//! test PG, pgsim, the Toss connector) has a cash-receipt API, and a `Pg` trait method that every
//! connector would have to fake is no cleaner than one deterministic generator. `receipt_tid`
//! and `apply_num` are derived with the server's keyed hash from the merchant, the receipt's
//! subject and its time, so they are stable for a given receipt and unguessable across merchants.
//!
//! The identifier (phone, business or resident registration number, NTS card) is personal data:
//! it is checked, masked (`mask_identifier`) and only the masked form is stored; it never appears
//! in an answer, an error message or a log line.

use super::balance::Part;
use super::{Engine, Error, Result};
use pier_domain::PaymentStatus;
use pier_store::{CashReceipt, Payment, StoreError};

/// Digits an identifier may have once hyphens and spaces are removed: 10 (business number,
/// landline) to 18 (NTS cash-receipt card numbers are 13–18 digits).
pub const IDENTIFIER_MIN_DIGITS: usize = 10;
pub const IDENTIFIER_MAX_DIGITS: usize = 18;
/// Longest identifier accepted as typed (digits plus separators).
pub const IDENTIFIER_MAX_CHARS: usize = 24;

pub const KIND_PAYMENT: &str = "payment";
pub const KIND_EXTERNAL: &str = "external";

/// What the merchant asks for; the amount of a payment's receipt is what remains of it.
#[derive(Clone, Default)]
pub struct ReceiptInput {
    pub identifier: String,
    pub identifier_type: Option<String>,
    /// `person` (default) or `company`.
    pub receipt_type: Option<String>,
    pub tax_free: Option<i64>,
    pub vat_amount: Option<i64>,
    /// External receipts only.
    pub amount: Option<i64>,
    pub name: Option<String>,
    pub pay_method: Option<String>,
}

impl std::fmt::Debug for ReceiptInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The identifier is personal data: never printed.
        f.debug_struct("ReceiptInput")
            .field("identifier", &"<redacted>")
            .field("receipt_type", &self.receipt_type)
            .field("amount", &self.amount)
            .finish_non_exhaustive()
    }
}

/// Checks an identifier and returns its masked form (first 3 and last 4 digits kept).
pub fn mask_identifier(identifier: &str) -> Result<String> {
    let digits: String = identifier
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .collect();
    if !digits.chars().all(|c| c.is_ascii_digit())
        || !(IDENTIFIER_MIN_DIGITS..=IDENTIFIER_MAX_DIGITS).contains(&digits.len())
    {
        return Err(Error::Invalid(format!(
            "identifier must be {IDENTIFIER_MIN_DIGITS} to {IDENTIFIER_MAX_DIGITS} digits (hyphens allowed)"
        )));
    }
    let n = digits.len();
    Ok(digits
        .chars()
        .enumerate()
        .map(|(i, c)| if i < 3 || i >= n - 4 { c } else { '*' })
        .collect())
}

fn not_found_receipt() -> Error {
    Error::NotFound(
        "현금영수증 발급 내역이 존재하지 않습니다. (no cash receipt was issued for this)".into(),
    )
}

impl Engine {
    fn new_receipt(
        &self,
        merchant_id: &str,
        kind: &str,
        key: &str,
        input: &ReceiptInput,
        amount: i64,
    ) -> Result<CashReceipt> {
        let identifier_masked = mask_identifier(&input.identifier)?;
        let receipt_type = input
            .receipt_type
            .clone()
            .unwrap_or_else(|| "person".into());
        if !matches!(receipt_type.as_str(), "person" | "company") {
            return Err(Error::Invalid("type must be person or company".into()));
        }
        if let Some(t) = &input.identifier_type {
            if !matches!(t.as_str(), "person" | "business" | "phone" | "taxcard") {
                return Err(Error::Invalid(
                    "identifier_type must be person, business, phone or taxcard".into(),
                ));
            }
        }
        let tax_free = input.tax_free.unwrap_or(0);
        if tax_free > amount {
            return Err(Error::Invalid(
                "tax_free must not exceed the receipt amount".into(),
            ));
        }
        if input.vat_amount.is_some_and(|v| v > amount - tax_free) {
            return Err(Error::Invalid(
                "vat_amount must not exceed the taxable amount".into(),
            ));
        }
        let part = Part::split(amount, tax_free, input.vat_amount);
        let now = self.now();
        let h = self
            .auth
            .keyed_hash(format!("cash receipt\n{merchant_id}\n{kind}\n{key}\n{now}").as_bytes());
        let receipt_tid = format!("TPGCR{}", h[..20].to_ascii_uppercase());
        // 9 decimal digits, like a PG approval number, from the same hash.
        let apply_num = format!(
            "{:09}",
            u64::from_str_radix(&h[20..36], 16).unwrap_or(0) % 1_000_000_000
        );
        Ok(CashReceipt {
            receipt_id: format!("rcp_{}", pier_domain::ids::random_hex(12)),
            merchant_id: merchant_id.to_owned(),
            kind: kind.to_owned(),
            imp_uid: None,
            merchant_uid: String::new(),
            receipt_url: format!("/testpg/cash-receipts/{receipt_tid}"),
            receipt_tid,
            apply_num,
            receipt_type,
            identifier_masked,
            identifier_type: input.identifier_type.clone(),
            name: input.name.clone(),
            pay_method: input.pay_method.clone(),
            amount,
            vat: part.vat,
            tax_free,
            status: "issued".into(),
            applied_at: now,
            cancelled_at: 0,
        })
    }

    async fn insert_receipt(&self, r: &CashReceipt) -> Result<()> {
        match self.store.insert_receipt(r).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(Error::Invalid(
                "이미 현금영수증이 발급되었습니다. (a cash receipt is already issued; cancel it first)".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// `POST /receipts/{imp_uid}`: a paid transfer or virtual-account payment.
    pub async fn issue_payment_receipt(
        &self,
        merchant_id: &str,
        imp_uid: &str,
        input: ReceiptInput,
    ) -> Result<CashReceipt> {
        let p = self.payment_by_uid(merchant_id, imp_uid).await?;
        if !matches!(p.pay_method.as_deref(), Some("trans" | "vbank")) {
            return Err(Error::Invalid(format!(
                "현금영수증은 계좌이체·가상계좌 결제건에만 발급할 수 있습니다. (cash receipts are for trans or vbank payments; this one is {})",
                p.pay_method.as_deref().unwrap_or("unknown")
            )));
        }
        let remaining = p.amount - p.cancel_amount;
        if p.status != PaymentStatus::Paid || p.paid_at == 0 || remaining <= 0 {
            return Err(Error::Invalid(
                "결제완료(paid) 상태의 결제건이 아닙니다. (the payment is not paid)".into(),
            ));
        }
        let mut r = self.new_receipt(merchant_id, KIND_PAYMENT, imp_uid, &input, remaining)?;
        r.imp_uid = Some(p.imp_uid.clone());
        r.merchant_uid = p.merchant_uid.clone();
        r.pay_method = p.pay_method.clone();
        r.name = p.name.clone();
        self.insert_receipt(&r).await?;
        Ok(r)
    }

    pub async fn get_payment_receipt(
        &self,
        merchant_id: &str,
        imp_uid: &str,
    ) -> Result<CashReceipt> {
        self.payment_by_uid(merchant_id, imp_uid).await?;
        self.store
            .find_receipt(merchant_id, KIND_PAYMENT, imp_uid)
            .await?
            .ok_or_else(not_found_receipt)
    }

    pub async fn cancel_payment_receipt(
        &self,
        merchant_id: &str,
        imp_uid: &str,
    ) -> Result<CashReceipt> {
        self.payment_by_uid(merchant_id, imp_uid).await?;
        let r = self
            .store
            .find_receipt(merchant_id, KIND_PAYMENT, imp_uid)
            .await?;
        self.cancel_found(merchant_id, r, || {
            Error::Invalid("현금영수증이 발급된 적 없는 결제건입니다. (no cash receipt was issued for this payment)".into())
        })
        .await
    }

    async fn cancel_found(
        &self,
        merchant_id: &str,
        r: Option<CashReceipt>,
        none: impl FnOnce() -> Error,
    ) -> Result<CashReceipt> {
        let r = r.ok_or_else(none)?;
        if r.status != "issued" {
            return Err(Error::Invalid(
                "이미 취소된 현금영수증입니다. (the cash receipt is already cancelled)".into(),
            ));
        }
        self.store
            .cancel_receipt(merchant_id, &r.receipt_id, self.now())
            .await?
            .ok_or_else(|| {
                Error::Invalid(
                    "이미 취소된 현금영수증입니다. (the cash receipt is already cancelled)".into(),
                )
            })
    }

    /// `POST /receipts/external/{merchant_uid}`.
    pub async fn issue_external_receipt(
        &self,
        merchant_id: &str,
        merchant_uid: &str,
        input: ReceiptInput,
    ) -> Result<CashReceipt> {
        let amount = input
            .amount
            .ok_or_else(|| Error::Invalid("amount is required".into()))?;
        // The merchant must have a channel to issue through (channel_key names one in i'mport;
        // Pier issues through the merchant's default channel).
        self.select_channel(merchant_id, None).await?;
        let mut r = self.new_receipt(merchant_id, KIND_EXTERNAL, merchant_uid, &input, amount)?;
        r.merchant_uid = merchant_uid.to_owned();
        self.insert_receipt(&r).await?;
        Ok(r)
    }

    pub async fn get_external_receipt(
        &self,
        merchant_id: &str,
        merchant_uid: &str,
    ) -> Result<CashReceipt> {
        self.store
            .find_receipt(merchant_id, KIND_EXTERNAL, merchant_uid)
            .await?
            .ok_or_else(not_found_receipt)
    }

    pub async fn cancel_external_receipt(
        &self,
        merchant_id: &str,
        merchant_uid: &str,
    ) -> Result<CashReceipt> {
        let r = self
            .store
            .find_receipt(merchant_id, KIND_EXTERNAL, merchant_uid)
            .await?;
        self.cancel_found(merchant_id, r, not_found_receipt).await
    }

    /// A payment fully cancelled takes its cash receipt with it (the sale no longer exists).
    /// Called after the cancel is recorded; a failure here is logged and leaves the receipt
    /// issued for the merchant to cancel, never undoing the refund.
    pub(crate) async fn cancel_receipt_of_cancelled(&self, p: &mut Payment) {
        if !p.cash_receipt_issued || p.cancel_amount < p.amount {
            return;
        }
        let found = self
            .store
            .find_receipt(&p.merchant_id, KIND_PAYMENT, &p.imp_uid)
            .await;
        if let Ok(Some(r)) = found {
            if r.status == "issued" {
                match self
                    .store
                    .cancel_receipt(&p.merchant_id, &r.receipt_id, self.now())
                    .await
                {
                    Ok(_) => p.cash_receipt_issued = false,
                    Err(e) => {
                        tracing::warn!(imp_uid = %p.imp_uid, error = %e, "cash receipt not cancelled with its payment")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mask_identifier;

    #[test]
    fn identifiers_are_masked() {
        assert_eq!(mask_identifier("010-1234-5678").unwrap(), "010****5678");
        assert_eq!(mask_identifier("1234567890").unwrap(), "123***7890");
        assert!(mask_identifier("12345").is_err());
        assert!(mask_identifier("010-1234-567a").is_err());
    }
}
