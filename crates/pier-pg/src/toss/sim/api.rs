//! The Toss v1 operations the connector calls, on the books: key-in payment, billing-key
//! issuance and payment, cancel, virtual account.

use super::answer::{
    customer_key_mismatch, duplicated_order, not_found_payment, now_kst, parse, ts, Outcome,
};
use super::books::{BillingRec, Books, Charge};
use super::checks::{
    card_type_name, check_card, check_card_charge, check_order, check_tax_free, owner_type,
};
use super::{Inner, DEFAULT_VBANK_HOURS, MAX_CANCEL_REASON_CHARS, MAX_VBANK_HOURS};
use crate::testpg::cards::{self, Behaviour};
use crate::toss::answers::mask_card_number;
use crate::toss::codes;
use crate::toss::wire::{self, BillingAuth, BillingCard, Cancel, VirtualAccount};
use axum::http::StatusCode;

impl Books {
    pub(super) fn key_in(&mut self, sim: &Inner, body: &[u8]) -> Outcome {
        let req: wire::KeyInRequest = match parse(body) {
            Ok(r) => r,
            Err(o) => return o,
        };
        let (plan, tax_free) = match check_card_charge(
            &req.order_id,
            &req.order_name,
            req.amount,
            req.card_installment_plan,
            req.tax_free_amount,
        ) {
            Ok(v) => v,
            Err(o) => return o,
        };
        if self.by_order.contains_key(&req.order_id) {
            return duplicated_order();
        }
        let (card, behaviour) = match check_card(
            &req.card_number,
            &req.card_expiration_year,
            &req.card_expiration_month,
            req.customer_identity_number.as_deref(),
            sim.require_identity,
            req.card_password.as_deref(),
        ) {
            Ok(v) => v,
            Err(o) => return o,
        };
        if behaviour == Behaviour::Timeout {
            return Outcome::hang();
        }
        let refusal = match behaviour {
            Behaviour::Decline { decline, .. } => Some(decline),
            _ => cards::holder_check(&card, behaviour),
        };
        let charge = Charge {
            order_id: &req.order_id,
            order_name: &req.order_name,
            amount: req.amount,
            tax_free,
            plan,
            issuer: cards::issuer_of(&card.number),
            masked: mask_card_number(card.number.digits()),
            owner_type: owner_type(&card),
            billing: false,
        };
        self.charge(sim, charge, refusal)
            .lost_if(behaviour == Behaviour::LoseResponse)
    }

    pub(super) fn billing_auth(&mut self, sim: &Inner, body: &[u8]) -> Outcome {
        let req: wire::BillingAuthRequest = match parse(body) {
            Ok(r) => r,
            Err(o) => return o,
        };
        // customerKey of letters, digits and - _ = . @, 2 to 300 characters (the character set
        // is from Toss's SDK reference; the length is listed under "to verify").
        let key_ok = (2..=300).contains(&req.customer_key.len())
            && req
                .customer_key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_=.@".contains(&b));
        if !key_ok {
            return Outcome::invalid("잘못된 요청입니다. (customerKey)");
        }
        let (card, behaviour) = match check_card(
            &req.card_number,
            &req.card_expiration_year,
            &req.card_expiration_month,
            req.customer_identity_number.as_deref(),
            sim.require_identity,
            req.card_password.as_deref(),
        ) {
            Ok(v) => v,
            Err(o) => return o,
        };
        let refusal = match behaviour {
            Behaviour::Decline {
                decline,
                issue_ok: false,
            } => Some(decline),
            Behaviour::IssueFails => Some(cards::NO_RECURRING),
            _ => cards::holder_check(&card, behaviour),
        };
        if let Some(d) = refusal {
            return Outcome::declined(d);
        }
        let issuer = cards::issuer_of(&card.number);
        let masked = mask_card_number(card.number.digits());
        let (_, billing_key) = self.new_key("bk_", &req.customer_key);
        let toss_code = codes::toss_card_of_kftc(issuer.card_code).map(str::to_owned);
        let auth = BillingAuth {
            m_id: sim.mid.clone(),
            customer_key: req.customer_key.clone(),
            authenticated_at: Some(ts(now_kst())),
            method: Some("카드".into()),
            billing_key: billing_key.clone(),
            card_company: None,
            card_number: Some(masked.clone()),
            card: Some(BillingCard {
                company: None,
                issuer_code: toss_code.clone(),
                acquirer_code: toss_code,
                number: Some(masked.clone()),
                card_type: Some(card_type_name(issuer.card_type).into()),
                owner_type: Some(owner_type(&card).into()),
            }),
        };
        self.billing.insert(
            billing_key,
            BillingRec {
                customer_key: req.customer_key,
                behaviour,
                issuer,
                masked,
                owner_type: owner_type(&card),
            },
        );
        Outcome::ok(&auth)
    }

    pub(super) fn billing_pay(&mut self, sim: &Inner, billing_key: &str, body: &[u8]) -> Outcome {
        let req: wire::BillingPayRequest = match parse(body) {
            Ok(r) => r,
            Err(o) => return o,
        };
        let (plan, tax_free) = match check_card_charge(
            &req.order_id,
            &req.order_name,
            req.amount,
            req.card_installment_plan,
            req.tax_free_amount,
        ) {
            Ok(v) => v,
            Err(o) => return o,
        };
        let Some(rec) = self.billing.get(billing_key) else {
            return Outcome::err(
                StatusCode::NOT_FOUND,
                "NOT_FOUND_BILLING_KEY",
                "존재하지 않는 빌링키 입니다.",
            );
        };
        if rec.customer_key != req.customer_key {
            return customer_key_mismatch();
        }
        if self.by_order.contains_key(&req.order_id) {
            return duplicated_order();
        }
        let behaviour = rec.behaviour;
        let refusal = match behaviour {
            Behaviour::Timeout => return Outcome::hang(),
            Behaviour::Decline { decline, .. } | Behaviour::KeyChargesDecline { decline } => {
                Some(decline)
            }
            _ => None,
        };
        let charge = Charge {
            order_id: &req.order_id,
            order_name: &req.order_name,
            amount: req.amount,
            tax_free,
            plan,
            issuer: rec.issuer,
            masked: rec.masked.clone(),
            owner_type: rec.owner_type,
            billing: true,
        };
        self.charge(sim, charge, refusal)
            .lost_if(behaviour == Behaviour::LoseResponse)
    }

    pub(super) fn cancel(&mut self, payment_key: &str, body: &[u8]) -> Outcome {
        let req: wire::CancelBody = match parse(body) {
            Ok(r) => r,
            Err(o) => return o,
        };
        let reason_len = req.cancel_reason.chars().count();
        if req.cancel_reason.trim().is_empty() || reason_len > MAX_CANCEL_REASON_CHARS {
            return Outcome::invalid("잘못된 요청입니다. (cancelReason)");
        }
        let seq = self.next();
        let Some(p) = self.payments.get_mut(payment_key) else {
            return not_found_payment();
        };
        // An issued virtual account nobody has paid into yet is closed by a cancel, whole and
        // without a refund account (nothing was deposited; community answer, source T): its
        // status becomes CANCELED and a later deposit is refused.
        let waiting = p.status == "WAITING_FOR_DEPOSIT";
        match p.status.as_str() {
            "DONE" | "PARTIAL_CANCELED" | "WAITING_FOR_DEPOSIT" => {}
            "CANCELED" => {
                return Outcome::bad("ALREADY_CANCELED_PAYMENT", "이미 취소된 결제 입니다.")
            }
            _ => return Outcome::bad("NOT_CANCELABLE_PAYMENT", "취소 할 수 없는 결제 입니다."),
        }
        if waiting && req.cancel_amount.is_some_and(|a| a != p.balance_amount) {
            return Outcome::bad("NOT_CANCELABLE_AMOUNT", "취소 할 수 없는 금액 입니다.");
        }
        // A paid virtual account is refunded by transfer to an account the merchant names
        // (cancel guide, source E; community answers, sources R and S): Toss refuses without one.
        if p.method.as_deref() == Some("가상계좌") && !waiting {
            let Some(r) = &req.refund_receive_account else {
                return Outcome::invalid("잘못된 요청입니다. (refundReceiveAccount)");
            };
            if codes::kftc_bank_of_toss(&r.bank).is_none() {
                return Outcome::invalid("잘못된 요청입니다. (refundReceiveAccount.bank)");
            }
            let digits = r.account_number.len();
            if !(6..=20).contains(&digits) || !r.account_number.bytes().all(|b| b.is_ascii_digit())
            {
                return Outcome::bad(
                    "INVALID_REFUND_ACCOUNT_NUMBER",
                    "잘못된 환불 계좌번호입니다.",
                );
            }
            if r.holder_name.trim().is_empty() {
                return Outcome::bad(
                    "INVALID_REFUND_ACCOUNT_INFO",
                    "환불 계좌번호와 예금주명이 일치하지 않습니다.",
                );
            }
        }
        let amount = req.cancel_amount.unwrap_or(p.balance_amount);
        if amount <= 0 || amount > p.balance_amount {
            return Outcome::bad("NOT_CANCELABLE_AMOUNT", "취소 할 수 없는 금액 입니다.");
        }
        let tax_free_left = p.tax_free_amount
            - p.cancels
                .iter()
                .flatten()
                .map(|c| c.tax_free_amount)
                .sum::<i64>();
        let tax_free = req.tax_free_amount.unwrap_or(0);
        if tax_free < 0 || tax_free > amount || tax_free > tax_free_left {
            return Outcome::bad("NOT_CANCELABLE_AMOUNT", "취소 할 수 없는 금액 입니다.");
        }
        p.balance_amount -= amount;
        p.status = if p.balance_amount == 0 {
            "CANCELED"
        } else {
            "PARTIAL_CANCELED"
        }
        .into();
        let transaction_key = format!("ctx_{seq:010}_{}", &p.payment_key);
        p.last_transaction_key = Some(transaction_key.clone());
        p.cancels.get_or_insert_with(Vec::new).push(Cancel {
            transaction_key: Some(transaction_key),
            cancel_reason: Some(req.cancel_reason),
            canceled_at: Some(ts(now_kst())),
            cancel_amount: amount,
            tax_free_amount: tax_free,
            refundable_amount: p.balance_amount,
            cancel_status: Some("DONE".into()),
        });
        Outcome::ok(p)
    }

    pub(super) fn virtual_account(&mut self, sim: &Inner, body: &[u8]) -> Outcome {
        let req: wire::VirtualAccountRequest = match parse(body) {
            Ok(r) => r,
            Err(o) => return o,
        };
        if let Err(o) = check_order(&req.order_id, &req.order_name, req.amount) {
            return o;
        }
        let tax_free = match check_tax_free(req.tax_free_amount, req.amount) {
            Ok(t) => t,
            Err(o) => return o,
        };
        if req.customer_name.trim().is_empty() {
            return Outcome::invalid("잘못된 요청입니다. (customerName)");
        }
        let Some(bank_kftc) =
            codes::kftc_bank_of_toss(&req.bank).filter(|_| codes::is_vbank_issuer(&req.bank))
        else {
            return Outcome::bad("INVALID_BANK", "유효하지 않은 은행입니다.");
        };
        let now = now_kst();
        let due = match (&req.due_date, req.valid_hours) {
            (Some(_), Some(_)) => {
                return Outcome::invalid("잘못된 요청입니다. (dueDate, validHours)")
            }
            (None, None) => now + chrono::Duration::hours(DEFAULT_VBANK_HOURS),
            (None, Some(h)) if (1..=MAX_VBANK_HOURS).contains(&h) => {
                now + chrono::Duration::hours(h)
            }
            (None, Some(_)) => return Outcome::invalid("잘못된 요청입니다. (validHours)"),
            (Some(d), None) => match chrono::DateTime::parse_from_rfc3339(d) {
                Ok(d) if d > now && d <= now + chrono::Duration::hours(MAX_VBANK_HOURS) => d,
                _ => return Outcome::invalid("잘못된 요청입니다. (dueDate)"),
            },
        };
        if self.by_order.contains_key(&req.order_id) {
            return duplicated_order();
        }
        let mut p = self.base_payment(sim, &req.order_id, &req.order_name, req.amount, tax_free);
        let seq = self.seq;
        p.method = Some("가상계좌".into());
        p.kind = Some("NORMAL".into());
        p.status = "WAITING_FOR_DEPOSIT".into();
        p.virtual_account = Some(VirtualAccount {
            account_type: Some("일반".into()),
            account_number: format!("{}{:012}", bank_kftc, seq),
            bank_code: Some(req.bank.clone()),
            bank: None,
            customer_name: Some(req.customer_name.clone()),
            due_date: Some(ts(due)),
            expired: false,
            settlement_status: Some("INCOMPLETED".into()),
            refund_status: Some("NONE".into()),
        });
        let answer = Outcome::ok(&p);
        self.insert(p);
        answer
    }
}
