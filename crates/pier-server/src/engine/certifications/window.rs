//! The browser window of `IMP.certification` (http/testid.rs): open, show, request the code,
//! confirm, cancel.

use super::*;
use crate::engine::window::{codes, WindowError};
use crate::engine::{Engine, Error, Result};
use pier_store::{CertStep, Certification};

impl Engine {
    // -----------------------------------------------------------------------------------------
    // The browser window (`IMP.certification`).

    /// The cookie value binding a redirect-mode certification window to its browser.
    pub fn cert_binding(&self, window_id: &str) -> String {
        self.redirect_binding(&format!("certification:{window_id}"))
    }

    pub async fn open_cert_window(
        &self,
        req: CertWindowRequest,
    ) -> std::result::Result<CertWindowOpened, WindowError> {
        let merchant = self.window_merchant(&req.imp_code).await?;
        let allowed = Self::allowed_origins(&merchant);
        if let Some(list) = &allowed {
            let page_ok = req
                .parent_origin
                .as_deref()
                .and_then(|o| crate::engine::origins::normalize_origin(o).ok())
                .is_some_and(|o| list.contains(&o));
            let target_ok = req
                .m_redirect_url
                .as_deref()
                .is_none_or(|u| crate::engine::origins::url_allowed(list, u));
            if !page_ok || !target_ok {
                return Err(WindowError::new(
                    codes::ORIGIN_NOT_ALLOWED,
                    "허용되지 않은 도메인에서의 본인인증 요청입니다. (origin or m_redirect_url not allowed)",
                ));
            }
        }
        let pg = provider(req.pg.as_deref())
            .map_err(|e| WindowError::new(codes::UNKNOWN_PG, e.to_string()))?;
        let mut c = self.new_certification(&merchant.imp_code, pg);
        c.status = CertificationStatus::Window;
        c.merchant_uid = req.merchant_uid.map(|u| u.to_string());
        c.origin = req.parent_origin.clone();
        c.company = req.company;
        c.min_age = req.min_age;
        c.expires_at = c.created_at + self.cfg.checkout_ttl_secs;
        let window_id = pier_domain::ids::random_hex(16);
        c.window_id = Some(window_id.clone());
        c.window_mode = Some(req.mode.as_str().to_owned());
        c.parent_origin = req.parent_origin.clone();
        c.m_redirect_url = req.m_redirect_url;
        if req.prefill != Prefill::default() {
            c.sealed = Some(
                seal(
                    &self.cfg.server_key,
                    &c.imp_uid,
                    &Sealed {
                        person: None,
                        prefill: Some(req.prefill),
                    },
                )
                .map_err(|e| WindowError::new(codes::UNAVAILABLE, e.to_string()))?,
            );
        }
        self.store
            .insert_certification(&c)
            .await
            .map_err(crate::engine::window::store_err)?;
        Ok(CertWindowOpened {
            imp_uid: c.imp_uid,
            window_url: format!("{}/testid/{window_id}", self.public_base()),
            window_id,
            cors_origin: allowed.and(req.parent_origin),
        })
    }

    /// The certification behind a window id, and what its page may prefill.
    pub async fn cert_window(&self, window_id: &str) -> Result<(Certification, Prefill)> {
        if window_id.len() != 32 || !window_id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let c = self
            .store
            .certification_by_window(window_id)
            .await?
            .ok_or_else(not_found)?;
        let prefill = if c.status == CertificationStatus::Window {
            open(&self.cfg.server_key, &c.imp_uid, c.sealed.as_deref())?
                .prefill
                .unwrap_or_default()
        } else {
            Prefill::default()
        };
        Ok((c, prefill))
    }

    /// Whether the window's time is up (nothing more may be entered in it).
    pub fn cert_window_expired(&self, c: &Certification) -> bool {
        c.status.is_open() && self.now() > c.created_at + self.cfg.checkout_ttl_secs
    }

    /// Whether the code sent in a live window expired (the person may request a new one).
    pub fn cert_code_expired(&self, c: &Certification) -> bool {
        c.status == CertificationStatus::Requested && self.now() > c.expires_at
    }

    /// The person entered in the window: checked, sealed, a code "sent".
    pub async fn cert_window_request(
        &self,
        c: &Certification,
        input: &PersonInput,
    ) -> Result<Certification> {
        if self.cert_window_expired(c) {
            return Err(Error::Invalid(
                "본인인증 가능 시간이 지났습니다. (the window expired)".into(),
            ));
        }
        let person = parse_person(input, self.now())?;
        let sealed = seal(
            &self.cfg.server_key,
            &c.imp_uid,
            &Sealed {
                person: Some(person),
                prefill: None,
            },
        )?;
        // The code's validity, never past the window's own.
        let expires_at = (self.now() + OTP_TTL_SECS).min(c.created_at + self.cfg.checkout_ttl_secs);
        self.store
            .step_certification(
                &c.merchant_id,
                &c.imp_uid,
                &CertStep::Requested { sealed, expires_at },
            )
            .await?
            .ok_or_else(|| {
                Error::Invalid(
                    "이미 처리된 본인인증 요청입니다. (the certification was already processed)"
                        .into(),
                )
            })
    }

    pub async fn cert_window_confirm(&self, c: &Certification, otp: &str) -> Result<WindowConfirm> {
        self.check_code(c, otp).await
    }

    /// The buyer cancelled (or closed the window): ends it unless it already ended; answers the
    /// final state.
    pub async fn cert_window_cancel(&self, c: &Certification) -> Result<Certification> {
        let step = CertStep::Ended {
            status: CertificationStatus::Cancelled,
            reason: MSG_USER_CANCEL.into(),
        };
        if let Some(after) = self
            .store
            .step_certification(&c.merchant_id, &c.imp_uid, &step)
            .await?
        {
            return Ok(after);
        }
        self.store
            .get_certification(&c.merchant_id, &c.imp_uid)
            .await?
            .ok_or_else(not_found)
    }
}
