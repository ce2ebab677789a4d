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
//!
//! This module reads what a window was opened for (`window_page` shows it, `window_submit`
//! takes the buyer's answer).

use super::books::Method;
use super::checks::check_order;
use super::Inner;
use crate::toss::{codes, wire};
use std::collections::BTreeMap;

/// Parameters a window URL or form carries at most, and the length of each value (`successUrl`
/// and `failUrl` are URLs of the merchant: 2,000 like Pier's own URL limit).
const MAX_PARAMS: usize = 32;
const MAX_VALUE_CHARS: usize = 2_000;

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

pub(super) fn http_url(v: Option<&String>) -> Option<reqwest::Url> {
    let u = reqwest::Url::parse(v?).ok()?;
    (matches!(u.scheme(), "http" | "https") && u.host_str().is_some()).then_some(u)
}

/// What a window was opened for, checked as Toss's SDK would before showing anything.
pub(super) struct Request {
    pub(super) billing: bool,
    pub(super) method: Method,
    pub(super) amount: i64,
    pub(super) order_id: String,
    pub(super) order_name: String,
    pub(super) customer_key: String,
    pub(super) success: reqwest::Url,
    pub(super) fail: reqwest::Url,
    pub(super) card_company: Option<String>,
    pub(super) fixed_plan: Option<i64>,
    pub(super) max_plan: i64,
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
    if let Err(o) = check_order(&r.order_id, &r.order_name, r.amount) {
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

/// The window's parameters and what they open it for, or the error (code, message) Toss's SDK
/// would show instead of the window.
pub(super) fn opened(
    sim: &Inner,
    pairs: Vec<(String, String)>,
) -> Result<(BTreeMap<String, String>, Request), (String, String)> {
    let p = params_of(pairs).map_err(|m| ("INVALID_REQUEST".to_owned(), m))?;
    let r = request_of(sim, &p)?;
    Ok((p, r))
}

/// The 15 banks of the virtual-account guide (Toss code, name), for the bank selects.
pub(super) const BANKS: &[(&str, &str)] = &[
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

pub(super) fn url_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded_pairs(q.as_bytes())
}

pub(super) fn form_urlencoded_pairs(b: &[u8]) -> Vec<(String, String)> {
    reqwest::Url::parse("http://x/")
        .map(|mut u| {
            u.set_query(Some(&String::from_utf8_lossy(b)));
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}
