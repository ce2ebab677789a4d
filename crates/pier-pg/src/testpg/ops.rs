//! The connector operations on cards (used by `InProcess` and the pgsim server): keyed charges,
//! billing keys and charges with them, cancels, inquiries and net-cancels.

use super::cards::{self, Behaviour};
use super::engine::Engine;
use super::ledger::{
    key_subject, order_subject, CancelRec, Entry, KeyRec, OrderRec, OrderState, PayMethod, State,
};
use super::rules::{
    cancel_exceeds, check_id, check_order, check_text, issue_refusal, rejected, replay_charge,
    unknown_key, verdict, CardFacts, ChargeSpec, EngineResult, Fail, Verdict, MAX_AMOUNT_KRW,
};
use crate::{
    Approval, BillingKey, CancelOutcome, CancelRequest, CardData, Inquiry, Mid, Order, PgError,
};
use pier_domain::{codes, ids::random_hex};
use rand::Rng;

impl Engine {
    /// Record and answer one charge. The caller holds the lock, so the duplicate check and the
    /// write are one step.
    pub(crate) fn charge_locked(
        &self,
        st: &mut State,
        mid: &Mid,
        order: &Order,
        spec: ChargeSpec,
        verdict: Verdict,
        now: i64,
    ) -> EngineResult<Approval> {
        // Read even when only replayed (a window's completion writes its session, not the order).
        self.depends_on(|| order_subject(&order.order_id));
        if let Some(rec) = st.order(&order.order_id) {
            // Even for the lost-response card: only the first answer is lost.
            return Ok(replay_charge(rec, mid, order)?);
        }
        if st.tombstones.contains(&order.order_id) {
            return Err(rejected("ORDER_VOIDED", "망취소된 거래입니다.").into());
        }
        let mut rec = OrderRec {
            mid: mid.0.clone(),
            order_id: order.order_id.clone(),
            merchant_uid: order.merchant_uid.clone(),
            method: spec.method,
            amount_krw: order.amount_krw,
            tax_free_krw: order.tax_free_krw,
            state: OrderState::Approved,
            created_at: now,
            approval: None,
            vbank: None,
            billing_key: spec.billing_key.clone(),
            cancelled_krw: 0,
            cancelled_tax_free_krw: 0,
            voided_krw: 0,
            voided_at: None,
        };
        let lose_answer = match verdict {
            Verdict::Hang => return Err(Fail::NoAnswer),
            Verdict::Decline(d) => {
                rec.state = OrderState::Declined {
                    code: d.code.into(),
                    message: d.message.into(),
                };
                self.log(|| Entry::Order(rec.clone()));
                st.put_order(rec);
                return Err(d.declined().into());
            }
            Verdict::Approve { lose_answer } => lose_answer,
        };
        let pg_tid = self.next_tid('A');
        let bank_name = spec
            .bank_code
            .as_deref()
            .and_then(codes::bank_name)
            .map(str::to_owned);
        let is_card = spec.method == PayMethod::Card;
        let approval = Approval {
            receipt_url: Some(self.receipt_url(&pg_tid)),
            pg_tid,
            apply_num: is_card
                .then(|| format!("{:08}", rand::thread_rng().gen_range(0..100_000_000))),
            approved_at: now,
            amount_krw: order.amount_krw,
            card_code: spec.card.as_ref().map(|c| c.code.clone()),
            card_name: spec.card.as_ref().map(|c| c.name.clone()),
            card_number: spec.card.as_ref().map(|c| c.masked.clone()),
            card_type: spec.card.as_ref().map(|c| c.card_type),
            card_quota: if is_card { spec.quota } else { 0 },
            bank_code: spec.bank_code,
            bank_name,
            billing_key: if spec.report_key {
                spec.billing_key
            } else {
                None
            },
        };
        rec.approval = Some(approval.clone());
        self.log(|| Entry::Order(rec.clone()));
        st.put_order(rec);
        if lose_answer {
            return Err(Fail::NoAnswer);
        }
        Ok(approval)
    }

    /// Store a new billing key for a card (already checked by the caller).
    pub(crate) fn store_key_locked(&self, st: &mut State, key: KeyRec) -> BillingKey {
        let facts = key.facts.clone();
        self.log(|| Entry::Key(key.clone()));
        st.put_key(key);
        facts
    }

    pub(crate) fn new_key(
        &self,
        mid: &Mid,
        customer_uid: Option<&str>,
        number: &pier_domain::CardNumber,
        expiry: &pier_domain::Expiry,
        now: i64,
    ) -> KeyRec {
        let billing_key = format!("tbk_{}", random_hex(16));
        let issuer = cards::issuer_of(number);
        let sealed_card = self
            .inner
            .sealer
            .seal_card(number, expiry, billing_key.as_bytes());
        KeyRec {
            mid: mid.0.clone(),
            customer_uid: customer_uid.map(str::to_owned),
            facts: BillingKey {
                card_code: Some(issuer.card_code.to_owned()),
                card_name: Some(issuer.card_name().to_owned()),
                card_number: Some(number.masked()),
                card_type: Some(issuer.card_type),
                billing_key,
            },
            sealed_card,
            issued_at: now,
            deleted_at: None,
        }
    }

    // ---- the connector operations (used by `InProcess` and the pgsim server) ----

    pub(crate) fn approve_keyed(
        &self,
        mid: &Mid,
        order: &Order,
        card: CardData,
    ) -> EngineResult<Approval> {
        check_order(order, false)?;
        let quota = cards::applied_quota(order.amount_krw, order.card_quota)?;
        let now = self.now();
        let behaviour = cards::behaviour_of(&card.number);
        if behaviour == Behaviour::InvalidNumber {
            return Err(cards::invalid_number().into());
        }
        if card.expiry.is_expired_at(now) {
            return Err(cards::expired_input().into());
        }
        let holder = cards::holder_check(&card, behaviour);
        let facts = CardFacts::new(cards::issuer_of(&card.number), card.number.masked());
        // Checked; now forgotten.
        drop(card);
        let spec = ChargeSpec {
            method: PayMethod::Card,
            card: Some(facts),
            bank_code: None,
            quota,
            billing_key: None,
            report_key: false,
        };
        let mut books = self.lock();
        self.charge_locked(
            &mut books.ledger,
            mid,
            order,
            spec,
            verdict(behaviour, holder, false),
            now,
        )
    }

    pub(crate) fn issue_billing_key(
        &self,
        mid: &Mid,
        customer_uid: &str,
        card: CardData,
    ) -> EngineResult<BillingKey> {
        check_id("customer_uid", customer_uid)?;
        let now = self.now();
        let behaviour = cards::behaviour_of(&card.number);
        if behaviour == Behaviour::InvalidNumber {
            return Err(cards::invalid_number().into());
        }
        if card.expiry.is_expired_at(now) {
            return Err(cards::expired_input().into());
        }
        if let Some(err) = issue_refusal(behaviour, cards::holder_check(&card, behaviour)) {
            return Err(err.into());
        }
        let key = self.new_key(mid, Some(customer_uid), &card.number, &card.expiry, now);
        drop(card);
        let mut books = self.lock();
        Ok(self.store_key_locked(&mut books.ledger, key))
    }

    pub(crate) fn delete_billing_key(&self, mid: &Mid, billing_key: &str) -> EngineResult<()> {
        let now = self.now();
        let mut books = self.lock();
        let st = &mut books.ledger;
        let i = match st.key_ix.get(billing_key) {
            Some(i) if st.keys[i].mid == mid.0 && st.keys[i].deleted_at.is_none() => i,
            _ => return Err(unknown_key().into()),
        };
        st.keys[i].deleted_at = Some(now);
        self.log(|| Entry::Key(st.keys[i].clone()));
        Ok(())
    }

    pub(crate) fn pay_with_key(
        &self,
        mid: &Mid,
        order: &Order,
        billing_key: &str,
    ) -> EngineResult<Approval> {
        check_order(order, false)?;
        let quota = cards::applied_quota(order.amount_krw, order.card_quota)?;
        let now = self.now();
        let mut books = self.lock();
        let st = &mut books.ledger;
        if let Some(rec) = st.order(&order.order_id) {
            // Answered from the ledger even if the key was deleted since.
            return Ok(replay_charge(rec, mid, order)?);
        }
        let key = st.live_key(&mid.0, billing_key).ok_or_else(unknown_key)?;
        // A delete of the key through another instance at the same moment: of the two, the one
        // appended first wins, and this charge runs again (and is refused) if it was the delete.
        self.depends_on(|| key_subject(billing_key));
        let (number, expiry) = self
            .inner
            .sealer
            .open_card(&key.sealed_card, billing_key.as_bytes())
            .ok_or_else(|| {
                rejected(
                    "BILLING_KEY_UNREADABLE",
                    "빌링키의 카드정보를 읽을 수 없습니다.",
                )
            })?;
        let behaviour = cards::behaviour_of(&number);
        let v = if expiry.is_expired_at(now) {
            Verdict::Decline(cards::EXPIRED_CARD)
        } else {
            verdict(behaviour, None, true)
        };
        let spec = ChargeSpec {
            method: PayMethod::Card,
            card: Some(CardFacts::from_key(&key.facts)),
            bank_code: None,
            quota,
            billing_key: Some(billing_key.to_owned()),
            report_key: false,
        };
        drop((number, expiry));
        self.charge_locked(st, mid, order, spec, v, now)
    }

    pub(crate) fn cancel(&self, mid: &Mid, req: &CancelRequest) -> EngineResult<CancelOutcome> {
        check_id("order_id", &req.order_id)?;
        check_id("cancellation_id", &req.cancellation_id)?;
        check_text("reason", req.reason.as_deref())?;
        if !(1..=MAX_AMOUNT_KRW).contains(&req.amount_krw) {
            return Err(rejected("INVALID_AMOUNT", "취소금액이 올바르지 않습니다.").into());
        }
        if !(0..=req.amount_krw).contains(&req.tax_free_krw) {
            return Err(rejected("INVALID_TAX_FREE", "취소 면세금액이 올바르지 않습니다.").into());
        }
        let now = self.now();
        let mut books = self.lock();
        let st = &mut books.ledger;
        if let Some(i) = st.cancel_index(&req.order_id, &req.cancellation_id) {
            let done = &st.cancels[i];
            if done.mid == mid.0 && done.outcome.amount_krw == req.amount_krw {
                return Ok(done.outcome.clone());
            }
            return Err(rejected(
                "DUPLICATE_CANCELLATION_ID",
                "이미 사용된 취소 요청번호입니다.",
            )
            .into());
        }
        let no_such = || rejected("NO_SUCH_TRANSACTION", "취소할 거래건이 존재하지 않습니다.");
        let i = st.order_index(&req.order_id).ok_or_else(no_such)?;
        let rec = &mut st.orders[i];
        let tid = rec.approval.as_ref().map(|a| a.pg_tid.as_str());
        let vbank_tid = rec.vbank.as_ref().map(|v| v.pg_tid.as_str());
        if rec.mid != mid.0
            || (tid != Some(req.pg_tid.as_str()) && vbank_tid != Some(req.pg_tid.as_str()))
        {
            return Err(no_such().into());
        }
        match rec.state {
            OrderState::Declined { .. } => return Err(no_such().into()),
            OrderState::AwaitingDeposit => {
                return Err(PgError::Declined {
                    code: "NOT_DEPOSITED".into(),
                    message: "결제취소에 실패하였습니다.(가상계좌 입금 전 거래입니다)".into(),
                }
                .into())
            }
            OrderState::Voided | OrderState::Approved => {}
        }
        if req.amount_krw > rec.cancelable_krw() {
            return Err(cancel_exceeds().into());
        }
        if req.tax_free_krw > rec.tax_free_krw - rec.cancelled_tax_free_krw {
            return Err(PgError::Declined {
                code: "CANCEL_TAX_FREE_EXCEEDED".into(),
                message: "결제취소에 실패하였습니다.(requested tax free amount is bigger than cancelable tax free amount)".into(),
            }
            .into());
        }
        rec.cancelled_krw += req.amount_krw;
        rec.cancelled_tax_free_krw += req.tax_free_krw;
        debug_assert!(rec.cancelled_krw <= rec.amount_krw);
        let pg_cancel_tid = self.next_tid('C');
        let outcome = CancelOutcome {
            receipt_url: Some(self.receipt_url(&pg_cancel_tid)),
            pg_cancel_tid,
            cancelled_at: now,
            amount_krw: req.amount_krw,
        };
        let cancel = CancelRec {
            mid: mid.0.clone(),
            order_id: req.order_id.clone(),
            cancellation_id: req.cancellation_id.clone(),
            tax_free_krw: req.tax_free_krw,
            reason: req.reason.clone(),
            outcome: outcome.clone(),
        };
        self.log(|| Entry::Order(rec.clone()));
        self.log(|| Entry::Cancel(cancel.clone()));
        st.put_cancel(cancel);
        Ok(outcome)
    }

    pub(crate) fn inquire(&self, mid: &Mid, order_id: &str) -> EngineResult<Inquiry> {
        let books = self.lock();
        let Some(rec) = books.ledger.order(order_id).filter(|r| r.mid == mid.0) else {
            return Ok(Inquiry::NotFound);
        };
        let pg_tid = || {
            rec.approval
                .as_ref()
                .map(|a| a.pg_tid.clone())
                .or_else(|| rec.vbank.as_ref().map(|v| v.pg_tid.clone()))
                .unwrap_or_default()
        };
        Ok(match (&rec.state, &rec.approval) {
            (OrderState::Declined { code, message }, _) => Inquiry::Declined {
                code: code.clone(),
                message: message.clone(),
            },
            (OrderState::Voided, _) => Inquiry::Voided { pg_tid: pg_tid() },
            (OrderState::Approved, Some(_)) if rec.cancelled_krw >= rec.amount_krw => {
                Inquiry::Voided { pg_tid: pg_tid() }
            }
            (OrderState::Approved, Some(approval)) => Inquiry::Approved(approval.clone()),
            // A virtual account without its deposit: no money moved yet.
            _ => Inquiry::NotFound,
        })
    }

    pub(crate) fn net_cancel(&self, mid: &Mid, order_id: &str) -> EngineResult<()> {
        check_id("order_id", order_id)?;
        let now = self.now();
        let mut books = self.lock();
        let st = &mut books.ledger;
        let Some(i) = st.order_index(order_id) else {
            // Not seen (yet): remember, so that a late approval of this order is refused.
            if st.tombstones.insert(order_id.to_owned()) {
                self.log(|| Entry::Tombstone {
                    mid: mid.0.clone(),
                    order_id: order_id.to_owned(),
                });
            }
            return Ok(());
        };
        let rec = &mut st.orders[i];
        if rec.mid != mid.0 {
            // Another merchant's order: not ours to touch, and nothing of ours to void.
            return Ok(());
        }
        match rec.state {
            OrderState::Approved => {
                rec.voided_krw = rec.amount_krw - rec.cancelled_krw;
            }
            OrderState::AwaitingDeposit => {}
            OrderState::Declined { .. } | OrderState::Voided => return Ok(()),
        }
        rec.state = OrderState::Voided;
        rec.voided_at = Some(now);
        self.log(|| Entry::Order(rec.clone()));
        Ok(())
    }
}
