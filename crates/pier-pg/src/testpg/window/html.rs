//! The window's HTML: the layout and style, each method's form, the approval step, and the way
//! back to the gateway. Every page is built here; `window` (the parent) handles the requests.

use super::{csrf, WindowState};
use crate::testpg::{SessionView, PHONE_CARRIERS};
use crate::PgError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pier_domain::{codes, CardFilter};

pub(super) const CSS: &str = r#"
* { box-sizing: border-box; }
body { margin: 0; font-family: -apple-system, "Apple SD Gothic Neo", "Noto Sans KR", "Noto Sans CJK KR", "NanumGothic", sans-serif; background: #fff; color: #1d2330; }
header { background: #173d7a; color: #fff; padding: 14px 18px; }
header h1 { font-size: 17px; margin: 0; }
header p { margin: 4px 0 0; font-size: 13px; opacity: .9; }
main { padding: 16px 18px; }
.test { background: #fff6d6; border: 1px solid #f0d27a; color: #6b5200; font-size: 12px; padding: 6px 10px; border-radius: 6px; margin-bottom: 12px; }
.error { background: #fdecec; border: 1px solid #f0a8a8; color: #9b1c1c; padding: 8px 10px; border-radius: 6px; margin-bottom: 12px; font-size: 14px; }
fieldset { border: 0; padding: 0; margin: 0 0 14px; }
legend { font-weight: 700; font-size: 14px; margin-bottom: 8px; }
.grid { display: grid; grid-template-columns: repeat(3, 1fr); gap: 6px; }
.grid label { border: 1px solid #ccd; border-radius: 6px; padding: 8px 4px; font-size: 13px; text-align: center; cursor: pointer; }
.grid input { margin: 0 4px 0 0; }
.field { display: block; margin-bottom: 10px; font-size: 13px; }
.field input, .field select { display: block; width: 100%; margin-top: 4px; padding: 9px; font-size: 15px; border: 1px solid #ccd; border-radius: 6px; }
.row { display: flex; gap: 8px; }
.row .field { flex: 1; }
.actions { display: flex; gap: 8px; margin-top: 8px; }
.actions button { flex: 1; padding: 12px; font-size: 15px; border-radius: 8px; border: 1px solid #173d7a; cursor: pointer; }
.primary { background: #173d7a; color: #fff; }
.secondary { background: #fff; color: #173d7a; }
.code { font-size: 22px; font-weight: 700; letter-spacing: 4px; }
.cancel-form { margin-top: 8px; }
.cancel-form button { width: 100%; padding: 10px; background: #fff; border: 1px solid #bbb; border-radius: 8px; color: #555; cursor: pointer; }
.approve { text-align: center; padding: 20px 0; }
.approve .phone { font-size: 48px; }
"#;

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

pub(super) fn origin_of(url: &str) -> Option<&str> {
    let start = url.find("://")? + 3;
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let o = &url[..end];
    o.chars()
        .all(|c| c.is_ascii_alphanumeric() || ":/.-[]".contains(c))
        .then_some(o)
}

pub(super) fn html_response(
    status: StatusCode,
    body: String,
    return_url: Option<&str>,
) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let back = return_url.and_then(origin_of).unwrap_or("");
    let csp = format!(
        "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; \
         form-action 'self' {back}; base-uri 'none'; frame-ancestors *"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

pub(super) fn layout(title: &str, s: Option<&SessionView>, inner: &str) -> String {
    let head = match s {
        Some(s) => format!(
            "<header><h1>{title}</h1><p><span data-testid=\"window-order-name\">{name}</span> · \
             <strong data-testid=\"window-amount\">{amount}원</strong></p></header>",
            title = esc(title),
            name = esc(s.order.name.as_deref().unwrap_or("주문")),
            amount = won(s.amount_krw),
        ),
        None => format!("<header><h1>{}</h1></header>", esc(title)),
    };
    format!(
        "<!doctype html><html lang=\"ko\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><link rel=\"stylesheet\" href=\"/testpg/static/window.css\"></head>\
         <body data-testid=\"testpg-window\">{head}<main>\
         <p class=\"test\" data-testid=\"window-test-banner\">테스트 결제창 (Pier test PG) — 실제 결제가 일어나지 않습니다.</p>\
         {inner}</main></body></html>",
        t = esc(title),
    )
}

pub(super) fn won(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

pub(super) fn message_page(title: &str, msg: &str) -> Response {
    let inner = format!("<p data-testid=\"window-closed\">{}</p>", esc(msg));
    html_response(StatusCode::OK, layout(title, None, &inner), None)
}

pub(super) fn error_box(err: Option<&str>) -> String {
    err.map(|e| {
        format!(
            "<p class=\"error\" data-testid=\"window-error\">{}</p>",
            esc(e)
        )
    })
    .unwrap_or_default()
}

pub(super) fn cancel_form(sid: &str, token: &str) -> String {
    format!(
        "<form class=\"cancel-form\" method=\"post\" action=\"/testpg/window/{sid}/cancel\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
         <button type=\"submit\" data-testid=\"window-cancel\">결제 취소</button></form>",
        sid = esc(sid),
        token = esc(token)
    )
}

/// Display options carried from the merchant's `request_pay` (not card data).
#[derive(Default, Clone)]
pub(super) struct Display {
    /// Raw `card_detail` text, echoed in hidden fields.
    pub(super) detail_raw: String,
    pub(super) filter: CardFilter,
    /// Raw `card_quota`; `None` = the default list.
    pub(super) quota_raw: Option<String>,
    pub(super) quota: Vec<i64>,
}

pub(super) fn display_from(detail: Option<&str>, quota: Option<&str>) -> Display {
    let detail_raw = detail.unwrap_or("").chars().take(1_000).collect::<String>();
    let rules = detail_raw
        .split(',')
        .filter_map(|p| {
            let (code, on) = p.split_once(':')?;
            let code = code.trim();
            (!code.is_empty() && code.len() <= 8).then(|| (code.to_owned(), on.trim() == "1"))
        })
        .collect();
    let quota_raw = quota.map(|q| q.chars().take(200).collect::<String>());
    let quota = match &quota_raw {
        None => (2..=12).collect(),
        Some(q) => {
            let mut v: Vec<i64> = q
                .split(',')
                .filter_map(|m| m.trim().parse::<i64>().ok())
                .filter(|m| (2..=36).contains(m))
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        }
    };
    Display {
        detail_raw,
        filter: CardFilter { rules },
        quota_raw,
        quota,
    }
}

pub(super) fn render(
    st: &WindowState,
    s: &SessionView,
    d: &Display,
    err: Option<&str>,
) -> Response {
    let token = csrf(st, &s.auth_session_id);
    let sid = &s.auth_session_id;
    let (title, body) = match s.pay_method.as_str() {
        "card" => (
            if s.issue_billing_key {
                "카드 등록 (정기결제)"
            } else {
                "신용카드 결제"
            },
            card_form(s, d, &token),
        ),
        "trans" => (
            "실시간 계좌이체",
            bank_form(sid, "trans", &token, "계좌 인증 후 이체", "trans"),
        ),
        "phone" => ("휴대폰 결제", phone_form(st, s, &token)),
        "vbank" => (
            "가상계좌 발급",
            bank_form(sid, "vbank", &token, "입금 계좌 발급", "vbank"),
        ),
        _ => ("결제창", String::new()),
    };
    let inner = format!("{}{}{}", error_box(err), body, cancel_form(sid, &token));
    html_response(
        if err.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        },
        layout(title, Some(s), &inner),
        Some(&s.return_url),
    )
}

pub(super) fn card_form(s: &SessionView, d: &Display, token: &str) -> String {
    let issuers: String = codes::CARDS
        .iter()
        .filter(|c| d.filter.allows(c.code))
        .map(|c| {
            format!(
                "<label data-testid=\"card-issuer-label-{code}\"><input type=\"radio\" name=\"card_code\" value=\"{code}\" \
                 data-testid=\"card-issuer-{code}\" required>{name}</label>",
                code = esc(c.code),
                name = esc(c.name)
            )
        })
        .collect();
    let mut quota = String::from("<option value=\"0\">일시불</option>");
    for m in &d.quota {
        quota.push_str(&format!("<option value=\"{m}\">{m}개월</option>"));
    }
    let quota_note = if s.amount_krw < 50_000 {
        "<p class=\"test\">할부는 50,000원 이상부터 적용됩니다.</p>"
    } else {
        ""
    };
    format!(
        "<form method=\"post\" action=\"/testpg/window/{sid}/card\" data-testid=\"card-form\" autocomplete=\"off\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
         <input type=\"hidden\" name=\"card_detail\" value=\"{detail}\">\
         {quota_hidden}\
         <fieldset data-testid=\"card-issuers\"><legend>카드사 선택</legend><div class=\"grid\">{issuers}</div></fieldset>\
         <label class=\"field\">카드번호<input name=\"card_number\" inputmode=\"numeric\" maxlength=\"19\" \
          placeholder=\"0000-0000-0000-0000\" data-testid=\"card-number\" required></label>\
         <div class=\"row\"><label class=\"field\">유효기간 (MM/YY)<input name=\"expiry\" maxlength=\"7\" placeholder=\"12/30\" \
          data-testid=\"card-expiry\" required></label>\
         <label class=\"field\">생년월일 6자리<input name=\"birth\" inputmode=\"numeric\" maxlength=\"10\" placeholder=\"880101\" \
          data-testid=\"card-birth\" required></label></div>\
         <div class=\"row\"><label class=\"field\">비밀번호 앞 2자리<input name=\"pwd_2digit\" type=\"password\" inputmode=\"numeric\" \
          maxlength=\"2\" data-testid=\"card-pwd\" required></label>\
         <label class=\"field\">할부<select name=\"quota\" data-testid=\"card-quota\">{quota}</select></label></div>\
         {quota_note}\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\" data-testid=\"card-submit\">다음</button></div></form>",
        sid = esc(&s.auth_session_id),
        token = esc(token),
        detail = esc(&d.detail_raw),
        quota_hidden = match &d.quota_raw {
            Some(q) => format!("<input type=\"hidden\" name=\"card_quota\" value=\"{}\">", esc(q)),
            None => String::new(),
        },
    )
}

pub(super) fn bank_form(
    sid: &str,
    action: &str,
    token: &str,
    button: &str,
    testid: &str,
) -> String {
    let banks: String = codes::BANKS
        .iter()
        .map(|b| {
            format!(
                "<option value=\"{code}\">{name}</option>",
                code = esc(b.code),
                name = esc(b.name)
            )
        })
        .collect();
    format!(
        "<form method=\"post\" action=\"/testpg/window/{sid}/{action}\" data-testid=\"{testid}-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
         <label class=\"field\">은행 선택<select name=\"bank_code\" data-testid=\"{testid}-bank\" required>\
         <option value=\"\">선택하세요</option>{banks}</select></label>\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\" data-testid=\"{testid}-submit\">{button}</button></div></form>",
        sid = esc(sid),
        token = esc(token),
        button = esc(button),
    )
}

pub(super) fn phone_form(st: &WindowState, s: &SessionView, token: &str) -> String {
    let carriers: String = PHONE_CARRIERS
        .iter()
        .map(|c| format!("<option value=\"{c}\">{c}</option>"))
        .collect();
    let code = st.engine.sms_code(&s.auth_session_id).unwrap_or_default();
    format!(
        "<form method=\"post\" action=\"/testpg/window/{sid}/phone\" data-testid=\"phone-form\" autocomplete=\"off\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
         <div class=\"row\"><label class=\"field\">통신사<select name=\"carrier\" data-testid=\"phone-carrier\">{carriers}</select></label>\
         <label class=\"field\">휴대폰 번호<input name=\"phone\" inputmode=\"numeric\" maxlength=\"13\" placeholder=\"01012345678\" \
          data-testid=\"phone-number\" required></label></div>\
         <p class=\"test\">테스트 인증번호 (실제 SMS는 발송되지 않습니다): <span class=\"code\" data-testid=\"phone-sms-code\">{code}</span></p>\
         <label class=\"field\">인증번호<input name=\"sms_code\" inputmode=\"numeric\" maxlength=\"6\" data-testid=\"phone-sms-input\" required></label>\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\" data-testid=\"phone-submit\">인증 후 결제</button></div></form>",
        sid = esc(&s.auth_session_id),
        token = esc(token),
        code = esc(&code),
    )
}

/// Sends the browser back to the gateway. A fresh navigation (not a redirect of the form POST),
/// so the gateway may in turn redirect to the merchant's `m_redirect_url`.
pub(super) fn back_to_gateway(return_url: &str, params: &str) -> Response {
    let sep = if return_url.contains('?') { '&' } else { '?' };
    let url = format!("{return_url}{sep}{params}");
    let inner = format!(
        "<p data-testid=\"window-returning\">결제 결과를 가맹점으로 전달하고 있습니다…</p>\
         <p><a href=\"{u}\" data-testid=\"window-continue\">계속</a></p>",
        u = esc(&url)
    );
    let html = format!(
        "<!doctype html><html lang=\"ko\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={u}\"><title>결제 진행 중</title>\
         <link rel=\"stylesheet\" href=\"/testpg/static/window.css\"></head>\
         <body data-testid=\"testpg-window\"><main>{inner}</main></body></html>",
        u = esc(&url)
    );
    html_response(StatusCode::OK, html, Some(return_url))
}

pub(super) fn authenticated(s: &SessionView, token: &str) -> Response {
    back_to_gateway(
        &s.return_url,
        &format!("auth_session_id={}&auth_token={}", s.auth_session_id, token),
    )
}

pub(super) fn pg_message(e: &PgError) -> String {
    match e {
        PgError::Declined { code, message } | PgError::Rejected { code, message } => {
            format!("[{code}] {message}")
        }
        other => other.to_string(),
    }
}

/// The issuer's authentication step: an app-card approval.
pub(super) fn approve_page(
    st: &WindowState,
    s: &SessionView,
    auth_token: &str,
    issuer: &str,
) -> Response {
    let token = csrf(st, &s.auth_session_id);
    let inner = format!(
        "<div class=\"approve\" data-testid=\"card-approve-step\"><div class=\"phone\" aria-hidden=\"true\">📱</div>\
         <p>{issuer} 앱카드로 승인 요청을 보냈습니다.<br>앱에서 승인한 뒤 아래 버튼을 눌러주세요.</p></div>\
         <form method=\"post\" action=\"/testpg/window/{sid}/approve\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
         <input type=\"hidden\" name=\"auth_token\" value=\"{auth}\">\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\" data-testid=\"card-approve\">앱카드 승인 완료</button></div></form>{cancel}",
        issuer = esc(codes::card_name(issuer).unwrap_or("카드사")),
        sid = esc(&s.auth_session_id),
        token = esc(&token),
        auth = esc(auth_token),
        cancel = cancel_form(&s.auth_session_id, &token),
    );
    html_response(
        StatusCode::OK,
        layout("카드사 인증", Some(s), &inner),
        Some(&s.return_url),
    )
}
