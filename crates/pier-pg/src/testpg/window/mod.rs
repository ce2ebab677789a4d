//! The test PG's payment-window pages (HTML), mounted under `/testpg/window/{session_id}`.
//!
//! The pages render `Engine::session`, call `Engine::authenticate_card` / `authenticate_trans` /
//! `authenticate_phone` (with `Engine::sms_code` shown on the page) / `authenticate_vbank` or
//! `Engine::abandon_session`, and send the browser to the session's `return_url` with
//! `auth_session_id` and `auth_token` (or `cancel=1`). `pgsim::router` merges this router, so the
//! pages are served by pgsim too; Pier mounts it for in-process channels.
//!
//! - Card: issuer picker (`card_detail` display option: `code:1|0` pairs applied in order, `*`
//!   sets the baseline — `pier_domain::CardFilter`), installment picker (`card_quota`: comma list
//!   of months; empty = lump sum only; absent = 2–12), card number / expiry / birth / password
//!   digits, then an app-card approval step.
//! - Trans: bank picker and account confirmation. Phone: carrier, number, the SMS code (shown on
//!   this test page). Vbank: bank picker, issue an account.
//! - Every control has a stable `data-testid` (documented in `docs/testing-your-checkout.md`).
//!
//! Card data is POSTed to these endpoints only and passed to the engine; it is never put in a
//! URL, a log line or a re-rendered page. Pages send a strict Content-Security-Policy (no
//! scripts at all, `frame-ancestors *` which a host such as Pier narrows per merchant),
//! `Cache-Control: no-store`, and every form carries a CSRF token bound to the session.

use super::{Engine, SessionStatus, SessionView};
use crate::{CardData, PgError};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Form;
use pier_domain::{codes, Birth, CardNumber, Expiry, Pwd2Digit};
use rand::Rng;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

mod html;
use html::*;

#[derive(Clone)]
struct WindowState {
    engine: Engine,
    csrf_key: Arc<[u8; 32]>,
}

/// The window pages' routes, with a random CSRF key (one process serves every page: pgsim).
pub fn router(engine: Engine) -> axum::Router {
    let mut key = [0u8; 32];
    rand::thread_rng().fill(&mut key);
    router_with_csrf_key(engine, key)
}

/// The window pages' routes with a given CSRF key: instances that share a journal (see
/// `shared`) share the key too, so a page served by one is accepted by another.
pub fn router_with_csrf_key(engine: Engine, key: [u8; 32]) -> axum::Router {
    let st = WindowState {
        engine: engine.clone(),
        csrf_key: Arc::new(key),
    };
    axum::Router::new()
        .route("/testpg/static/window.css", get(css))
        .route("/testpg/window/{sid}", get(show))
        .route("/testpg/window/{sid}/card", post(card))
        .route("/testpg/window/{sid}/approve", post(approve))
        .route("/testpg/window/{sid}/trans", post(trans))
        .route("/testpg/window/{sid}/phone", post(phone))
        .route("/testpg/window/{sid}/vbank", post(vbank))
        .route("/testpg/window/{sid}/cancel", post(cancel))
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::from_fn_with_state(engine, caught_up))
        .with_state(st)
}

/// Every page starts from what all instances sharing the journal wrote (a window opened through
/// one completes through another). No-op without a shared journal.
async fn caught_up(
    State(engine): State<Engine>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Err(e) = engine.sync().await {
        tracing::warn!(error = %e, "testpg window");
        return message_page("결제창", "잠시 후 다시 시도해주세요.");
    }
    next.run(req).await
}

async fn css() -> Response {
    let mut res = CSS.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    res
}

fn csrf(st: &WindowState, sid: &str) -> String {
    let mut h = Sha256::new();
    h.update(st.csrf_key.as_slice());
    h.update(b"testpg-window-csrf:");
    h.update(sid.as_bytes());
    hex::encode(&h.finalize()[..16])
}

// The error is the page to answer with; it is returned once per request, never stored.
#[allow(clippy::result_large_err)]
fn session_or_page(st: &WindowState, sid: &str) -> Result<SessionView, Response> {
    if sid.len() > 64 || !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(message_page("결제창", "결제 정보가 존재하지 않습니다."));
    }
    let Some(s) = st.engine.session(sid) else {
        return Err(message_page("결제창", "결제 정보가 존재하지 않습니다."));
    };
    let msg = match s.status {
        SessionStatus::Pending | SessionStatus::Authenticated => return Ok(s),
        SessionStatus::Completed => "이미 완료된 결제입니다.",
        SessionStatus::Abandoned => "취소된 결제입니다.",
        SessionStatus::Failed => "결제 인증에 실패하였습니다.",
        SessionStatus::Expired => "결제 가능 시간이 지났습니다.",
    };
    Err(message_page("결제창", msg))
}

async fn show(
    State(st): State<WindowState>,
    Path(sid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = match session_or_page(&st, &sid) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let d = display_from(
        q.get("card_detail").map(String::as_str),
        q.get("card_quota").map(String::as_str),
    );
    render(&st, &s, &d, None)
}

type FormMap = Form<HashMap<String, String>>;

/// The session of a POST, after the CSRF check.
#[allow(clippy::result_large_err)]
fn posted(
    st: &WindowState,
    sid: &str,
    f: &HashMap<String, String>,
) -> Result<SessionView, Response> {
    let s = session_or_page(st, sid)?;
    // Constant time: the comparison must not tell how much of a guessed token is right.
    let sent = f.get("csrf").map(String::as_str).unwrap_or("");
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        sent.as_bytes(),
        csrf(st, sid).as_bytes(),
    )) {
        return Err(html_response(
            StatusCode::FORBIDDEN,
            layout(
                "결제창",
                None,
                "<p class=\"error\" data-testid=\"window-error\">잘못된 요청입니다. (invalid CSRF token)</p>",
            ),
            None,
        ));
    }
    Ok(s)
}

fn field<'a>(f: &'a HashMap<String, String>, k: &str) -> &'a str {
    f.get(k).map(|s| s.trim()).unwrap_or("")
}

/// `MM/YY`, `MM/YYYY`, `YYYY-MM` or `YYYYMM`.
fn expiry_of(raw: &str) -> Option<Expiry> {
    let raw = raw.trim();
    if let Some((m, y)) = raw.split_once('/') {
        let y = y.trim();
        let year = match y.len() {
            2 => format!("20{y}"),
            4 => y.to_owned(),
            _ => return None,
        };
        let m = m.trim();
        let m = if m.len() == 1 {
            format!("0{m}")
        } else {
            m.to_owned()
        };
        return Expiry::parse(&format!("{year}-{m}")).ok();
    }
    Expiry::parse(raw).ok()
}

async fn card(
    State(st): State<WindowState>,
    Path(sid): Path<String>,
    Form(f): FormMap,
) -> Response {
    let s = match posted(&st, &sid, &f) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let d = display_from(
        Some(field(&f, "card_detail")).filter(|x| !x.is_empty()),
        f.get("card_quota").map(String::as_str),
    );
    let issuer = field(&f, "card_code");
    if issuer.is_empty() || codes::card_name(issuer).is_none() || !d.filter.allows(issuer) {
        return render(&st, &s, &d, Some("카드사를 선택해주세요."));
    }
    let number = match CardNumber::parse(field(&f, "card_number")) {
        Ok(n) => n,
        Err(_) => return render(&st, &s, &d, Some("유효하지 않은 카드번호입니다.")),
    };
    let Some(expiry) = expiry_of(field(&f, "expiry")) else {
        return render(&st, &s, &d, Some("유효기간을 MM/YY 형식으로 입력해주세요."));
    };
    let birth = match Birth::parse(field(&f, "birth")) {
        Ok(b) => b,
        Err(_) => {
            return render(
                &st,
                &s,
                &d,
                Some("생년월일 6자리(또는 사업자번호 10자리)를 입력해주세요."),
            )
        }
    };
    let pwd = match Pwd2Digit::parse(field(&f, "pwd_2digit")) {
        Ok(p) => p,
        Err(_) => return render(&st, &s, &d, Some("비밀번호 앞 2자리를 입력해주세요.")),
    };
    let quota: i64 = field(&f, "quota").parse().unwrap_or(0);
    if quota != 0 && !d.quota.contains(&quota) {
        return render(&st, &s, &d, Some("선택할 수 없는 할부개월입니다."));
    }
    let data = CardData {
        number,
        expiry,
        birth: Some(birth),
        pwd_2digit: Some(pwd),
    };
    let done = st
        .engine
        .run(|e| e.authenticate_card(&sid, data.clone(), quota))
        .await;
    match done.and_then(|r| r) {
        Ok(token) => approve_page(&st, &s, &token, issuer),
        Err(e) => render(&st, &s, &d, Some(&pg_message(&e))),
    }
}

async fn approve(
    State(st): State<WindowState>,
    Path(sid): Path<String>,
    Form(f): FormMap,
) -> Response {
    let s = match posted(&st, &sid, &f) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let token = field(&f, "auth_token");
    if token.is_empty() || token.len() > 64 || !token.chars().all(|c| c.is_ascii_hexdigit()) {
        return render(
            &st,
            &s,
            &Display::default(),
            Some("카드 인증을 다시 진행해주세요."),
        );
    }
    authenticated(&s, token)
}

async fn trans(
    State(st): State<WindowState>,
    Path(sid): Path<String>,
    Form(f): FormMap,
) -> Response {
    let s = match posted(&st, &sid, &f) {
        Ok(s) => s,
        Err(r) => return r,
    };
    answer(
        &st,
        &s,
        st.engine
            .run(|e| e.authenticate_trans(&sid, field(&f, "bank_code")))
            .await
            .and_then(|r| r),
    )
}

/// The window's answer to an authentication step: back to Pier with the token, or the same
/// page again with the PG's message.
fn answer(st: &WindowState, s: &SessionView, r: Result<String, PgError>) -> Response {
    match r {
        Ok(token) => authenticated(s, &token),
        Err(e) => render(st, s, &Display::default(), Some(&pg_message(&e))),
    }
}

async fn vbank(
    State(st): State<WindowState>,
    Path(sid): Path<String>,
    Form(f): FormMap,
) -> Response {
    let s = match posted(&st, &sid, &f) {
        Ok(s) => s,
        Err(r) => return r,
    };
    answer(
        &st,
        &s,
        st.engine
            .run(|e| e.authenticate_vbank(&sid, field(&f, "bank_code")))
            .await
            .and_then(|r| r),
    )
}

async fn phone(
    State(st): State<WindowState>,
    Path(sid): Path<String>,
    Form(f): FormMap,
) -> Response {
    let s = match posted(&st, &sid, &f) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let done = st
        .engine
        .run(|e| {
            e.authenticate_phone(
                &sid,
                field(&f, "carrier"),
                field(&f, "phone"),
                field(&f, "sms_code"),
            )
        })
        .await;
    match done.and_then(|r| r) {
        Ok(token) => authenticated(&s, &token),
        Err(e) => {
            // Too many wrong codes closes the session: show that page instead of the form.
            match session_or_page(&st, &sid) {
                Ok(s) => render(&st, &s, &Display::default(), Some(&pg_message(&e))),
                Err(r) => r,
            }
        }
    }
}

async fn cancel(
    State(st): State<WindowState>,
    Path(sid): Path<String>,
    Form(f): FormMap,
) -> Response {
    let s = match posted(&st, &sid, &f) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let _ = st.engine.run(|e| e.abandon_session(&sid)).await;
    back_to_gateway(
        &s.return_url,
        &format!("auth_session_id={}&cancel=1", s.auth_session_id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_options() {
        let d = display_from(Some("*:0,366:1,381:1"), Some("3,6"));
        assert!(d.filter.allows("366") && d.filter.allows("381"));
        assert!(!d.filter.allows("361"));
        assert_eq!(d.quota, vec![3, 6]);
        let black = display_from(Some("361:0"), None);
        assert!(!black.filter.allows("361") && black.filter.allows("366"));
        assert_eq!(black.quota, (2..=12).collect::<Vec<_>>());
        assert!(display_from(None, Some("")).quota.is_empty());
    }

    #[test]
    fn expiry_forms() {
        assert_eq!(expiry_of("12/30"), Expiry::parse("2030-12").ok());
        assert_eq!(expiry_of("2030-12"), Expiry::parse("2030-12").ok());
        assert!(expiry_of("13/30").is_none());
        assert!(expiry_of("x").is_none());
    }

    #[test]
    fn origins_and_escaping() {
        assert_eq!(
            origin_of("http://127.0.0.1:8080/checkout/return/x"),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            origin_of("https://pay.example"),
            Some("https://pay.example")
        );
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(won(1_234_567), "1,234,567");
        assert_eq!(won(0), "0");
    }
}
