//! One payment (`/console/payments/{imp_uid}`): its timeline, cancels, webhook deliveries, and
//! the refund form.

use super::payments::{row, Row};
use super::view::{enc, error_page, html, layout, see_other, won, Layout};
use super::webhooks::{delivery_row, DeliveryRow};
use super::{CanOperate, Post, Signed};
use crate::engine::console::kst_time;
use crate::engine::Error;
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use pier_domain::ids::random_hex;
use pier_domain::PaymentStatus;

pub struct CancelRow {
    pub at: String,
    pub amount: String,
    pub reason: String,
}

pub struct Event {
    pub at: String,
    pub what: String,
}

#[derive(Template)]
#[template(path = "console/payment.html")]
struct PaymentPage {
    layout: Layout,
    p: Row,
    remaining: String,
    refundable: bool,
    can_refund: bool,
    vbank: Option<String>,
    fail_reason: String,
    cancels: Vec<CancelRow>,
    timeline: Vec<Event>,
    deliveries: Vec<DeliveryRow>,
    flash: Option<&'static str>,
}

pub async fn payment(
    State(state): State<AppState>,
    Path(imp_uid): Path<String>,
    RawQuery(query): RawQuery,
    Signed(a): Signed,
) -> Response {
    let (p, deliveries) = match state.console_payment(&a, &imp_uid).await {
        Ok(x) => x,
        Err(e) => return error_page(&e),
    };
    let mut timeline = vec![Event {
        at: kst_time(p.started_at),
        what: "결제 요청 (requested)".into(),
    }];
    if p.paid_at > 0 {
        timeline.push(Event {
            at: kst_time(p.paid_at),
            what: format!("PG 승인 (paid) {}원", won(p.amount)),
        });
    }
    if p.failed_at > 0 {
        timeline.push(Event {
            at: kst_time(p.failed_at),
            what: format!(
                "PG 실패 (failed): {}",
                p.fail_reason.clone().unwrap_or_default()
            ),
        });
    }
    for c in &p.cancel_history {
        timeline.push(Event {
            at: kst_time(c.cancelled_at),
            what: format!("취소 (cancelled) {}원", won(c.amount)),
        });
    }
    for d in &deliveries {
        timeline.push(Event {
            at: kst_time(d.at),
            what: format!("웹훅 전송 (webhook {}) → {}", d.status, d.status_code),
        });
    }
    timeline.sort_by(|x, y| x.at.cmp(&y.at));
    let remaining = p.amount - p.cancel_amount - p.cancel_reserved;
    let flash = match query.as_deref() {
        Some("refunded=1") => Some("환불이 완료되었습니다. (refunded)"),
        _ => None,
    };
    let page = PaymentPage {
        layout: layout(&state, &a, "payments").await,
        remaining: won(remaining),
        refundable: matches!(p.status, PaymentStatus::Paid | PaymentStatus::Cancelled)
            && p.paid_at > 0
            && remaining > 0,
        can_refund: a.role.can_operate(),
        vbank: p.vbank_num.as_ref().map(|n| {
            format!(
                "{} {} ({}) 기한 {}",
                p.vbank_name.clone().unwrap_or_default(),
                n,
                p.vbank_holder.clone().unwrap_or_default(),
                kst_time(p.vbank_date)
            )
        }),
        fail_reason: p.fail_reason.clone().unwrap_or_default(),
        cancels: p
            .cancel_history
            .iter()
            .map(|c| CancelRow {
                at: kst_time(c.cancelled_at),
                amount: won(c.amount),
                reason: c.reason.clone().unwrap_or_default(),
            })
            .collect(),
        timeline,
        deliveries: deliveries.iter().map(delivery_row).collect(),
        p: row(&p),
        flash,
    };
    html(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "console/refund_confirm.html")]
struct RefundConfirmPage {
    layout: Layout,
    imp_uid: String,
    amount: String,
    amount_label: String,
    reason: String,
    nonce: String,
}

fn parse_amount(s: &str) -> Result<Option<i64>, Error> {
    let t: String = s.trim().chars().filter(|c| *c != ',').collect();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<i64>().map(Some).map_err(|_| {
        Error::Invalid(
            "환불 금액은 숫자(원)로 입력해주세요. (amount must be a whole number of won)".into(),
        )
    })
}

/// Step 1 (no `nonce`): shows what will be refunded and asks to confirm. Step 2: refunds.
pub async fn refund(
    State(state): State<AppState>,
    Path(imp_uid): Path<String>,
    Post { actor: a, form, .. }: Post<CanOperate>,
) -> Response {
    let amount_text = form.get("amount").unwrap_or("").trim().to_owned();
    let amount = match parse_amount(&amount_text) {
        Ok(x) => x,
        Err(e) => return error_page(&e),
    };
    let reason = form.get("reason").unwrap_or("").to_owned();
    match form.get("nonce") {
        None => {
            // Check the payment is the actor's before showing anything about it.
            if let Err(e) = state.console_payment(&a, &imp_uid).await {
                return error_page(&e);
            }
            if reason.trim().is_empty() {
                return error_page(&Error::Invalid(
                    "환불 사유를 입력해주세요. (a reason is required)".into(),
                ));
            }
            let page = RefundConfirmPage {
                layout: layout(&state, &a, "payments").await,
                amount_label: amount.map_or_else(
                    || "남은 금액 전액 (full)".into(),
                    |x| format!("{}원", won(x)),
                ),
                amount: amount_text,
                reason,
                nonce: random_hex(12),
                imp_uid,
            };
            html(StatusCode::OK, &page)
        }
        Some(nonce) => match state
            .console_refund(&a, &imp_uid, amount, &reason, nonce)
            .await
        {
            Ok(_) => see_other(&format!("/console/payments/{}?refunded=1", enc(&imp_uid))),
            Err(e) => error_page(&e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refund_amounts() {
        assert_eq!(parse_amount(" 1,000 ").unwrap(), Some(1000));
        assert_eq!(parse_amount("").unwrap(), None);
        assert!(parse_amount("1e3").is_err());
    }
}
