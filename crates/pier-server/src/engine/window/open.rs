//! Step 1: `open_window` (POST /checkout/prepare) validates, inserts the attempt, begins the
//! PG's window session and stores the checkout row.

use super::types::*;
use crate::engine::charge::{order_of, MSG_ALREADY_PAID, MSG_IN_PROGRESS};
use crate::engine::{Engine, Error, Result};
use pier_pg::{AuthBegin, Mid};
use pier_store::CheckoutSession;
use std::sync::Arc;
use std::time::Duration;

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
        crate::engine::origins::stored_origins(m)
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
        crate::engine::origins::gate_window(allowed.as_deref(), &req)?;
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
            return Err(if h.status == pier_domain::PaymentStatus::Ready {
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

        let now = self.now();
        let order = crate::engine::attempt::Order {
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
        let flow = crate::engine::attempt::Flow::Window {
            pay_method: &req.pay_method,
            mobile: req.mobile,
            user_agent: &req.user_agent,
            issues_key: req.customer_uid.as_ref().map(|c| c.as_str()),
        };
        let p = crate::engine::attempt::attempt(
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
        let begun = crate::engine::pg_call(
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
                    crate::engine::pg_window::CALL_PREFIX,
                    serde_json::to_string(call).unwrap_or_default()
                ),
                None => with_display(&session.redirect_url, &req),
            },
            state: pier_store::CheckoutState::Open,
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
}

/// A URL the outbound client refuses without resolving it: not http(s), or a host that is a
/// forbidden address literal (in any spelling) or a `localhost` name. An early, friendlier
/// error at prepare time; names are checked address by address when the call is made.
fn is_private_target(u: &str) -> bool {
    crate::outbound::check_url(u, false).is_err()
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

#[cfg(test)]
mod tests {
    use super::*;

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
