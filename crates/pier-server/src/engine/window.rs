//! The payment window behind the browser SDK (`IMP.request_pay`).
//!
//! 1. `open_window` (POST /checkout/prepare): pre-validation that needs the database (merchant,
//!    origin, merchant_uid already paid, prepared amount, channel), then the attempt is inserted
//!    `ready` *without* the merchant_uid guard (a window may be abandoned), the PG's window
//!    session is begun (`Pg::begin_auth`, deadline, no transaction) and the checkout session row
//!    is stored.
//! 2. The buyer authenticates on the PG's pages; the PG window sends the browser back to
//!    `/checkout/return/{id}`.
//! 3. `window_return`: the merchant_uid guard is taken (`lock_for_pg`), the merchant's
//!    `confirm_url` is asked, the PG approves server-to-server (`Pg::complete_auth`, spawned
//!    task, deadline) and the answer is recorded with its webhook row in one transaction.
//!
//! The result object handed to the callback (or merged into `m_redirect_url`) is built from the
//! recorded payment, so what the browser sees is what the REST API answers.

use super::charge::{
    order_of, Buyer, FIRST_RECONCILE_DELAY_SECS, MSG_ALREADY_PAID, MSG_IN_PROGRESS, MSG_UNKNOWN,
};
use super::{Engine, Error, Result};
use crate::outbound::Outbound;
use pier_domain::PaymentStatus;
use pier_domain::{CustomerUid, MerchantUid};
use pier_pg::{AuthBegin, AuthComplete, AuthOutcome, Mid, PgError};
use pier_store::{CheckoutSession, Customer, Payment, Settlement, StoreError, VbankIssue};
use serde_json::{json, Value};
use std::sync::Arc;
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
    /// 0 only with `customer_uid` (billing key only).
    pub amount: i64,
    pub tax_free: i64,
    pub vat_amount: Option<i64>,
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

impl Engine {
    /// Public base URL of this server (window pages, return URLs).
    pub fn public_base(&self) -> String {
        self.cfg
            .public_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("http://{}", self.cfg.listen))
    }

    /// The merchant's allowed origins; `None` = unset, any origin (see `engine/origins.rs`).
    pub fn allowed_origins(m: &pier_store::Merchant) -> Option<Vec<String>> {
        super::origins::stored_origins(m)
    }

    /// The value of the cookie that binds a redirect-mode window to the browser that opened it
    /// (`GET /checkout/window/{id}` sets it): without allowed origins an `m_redirect_url` is
    /// unchecked, so the result is redirected there only for that browser.
    pub fn redirect_binding(&self, checkout_id: &str) -> String {
        let mac = self.hash_secret(&format!("pier-checkout-redirect:{checkout_id}"));
        // 128 bits of the HMAC are plenty for a value an attacker must guess per window.
        mac.chars().take(32).collect()
    }

    /// The merchant an SDK window names by its `userCode` (payment and certification windows).
    pub(crate) async fn window_merchant(
        &self,
        imp_code: &str,
    ) -> std::result::Result<pier_store::Merchant, WindowError> {
        match self.store.get_merchant(imp_code).await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(WindowError::new(
                codes::UNKNOWN_MERCHANT,
                format!("등록되지 않은 가맹점 식별코드입니다. (unknown userCode {imp_code:?})"),
            )),
            Err(e) => Err(store_err(e)),
        }
    }

    pub async fn open_window(
        self: &Arc<Self>,
        req: WindowRequest,
    ) -> std::result::Result<WindowOpened, WindowError> {
        let merchant = self.window_merchant(&req.imp_code).await?;
        let allowed = Self::allowed_origins(&merchant);
        super::origins::gate_window(allowed.as_deref(), &req)?;
        if let Some(u) = &req.confirm_url {
            if !self.cfg.webhook_allow_private && is_private_target(u) {
                return Err(WindowError::new(
                    codes::INVALID_PARAM,
                    "confirm_url must be a public address (this server refuses loopback/private targets)",
                ));
            }
        }
        let mid = merchant.imp_code.clone();
        let uid = req.merchant_uid.as_str();
        if let Some(h) = self
            .store
            .locked_payment(&mid, uid)
            .await
            .map_err(store_err)?
        {
            return Err(if h.status == PaymentStatus::Ready {
                WindowError::new(codes::IN_PROGRESS, MSG_IN_PROGRESS)
            } else {
                WindowError::new(codes::ALREADY_PAID, MSG_ALREADY_PAID)
            });
        }
        if let Err(e) = self.check_prepared(&mid, uid, req.amount).await {
            return Err(WindowError::new(codes::PREPARED_MISMATCH, e.to_string()));
        }
        let channel = self
            .select_channel(&mid, req.pg.as_deref())
            .await
            .map_err(|e| WindowError::new(codes::UNKNOWN_PG, e.to_string()))?;

        let order = super::attempt::Order {
            merchant_uid: uid,
            amount: req.amount,
            currency: None,
            tax_free: req.tax_free,
            vat_amount: req.vat_amount,
            name: &req.name,
            buyer: &req.buyer,
            custom_data: &req.custom_data,
            notice_urls: &req.notice_urls,
            escrow: req.escrow,
            card_quota: 0,
        };
        let flow = super::attempt::Flow::Window {
            pay_method: &req.pay_method,
            mobile: req.mobile,
            user_agent: &req.user_agent,
            issues_key: req.customer_uid.as_ref().map(|c| c.as_str()),
        };
        let now = self.now();
        let p = super::attempt::attempt(
            pier_domain::ImpUid::generate().into_string(),
            &mid,
            &order,
            &flow,
            Some(&channel),
            now,
        );
        self.store.insert_payment(&p).await.map_err(store_err)?;
        let imp_uid = p.imp_uid.clone();
        let with_uid = |mut e: WindowError| {
            e.imp_uid = Some(imp_uid.clone());
            e
        };

        let checkout_id = pier_domain::ids::random_hex(16);
        let base = self.public_base();
        let begin = AuthBegin {
            order: order_of(&p),
            pay_method: req.pay_method.clone(),
            issue_billing_key: req.customer_uid.is_some(),
            return_url: format!("{base}/checkout/return/{checkout_id}"),
            display: pier_pg::WindowDisplay {
                card_detail: req.card_detail.clone(),
                card_quota: req.card_quota.clone(),
            },
        };
        let pg = self.pgs.for_channel(&channel);
        let deadline = self.cfg.pg_deadline + Duration::from_secs(1);
        let begun = super::pg_call(
            "begin_auth",
            deadline,
            pg.begin_auth(&Mid(channel.mid.clone()), &begin),
        )
        .await;
        let session = match begun {
            Ok(s) => s,
            Err(e) => {
                let (code, msg) = pg_error_parts(&e);
                let reason = format!("[{code}] {msg}");
                if let Err(se) = self.store.fail_before_pg(&imp_uid, &reason, now).await {
                    tracing::error!(error = %se, %imp_uid, "recording a refused window");
                }
                return Err(with_uid(WindowError::new(&code, msg)));
            }
        };
        let c = CheckoutSession {
            id: checkout_id.clone(),
            imp_uid: imp_uid.clone(),
            merchant_id: mid,
            mode: req.mode.as_str().into(),
            parent_origin: req.parent_origin.clone(),
            m_redirect_url: req.m_redirect_url.clone(),
            confirm_url: req.confirm_url.clone(),
            customer_id: req.customer_id.clone(),
            pg_session_id: session.auth_session_id.clone(),
            pg_window_url: match &session.browser_call {
                // Opened by the PG's script on Pier's page (`/checkout/window/{id}`).
                Some(call) => format!(
                    "{}{}",
                    super::pg_window::CALL_PREFIX,
                    serde_json::to_string(call).unwrap_or_default()
                ),
                None => with_display(&session.redirect_url, &req),
            },
            state: "open".into(),
            result: None,
            created_at: now,
            expires_at: now + self.cfg.checkout_ttl_secs,
            updated_at: now,
        };
        self.store
            .insert_checkout(&c)
            .await
            .map_err(|e| with_uid(store_err(e)))?;
        Ok(WindowOpened {
            imp_uid,
            cors_origin: allowed.and(req.parent_origin.clone()),
            window_url: format!("{base}/checkout/window/{checkout_id}"),
            checkout_id,
        })
    }

    pub async fn checkout(&self, id: &str) -> Result<CheckoutSession> {
        if id.len() > 64 {
            return Err(Error::NotFound("결제창 정보가 존재하지 않습니다.".into()));
        }
        self.store
            .get_checkout(id)
            .await?
            .ok_or_else(|| Error::NotFound("결제창 정보가 존재하지 않습니다.".into()))
    }

    /// The PG window sent the browser back. Runs detached so the attempt gets its record even if
    /// the browser goes away.
    pub async fn window_return(
        self: &Arc<Self>,
        checkout_id: &str,
        auth_session_id: &str,
        auth_token: Option<String>,
        pg_params: Vec<(String, String)>,
    ) -> Result<(CheckoutSession, Value)> {
        let c = self.checkout(checkout_id).await?;
        if let Some(r) = stored_result(&c) {
            return Ok((c, r));
        }
        // Constant time: the session id is the window's capability.
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            auth_session_id.as_bytes(),
            c.pg_session_id.as_bytes(),
        )) {
            return Err(Error::Invalid(
                "auth_session_id does not match this window".into(),
            ));
        }
        let this = self.clone();
        let task = tokio::spawn(async move {
            let result = this.complete_window(&c, auth_token, pg_params).await?;
            this.finish(&c, result).await
        });
        match task.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "window task failed");
                Err(Error::Unavailable(
                    "결제 처리 중 오류가 발생했습니다. (internal error)".into(),
                ))
            }
        }
    }

    /// The buyer closed the window from the merchant page (SDK close button, `IMP.close()`,
    /// popup closed).
    pub async fn cancel_window(&self, checkout_id: &str) -> Result<(CheckoutSession, Value)> {
        let c = self.checkout(checkout_id).await?;
        if let Some(r) = stored_result(&c) {
            return Ok((c, r));
        }
        let now = self.now();
        match self
            .store
            .fail_before_pg(&c.imp_uid, MSG_USER_CANCEL, now)
            .await?
        {
            Some(p) => {
                let r = result_of(&p, Some((codes::USER_CANCEL, MSG_USER_CANCEL)));
                self.finish(&c, r).await
            }
            None => {
                // The PG call is already under way or recorded: report where it stands.
                let p = self.payment_of(&c).await?;
                let r = match p.status {
                    PaymentStatus::Ready if p.vbank_num.is_none() => {
                        result_of(&p, Some((codes::IN_PROGRESS, MSG_IN_PROGRESS)))
                    }
                    PaymentStatus::Failed => {
                        let reason = p.fail_reason.clone().unwrap_or_default();
                        result_of(&p, Some((codes::USER_CANCEL, &reason)))
                    }
                    _ => result_of(&p, None),
                };
                Ok((c, r))
            }
        }
    }

    pub(super) async fn payment_of(&self, c: &CheckoutSession) -> Result<Payment> {
        self.store
            .get_payment(Some(&c.merchant_id), &c.imp_uid)
            .await?
            .ok_or_else(|| Error::NotFound("결제건이 존재하지 않습니다.".into()))
    }

    async fn finish(&self, c: &CheckoutSession, result: Value) -> Result<(CheckoutSession, Value)> {
        let now = self.now();
        let text = result.to_string();
        if self.store.finish_checkout(&c.id, &text, now).await? {
            let mut done = c.clone();
            done.state = "done".into();
            done.result = Some(text);
            return Ok((done, result));
        }
        // Someone else finished it first: theirs is the answer.
        let c2 = self.checkout(&c.id).await?;
        let r = stored_result(&c2).unwrap_or(result);
        Ok((c2, r))
    }

    async fn complete_window(
        self: &Arc<Self>,
        c: &CheckoutSession,
        auth_token: Option<String>,
        pg_params: Vec<(String, String)>,
    ) -> Result<Value> {
        let now = self.now();
        let auth_token = match auth_token.filter(|t| !t.is_empty()) {
            Some(t) => Some(t),
            None if pg_params.is_empty() => None,
            // The PG's own return parameters (Toss): its connector reads them.
            None => match self.read_pg_return(c, &pg_params).await? {
                Ok(token) => token,
                Err(failed) => return Ok(failed),
            },
        };
        let Some(token) = auth_token else {
            // The buyer cancelled in the PG window.
            return Ok(
                match self
                    .store
                    .fail_before_pg(&c.imp_uid, MSG_USER_CANCEL, now)
                    .await?
                {
                    Some(p) => result_of(&p, Some((codes::USER_CANCEL, MSG_USER_CANCEL))),
                    None => self.current_result(c).await?,
                },
            );
        };
        if now > c.expires_at {
            let msg = MSG_WINDOW_EXPIRED;
            return Ok(
                match self.store.fail_before_pg(&c.imp_uid, msg, now).await? {
                    Some(p) => result_of(&p, Some((codes::SESSION_EXPIRED, msg))),
                    None => self.current_result(c).await?,
                },
            );
        }
        let p = match self.store.lock_for_pg(&c.imp_uid, now).await {
            Ok(p) => p,
            Err(StoreError::Conflict(_)) => {
                // Another attempt holds (or paid) the merchant_uid: this one must not charge.
                let holder = self
                    .store
                    .locked_payment(&c.merchant_id, &self.payment_of(c).await?.merchant_uid)
                    .await?;
                let (code, msg) = match holder {
                    Some(h) if h.status == PaymentStatus::Ready => {
                        (codes::IN_PROGRESS, MSG_IN_PROGRESS)
                    }
                    _ => (codes::ALREADY_PAID, MSG_ALREADY_PAID),
                };
                return Ok(
                    match self.store.fail_before_pg(&c.imp_uid, msg, now).await? {
                        Some(p) => result_of(&p, Some((code, msg))),
                        None => self.current_result(c).await?,
                    },
                );
            }
            Err(StoreError::Stale(_)) => return self.current_result(c).await,
            Err(e) => return Err(e.into()),
        };
        if let Some(url) = &c.confirm_url {
            if let Err(reason) = self.ask_confirm_url(url, &p).await {
                let text = format!("confirm_url 응답 거절: {reason}");
                let failed = self
                    .store
                    .settle(
                        &p.imp_uid,
                        &Settlement::Failed {
                            reason: text.clone(),
                            failed_at: now,
                        },
                        now,
                        &[],
                    )
                    .await?;
                return Ok(result_of(&failed, Some((codes::CONFIRM_REFUSED, &text))));
            }
        }
        let channel = match &p.channel_id {
            Some(id) => self.store.get_channel(id).await?,
            None => None,
        }
        .ok_or_else(|| Error::Unavailable("the payment's channel is gone".into()))?;
        let pg = self.pgs.for_channel(&channel);
        let req = AuthComplete {
            order: order_of(&p),
            auth_session_id: c.pg_session_id.clone(),
            auth_token: token,
            params: pg_params,
        };
        let deadline = self.cfg.pg_deadline + Duration::from_secs(1);
        let answer = super::pg_call(
            "complete_auth",
            deadline,
            pg.complete_auth(&Mid(channel.mid.clone()), &req),
        )
        .await;
        let now = self.now();
        match answer {
            Ok(AuthOutcome::Paid(a)) => {
                let paid = self.settle_paid(&p, &a).await?;
                if let (Some(key), Some(uid)) = (&a.billing_key, &p.customer_uid) {
                    self.store_window_key(
                        &p,
                        &channel,
                        c,
                        uid,
                        key,
                        &a.card_code,
                        &a.card_name,
                        &a.card_number,
                        a.card_type,
                    )
                    .await?;
                }
                Ok(result_of(&paid, None))
            }
            Ok(AuthOutcome::BillingKeyOnly(k)) => {
                if let Some(uid) = &p.customer_uid {
                    self.store_window_key(
                        &p,
                        &channel,
                        c,
                        uid,
                        &k.billing_key,
                        &k.card_code,
                        &k.card_name,
                        &k.card_number,
                        k.card_type,
                    )
                    .await?;
                }
                // Key only: recorded as a paid attempt of 0 KRW (customer_uid_usage "issue").
                let a = pier_pg::Approval {
                    pg_tid: format!("bk_{}", c.pg_session_id),
                    approved_at: now,
                    card_code: k.card_code.clone(),
                    card_name: k.card_name.clone(),
                    card_number: k.card_number.clone(),
                    card_type: k.card_type,
                    ..Default::default()
                };
                let paid = self.settle_paid(&p, &a).await?;
                Ok(result_of(&paid, None))
            }
            Ok(AuthOutcome::Vbank(v)) => {
                let issue = VbankIssue {
                    pg_tid: v.pg_tid,
                    vbank_code: v.bank_code,
                    vbank_name: v.bank_name,
                    vbank_num: v.account_num,
                    vbank_holder: v.holder,
                    vbank_date: v.due_unix,
                    vbank_issued_at: if v.issued_at > 0 { v.issued_at } else { now },
                };
                let ev = self.event_for(&p, PaymentStatus::Ready, None);
                let issued = self
                    .store
                    .record_vbank_issued(&p.imp_uid, &issue, now, &[ev])
                    .await?;
                Ok(result_of(&issued, None))
            }
            Err(PgError::Unknown(why)) => {
                tracing::warn!(imp_uid = %p.imp_uid, %why, "window approval outcome unknown; left for the reconciler");
                let s = Settlement::Unknown {
                    told_failed: false,
                    next_reconcile_at: now + FIRST_RECONCILE_DELAY_SECS,
                };
                let row = self.store.settle(&p.imp_uid, &s, now, &[]).await?;
                Ok(result_of(&row, Some((codes::PG_UNKNOWN, MSG_UNKNOWN))))
            }
            Err(e) => {
                let (code, msg) = pg_error_parts(&e);
                let (code, msg) = if code == "USER_CANCELLED" {
                    (codes::USER_CANCEL.to_owned(), MSG_USER_CANCEL.to_owned())
                } else {
                    (code, msg)
                };
                let failed = self
                    .store
                    .settle(
                        &p.imp_uid,
                        &Settlement::Failed {
                            reason: format!("[{code}] {msg}"),
                            failed_at: now,
                        },
                        now,
                        &[],
                    )
                    .await?;
                Ok(result_of(&failed, Some((&code, &msg))))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn store_window_key(
        &self,
        p: &Payment,
        channel: &pier_store::Channel,
        c: &CheckoutSession,
        customer_uid: &str,
        billing_key: &str,
        card_code: &Option<String>,
        card_name: &Option<String>,
        card_number: &Option<String>,
        card_type: Option<i64>,
    ) -> Result<()> {
        let now = self.now();
        let cust = Customer {
            merchant_id: p.merchant_id.clone(),
            customer_uid: customer_uid.to_owned(),
            channel_id: channel.id.clone(),
            pg_provider: channel.pg_provider.clone(),
            pg_id: channel.mid.clone(),
            sandbox: channel.sandbox,
            billing_key: billing_key.to_owned(),
            customer_id: c.customer_id.clone(),
            card_name: card_name.clone(),
            card_code: card_code.clone(),
            card_number: card_number.clone(),
            card_type,
            customer_name: p.buyer_name.clone(),
            customer_tel: p.buyer_tel.clone(),
            customer_email: p.buyer_email.clone(),
            customer_addr: p.buyer_addr.clone(),
            customer_postcode: p.buyer_postcode.clone(),
            inserted: now,
            updated: now,
        };
        self.store.upsert_customer(&cust).await?;
        Ok(())
    }

    pub(super) async fn current_result(&self, c: &CheckoutSession) -> Result<Value> {
        let p = self.payment_of(c).await?;
        Ok(match p.status {
            PaymentStatus::Paid | PaymentStatus::Cancelled => result_of(&p, None),
            PaymentStatus::Ready if p.vbank_num.is_some() => result_of(&p, None),
            PaymentStatus::Ready => result_of(&p, Some((codes::IN_PROGRESS, MSG_IN_PROGRESS))),
            _ => {
                let reason = p.fail_reason.clone().unwrap_or_default();
                let code = if reason == MSG_USER_CANCEL {
                    codes::USER_CANCEL
                } else {
                    codes::INVALID_PARAM
                };
                result_of(&p, Some((code, &reason)))
            }
        })
    }

    /// POSTs `imp_uid`, `merchant_uid`, `amount` to the merchant's confirm_url (10 s) through
    /// the outbound client. `Err` is the refusal reason shown to the buyer: the merchant's own
    /// `reason` when its allowed confirm_url answered non-200, else a generic text. Why a target
    /// was refused or failed (and anything it sent) goes to the server log only, so the
    /// anonymous caller who chose the URL learns nothing about internal hosts or ports.
    async fn ask_confirm_url(&self, url: &str, p: &Payment) -> std::result::Result<(), String> {
        const NO_ANSWER: &str = "unknown (confirm_url did not answer)";
        let client = match self.confirm_client.get() {
            Some(c) => c,
            None => match Outbound::new(
                self.cfg.webhook_connect_timeout.min(CONFIRM_TIMEOUT),
                CONFIRM_TIMEOUT,
                self.cfg.webhook_allow_private,
                "Pier-Confirm/1",
            ) {
                Ok(c) => self.confirm_client.get_or_init(|| c),
                Err(e) => {
                    tracing::error!(error = %e, "confirm_url client cannot be built");
                    return Err(NO_ANSWER.into());
                }
            },
        };
        let body =
            json!({"imp_uid": p.imp_uid, "merchant_uid": p.merchant_uid, "amount": p.amount});
        let headers = [("content-type", "application/json".to_owned())];
        match client
            .post(url, &headers, serde_json::to_vec(&body).unwrap_or_default())
            .await
        {
            Ok(a) if a.status == 200 => Ok(()),
            Ok(a) => {
                let body: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
                Err(body["reason"]
                    .as_str()
                    .map(|s| s.chars().take(200).collect())
                    .unwrap_or_else(|| format!("unknown (HTTP {})", a.status)))
            }
            Err(e) => {
                tracing::warn!(imp_uid = %p.imp_uid, error = %e, "confirm_url not answered");
                Err(NO_ANSWER.into())
            }
        }
    }
}

/// A URL the outbound client refuses without resolving it: not http(s), or a host that is a
/// forbidden address literal (in any spelling) or a `localhost` name. An early, friendlier
/// error at prepare time; names are checked address by address when the call is made.
fn is_private_target(u: &str) -> bool {
    crate::outbound::check_url(u, false).is_err()
}

fn stored_result(c: &CheckoutSession) -> Option<Value> {
    c.result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
}

fn pg_error_parts(e: &PgError) -> (String, String) {
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

/// The PG window URL with the display options of `request_pay` (not card data): `card_detail`
/// as `code:1|0` pairs in order, `card_quota` as a comma list (empty = lump sum only).
fn with_display(url: &str, req: &WindowRequest) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return url.to_owned();
    };
    {
        let mut q = u.query_pairs_mut();
        if !req.card_detail.is_empty() {
            let d: Vec<String> = req
                .card_detail
                .iter()
                .map(|(c, e)| format!("{c}:{}", if *e { 1 } else { 0 }))
                .collect();
            q.append_pair("card_detail", &d.join(","));
        }
        if let Some(quota) = &req.card_quota {
            let d: Vec<String> = quota.iter().map(|m| m.to_string()).collect();
            q.append_pair("card_quota", &d.join(","));
        }
    }
    u.to_string()
}

/// The callback object (spec §3) of a recorded payment; `error` for a failure.
pub fn result_of(p: &Payment, error: Option<(&str, &str)>) -> Value {
    let vbank_issued = p.status == PaymentStatus::Ready && p.vbank_num.is_some();
    let success = error.is_none() && (p.status == PaymentStatus::Paid || vbank_issued);
    let mut r = json!({
        "success": success,
        "imp_success": success,
        "imp_uid": p.imp_uid,
        "merchant_uid": p.merchant_uid,
        "pay_method": p.pay_method,
        "paid_amount": if p.status == PaymentStatus::Paid { p.amount } else { 0 },
        "currency": p.currency,
        "status": p.status,
        "name": p.name,
        "pg_provider": p.pg_provider,
        "pg_tid": p.pg_tid,
        "pg_type": "payment",
        "buyer_name": p.buyer_name,
        "buyer_email": p.buyer_email,
        "buyer_tel": p.buyer_tel,
        "buyer_addr": p.buyer_addr,
        "buyer_postcode": p.buyer_postcode,
        "custom_data": p.custom_data,
        "paid_at": p.paid_at,
        "receipt_url": p.receipt_url,
        "apply_num": p.apply_num,
        "card_name": p.card_name,
        "card_number": p.card_number,
        "card_quota": p.card_quota,
        "bank_name": p.bank_name,
        "vbank_num": p.vbank_num,
        "vbank_name": p.vbank_name,
        "vbank_holder": p.vbank_holder,
        "vbank_date": p.vbank_date,
        "error_code": Value::Null,
        "error_msg": Value::Null,
    });
    if let Some((code, msg)) = error {
        r["error_code"] = json!(code);
        r["error_msg"] = json!(msg);
    }
    r
}

/// The result of a request refused before any payment row existed (`imp_uid` null).
pub fn prevalidation_result(merchant_uid: Option<&str>, e: &WindowError) -> Value {
    json!({
        "success": false,
        "imp_success": false,
        "imp_uid": e.imp_uid,
        "merchant_uid": merchant_uid,
        "error_code": e.code,
        "error_msg": e.message,
    })
}

/// `m_redirect_url` with the result merged into its query (existing keys of ours replaced, the
/// merchant's own kept in order) and its fragment kept. `None` if it is not an http(s) URL.
pub fn merge_redirect(m_redirect_url: &str, result: &Value) -> Option<String> {
    let mut u = url::Url::parse(m_redirect_url).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    const OURS: &[&str] = &[
        "imp_uid",
        "merchant_uid",
        "imp_success",
        "error_code",
        "error_msg",
    ];
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| !OURS.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let text = |k: &str| match &result[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let success = result["success"].as_bool().unwrap_or(false);
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair("imp_uid", &text("imp_uid"));
        q.append_pair("merchant_uid", &text("merchant_uid"));
        q.append_pair("imp_success", if success { "true" } else { "false" });
        if !success {
            q.append_pair("error_code", &text("error_code"));
            q.append_pair("error_msg", &text("error_msg"));
        }
    }
    Some(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_merge_keeps_query_and_fragment() {
        let r = json!({"success": false, "imp_uid": "imp_1", "merchant_uid": "m 1", "error_code": "F400", "error_msg": "사용자가 결제를 취소하였습니다"});
        let u =
            merge_redirect("https://shop.example/done?orderId=7&imp_uid=old#result", &r).unwrap();
        let parsed = url::Url::parse(&u).unwrap();
        assert_eq!(parsed.fragment(), Some("result"));
        let q: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(a, b)| (a.into(), b.into()))
            .collect();
        assert_eq!(q[0], ("orderId".into(), "7".into()));
        assert!(q.contains(&("imp_uid".into(), "imp_1".into())));
        assert!(q.contains(&("merchant_uid".into(), "m 1".into())));
        assert!(q.contains(&("imp_success".into(), "false".into())));
        assert!(q.contains(&("error_msg".into(), MSG_USER_CANCEL.into())));
        assert_eq!(q.iter().filter(|(k, _)| k == "imp_uid").count(), 1);
        let ok = json!({"success": true, "imp_uid": "imp_2", "merchant_uid": "m2"});
        let s = merge_redirect("http://detectchangingwebview/iamport/rn", &ok).unwrap();
        assert_eq!(s, "http://detectchangingwebview/iamport/rn?imp_uid=imp_2&merchant_uid=m2&imp_success=true");
        assert!(merge_redirect("javascript:alert(1)", &ok).is_none());
    }

    #[test]
    fn private_confirm_targets() {
        assert!(is_private_target("http://127.0.0.1:9/confirm"));
        assert!(is_private_target("http://10.0.0.1/confirm"));
        assert!(is_private_target("http://localhost/confirm"));
        // The textual check's bypasses.
        assert!(is_private_target("http://[::ffff:127.0.0.1]:9/confirm"));
        assert!(is_private_target("http://[::ffff:7f00:1]:9/confirm"));
        assert!(is_private_target("http://localhost.:9/confirm"));
        assert!(!is_private_target("https://shop.example/confirm"));
    }
}
