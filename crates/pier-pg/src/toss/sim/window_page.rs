//! The simulator's window pages: the browser SDK imitation (`GET /v1/payment`) and the hosted
//! window page it sends the buyer to (`GET /sim/window`).

use super::books::Method;
use super::window::{opened, url_pairs, BANKS};
use super::Sim;
use crate::toss::codes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

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

pub(super) fn esc(s: &str) -> String {
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

pub(super) fn html(status: StatusCode, body: String) -> Response {
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

pub(super) fn error_page(code: &str, message: &str) -> Response {
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
    let (p, r) = match opened(&sim.inner, pairs) {
        Ok(v) => v,
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
