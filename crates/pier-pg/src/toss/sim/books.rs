//! The simulator's books: payments by `paymentKey` and `orderId`, billing keys, stored
//! idempotent answers, and what the payment window authenticated and not yet confirmed.

use super::answer::{now_kst, ts, Outcome};
use super::checks::card_type_name;
use super::{Inner, MAX_RECORDS, VERSION};
use crate::testpg::cards::{self, Behaviour, Decline, Issuer};
use crate::toss::codes;
use crate::toss::wire::{Payment, PaymentCard, Receipt};
use axum::http::StatusCode;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

#[derive(Default)]
pub(super) struct Books {
    pub(super) seq: u64,
    pub(super) payments: HashMap<String, Payment>,
    pub(super) by_order: HashMap<String, String>,
    pub(super) billing: HashMap<String, BillingRec>,
    pub(super) idempotent: HashMap<String, Stored>,
    /// Order ids of every charge processed with an approval, in order (a double charge shows as a
    /// repeated id).
    pub(super) approved_charges: Vec<String>,
    /// Payments authenticated in the window and not yet confirmed, by `paymentKey`.
    pub(super) pending: HashMap<String, Pending>,
    /// Billing authorizations of the window not yet issued, by `authKey`.
    pub(super) auth_keys: HashMap<String, PendingBilling>,
}

pub(super) struct BillingRec {
    pub(super) customer_key: String,
    pub(super) behaviour: Behaviour,
    pub(super) issuer: Issuer,
    pub(super) masked: String,
    pub(super) owner_type: &'static str,
}

pub(super) struct Stored {
    pub(super) digest: [u8; 32],
    pub(super) status: StatusCode,
    pub(super) body: Vec<u8>,
}

/// A payment authenticated in the window, waiting for `confirm`.
pub(super) struct Pending {
    pub(super) method: Method,
    pub(super) behaviour: Behaviour,
    pub(super) issuer: Option<Issuer>,
    pub(super) masked: Option<String>,
    pub(super) plan: i64,
    /// Toss bank code (transfer, virtual account).
    pub(super) bank: Option<String>,
    pub(super) phone: Option<String>,
}

/// A billing authorization of the window, waiting for `authorizations/issue`.
pub(super) struct PendingBilling {
    pub(super) customer_key: String,
    pub(super) behaviour: Behaviour,
    pub(super) issuer: Issuer,
    pub(super) masked: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Method {
    Card,
    Transfer,
    Phone,
    VirtualAccount,
}

impl Method {
    pub(super) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "카드" | "CARD" => Self::Card,
            "계좌이체" | "TRANSFER" => Self::Transfer,
            "휴대폰" | "MOBILE_PHONE" => Self::Phone,
            "가상계좌" | "VIRTUAL_ACCOUNT" => Self::VirtualAccount,
            _ => return None,
        })
    }
    pub(super) fn toss(self) -> &'static str {
        match self {
            Self::Card => "카드",
            Self::Transfer => "계좌이체",
            Self::Phone => "휴대폰",
            Self::VirtualAccount => "가상계좌",
        }
    }
}

/// What a charge needs once its card side is settled.
pub(super) struct Charge<'a> {
    pub(super) order_id: &'a str,
    pub(super) order_name: &'a str,
    pub(super) amount: i64,
    pub(super) tax_free: i64,
    pub(super) plan: i64,
    pub(super) issuer: Issuer,
    pub(super) masked: String,
    pub(super) owner_type: &'static str,
    pub(super) billing: bool,
}

impl Books {
    pub(super) fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub(super) fn full(&self) -> bool {
        self.payments.len() >= MAX_RECORDS
            || self.idempotent.len() >= MAX_RECORDS
            || self.approved_charges.len() >= MAX_RECORDS
    }

    pub(super) fn new_key(&mut self, prefix: &str, salt: &str) -> (u64, String) {
        let seq = self.next();
        let h = hex::encode(Sha256::digest(format!("{seq}\0{salt}").as_bytes()));
        (seq, format!("{prefix}{seq:010}{}", &h[..24]))
    }

    pub(super) fn insert(&mut self, p: Payment) {
        self.by_order
            .insert(p.order_id.clone(), p.payment_key.clone());
        self.payments.insert(p.payment_key.clone(), p);
    }

    pub(super) fn base_payment(
        &mut self,
        sim: &Inner,
        order_id: &str,
        order_name: &str,
        amount: i64,
        tax_free: i64,
    ) -> Payment {
        let (_, payment_key) = self.new_key("tsim", order_id);
        let now = ts(now_kst());
        let taxable = amount - tax_free;
        let vat = taxable / 11;
        Payment {
            m_id: sim.mid.clone(),
            version: VERSION.into(),
            last_transaction_key: Some(format!("txn_{}", &payment_key[4..])),
            receipt: Some(Receipt {
                url: Some(format!("{}/receipt/{payment_key}", sim.base_url)),
            }),
            payment_key,
            order_id: order_id.into(),
            order_name: order_name.into(),
            currency: "KRW".into(),
            requested_at: Some(now),
            total_amount: amount,
            balance_amount: amount,
            supplied_amount: taxable - vat,
            vat,
            tax_free_amount: tax_free,
            ..Payment::default()
        }
    }

    /// Record a charge: approved, or aborted with the issuer's refusal (so that an inquiry of the
    /// order shows the refusal).
    pub(super) fn charge(
        &mut self,
        sim: &Inner,
        c: Charge<'_>,
        refusal: Option<Decline>,
    ) -> Outcome {
        let mut p = self.base_payment(sim, c.order_id, c.order_name, c.amount, c.tax_free);
        p.method = Some("카드".into());
        p.kind = Some(if c.billing { "BILLING" } else { "NORMAL" }.into());
        let quota = match cards::applied_quota(c.amount, c.plan) {
            Ok(q) => q,
            Err(_) => return Outcome::invalid("잘못된 요청입니다. (cardInstallmentPlan)"),
        };
        if let Some(d) = refusal {
            let answer = abort(&mut p, d);
            self.insert(p);
            return answer;
        }
        let seq = self.seq;
        p.card = Some(approved_card(
            c.amount,
            c.issuer,
            Some(c.masked),
            quota,
            seq,
            c.owner_type,
        ));
        p.status = "DONE".into();
        p.approved_at = p.requested_at.clone();
        self.approved_charges.push(c.order_id.to_owned());
        let answer = Outcome::ok(&p);
        self.insert(p);
        answer
    }
}

/// An issuer's refusal recorded on the payment (`ABORTED` with its `failure`, nothing left to
/// cancel), and the answer that says it.
pub(super) fn abort(p: &mut Payment, d: Decline) -> Outcome {
    p.status = "ABORTED".into();
    p.balance_amount = 0;
    let answer = Outcome::declined(d);
    p.failure = serde_json::from_slice(&answer.body).ok();
    answer
}

/// The `card` of an approved card payment as Toss shows it; `seq` numbers the approval.
pub(super) fn approved_card(
    amount: i64,
    issuer: Issuer,
    number: Option<String>,
    quota: i64,
    seq: u64,
    owner_type: &str,
) -> PaymentCard {
    let toss_code = codes::toss_card_of_kftc(issuer.card_code).map(str::to_owned);
    PaymentCard {
        amount,
        company: None,
        issuer_code: toss_code.clone(),
        acquirer_code: toss_code,
        number,
        installment_plan_months: quota,
        approve_no: Some(format!("{:08}", seq % 100_000_000)),
        use_card_point: false,
        card_type: Some(card_type_name(issuer.card_type).into()),
        owner_type: Some(owner_type.into()),
        acquire_status: Some("READY".into()),
        is_interest_free: false,
        receipt_url: None,
    }
}
