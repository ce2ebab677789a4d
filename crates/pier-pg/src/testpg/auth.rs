//! The payment-window (authenticated payment) flow of the test PG.
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

use super::cards::{self, Behaviour, Decline};
use super::crypto::Sealer;
use super::engine::{
    check_order, issue_refusal, verdict, CardFacts, ChargeSpec, Engine, EngineResult, Fail,
};
use super::ledger::{Entry, OrderState, PayMethod};
use crate::{AuthBegin, AuthComplete, AuthOutcome, AuthSession, CardData, Mid, Order, PgError};
use pier_domain::{codes, ids::random_hex};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Wrong SMS codes a phone session tolerates before it is closed.
pub const MAX_SMS_FAILURES: u32 = 5;
const MAX_URL_CHARS: usize = 2_048;

pub const PHONE_CARRIERS: &[&str] = &["SKT", "KT", "LGT", "SKT_MVNO", "KT_MVNO", "LGT_MVNO"];

#[derive(Default)]
pub(crate) struct Sessions {
    map: HashMap<String, Session>,
    /// When expired sessions (and the sealed cards in them) are next swept out.
    next_sweep_at: i64,
}

/// How often `begin_auth` sweeps expired sessions.
const SWEEP_EVERY_SECS: i64 = 60;

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    mid: Mid,
    order: Order,
    method: PayMethod,
    issue_billing_key: bool,
    return_url: String,
    expires_at: i64,
    state: SessionState,
    sms_failures: u32,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "s", rename_all = "snake_case")]
enum SessionState {
    Pending,
    Authenticated {
        token: String,
        auth: AuthData,
    },
    Completed {
        token: String,
        outcome: Result<AuthOutcome, PgError>,
    },
    Abandoned,
    /// Closed after too many wrong SMS codes.
    Failed,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "m", rename_all = "snake_case")]
enum AuthData {
    Card {
        sealed: String,
        quota: i64,
        #[serde(with = "holder_code")]
        holder: Option<Decline>,
    },
    Trans {
        bank_code: String,
    },
    Phone,
    Vbank {
        bank_code: String,
    },
}

/// A payment-window session as the window pages need it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionView {
    pub auth_session_id: String,
    pub mid: Mid,
    pub order: Order,
    /// `card`, `trans`, `phone` or `vbank`.
    pub pay_method: String,
    pub amount_krw: i64,
    pub issue_billing_key: bool,
    /// Where the page sends the browser with `auth_session_id` and `auth_token`.
    pub return_url: String,
    pub status: SessionStatus,
    pub expires_at: i64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Waiting for the buyer.
    Pending,
    /// The buyer authenticated; waiting for Pier's `complete_auth`.
    Authenticated,
    Completed,
    /// The buyer closed or cancelled the window.
    Abandoned,
    /// Too many wrong SMS codes.
    Failed,
    Expired,
}

/// A holder-check refusal travels by its code (`Decline` holds `&'static str`s).
mod holder_code {
    use super::Decline;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Decline>, s: S) -> Result<S::Ok, S::Error> {
        d.map(|d| d.code).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decline>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(code) => super::cards::decline_by_code(&code)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown decline {code}"))),
        }
    }
}

impl Sessions {
    /// Replay a session written by `Engine::log_session` (a shared journal). A session that
    /// does not open under our key is skipped: it was not ours to read.
    pub(crate) fn apply_sealed(&mut self, id: String, sealed: &str, sealer: &Sealer) {
        let Some(json) = sealer.open(sealed, id.as_bytes()) else {
            tracing::warn!("testpg journal: a window session sealed under another key; skipped");
            return;
        };
        match serde_json::from_slice::<Session>(&json) {
            Ok(s) => {
                self.map.insert(id, s);
            }
            Err(e) => tracing::warn!(error = %e, "testpg journal: unreadable window session"),
        }
    }
}

impl Engine {
    /// Journal a session's new state (shared journals only: a file journal never held sessions).
    fn log_session(&self, id: &str, s: &Session) {
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

fn rejected(code: &str, message: &str) -> PgError {
    PgError::Rejected {
        code: code.into(),
        message: message.into(),
    }
}

fn no_session() -> PgError {
    rejected("NO_SUCH_SESSION", "결제 인증 정보가 존재하지 않습니다.")
}

/// The SMS code "sent" to the buyer of a phone session: derived from the session id, so the test
/// window can show it and tests can compute it.
/// Compares a secret (auth token, SMS code) in constant time: the time of a refusal must not
/// tell how much of a guess was right.
fn secret_eq(a: &str, b: &str) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}

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

    pub(crate) fn complete_auth(&self, mid: &Mid, req: &AuthComplete) -> EngineResult<AuthOutcome> {
        let now = self.now();
        let mut guard = self.lock();
        let books = &mut *guard;
        let s = books
            .sessions
            .map
            .get_mut(&req.auth_session_id)
            .filter(|s| s.mid == *mid)
            .ok_or_else(no_session)?;
        if s.order.order_id != req.order.order_id
            || s.order.merchant_uid != req.order.merchant_uid
            || s.order.amount_krw != req.order.amount_krw
        {
            return Err(rejected(
                "ORDER_MISMATCH",
                "주문 정보가 인증 정보와 일치하지 않습니다.",
            )
            .into());
        }
        let bad_token = || rejected("INVALID_AUTH_TOKEN", "유효하지 않은 인증 토큰입니다.");
        match &s.state {
            SessionState::Completed { token, outcome } if secret_eq(token, &req.auth_token) => {
                return outcome.clone().map_err(Fail::Pg);
            }
            SessionState::Authenticated { token, .. } if secret_eq(token, &req.auth_token) => {}
            SessionState::Completed { .. } | SessionState::Authenticated { .. } => {
                return Err(bad_token().into())
            }
            SessionState::Pending => {
                return Err(
                    rejected("NOT_AUTHENTICATED", "결제 인증이 완료되지 않았습니다.").into(),
                )
            }
            SessionState::Abandoned => {
                return Err(rejected("USER_CANCELLED", "사용자가 결제를 취소하였습니다.").into())
            }
            SessionState::Failed => {
                return Err(rejected("AUTH_FAILED", "결제 인증에 실패하였습니다.").into())
            }
        }
        if now > s.expires_at {
            return Err(rejected("SESSION_EXPIRED", "결제 가능 시간이 지났습니다.").into());
        }
        let SessionState::Authenticated { auth, .. } = &s.state else {
            return Err(bad_token().into());
        };
        let order = &s.order;
        let st = &mut books.ledger;
        let result: EngineResult<AuthOutcome> = match auth {
            AuthData::Card {
                sealed,
                quota,
                holder,
            } => {
                let (number, expiry) = self
                    .inner
                    .sealer
                    .open_card(sealed, req.auth_session_id.as_bytes())
                    .ok_or_else(|| rejected("AUTH_FAILED", "결제 인증에 실패하였습니다."))?;
                let behaviour = cards::behaviour_of(&number);
                let facts = CardFacts::new(cards::issuer_of(&number), number.masked());
                let spec = |billing_key: Option<String>| ChargeSpec {
                    method: PayMethod::Card,
                    card: Some(facts.clone()),
                    bank_code: None,
                    quota: *quota,
                    report_key: billing_key.is_some(),
                    billing_key,
                };
                let v = verdict(behaviour, *holder, false);
                if !s.issue_billing_key {
                    self.charge_locked(st, mid, order, spec(None), v, now)
                        .map(AuthOutcome::Paid)
                } else if let Some(err) = issue_refusal(behaviour, *holder) {
                    Err(err.into())
                } else if order.amount_krw == 0 {
                    let key = self.new_key(mid, None, &number, &expiry, now);
                    Ok(AuthOutcome::BillingKeyOnly(self.store_key_locked(st, key)))
                } else if st.order(&order.order_id).is_some() {
                    // Already processed: the stored answer, and no second key.
                    self.charge_locked(st, mid, order, spec(None), v, now)
                        .map(AuthOutcome::Paid)
                } else {
                    // The key exists only if the first payment is approved.
                    let key = self.new_key(mid, None, &number, &expiry, now);
                    let result = self.charge_locked(
                        st,
                        mid,
                        order,
                        spec(Some(key.facts.billing_key.clone())),
                        v,
                        now,
                    );
                    let approved = matches!(
                        st.order(&order.order_id),
                        Some(rec) if rec.state == OrderState::Approved
                    );
                    if approved {
                        self.store_key_locked(st, key);
                    }
                    result.map(AuthOutcome::Paid)
                }
            }
            AuthData::Trans { bank_code } => {
                let spec = ChargeSpec {
                    method: PayMethod::Trans,
                    card: None,
                    bank_code: Some(bank_code.clone()),
                    quota: 0,
                    billing_key: None,
                    report_key: false,
                };
                self.charge_locked(
                    st,
                    mid,
                    order,
                    spec,
                    verdict(Behaviour::Approve, None, false),
                    now,
                )
                .map(AuthOutcome::Paid)
            }
            AuthData::Phone => {
                let spec = ChargeSpec {
                    method: PayMethod::Phone,
                    card: None,
                    bank_code: None,
                    quota: 0,
                    billing_key: None,
                    report_key: false,
                };
                self.charge_locked(
                    st,
                    mid,
                    order,
                    spec,
                    verdict(Behaviour::Approve, None, false),
                    now,
                )
                .map(AuthOutcome::Paid)
            }
            AuthData::Vbank { bank_code } => {
                let due = now + self.inner.config.vbank_due_secs;
                let holder = self.inner.config.vbank_holder.clone();
                self.issue_vbank_locked(st, mid, order, bank_code, due, holder, now)
                    .map(AuthOutcome::Vbank)
                    .map_err(Fail::Pg)
            }
        };
        // Remember the answer for replays. A charge that was never processed (the timeout card)
        // leaves the session authenticated; one approved but unanswered is stored as approved.
        let stored = match &result {
            Ok(outcome) => Some(Ok(outcome.clone())),
            Err(Fail::Pg(e)) => Some(Err(e.clone())),
            Err(Fail::NoAnswer) => match books.ledger.order(&req.order.order_id) {
                Some(rec) => rec.approval.clone().map(|a| Ok(AuthOutcome::Paid(a))),
                None => None,
            },
        };
        if let (Some(outcome), Some(s)) = (stored, books.sessions.map.get_mut(&req.auth_session_id))
        {
            s.state = SessionState::Completed {
                token: req.auth_token.clone(),
                outcome,
            };
            self.log_session(&req.auth_session_id, s);
        }
        result
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
