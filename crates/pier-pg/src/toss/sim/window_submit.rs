//! The window's form (`POST /sim/window`): the buyer pays (or registers a card) or cancels,
//! and is sent on to the merchant's success or fail URL as Toss does.

use super::answer::Outcome;
use super::books::{Method, Pending, PendingBilling};
use super::window::{form_urlencoded_pairs, opened, BANKS};
use super::window_page::error_page;
use super::{Sim, MAX_BODY_BYTES, VERSION};
use crate::testpg::cards::{self, Behaviour};
use crate::toss::answers::mask_card_number;
use crate::toss::{codes, wire};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pier_domain::{CardNumber, Expiry};

fn see_other(mut to: reqwest::Url, pairs: &[(&str, &str)]) -> Response {
    {
        let mut q = to.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to.as_str()) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The window's form: pay (or register) or cancel, then on to the merchant's URL as Toss does.
pub(super) async fn submit(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    let form_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_ok || body.len() > MAX_BODY_BYTES {
        return error_page("INVALID_REQUEST", "잘못된 요청입니다. (form)");
    }
    let mut pairs = form_urlencoded_pairs(&body);
    // The buyer's inputs, apart from the window's own parameters.
    let mut take = |k: &str| {
        let v = pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        pairs.retain(|(n, _)| n != k);
        v
    };
    let action = take("action");
    let card_number = take("cardNumber");
    let card_expiry = take("cardExpiry");
    let installment = take("installment");
    let bank = take("bank");
    let phone = take("phone");
    let (p, r) = match opened(&sim.inner, pairs) {
        Ok(v) => v,
        Err((c, m)) => return error_page(&c, &m),
    };
    let fail = |code: &str, message: &str| {
        let mut q = vec![("code", code), ("message", message)];
        if !r.billing {
            q.push(("orderId", r.order_id.as_str()));
        }
        see_other(r.fail.clone(), &q)
    };
    if action.as_deref() != Some("pay") {
        return fail(
            "PAY_PROCESS_CANCELED",
            "사용자에 의해 결제가 취소되었습니다.",
        );
    }
    let mut pending = Pending {
        method: r.method,
        behaviour: Behaviour::Approve,
        issuer: None,
        masked: None,
        plan: 0,
        bank: None,
        phone: None,
    };
    match r.method {
        Method::Card => {
            let Some(number) = card_number
                .as_deref()
                .and_then(|n| CardNumber::parse(n).ok())
            else {
                return fail("INVALID_CARD_NUMBER", "카드번호를 다시 확인해주세요.");
            };
            let expiry = card_expiry.as_deref().and_then(|e| {
                let (m, y) = e.trim().split_once('/')?;
                Expiry::parse(&format!("20{}-{}", y.trim(), m.trim())).ok()
            });
            match expiry {
                Some(e) if !e.is_expired_at(chrono::Utc::now().timestamp()) => {}
                _ => {
                    return fail(
                        "INVALID_CARD_EXPIRATION",
                        "카드 정보를 다시 확인해주세요. (유효기간)",
                    )
                }
            }
            let behaviour = cards::behaviour_of(&number);
            if behaviour == Behaviour::InvalidNumber {
                return fail("INVALID_CARD_NUMBER", "카드번호를 다시 확인해주세요.");
            }
            let issuer = cards::issuer_of(&number);
            // A window opened for one card company takes that company's cards only.
            if let Some(c) = r.card_company.as_deref().and_then(codes::kftc_card_of_toss) {
                if c != issuer.card_code {
                    return fail("INVALID_CARD_COMPANY", "선택한 카드사의 카드가 아닙니다.");
                }
            }
            pending.behaviour = behaviour;
            pending.issuer = Some(issuer);
            pending.masked = Some(mask_card_number(number.digits()));
            pending.plan = match installment.as_deref().map(str::parse::<i64>) {
                None => r.fixed_plan.unwrap_or(0),
                Some(Ok(m)) if m == 0 || (2..=r.max_plan).contains(&m) => m,
                Some(_) => return fail("INVALID_REQUEST", "잘못된 요청입니다. (할부)"),
            };
            if let Some(fixed) = r.fixed_plan {
                pending.plan = fixed;
            }
        }
        Method::Transfer | Method::VirtualAccount => {
            match bank.filter(|b| BANKS.iter().any(|(c, _)| c == b)) {
                Some(b) => pending.bank = Some(b),
                None => return fail("INVALID_BANK", "은행을 선택해주세요."),
            }
        }
        Method::Phone => {
            let digits: String = phone
                .unwrap_or_default()
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            if !(10..=11).contains(&digits.len()) || !digits.starts_with("01") {
                return fail("INVALID_PHONE", "휴대폰 번호를 다시 확인해주세요.");
            }
            pending.phone = Some(format!(
                "{}****{}",
                &digits[..3],
                &digits[digits.len() - 4..]
            ));
        }
    }
    let mut books = sim.books();
    if books.full() {
        return fail(
            "FAILED_INTERNAL_SYSTEM_PROCESSING",
            "simulator record limit reached",
        );
    }
    if r.billing {
        let (Some(issuer), Some(masked)) = (pending.issuer, pending.masked) else {
            return fail("INVALID_CARD_NUMBER", "카드번호를 다시 확인해주세요.");
        };
        let refusal = match pending.behaviour {
            Behaviour::Decline {
                decline,
                issue_ok: false,
            } => Some(decline),
            Behaviour::IssueFails => Some(cards::NO_RECURRING),
            _ => None,
        };
        if let Some(d) = refusal {
            let answer = Outcome::declined(d);
            let e: wire::TossError = serde_json::from_slice(&answer.body).unwrap_or_default();
            drop(books);
            return fail(&e.code, &e.message);
        }
        let (_, auth_key) = books.new_key("auth_", &r.customer_key);
        books.auth_keys.insert(
            auth_key.clone(),
            PendingBilling {
                customer_key: r.customer_key.clone(),
                behaviour: pending.behaviour,
                issuer,
                masked,
            },
        );
        drop(books);
        return see_other(
            r.success.clone(),
            &[
                ("customerKey", r.customer_key.as_str()),
                ("authKey", auth_key.as_str()),
            ],
        );
    }
    // One payment per orderId; an unconfirmed one may be authenticated again.
    if let Some(key) = books.by_order.get(&r.order_id).cloned() {
        if books.pending.remove(&key).is_some() {
            books.payments.remove(&key);
        } else {
            drop(books);
            return fail(
                "DUPLICATED_ORDER_ID",
                "이미 승인 및 취소가 진행된 중복된 주문번호 입니다. 다른 주문번호로 진행해주세요.",
            );
        }
    }
    let tax_free = p
        .get("taxFreeAmount")
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or(0)
        .clamp(0, r.amount);
    let mut payment =
        books.base_payment(&sim.inner, &r.order_id, &r.order_name, r.amount, tax_free);
    payment.method = Some(r.method.toss().into());
    payment.kind = Some("NORMAL".into());
    payment.status = "IN_PROGRESS".into();
    payment.version = VERSION.into();
    let key = payment.payment_key.clone();
    books.insert(payment);
    books.pending.insert(key.clone(), pending);
    drop(books);
    let amount = r.amount.to_string();
    see_other(
        r.success.clone(),
        &[
            ("paymentKey", key.as_str()),
            ("orderId", r.order_id.as_str()),
            ("amount", amount.as_str()),
            ("paymentType", "NORMAL"),
        ],
    )
}
