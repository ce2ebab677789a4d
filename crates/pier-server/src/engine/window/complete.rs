//! Steps 3 and after: the PG window's return, the merchant's `confirm_url`, the approval and
//! its record, and the buyer's cancel.

use super::result::WindowResult;
use super::types::*;
use crate::engine::charge::{
    order_of, FIRST_RECONCILE_DELAY_SECS, MSG_ALREADY_PAID, MSG_IN_PROGRESS, MSG_UNKNOWN,
};
use crate::engine::{Engine, Error, Result};
use crate::outbound::Outbound;
use pier_domain::PaymentStatus;
use pier_pg::{AuthComplete, AuthOutcome, Mid, PgError};
use pier_store::{CheckoutSession, Customer, Payment, Settlement, StoreError, VbankIssue};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

impl Engine {
    /// The PG window sent the browser back. Runs detached so the attempt gets its record even if
    /// the browser goes away.
    pub async fn window_return(
        self: &Arc<Self>,
        checkout_id: &str,
        auth_session_id: &str,
        auth_token: Option<String>,
        pg_params: Vec<(String, String)>,
    ) -> Result<(CheckoutSession, WindowResult)> {
        let c = self.checkout(checkout_id).await?;
        if let Some(r) = WindowResult::recorded(&c) {
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
        let task = self.tasks.spawn(async move {
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
    pub async fn cancel_window(
        &self,
        checkout_id: &str,
    ) -> Result<(CheckoutSession, WindowResult)> {
        let c = self.checkout(checkout_id).await?;
        if let Some(r) = WindowResult::recorded(&c) {
            return Ok((c, r));
        }
        let now = self.now();
        match self
            .store
            .fail_before_pg(&c.imp_uid, MSG_USER_CANCEL, now)
            .await?
        {
            Some(p) => {
                let r = WindowResult::of(&p, Some((codes::USER_CANCEL, MSG_USER_CANCEL)));
                self.finish(&c, r).await
            }
            None => {
                // The PG call is already under way or recorded: report where it stands.
                let p = self.payment_of(&c).await?;
                let r = match p.status {
                    PaymentStatus::Ready if p.vbank_num.is_none() => {
                        WindowResult::of(&p, Some((codes::IN_PROGRESS, MSG_IN_PROGRESS)))
                    }
                    PaymentStatus::Failed => {
                        let reason = p.fail_reason.clone().unwrap_or_default();
                        WindowResult::of(&p, Some((codes::USER_CANCEL, &reason)))
                    }
                    _ => WindowResult::of(&p, None),
                };
                Ok((c, r))
            }
        }
    }

    pub(in crate::engine) async fn payment_of(&self, c: &CheckoutSession) -> Result<Payment> {
        self.store
            .get_payment(Some(&c.merchant_id), &c.imp_uid)
            .await?
            .ok_or_else(|| Error::NotFound("결제건이 존재하지 않습니다.".into()))
    }

    async fn finish(
        &self,
        c: &CheckoutSession,
        result: WindowResult,
    ) -> Result<(CheckoutSession, WindowResult)> {
        let now = self.now();
        let text = result.stored();
        if self.store.finish_checkout(&c.id, &text, now).await? {
            let mut done = c.clone();
            done.state = pier_store::CheckoutState::Done;
            done.result = Some(text);
            return Ok((done, result));
        }
        // Someone else finished it first: theirs is the answer.
        let c2 = self.checkout(&c.id).await?;
        let r = WindowResult::recorded(&c2).unwrap_or(result);
        Ok((c2, r))
    }

    async fn complete_window(
        self: &Arc<Self>,
        c: &CheckoutSession,
        auth_token: Option<String>,
        pg_params: Vec<(String, String)>,
    ) -> Result<WindowResult> {
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
                    Some(p) => WindowResult::of(&p, Some((codes::USER_CANCEL, MSG_USER_CANCEL))),
                    None => self.current_result(c).await?,
                },
            );
        };
        if now > c.expires_at {
            let msg = MSG_WINDOW_EXPIRED;
            return Ok(
                match self.store.fail_before_pg(&c.imp_uid, msg, now).await? {
                    Some(p) => WindowResult::of(&p, Some((codes::SESSION_EXPIRED, msg))),
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
                        Some(p) => WindowResult::of(&p, Some((code, msg))),
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
                return Ok(WindowResult::of(
                    &failed,
                    Some((codes::CONFIRM_REFUSED, &text)),
                ));
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
        let answer = crate::engine::pg_call(
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
                Ok(WindowResult::of(&paid, None))
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
                Ok(WindowResult::of(&paid, None))
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
                Ok(WindowResult::of(&issued, None))
            }
            Err(PgError::Unknown(why)) => {
                tracing::warn!(imp_uid = %p.imp_uid, %why, "window approval outcome unknown; left for the reconciler");
                let s = Settlement::Unknown {
                    told_failed: false,
                    next_reconcile_at: now + FIRST_RECONCILE_DELAY_SECS,
                };
                let row = self.store.settle(&p.imp_uid, &s, now, &[]).await?;
                Ok(WindowResult::of(
                    &row,
                    Some((codes::PG_UNKNOWN, MSG_UNKNOWN)),
                ))
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
                Ok(WindowResult::of(&failed, Some((&code, &msg))))
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

    pub(in crate::engine) async fn current_result(
        &self,
        c: &CheckoutSession,
    ) -> Result<WindowResult> {
        let p = self.payment_of(c).await?;
        Ok(match p.status {
            PaymentStatus::Paid | PaymentStatus::Cancelled => WindowResult::of(&p, None),
            PaymentStatus::Ready if p.vbank_num.is_some() => WindowResult::of(&p, None),
            PaymentStatus::Ready => {
                WindowResult::of(&p, Some((codes::IN_PROGRESS, MSG_IN_PROGRESS)))
            }
            _ => {
                let reason = p.fail_reason.clone().unwrap_or_default();
                let code = if reason == MSG_USER_CANCEL {
                    codes::USER_CANCEL
                } else {
                    codes::INVALID_PARAM
                };
                WindowResult::of(&p, Some((code, &reason)))
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
