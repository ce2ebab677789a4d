//! The Toss Payments v1 JSON shapes that the connector sends and the simulator checks.
//!
//! Requests are strict (`deny_unknown_fields`): the simulator answers 400 `INVALID_REQUEST` to a
//! misspelt or unexpected field, so a connector typo fails a test instead of passing silently.
//! Answers are lenient: Toss adds fields over time (`version` dated objects), and a missing
//! optional field must not turn a known approval into an unreadable one.
//!
//! Request types hold card data and deliberately do not implement `Debug`.

use serde::{Deserialize, Serialize};

pub const KEY_IN: &str = "/v1/payments/key-in";
pub const BILLING_AUTH_CARD: &str = "/v1/billing/authorizations/card";
pub const VIRTUAL_ACCOUNTS: &str = "/v1/virtual-accounts";
pub const CONFIRM: &str = "/v1/payments/confirm";
pub const BILLING_AUTH_ISSUE: &str = "/v1/billing/authorizations/issue";

/// `POST /v1/payments/confirm`: approve a payment the buyer authenticated in Toss's window.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfirmRequest {
    pub payment_key: String,
    pub order_id: String,
    pub amount: i64,
}

/// `POST /v1/billing/authorizations/issue`: a billing key from the billing window's `authKey`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BillingIssueRequest {
    pub auth_key: String,
    pub customer_key: String,
}

/// `POST /v1/payments/key-in`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyInRequest {
    pub amount: i64,
    pub order_id: String,
    pub order_name: String,
    pub card_number: String,
    pub card_expiration_year: String,
    pub card_expiration_month: String,
    /// Birth date `YYMMDD` or business number; required when the merchant's contract says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_identity_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_installment_plan: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_free_amount: Option<i64>,
}

/// `POST /v1/billing/authorizations/card`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BillingAuthRequest {
    pub customer_key: String,
    pub card_number: String,
    pub card_expiration_year: String,
    pub card_expiration_month: String,
    /// Birth date `YYMMDD` or business number; required when the merchant's contract says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_identity_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_password: Option<String>,
}

/// `POST /v1/billing/{billingKey}`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BillingPayRequest {
    pub customer_key: String,
    pub amount: i64,
    pub order_id: String,
    pub order_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_free_amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_installment_plan: Option<i64>,
}

/// `POST /v1/payments/{paymentKey}/cancel`. Without `cancelAmount` the whole balance is cancelled.
/// No `Debug`: a virtual account's refund carries the buyer's account.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelBody {
    pub cancel_reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_free_amount: Option<i64>,
    /// Where a paid virtual account's money goes back (cancel guide, source E; the field names
    /// as in the community answer of source R).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_receive_account: Option<RefundReceiveAccount>,
}

/// `refundReceiveAccount`: Toss's two-character bank code, the number, the holder's name.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefundReceiveAccount {
    pub bank: String,
    pub account_number: String,
    pub holder_name: String,
}

/// `POST /v1/virtual-accounts`. `dueDate` and `validHours` are alternatives. No `Debug`: it
/// carries the buyer's name.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualAccountRequest {
    pub amount: i64,
    pub order_id: String,
    pub order_name: String,
    pub customer_name: String,
    pub bank: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_hours: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_free_amount: Option<i64>,
}

/// Toss's error object: every non-2xx answer carries one.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TossError {
    pub code: String,
    pub message: String,
}

/// The Payment object (the fields Pier reads, plus enough of the rest for the simulator to answer
/// in the documented shape).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Payment {
    pub m_id: String,
    pub version: String,
    pub payment_key: String,
    pub last_transaction_key: Option<String>,
    pub order_id: String,
    pub order_name: String,
    pub currency: String,
    pub method: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// READY, IN_PROGRESS, WAITING_FOR_DEPOSIT, DONE, CANCELED, PARTIAL_CANCELED, ABORTED, EXPIRED.
    pub status: String,
    pub requested_at: Option<String>,
    pub approved_at: Option<String>,
    pub total_amount: i64,
    pub balance_amount: i64,
    pub supplied_amount: i64,
    pub vat: i64,
    pub tax_free_amount: i64,
    pub card: Option<PaymentCard>,
    pub virtual_account: Option<VirtualAccount>,
    /// 계좌이체 (bank transfer) payments.
    pub transfer: Option<Transfer>,
    /// 휴대폰 (mobile phone) payments.
    pub mobile_phone: Option<MobilePhone>,
    pub cancels: Option<Vec<Cancel>>,
    pub receipt: Option<Receipt>,
    pub failure: Option<TossError>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct PaymentCard {
    pub amount: i64,
    /// Older API versions name the issuer in Korean here instead of `issuerCode`.
    pub company: Option<String>,
    pub issuer_code: Option<String>,
    pub acquirer_code: Option<String>,
    /// Masked by Toss.
    pub number: Option<String>,
    pub installment_plan_months: i64,
    pub approve_no: Option<String>,
    pub use_card_point: bool,
    /// 신용, 체크, 기프트, 미확인.
    pub card_type: Option<String>,
    /// 개인, 법인, 미확인.
    pub owner_type: Option<String>,
    pub acquire_status: Option<String>,
    pub is_interest_free: bool,
    /// Older API versions put the sales slip here; newer ones in `Payment.receipt`.
    pub receipt_url: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct VirtualAccount {
    pub account_type: Option<String>,
    pub account_number: String,
    /// Newer API versions; older ones name the bank in `bank`.
    pub bank_code: Option<String>,
    pub bank: Option<String>,
    pub customer_name: Option<String>,
    pub due_date: Option<String>,
    pub expired: bool,
    pub settlement_status: Option<String>,
    pub refund_status: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Transfer {
    pub bank_code: Option<String>,
    pub settlement_status: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct MobilePhone {
    /// Masked by Toss.
    pub customer_mobile_phone: Option<String>,
    pub settlement_status: Option<String>,
    pub receipt_url: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Cancel {
    pub transaction_key: Option<String>,
    pub cancel_reason: Option<String>,
    pub canceled_at: Option<String>,
    pub cancel_amount: i64,
    pub tax_free_amount: i64,
    pub refundable_amount: i64,
    pub cancel_status: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Receipt {
    pub url: Option<String>,
}

/// The answer to a billing-key issuance.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct BillingAuth {
    pub m_id: String,
    pub customer_key: String,
    pub authenticated_at: Option<String>,
    pub method: Option<String>,
    pub billing_key: String,
    pub card_company: Option<String>,
    pub card_number: Option<String>,
    pub card: Option<BillingCard>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct BillingCard {
    /// Older API versions name the issuer in Korean here instead of `issuerCode`.
    pub company: Option<String>,
    pub issuer_code: Option<String>,
    pub acquirer_code: Option<String>,
    pub number: Option<String>,
    pub card_type: Option<String>,
    pub owner_type: Option<String>,
}

/// Korea Standard Time, the offset Toss writes its timestamps in.
pub(crate) fn kst() -> chrono::FixedOffset {
    // `east_opt` only fails beyond ±24 h; +9 h is a constant within it.
    chrono::FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset")
}

#[cfg(test)]
mod tests {
    //! The field names the connector sends, checked against the names on Toss's pages (not
    //! against the simulator, which shares these types and so could not catch a typo).
    use super::*;

    fn keys<T: Serialize>(value: &T) -> Vec<String> {
        let mut k: Vec<String> = serde_json::to_value(value)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    }

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn request_field_names_are_tosss() {
        let s = || String::from("x");
        let key_in = KeyInRequest {
            amount: 1,
            order_id: s(),
            order_name: s(),
            card_number: s(),
            card_expiration_year: s(),
            card_expiration_month: s(),
            customer_identity_number: Some(s()),
            card_password: Some(s()),
            card_installment_plan: Some(2),
            tax_free_amount: Some(1),
        };
        // Key-in guide (docs/connectors/tosspayments.md, source C).
        assert_eq!(
            keys(&key_in),
            sorted(&[
                "amount",
                "orderId",
                "orderName",
                "cardNumber",
                "cardExpirationYear",
                "cardExpirationMonth",
                "customerIdentityNumber",
                "cardPassword",
                "cardInstallmentPlan",
                "taxFreeAmount",
            ])
        );
        // Billing guide example body (source D).
        let auth = BillingAuthRequest {
            customer_key: s(),
            card_number: s(),
            card_expiration_year: s(),
            card_expiration_month: s(),
            customer_identity_number: Some(s()),
            card_password: Some(s()),
        };
        assert_eq!(
            keys(&auth),
            sorted(&[
                "cardNumber",
                "cardExpirationYear",
                "cardExpirationMonth",
                "cardPassword",
                "customerIdentityNumber",
                "customerKey",
            ])
        );
        let pay = BillingPayRequest {
            customer_key: s(),
            amount: 1,
            order_id: s(),
            order_name: s(),
            customer_name: Some(s()),
            tax_free_amount: Some(1),
            card_installment_plan: Some(2),
        };
        assert_eq!(
            keys(&pay),
            sorted(&[
                "customerKey",
                "amount",
                "orderId",
                "orderName",
                "customerName",
                "taxFreeAmount",
                "cardInstallmentPlan",
            ])
        );
        // Cancel guide (source E).
        let cancel = CancelBody {
            cancel_reason: s(),
            cancel_amount: Some(1),
            tax_free_amount: Some(0),
            refund_receive_account: None,
        };
        assert_eq!(
            keys(&cancel),
            sorted(&["cancelReason", "cancelAmount", "taxFreeAmount"])
        );
        let refund = RefundReceiveAccount {
            bank: s(),
            account_number: s(),
            holder_name: s(),
        };
        assert_eq!(
            keys(&refund),
            sorted(&["bank", "accountNumber", "holderName"])
        );
        // Virtual-account guide (source G).
        let va = VirtualAccountRequest {
            amount: 1,
            order_id: s(),
            order_name: s(),
            customer_name: s(),
            bank: s(),
            due_date: Some(s()),
            valid_hours: Some(1),
            tax_free_amount: Some(0),
        };
        assert_eq!(
            keys(&va),
            sorted(&[
                "amount",
                "orderId",
                "orderName",
                "customerName",
                "bank",
                "dueDate",
                "validHours",
                "taxFreeAmount",
            ])
        );
    }
}
