//! The end of the payment window: Pier's server-to-server `complete_auth` charges (or issues the
//! billing key, or the virtual account) exactly once per authenticated session, and answers a
//! repeat with the stored outcome.

use super::auth::{no_session, rejected, secret_eq};
use super::cards::{self, Behaviour};
use super::engine::Engine;
use super::ledger::{OrderState, PayMethod};
use super::rules::{issue_refusal, verdict, CardFacts, ChargeSpec, EngineResult, Fail};
use super::session::{AuthData, SessionState};
use crate::{AuthComplete, AuthOutcome, Mid};

impl Engine {
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
            // A bank transfer or a phone payment the buyer authenticated: always approved.
            AuthData::Trans { .. } | AuthData::Phone => {
                let (method, bank_code) = match auth {
                    AuthData::Trans { bank_code } => (PayMethod::Trans, Some(bank_code.clone())),
                    _ => (PayMethod::Phone, None),
                };
                let spec = ChargeSpec {
                    method,
                    card: None,
                    bank_code,
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
