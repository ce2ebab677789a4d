//! What the window flow is about: the validated request, its refusals and their codes.

use crate::engine::charge::{Buyer, MSG_UNKNOWN};
use pier_domain::{Amount, AmountPart, CustomerUid, MerchantUid};
use pier_pg::PgError;
use pier_store::StoreError;
use std::time::Duration;

/// A storage error met by a window: logged, answered as `F503` (nothing was recorded; the buyer
/// may retry), never as a parameter error.
pub(crate) fn store_err(e: StoreError) -> WindowError {
    tracing::error!(error = %e, "store error in a window");
    WindowError::new(
        codes::UNAVAILABLE,
        "일시적인 오류입니다. 잠시 후 다시 시도해주세요. (storage temporarily unavailable)",
    )
}

/// Error codes of the window flow (the PG's own codes pass through unchanged).
pub mod codes {
    /// `IMP.init` was given a userCode no merchant has.
    pub const UNKNOWN_MERCHANT: &str = "F0001";
    /// A `request_pay` parameter is missing or malformed.
    pub const INVALID_PARAM: &str = "F1000";
    /// `pg` names no channel of the merchant.
    pub const UNKNOWN_PG: &str = "F1001";
    /// The merchant_uid was already paid.
    pub const ALREADY_PAID: &str = "F1002";
    /// Another attempt for the merchant_uid is at the PG.
    pub const IN_PROGRESS: &str = "F1003";
    /// The amount differs from the one registered with `POST /payments/prepare`.
    pub const PREPARED_MISMATCH: &str = "F1004";
    /// The page's origin is not among the merchant's allowed origins.
    pub const ORIGIN_NOT_ALLOWED: &str = "F1005";
    /// The merchant's `confirm_url` refused the payment.
    pub const CONFIRM_REFUSED: &str = "F1006";
    /// The window session expired or is unknown.
    pub const SESSION_EXPIRED: &str = "F1007";
    /// The buyer closed or cancelled the window.
    pub const USER_CANCEL: &str = "F400";
    /// The PG's answer is unknown; Pier reconciles it.
    pub const PG_UNKNOWN: &str = "F500";
    /// Pier's storage could not take the request; nothing was recorded, the buyer may retry.
    pub const UNAVAILABLE: &str = "F503";
}

pub const MSG_USER_CANCEL: &str = "사용자가 결제를 취소하였습니다";
/// Fail reason of a window attempt that ran past its expiry (`Config::checkout_ttl_secs`), in
/// the window or by the retention job.
pub const MSG_WINDOW_EXPIRED: &str = "결제 가능 시간이 지났습니다. (the window expired)";
/// `confirm_url` deadline (spec §5.4).
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
pub const PAY_METHODS: &[&str] = &["card", "trans", "phone", "vbank"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowMode {
    Iframe,
    Popup,
    Redirect,
}

impl WindowMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Iframe => "iframe",
            Self::Popup => "popup",
            Self::Redirect => "redirect",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "iframe" => Some(Self::Iframe),
            "popup" => Some(Self::Popup),
            "redirect" => Some(Self::Redirect),
            _ => None,
        }
    }
}

/// A validated `request_pay`.
#[derive(Clone, Debug)]
pub struct WindowRequest {
    pub imp_code: String,
    pub mode: WindowMode,
    pub mobile: bool,
    pub user_agent: Option<String>,
    pub parent_origin: Option<String>,
    pub pay_method: String,
    pub pg: Option<String>,
    pub merchant_uid: MerchantUid,
    /// `None` (0 on the wire) only with `customer_uid` (billing key only).
    pub amount: Option<Amount>,
    pub tax_free: AmountPart,
    pub vat_amount: Option<AmountPart>,
    pub name: Option<String>,
    pub buyer: Buyer,
    pub custom_data: Option<String>,
    pub notice_urls: Vec<String>,
    pub customer_uid: Option<CustomerUid>,
    pub customer_id: Option<String>,
    pub m_redirect_url: Option<String>,
    pub confirm_url: Option<String>,
    /// `card.detail` as `(card_code, enabled)` in order.
    pub card_detail: Vec<(String, bool)>,
    /// `display.card_quota`: `None` = the PG's default list.
    pub card_quota: Option<Vec<i64>>,
    /// `escrow: true`: an escrow payment (delivery information via `/escrows/logis/{imp_uid}`).
    pub escrow: bool,
}

/// A refusal before or during the window, as the callback sees it.
#[derive(Clone, Debug)]
pub struct WindowError {
    pub code: String,
    pub message: String,
    pub imp_uid: Option<String>,
}

impl WindowError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            imp_uid: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct WindowOpened {
    pub imp_uid: String,
    /// The page origin the answer may be read by (CORS) when the merchant has allowed origins;
    /// `None` = any.
    pub cors_origin: Option<String>,
    pub checkout_id: String,
    pub window_url: String,
}

/// The code and message a PG error shows in the window.
pub(super) fn pg_error_parts(e: &PgError) -> (String, String) {
    match e {
        PgError::Declined { code, message } | PgError::Rejected { code, message } => {
            (code.clone(), message.clone())
        }
        PgError::Unknown(_) => (codes::PG_UNKNOWN.into(), MSG_UNKNOWN.into()),
        PgError::Unreachable(_) => (
            codes::PG_UNKNOWN.into(),
            "PG사 연결에 실패하였습니다. (PG unreachable; no payment was made)".into(),
        ),
    }
}
