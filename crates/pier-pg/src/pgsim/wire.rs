//! pgsim's wire format, shared by the server and `Client` (the "transformers" of this connector).
//!
//! Every call is a `POST` of one JSON object to a fixed path; nothing identifying a payment, and
//! never card data, goes into a URL. Every answer is an envelope tagged by `outcome`:
//!
//! | HTTP | body | meaning |
//! |---|---|---|
//! | 200 | `{"outcome":"ok","value":…}` | the PG's answer |
//! | 402 | `{"outcome":"declined","code","message"}` | refused after a real attempt (`Declined`) |
//! | 422 / 400 | `{"outcome":"rejected","code","message"}` | refused before any attempt (`Rejected`) |
//! | 503 | `{"outcome":"unavailable","message"}` | pgsim is down and processed nothing (`Unreachable`) |
//! | other | anything | outcome unknown |

use crate::{AuthBegin, AuthComplete, CancelRequest, CardData, Mid, Order, PgError, VbankRequest};
use pier_domain::{Birth, CardNumber, Expiry, Pwd2Digit};
use serde::{Deserialize, Serialize};
use std::fmt;

pub(crate) const APPROVE_KEYED: &str = "/v1/payments/keyed";
pub(crate) const PAY_WITH_KEY: &str = "/v1/payments/billing-key";
pub(crate) const ISSUE_BILLING_KEY: &str = "/v1/billing-keys";
pub(crate) const DELETE_BILLING_KEY: &str = "/v1/billing-keys/delete";
pub(crate) const CANCEL: &str = "/v1/cancels";
pub(crate) const INQUIRE: &str = "/v1/inquiries";
pub(crate) const NET_CANCEL: &str = "/v1/net-cancels";
pub(crate) const ISSUE_VBANK: &str = "/v1/vbanks";
pub(crate) const BEGIN_AUTH: &str = "/v1/auth/begin";
pub(crate) const COMPLETE_AUTH: &str = "/v1/auth/complete";

/// Card data on the wire. `Debug` is redacted; values are parsed back into the domain types (and
/// so re-validated) on arrival.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireCard {
    pub number: String,
    /// `YYYY-MM`.
    pub expiry: String,
    pub birth: Option<String>,
    pub pwd_2digit: Option<String>,
}

impl fmt::Debug for WireCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WireCard(<redacted>)")
    }
}

impl WireCard {
    pub fn from_card(card: &CardData) -> Self {
        Self {
            number: card.number.digits().to_owned(),
            expiry: format!("{:04}-{:02}", card.expiry.year, card.expiry.month),
            birth: card.birth.as_ref().map(|b| b.digits().to_owned()),
            pwd_2digit: card.pwd_2digit.as_ref().map(|p| p.digits().to_owned()),
        }
    }

    /// Parse back into card data. The error names the field but never echoes a value.
    pub fn into_card(self) -> Result<CardData, PgError> {
        let bad = |field: &str| PgError::Rejected {
            code: "INVALID_CARD_DATA".into(),
            message: format!("카드정보가 올바르지 않습니다. ({field})"),
        };
        Ok(CardData {
            number: CardNumber::parse(&self.number).map_err(|_| bad("card_number"))?,
            expiry: Expiry::parse(&self.expiry).map_err(|_| bad("expiry"))?,
            birth: self
                .birth
                .as_deref()
                .map(Birth::parse)
                .transpose()
                .map_err(|_| bad("birth"))?,
            pwd_2digit: self
                .pwd_2digit
                .as_deref()
                .map(Pwd2Digit::parse)
                .transpose()
                .map_err(|_| bad("pwd_2digit"))?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ApproveKeyed {
    pub mid: Mid,
    pub order: Order,
    pub card: WireCard,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct IssueBillingKey {
    pub mid: Mid,
    pub customer_uid: String,
    pub card: WireCard,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DeleteBillingKey {
    pub mid: Mid,
    pub billing_key: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PayWithKey {
    pub mid: Mid,
    pub order: Order,
    pub billing_key: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Cancel {
    pub mid: Mid,
    pub request: CancelRequest,
}

/// Inquiry and net-cancel both name one order.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct OrderRef {
    pub mid: Mid,
    pub order_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct IssueVbank {
    pub mid: Mid,
    pub request: VbankRequest,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BeginAuth {
    pub mid: Mid,
    pub request: AuthBegin,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CompleteAuth {
    pub mid: Mid,
    pub request: AuthComplete,
}

/// The envelope of every answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(crate) enum Reply<T> {
    Ok { value: T },
    Declined { code: String, message: String },
    Rejected { code: String, message: String },
    Unavailable { message: String },
}

/// An answer without a value (`delete_billing_key`, `net_cancel`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Done {}

/// `POST /admin/vbank/deposit`: one of `order_id` or `account_num`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DepositRequest {
    pub order_id: Option<String>,
    pub account_num: Option<String>,
    /// When given, must equal the order amount.
    pub amount_krw: Option<i64>,
}
