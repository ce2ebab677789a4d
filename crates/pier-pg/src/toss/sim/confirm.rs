//! The server calls that finish a window: `POST /v1/payments/confirm` (a payment authenticated
//! in the window; card refusals happen here, from the test card table, as with keyed payments)
//! and `POST /v1/billing/authorizations/issue`.

use super::answer::{customer_key_mismatch, not_found_payment, now_kst, parse, ts, Outcome};
use super::books::{abort, approved_card, BillingRec, Books, Method};
use super::checks::card_type_name;
use super::{Inner, Sim};
use crate::testpg::cards::{self, Behaviour, Issuer};
use crate::toss::codes;
use crate::toss::wire::{self, BillingAuth, BillingCard, MobilePhone, Transfer, VirtualAccount};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

/// A confirmed virtual account waits 7 days (Toss's default, virtual-account guide).
const VBANK_HOURS: i64 = 7 * 24;

impl Books {
    pub(super) fn confirm(&mut self, body: &[u8]) -> Outcome {
        let req: wire::ConfirmRequest = match parse(body) {
            Ok(r) => r,
            Err(o) => return o,
        };
        let Some(p) = self.payments.get(&req.payment_key) else {
            return not_found_payment();
        };
        if p.order_id != req.order_id {
            return Outcome::bad("NOT_MATCHES_ORDER_ID", "주문번호가 일치하지 않습니다.");
        }
        if !self.pending.contains_key(&req.payment_key) {
            return Outcome::bad("ALREADY_PROCESSED_PAYMENT", "이미 처리된 결제 입니다.");
        }
        if p.total_amount != req.amount {
            return Outcome::bad(
                "NOT_MATCHES_AMOUNT",
                "결제 금액이 인증된 금액과 일치하지 않습니다.",
            );
        }
        let pending = match self.pending.get(&req.payment_key) {
            Some(p) if p.behaviour == Behaviour::Timeout => return Outcome::hang(),
            Some(_) => self.pending.remove(&req.payment_key),
            None => None,
        };
        let Some(pending) = pending else {
            return Outcome::bad("ALREADY_PROCESSED_PAYMENT", "이미 처리된 결제 입니다.");
        };
        let seq = self.next();
        let Some(p) = self.payments.get_mut(&req.payment_key) else {
            return not_found_payment();
        };
        let now = now_kst();
        match pending.method {
            Method::Card => {
                if let Behaviour::Decline { decline, .. } = pending.behaviour {
                    return abort(p, decline);
                }
                let issuer = pending.issuer.unwrap_or(Issuer {
                    card_code: "366",
                    card_type: 0,
                });
                let quota = cards::applied_quota(p.total_amount, pending.plan).unwrap_or(0);
                p.card = Some(approved_card(
                    p.total_amount,
                    issuer,
                    pending.masked.clone(),
                    quota,
                    seq,
                    "개인",
                ));
                p.status = "DONE".into();
            }
            Method::Transfer => {
                p.transfer = Some(Transfer {
                    bank_code: pending.bank.clone(),
                    settlement_status: Some("COMPLETED".into()),
                });
                p.status = "DONE".into();
            }
            Method::Phone => {
                p.mobile_phone = Some(MobilePhone {
                    customer_mobile_phone: pending.phone.clone(),
                    settlement_status: Some("COMPLETED".into()),
                    receipt_url: p.receipt.as_ref().and_then(|r| r.url.clone()),
                });
                p.status = "DONE".into();
            }
            Method::VirtualAccount => {
                let bank = pending.bank.clone().unwrap_or_else(|| "88".into());
                let kftc = codes::kftc_bank_of_toss(&bank).unwrap_or("088");
                p.virtual_account = Some(VirtualAccount {
                    account_type: Some("일반".into()),
                    account_number: format!("{kftc}{seq:012}"),
                    bank_code: Some(bank),
                    bank: None,
                    customer_name: Some("구매자".into()),
                    due_date: Some(ts(now + chrono::Duration::hours(VBANK_HOURS))),
                    expired: false,
                    settlement_status: Some("INCOMPLETED".into()),
                    refund_status: Some("NONE".into()),
                });
                p.status = "WAITING_FOR_DEPOSIT".into();
            }
        }
        if p.status == "DONE" {
            p.approved_at = Some(ts(now));
        }
        let answer = Outcome::ok(&*p);
        if p.status == "DONE" {
            let order = p.order_id.clone();
            self.approved_charges.push(order);
        }
        answer.lost_if(pending.behaviour == Behaviour::LoseResponse)
    }

    pub(super) fn billing_issue(&mut self, sim: &Inner, body: &[u8]) -> Outcome {
        let req: wire::BillingIssueRequest = match parse(body) {
            Ok(r) => r,
            Err(o) => return o,
        };
        let Some(pending) = self.auth_keys.get(&req.auth_key) else {
            return Outcome::err(
                StatusCode::NOT_FOUND,
                "NOT_FOUND_AUTH_KEY",
                "존재하지 않는 인증 키 입니다.",
            );
        };
        if pending.customer_key != req.customer_key {
            return customer_key_mismatch();
        }
        let Some(pending) = self.auth_keys.remove(&req.auth_key) else {
            return Outcome::invalid("잘못된 요청입니다. (authKey)");
        };
        let (_, billing_key) = self.new_key("bk_", &req.customer_key);
        let toss_code = codes::toss_card_of_kftc(pending.issuer.card_code).map(str::to_owned);
        let auth = BillingAuth {
            m_id: sim.mid.clone(),
            customer_key: req.customer_key.clone(),
            authenticated_at: Some(ts(now_kst())),
            method: Some("카드".into()),
            billing_key: billing_key.clone(),
            card_company: None,
            card_number: Some(pending.masked.clone()),
            card: Some(BillingCard {
                company: None,
                issuer_code: toss_code.clone(),
                acquirer_code: toss_code,
                number: Some(pending.masked.clone()),
                card_type: Some(card_type_name(pending.issuer.card_type).into()),
                owner_type: Some("개인".into()),
            }),
        };
        self.billing.insert(
            billing_key,
            BillingRec {
                customer_key: req.customer_key,
                behaviour: pending.behaviour,
                issuer: pending.issuer,
                masked: pending.masked,
                owner_type: "개인",
            },
        );
        Outcome::ok(&auth)
    }
}

pub(super) async fn confirm(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    sim.post(wire::CONFIRM, &headers, &body, |b, _| b.confirm(&body))
        .await
}

pub(super) async fn billing_issue(
    State(sim): State<Sim>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.post(wire::BILLING_AUTH_ISSUE, &headers, &body, |b, s| {
        b.billing_issue(s, &body)
    })
    .await
}
