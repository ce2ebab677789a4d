//! The payment-window (authenticated payment) flow of the test PG, up to the buyer's
//! authentication (`complete` completes it; `session` holds the sessions).
//!
//! 1. Pier calls `begin_auth`; the engine opens a session and answers with
//!    `{base_url}/testpg/window/{session_id}`, where the buyer's browser goes.
//! 2. The window pages (`window.rs`) render `Engine::session` and call one of the
//!    `authenticate_*` methods with what the buyer entered. Success hands out a one-time
//!    `auth_token`, which the page posts back to Pier's `return_url` with the session id.
//! 3. Pier calls `complete_auth` server-to-server: the engine approves (or declines) exactly once.
//!
//! The card a buyer authenticates with is sealed (AES-256-GCM) in the session until completion;
//! birth and password digits are checked at authentication and only the verdict is kept. A
//! completion is answered once and then replayed: repeating `complete_auth` with the same token
//! returns the stored outcome and never charges twice, so a lost answer (including the billing
//! key of a key-only session, which no `inquire` could recover) can be fetched again.

use super::cards::{self, Behaviour};
use super::engine::Engine;
use super::ledger::{order_subject, Entry, PayMethod};
use super::rules::{check_order, EngineResult};
use super::session::{AuthData, Session, SessionState, SessionStatus, SessionView};
use crate::{AuthBegin, AuthSession, CardData, Mid, PgError};
use pier_domain::{codes, ids::random_hex};
use sha2::{Digest, Sha256};

/// Wrong SMS codes a phone session tolerates before it is closed.
pub const MAX_SMS_FAILURES: u32 = 5;
const MAX_URL_CHARS: usize = 2_048;

pub const PHONE_CARRIERS: &[&str] = &["SKT", "KT", "LGT", "SKT_MVNO", "KT_MVNO", "LGT_MVNO"];

/// How often `begin_auth` sweeps expired sessions.
const SWEEP_EVERY_SECS: i64 = 60;

impl Engine {
    /// Journal a session's new state (shared journals only: a file journal never held sessions).
    pub(crate) fn log_session(&self, id: &str, s: &Session) {
        if !self.is_shared() {
            return;
        }
        match serde_json::to_vec(s) {
            Ok(json) => {
                let sealed = self.inner.sealer.seal(&json, id.as_bytes());
                self.log(|| Entry::Session {
                    id: id.to_owned(),
                    sealed,
                });
            }
            Err(e) => self.lost_entry(&format!("serializing a window session: {e}")),
        }
    }
}

pub(crate) fn rejected(code: &str, message: &str) -> PgError {
    PgError::Rejected {
        code: code.into(),
        message: message.into(),
    }
}

pub(crate) fn no_session() -> PgError {
    rejected("NO_SUCH_SESSION", "결제 인증 정보가 존재하지 않습니다.")
}

/// Compares a secret (auth token, SMS code) in constant time: the time of a refusal must not
/// tell how much of a guess was right.
pub(crate) fn secret_eq(a: &str, b: &str) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}

/// The SMS code "sent" to the buyer of a phone session: derived from the session id, so the test
/// window can show it and tests can compute it.
fn sms_code_for(session_id: &str) -> String {
    let digest = Sha256::digest(format!("testpg-sms:{session_id}").as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
    format!("{n:06}")
}

impl Engine {
    pub(crate) fn begin_auth(&self, mid: &Mid, req: &AuthBegin) -> EngineResult<AuthSession> {
        let method = PayMethod::parse(&req.pay_method)
            .ok_or_else(|| rejected("UNSUPPORTED_PAY_METHOD", "지원하지 않는 결제수단입니다."))?;
        if req.issue_billing_key && method != PayMethod::Card {
            return Err(rejected(
                "UNSUPPORTED_BILLING",
                "빌링키 발급은 카드 결제창에서만 가능합니다.",
            )
            .into());
        }
        check_order(&req.order, req.issue_billing_key)?;
        if method == PayMethod::Card {
            cards::applied_quota(req.order.amount_krw, req.order.card_quota)?;
        }
        let url_ok = (req.return_url.starts_with("http://")
            || req.return_url.starts_with("https://"))
            && req.return_url.len() <= MAX_URL_CHARS;
        if !url_ok {
            return Err(rejected("INVALID_RETURN_URL", "return_url이 올바르지 않습니다.").into());
        }
        let now = self.now();
        let mut books = self.lock();
        // The session is written, the order only read: its existence is part of the answer.
        self.depends_on(|| order_subject(&req.order.order_id));
        if books.ledger.order(&req.order.order_id).is_some() {
            return Err(rejected("DUPLICATE_ORDER_ID", "이미 사용된 주문번호입니다.").into());
        }
        let max = self.inner.config.max_sessions;
        let sessions = &mut books.sessions;
        if sessions.map.len() >= max || now >= sessions.next_sweep_at {
            sessions.map.retain(|_, s| s.expires_at >= now);
            sessions.next_sweep_at = now + SWEEP_EVERY_SECS;
        }
        let sessions = &mut sessions.map;
        if sessions.len() >= max {
            return Err(rejected("TOO_MANY_SESSIONS", "잠시 후 다시 시도해주세요.").into());
        }
        let id = random_hex(16);
        let session = Session {
            mid: mid.clone(),
            order: req.order.clone(),
            method,
            issue_billing_key: req.issue_billing_key,
            return_url: req.return_url.clone(),
            expires_at: now + self.inner.config.session_ttl_secs,
            state: SessionState::Pending,
            sms_failures: 0,
        };
        self.log_session(&id, &session);
        sessions.insert(id.clone(), session);
        Ok(AuthSession {
            redirect_url: format!("{}/testpg/window/{id}", self.inner.base_url),
            auth_session_id: id,
            browser_call: None,
        })
    }

    /// What the window page shows. `None` for an unknown id.
    pub fn session(&self, session_id: &str) -> Option<SessionView> {
        let now = self.now();
        let books = self.lock();
        let s = books.sessions.map.get(session_id)?;
        let status = match &s.state {
            SessionState::Completed { .. } => SessionStatus::Completed,
            SessionState::Abandoned => SessionStatus::Abandoned,
            SessionState::Failed => SessionStatus::Failed,
            _ if now > s.expires_at => SessionStatus::Expired,
            SessionState::Pending => SessionStatus::Pending,
            SessionState::Authenticated { .. } => SessionStatus::Authenticated,
        };
        Some(SessionView {
            auth_session_id: session_id.to_owned(),
            mid: s.mid.clone(),
            order: s.order.clone(),
            pay_method: s.method.as_str().to_owned(),
            amount_krw: s.order.amount_krw,
            issue_billing_key: s.issue_billing_key,
            return_url: s.return_url.clone(),
            status,
            expires_at: s.expires_at,
        })
    }

    /// The SMS code of a phone session (shown by the test window). `None` for an unknown id.
    pub fn sms_code(&self, session_id: &str) -> Option<String> {
        self.lock()
            .sessions
            .map
            .contains_key(session_id)
            .then(|| sms_code_for(session_id))
    }

    /// Run `f` on an open session of the given method, then store the authentication it returns
    /// and hand out a fresh one-time token. Re-authenticating replaces the previous token.
    fn authenticate(
        &self,
        session_id: &str,
        method: PayMethod,
        f: impl FnOnce(&mut Session) -> Result<AuthData, PgError>,
    ) -> Result<String, PgError> {
        self.outside_run()?;
        let now = self.now();
        let mut books = self.lock();
        let s = books
            .sessions
            .map
            .get_mut(session_id)
            .ok_or_else(no_session)?;
        match s.state {
            SessionState::Pending | SessionState::Authenticated { .. } => {}
            SessionState::Completed { .. } => {
                return Err(rejected("SESSION_CLOSED", "이미 완료된 결제입니다."))
            }
            SessionState::Abandoned | SessionState::Failed => {
                return Err(rejected("SESSION_CLOSED", "종료된 결제창입니다."))
            }
        }
        if now > s.expires_at {
            return Err(rejected("SESSION_EXPIRED", "결제 가능 시간이 지났습니다."));
        }
        if s.method != method {
            return Err(rejected(
                "WRONG_PAY_METHOD",
                "결제수단이 일치하지 않습니다.",
            ));
        }
        // A refusal may change the session too (a wrong SMS code counts), so it is journalled
        // either way.
        let result = f(s).map(|auth| {
            let token = random_hex(16);
            s.state = SessionState::Authenticated {
                token: token.clone(),
                auth,
            };
            token
        });
        self.log_session(session_id, s);
        result
    }

    /// The buyer entered a card in the window. Refuses an invalid number or a past expiry; issuer
    /// declines happen at `complete_auth`, as with keyed payments. `quota` is the installment the
    /// buyer picked (applied only from 50,000 KRW).
    pub fn authenticate_card(
        &self,
        session_id: &str,
        card: CardData,
        quota: i64,
    ) -> Result<String, PgError> {
        let now = self.now();
        let behaviour = cards::behaviour_of(&card.number);
        if behaviour == Behaviour::InvalidNumber {
            return Err(cards::invalid_number());
        }
        if card.expiry.is_expired_at(now) {
            return Err(cards::expired_input());
        }
        let holder = cards::holder_check(&card, behaviour);
        let sealed = self
            .inner
            .sealer
            .seal_card(&card.number, &card.expiry, session_id.as_bytes());
        drop(card);
        self.authenticate(session_id, PayMethod::Card, |s| {
            let quota = cards::applied_quota(s.order.amount_krw, quota)?;
            Ok(AuthData::Card {
                sealed,
                quota,
                holder,
            })
        })
    }

    /// Account transfer: the buyer picked a bank (KFTC code) and confirmed with it.
    pub fn authenticate_trans(&self, session_id: &str, bank_code: &str) -> Result<String, PgError> {
        let bank_code = checked_bank(bank_code)?;
        self.authenticate(session_id, PayMethod::Trans, |_| {
            Ok(AuthData::Trans { bank_code })
        })
    }

    /// Phone payment: carrier (`SKT`, `KT`, `LGT`, or `*_MVNO`), the number, and the SMS code
    /// (`sms_code`). Five wrong codes close the session.
    pub fn authenticate_phone(
        &self,
        session_id: &str,
        carrier: &str,
        phone: &str,
        sms_code: &str,
    ) -> Result<String, PgError> {
        if !PHONE_CARRIERS.contains(&carrier) {
            return Err(rejected("INVALID_CARRIER", "통신사가 올바르지 않습니다."));
        }
        let digits: String = phone.chars().filter(|c| *c != '-' && *c != ' ').collect();
        let phone_ok = digits.chars().all(|c| c.is_ascii_digit())
            && (10..=11).contains(&digits.len())
            && digits.starts_with("01");
        if !phone_ok {
            return Err(rejected(
                "INVALID_PHONE",
                "휴대폰 번호가 올바르지 않습니다.",
            ));
        }
        let expected = sms_code_for(session_id);
        self.authenticate(session_id, PayMethod::Phone, |s| {
            if !secret_eq(sms_code, &expected) {
                s.sms_failures += 1;
                if s.sms_failures >= MAX_SMS_FAILURES {
                    s.state = SessionState::Failed;
                }
                return Err(rejected("WRONG_SMS_CODE", "인증번호가 일치하지 않습니다."));
            }
            Ok(AuthData::Phone)
        })
    }

    /// Virtual account: the buyer picked the bank to receive the account at.
    pub fn authenticate_vbank(&self, session_id: &str, bank_code: &str) -> Result<String, PgError> {
        let bank_code = checked_bank(bank_code)?;
        self.authenticate(session_id, PayMethod::Vbank, |_| {
            Ok(AuthData::Vbank { bank_code })
        })
    }

    /// The buyer closed or cancelled the window. A later `complete_auth` is refused.
    pub fn abandon_session(&self, session_id: &str) -> Result<(), PgError> {
        self.outside_run()?;
        let mut books = self.lock();
        let s = books
            .sessions
            .map
            .get_mut(session_id)
            .ok_or_else(no_session)?;
        match s.state {
            SessionState::Completed { .. } => {
                Err(rejected("SESSION_CLOSED", "이미 완료된 결제입니다."))
            }
            _ => {
                s.state = SessionState::Abandoned;
                self.log_session(session_id, s);
                Ok(())
            }
        }
    }
}

fn checked_bank(bank_code: &str) -> Result<String, PgError> {
    codes::bank_name(bank_code)
        .map(|_| bank_code.to_owned())
        .ok_or_else(|| rejected("UNSUPPORTED_BANK", "지원하지 않는 은행입니다."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_codes_are_stable_six_digits() {
        let a = sms_code_for("abc");
        assert_eq!(a.len(), 6);
        assert!(a.chars().all(|c| c.is_ascii_digit()));
        assert_eq!(a, sms_code_for("abc"));
        assert_ne!(a, sms_code_for("abd"));
    }
}
