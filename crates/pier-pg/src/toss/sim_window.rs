//! The simulator's payment window: an imitation of Toss's browser SDK (`GET /v1/payment`
//! defines `TossPayments(clientKey)` with `requestPayment` and `requestBillingAuth`), the hosted
//! window page it sends the buyer to (`/sim/window`, minimal HTML without script, Korean labels,
//! `data-testid`s), and the server calls that finish it: `POST /v1/payments/confirm` and
//! `POST /v1/billing/authorizations/issue`.
//!
//! As Toss documents the flow: the window redirects to `successUrl` with `paymentKey`, `orderId`,
//! `amount` (billing: `customerKey`, `authKey`) or to `failUrl` with `code`, `message`
//! (`orderId` for payments). The payment exists as `IN_PROGRESS` until it is confirmed; card
//! refusals happen at confirmation (the test card table), as with keyed payments. The card number
//! reaches the simulator in the form's POST body only, and only the card's behaviour, issuer and
//! masked number are kept.

use super::{
    codes, mask_card_number, now_kst, parse, ts, wire, BillingRec, Books, Inner, Outcome, Sim,
    VirtualAccount, MAX_BODY_BYTES, VERSION,
};
use crate::testpg::cards::{self, Behaviour, Issuer};
use crate::toss::wire::{BillingAuth, BillingCard, MobilePhone, Payment, PaymentCard, Transfer};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pier_domain::{CardNumber, Expiry};
use std::collections::BTreeMap;

/// Parameters a window URL or form carries at most, and the length of each value (`successUrl`
/// and `failUrl` are URLs of the merchant: 2,000 like Pier's own URL limit).
const MAX_PARAMS: usize = 32;
const MAX_VALUE_CHARS: usize = 2_000;
/// A confirmed virtual account waits 7 days (Toss's default, virtual-account guide).
const VBANK_HOURS: i64 = 7 * 24;

/// The browser SDK imitation. No dependency, no storage; it only navigates.
const SDK_JS: &str = r#"(function () {
  'use strict';
  var script = document.currentScript;
  var base = script ? new URL(script.src).origin : '';
  function open(clientKey, kind, method, params) {
    var q = new URLSearchParams();
    q.set('clientKey', clientKey);
    q.set('kind', kind);
    q.set('method', String(method));
    Object.keys(params || {}).forEach(function (k) {
      var v = params[k];
      if (v !== undefined && v !== null && typeof v !== 'object' && typeof v !== 'function') {
        q.set(k, String(v));
      }
    });
    window.location.assign(base + '/sim/window?' + q.toString());
    return new Promise(function () {});
  }
  window.TossPayments = function (clientKey) {
    if (typeof clientKey !== 'string' || clientKey === '') {
      throw new Error('clientKey is required');
    }
    return {
      requestPayment: function (method, params) { return open(clientKey, 'payment', method, params); },
      requestBillingAuth: function (method, params) { return open(clientKey, 'billing', method, params); }
    };
  };
})();
"#;

/// A payment authenticated in the window, waiting for `confirm`.
pub(super) struct Pending {
    method: Method,
    behaviour: Behaviour,
    issuer: Option<Issuer>,
    masked: Option<String>,
    plan: i64,
    /// Toss bank code (transfer, virtual account).
    bank: Option<String>,
    phone: Option<String>,
}

/// A billing authorization of the window, waiting for `authorizations/issue`.
pub(super) struct PendingBilling {
    customer_key: String,
    behaviour: Behaviour,
    issuer: Issuer,
    masked: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Method {
    Card,
    Transfer,
    Phone,
    VirtualAccount,
}

impl Method {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "카드" | "CARD" => Self::Card,
            "계좌이체" | "TRANSFER" => Self::Transfer,
            "휴대폰" | "MOBILE_PHONE" => Self::Phone,
            "가상계좌" | "VIRTUAL_ACCOUNT" => Self::VirtualAccount,
            _ => return None,
        })
    }
    fn toss(self) -> &'static str {
        match self {
            Self::Card => "카드",
            Self::Transfer => "계좌이체",
            Self::Phone => "휴대폰",
            Self::VirtualAccount => "가상계좌",
        }
    }
}

pub(super) async fn sdk_js() -> Response {
    let mut res = SDK_JS.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    res
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

fn html(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // No script at all; the form may go on to the merchant's success/fail URL (a redirect after
    // a form POST is subject to form-action).
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; img-src 'self' data:; form-action 'self' http: https:; base-uri 'none'",
        ),
    );
    res
}

fn error_page(code: &str, message: &str) -> Response {
    html(
        StatusCode::BAD_REQUEST,
        format!(
            "<!doctype html><html lang=\"ko\"><head><meta charset=\"utf-8\"><title>토스페이먼츠 (시뮬레이터)</title></head>\
             <body data-testid=\"toss-error\"><h1>결제를 진행할 수 없습니다</h1>\
             <p data-testid=\"toss-error-code\">{}</p><p data-testid=\"toss-error-message\">{}</p></body></html>",
            esc(code),
            esc(message)
        ),
    )
}

/// The window's parameters, strictly: known names only, each once, bounded.
fn params_of(pairs: Vec<(String, String)>) -> Result<BTreeMap<String, String>, String> {
    const KNOWN: &[&str] = &[
        "clientKey",
        "kind",
        "method",
        "amount",
        "orderId",
        "orderName",
        "customerName",
        "customerKey",
        "taxFreeAmount",
        "successUrl",
        "failUrl",
        "cardCompany",
        "flowMode",
        "cardInstallmentPlan",
        "maxCardInstallmentPlan",
    ];
    if pairs.len() > MAX_PARAMS {
        return Err("too many parameters".into());
    }
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if !KNOWN.contains(&k.as_str()) {
            return Err(format!("알 수 없는 파라미터: {k}"));
        }
        if v.chars().count() > MAX_VALUE_CHARS {
            return Err(format!("too long: {k}"));
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(format!("repeated: {k}"));
        }
    }
    Ok(out)
}

fn http_url(v: Option<&String>) -> Option<reqwest::Url> {
    let u = reqwest::Url::parse(v?).ok()?;
    (matches!(u.scheme(), "http" | "https") && u.host_str().is_some()).then_some(u)
}

/// What a window was opened for, checked as Toss's SDK would before showing anything.
struct Request {
    billing: bool,
    method: Method,
    amount: i64,
    order_id: String,
    order_name: String,
    customer_key: String,
    success: reqwest::Url,
    fail: reqwest::Url,
    card_company: Option<String>,
    fixed_plan: Option<i64>,
    max_plan: i64,
}

fn request_of(sim: &Inner, p: &BTreeMap<String, String>) -> Result<Request, (String, String)> {
    let bad = |what: &str| {
        (
            "INVALID_REQUEST".to_owned(),
            format!("잘못된 요청입니다. ({what})"),
        )
    };
    let key = p.get("clientKey").map(String::as_str).unwrap_or("");
    let key_ok = match &sim.client_key {
        Some(k) => k == key,
        None => key.starts_with("test_ck_") || key.starts_with("live_ck_"),
    };
    if !key_ok {
        return Err((
            "INVALID_CLIENT_KEY".into(),
            "클라이언트 키가 올바르지 않습니다.".into(),
        ));
    }
    let billing = match p.get("kind").map(String::as_str) {
        Some("payment") => false,
        Some("billing") => true,
        _ => return Err(bad("kind")),
    };
    let method = p
        .get("method")
        .and_then(|m| Method::parse(m))
        .ok_or_else(|| bad("method"))?;
    let success = http_url(p.get("successUrl")).ok_or_else(|| bad("successUrl"))?;
    let fail = http_url(p.get("failUrl")).ok_or_else(|| bad("failUrl"))?;
    let int = |k: &str| -> Result<Option<i64>, (String, String)> {
        p.get(k)
            .map(|v| v.parse::<i64>().map_err(|_| bad(k)))
            .transpose()
    };
    let mut r = Request {
        billing,
        method,
        amount: 0,
        order_id: String::new(),
        order_name: String::new(),
        customer_key: String::new(),
        success,
        fail,
        card_company: p.get("cardCompany").cloned(),
        fixed_plan: int("cardInstallmentPlan")?,
        max_plan: int("maxCardInstallmentPlan")?.unwrap_or(12).clamp(1, 12),
    };
    if billing {
        if method != Method::Card {
            return Err(bad("method"));
        }
        let ck = p.get("customerKey").cloned().unwrap_or_default();
        let ok = (2..=300).contains(&ck.len())
            && ck
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_=.@".contains(&b));
        if !ok {
            return Err(bad("customerKey"));
        }
        r.customer_key = ck;
        return Ok(r);
    }
    r.amount = int("amount")?.ok_or_else(|| bad("amount"))?;
    r.order_id = p.get("orderId").cloned().unwrap_or_default();
    r.order_name = p.get("orderName").cloned().unwrap_or_default();
    if let Err(o) = super::check_order(&r.order_id, &r.order_name, r.amount) {
        let e: wire::TossError = serde_json::from_slice(&o.body).unwrap_or_default();
        return Err((e.code, e.message));
    }
    if let Some(c) = &r.card_company {
        if codes::kftc_card_of_toss(c).is_none() {
            return Err(bad("cardCompany"));
        }
    }
    Ok(r)
}

/// The 15 banks of the virtual-account guide (Toss code, name), for the bank selects.
const BANKS: &[(&str, &str)] = &[
    ("88", "신한은행"),
    ("06", "KB국민은행"),
    ("20", "우리은행"),
    ("81", "하나은행"),
    ("11", "NH농협은행"),
    ("03", "IBK기업은행"),
    ("71", "우체국"),
    ("89", "케이뱅크"),
    ("32", "부산은행"),
    ("31", "DGB대구은행"),
    ("39", "경남은행"),
    ("34", "광주은행"),
    ("37", "전북은행"),
    ("07", "Sh수협은행"),
    ("45", "새마을금고"),
];

fn bank_select(label: &str) -> String {
    let options: String = BANKS
        .iter()
        .map(|(c, n)| format!("<option value=\"{c}\">{n}</option>"))
        .collect();
    format!(
        "<label>{label} <select name=\"bank\" data-testid=\"toss-bank\">{options}</select></label>"
    )
}

pub(super) async fn page(State(sim): State<Sim>, RawQuery(q): RawQuery) -> Response {
    let pairs: Vec<(String, String)> = url_pairs(q.as_deref().unwrap_or(""));
    let p = match params_of(pairs) {
        Ok(p) => p,
        Err(m) => return error_page("INVALID_REQUEST", &m),
    };
    let r = match request_of(&sim.inner, &p) {
        Ok(r) => r,
        Err((c, m)) => return error_page(&c, &m),
    };
    let hidden: String = p
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(k),
                esc(v)
            )
        })
        .collect();
    let fields = match r.method {
        Method::Card => {
            let company = r
                .card_company
                .as_deref()
                .and_then(codes::kftc_card_of_toss)
                .and_then(pier_domain::codes::card_name)
                .map(|n| {
                    format!(
                        "<p data-testid=\"toss-card-company\">카드사: {}</p>",
                        esc(n)
                    )
                })
                .unwrap_or_default();
            let plans = if r.billing {
                String::new()
            } else {
                let months: Vec<i64> = match r.fixed_plan {
                    Some(m) => vec![m],
                    None => std::iter::once(0)
                        .chain((2..=r.max_plan).filter(|_| r.max_plan >= 2))
                        .collect(),
                };
                let options: String = months
                    .iter()
                    .map(|m| {
                        let label = if *m == 0 {
                            "일시불".to_owned()
                        } else {
                            format!("{m}개월")
                        };
                        format!("<option value=\"{m}\">{label}</option>")
                    })
                    .collect();
                format!(
                    "<label>할부 <select name=\"installment\" data-testid=\"toss-installment\">{options}</select></label>"
                )
            };
            format!(
                "{company}<label>카드번호 <input name=\"cardNumber\" data-testid=\"toss-card-number\" \
                 autocomplete=\"off\" inputmode=\"numeric\" required></label>\
                 <label>유효기간 (MM/YY) <input name=\"cardExpiry\" data-testid=\"toss-card-expiry\" \
                 autocomplete=\"off\" placeholder=\"MM/YY\" required></label>{plans}"
            )
        }
        Method::Transfer => bank_select("은행"),
        Method::Phone => "<label>휴대폰 번호 <input name=\"phone\" data-testid=\"toss-phone\" \
             inputmode=\"tel\" autocomplete=\"off\" required></label>"
            .to_owned(),
        Method::VirtualAccount => bank_select("입금 은행"),
    };
    let (title, summary, pay) = if r.billing {
        (
            "카드 등록",
            "<p data-testid=\"toss-billing\">자동결제에 사용할 카드를 등록합니다.</p>".to_owned(),
            "카드 등록",
        )
    } else {
        (
            r.method.toss(),
            format!(
                "<p data-testid=\"toss-order-name\">{}</p><p data-testid=\"toss-amount\">{}원</p>",
                esc(&r.order_name),
                r.amount
            ),
            "결제하기",
        )
    };
    html(
        StatusCode::OK,
        format!(
            "<!doctype html><html lang=\"ko\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>토스페이먼츠 {title} (시뮬레이터)</title></head>\
             <body data-testid=\"toss-window\" data-method=\"{method}\"><h1>토스페이먼츠 · {title}</h1>{summary}\
             <form method=\"post\" action=\"/sim/window\" data-testid=\"toss-form\">{hidden}{fields}\
             <button type=\"submit\" name=\"action\" value=\"pay\" data-testid=\"toss-pay\">{pay}</button>\
             <button type=\"submit\" name=\"action\" value=\"cancel\" formnovalidate data-testid=\"toss-cancel\">취소</button>\
             </form></body></html>",
            method = esc(r.method.toss()),
        ),
    )
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded_pairs(q.as_bytes())
}

fn form_urlencoded_pairs(b: &[u8]) -> Vec<(String, String)> {
    reqwest::Url::parse("http://x/")
        .map(|mut u| {
            u.set_query(Some(&String::from_utf8_lossy(b)));
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

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
    let p = match params_of(pairs) {
        Ok(p) => p,
        Err(m) => return error_page("INVALID_REQUEST", &m),
    };
    let r = match request_of(&sim.inner, &p) {
        Ok(r) => r,
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

impl Books {
    fn confirm(&mut self, body: &[u8]) -> Outcome {
        let req: wire::ConfirmRequest = match parse(body) {
            Ok(r) => r,
            Err(o) => return o,
        };
        let Some(p) = self.payments.get(&req.payment_key) else {
            return super::not_found_payment();
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
            return super::not_found_payment();
        };
        let now = now_kst();
        match pending.method {
            Method::Card => {
                if let Behaviour::Decline { decline, .. } = pending.behaviour {
                    p.status = "ABORTED".into();
                    p.balance_amount = 0;
                    let answer = Outcome::declined(decline);
                    p.failure = serde_json::from_slice(&answer.body).ok();
                    return answer;
                }
                let issuer = pending.issuer.unwrap_or(Issuer {
                    card_code: "366",
                    card_type: 0,
                });
                let toss_code = codes::toss_card_of_kftc(issuer.card_code).map(str::to_owned);
                let quota = cards::applied_quota(p.total_amount, pending.plan).unwrap_or(0);
                p.card = Some(PaymentCard {
                    amount: p.total_amount,
                    company: None,
                    issuer_code: toss_code.clone(),
                    acquirer_code: toss_code,
                    number: pending.masked.clone(),
                    installment_plan_months: quota,
                    approve_no: Some(format!("{:08}", seq % 100_000_000)),
                    use_card_point: false,
                    card_type: Some(super::card_type_name(issuer.card_type).into()),
                    owner_type: Some("개인".into()),
                    acquire_status: Some("READY".into()),
                    is_interest_free: false,
                    receipt_url: None,
                });
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
        if pending.behaviour == Behaviour::LoseResponse {
            answer.lost()
        } else {
            answer
        }
    }

    fn billing_issue(&mut self, sim: &Inner, body: &[u8]) -> Outcome {
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
            return Outcome::bad(
                "NOT_MATCHES_CUSTOMER_KEY",
                "빌링 인증 고객키와 결제 요청 고객키가 일치하지 않습니다.",
            );
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
                card_type: Some(super::card_type_name(pending.issuer.card_type).into()),
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

/// Deadline of one webhook delivery (the simulator does not retry).
const WEBHOOK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

impl Sim {
    /// Announces a payment's new status to `webhook_url` (Toss's `PAYMENT_STATUS_CHANGED`
    /// shape), in the background, once, within `WEBHOOK_DEADLINE`.
    pub(super) fn announce(&self, p: &Payment) {
        let url = self
            .inner
            .webhook_url
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(url) = url else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let body = serde_json::json!({
            "eventType": "PAYMENT_STATUS_CHANGED",
            "createdAt": now_kst().format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
            "data": p,
        });
        rt.spawn(async move {
            let client = match reqwest::Client::builder()
                .timeout(WEBHOOK_DEADLINE)
                .no_proxy()
                .build()
            {
                Ok(c) => c,
                Err(_) => return,
            };
            let _ = client
                .post(url)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await;
        });
    }
}

/// `PUT /admin/webhook` `{"url": "http://…" | null}`: where deposits are announced.
pub(super) async fn put_webhook(State(sim): State<Sim>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Hook {
        url: Option<String>,
    }
    let hook: Hook = match parse(&body) {
        Ok(h) => h,
        Err(o) => return o.into_response(),
    };
    if let Some(u) = &hook.url {
        if http_url(Some(u)).is_none() {
            return Outcome::invalid("잘못된 요청입니다. (url)").into_response();
        }
    }
    sim.set_webhook_url(hook.url.clone());
    axum::Json(serde_json::json!({ "url": hook.url })).into_response()
}

/// `GET /admin/ledger`: every payment as the chaos run reads a PG's books (pgsim's shape):
/// `status` `approved` / `voided` / `declined` / `pending`, `net_krw` (what is still charged),
/// `cancelled_krw`. Toss knows no `merchant_uid` (`null`): the reader maps `order_id` (Pier's
/// `imp_uid`) to it.
pub(super) async fn ledger(State(sim): State<Sim>) -> Response {
    let books = sim.books();
    let orders: Vec<serde_json::Value> = books
        .payments
        .values()
        .map(|p| {
            let (status, net) = match p.status.as_str() {
                "DONE" | "PARTIAL_CANCELED" => ("approved", p.balance_amount),
                "CANCELED" => ("voided", 0),
                "ABORTED" | "EXPIRED" => ("declined", 0),
                _ => ("pending", 0),
            };
            let cancelled = p
                .cancels
                .iter()
                .flatten()
                .map(|c| c.cancel_amount)
                .sum::<i64>();
            serde_json::json!({
                "mid": p.m_id,
                "order_id": p.order_id,
                "merchant_uid": null,
                "status": status,
                "net_krw": net,
                "cancelled_krw": cancelled,
                "pg_tid": if status == "declined" || status == "pending" { None } else { Some(&p.payment_key) },
            })
        })
        .collect();
    drop(books);
    axum::Json(serde_json::json!({ "orders": orders })).into_response()
}
