//! The browser side of identity verification: what `IMP.certification` talks to, and the window
//! of Pier's test identity provider (docs/test-identities.md).
//!
//! Routes (public; the window id in the path is the capability, as for payment windows):
//! - `POST /checkout/certification/prepare` — `IMP.certification` server-side: checks, a
//!   certification row in state `window`; answers `{success, imp_uid, window_url, checkout_id}`.
//! - `POST /checkout/certification/cancel/{id}` — the SDK's close button, a closed popup.
//! - `GET  /testid/{id}` — the provider's window: carrier, name, birth date, gender digit and
//!   phone; then the code page (the code is shown on it: no SMS is sent).
//! - `POST /testid/{id}/request`, `/confirm`, `/cancel` — the window's forms (CSRF token bound
//!   to the window).
//! - `GET  /testid/{id}/result` — hands the result over: `m_redirect_url` in redirect mode (only
//!   to an allowed origin, or to the browser that opened the window), else a page whose script
//!   (`done.js`) posts it to the opener or parent at the recorded origin.
//!
//! Pages carry the same strict CSP as the payment window pages (no inline script, no inline
//! style, `frame-ancestors` = the merchant's allowed origins). Form answers that end the window
//! lead to `/result` by a meta refresh, a fresh navigation: a form submission's redirect to the
//! merchant would be blocked by `form-action 'self'`.

use super::auth::ClientAddr;
use super::certifications::person_input;
use super::checkout::{esc, frame_ancestors, page_with, redirect, sdk_json, sdk_json_for, Cors};
use super::error::{ApiError, ApiResult};
use super::params::Params;
use super::window_result::{cert_redirect, cert_result, prevalidation_result};
use super::AppState;
use crate::engine::certifications::{
    CertWindowRequest, Prefill, WindowConfirm, MAX_COMPANY_CHARS, TEST_OTP,
};
use crate::engine::origins::{url_allowed, MAX_ORIGIN_CHARS};
use crate::engine::window::{codes, WindowError};
use crate::engine::{Engine, Error};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pier_domain::MerchantUid;
use pier_store::{Certification, CertificationStatus};
use serde_json::{json, Value};

/// Shown on the person form when the code of the last request expired.
const MSG_CODE_EXPIRED: &str =
    "인증번호 유효시간이 지났습니다. 다시 요청해주세요. (the code expired; request a new one)";
/// Oldest `min_age` that makes sense.
const MAX_MIN_AGE: i64 = 150;

fn invalid(e: ApiError) -> WindowError {
    WindowError::new(codes::INVALID_PARAM, e.message)
}

/// Parses and checks an `IMP.certification` sent by the SDK (checked again whatever the SDK did).
pub fn cert_request(body: &Value, headers: &HeaderMap) -> Result<CertWindowRequest, WindowError> {
    let imp_code =
        match &body["user_code"] {
            Value::String(s) if !s.is_empty() && s.len() <= 40 => s.clone(),
            _ => return Err(WindowError::new(
                codes::UNKNOWN_MERCHANT,
                "IMP.init(userCode)로 가맹점 식별코드를 먼저 설정해주세요. (userCode is required)",
            )),
        };
    let raw = match &body["params"] {
        Value::Object(raw) => raw.clone(),
        Value::Null => serde_json::Map::new(),
        _ => {
            return Err(WindowError::new(
                codes::INVALID_PARAM,
                "certification params must be an object",
            ))
        }
    };
    let p = Params::from_json(&serde_json::to_vec(&raw).unwrap_or_default()).map_err(invalid)?;
    let merchant_uid = p
        .str_opt("merchant_uid", MerchantUid::MAX_CHARS)
        .map_err(invalid)?
        .map(|u| MerchantUid::parse(&u))
        .transpose()
        .map_err(|e| WindowError::new(codes::INVALID_PARAM, e.to_string()))?;
    let pg = p.str_opt("pg", 60).map_err(invalid)?;
    let min_age = p.int_opt("min_age").map_err(invalid)?;
    if min_age.is_some_and(|a| !(0..=MAX_MIN_AGE).contains(&a)) {
        return Err(WindowError::new(
            codes::INVALID_PARAM,
            format!("min_age must be an integer from 0 to {MAX_MIN_AGE}"),
        ));
    }
    let company = p.str_opt("company", MAX_COMPANY_CHARS).map_err(invalid)?;
    // i'mport's SDK spells carriers SKT, KTF, LGT, MVNO; the window offers SKT, KT, LGT.
    let carrier = match p.str_opt("carrier", 10).map_err(invalid)?.as_deref() {
        None => None,
        Some("SKT") => Some("SKT".to_owned()),
        Some("KT" | "KTF") => Some("KT".to_owned()),
        Some("LGT") => Some("LGT".to_owned()),
        Some("MVNO") => Some("MVNO".to_owned()),
        Some(_) => {
            return Err(WindowError::new(
                codes::INVALID_PARAM,
                "carrier must be SKT, KTF, LGT or MVNO",
            ))
        }
    };
    let prefill = Prefill {
        name: p.str_opt("name", 40).map_err(invalid)?,
        phone: p.str_opt("phone", 20).map_err(invalid)?,
        carrier,
    };
    p.bool_opt("popup").map_err(invalid)?;
    let (mode, m_redirect_url) = super::checkout::window_mode(body, &p)?;
    let parent_origin = match headers.get(header::ORIGIN) {
        Some(v) => v.to_str().ok().filter(|o| *o != "null").map(str::to_owned),
        None => body["origin"].as_str().map(str::to_owned),
    }
    .filter(|o| o.len() <= MAX_ORIGIN_CHARS);
    Ok(CertWindowRequest {
        imp_code,
        mode,
        parent_origin,
        merchant_uid,
        m_redirect_url,
        pg,
        min_age,
        company,
        prefill,
    })
}

/// `POST /checkout/certification/prepare`.
pub async fn prepare(
    State(engine): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Each call writes a row: the same per-address and per-merchant limits as payment windows.
    let v = match super::checkout::prepare_body(
        &engine,
        client,
        &body,
        "checkout/certification/prepare",
    ) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let merchant_uid = v["params"]["merchant_uid"].as_str().map(str::to_owned);
    let fail = |e: WindowError| sdk_json(prevalidation_result(merchant_uid.as_deref(), &e));
    let req = match cert_request(&v, &headers) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if let Some(refused) = super::checkout::prepare_merchant_limit(
        &engine,
        &req.imp_code,
        "checkout/certification/prepare",
    ) {
        return refused;
    }
    let mode = req.mode;
    match engine.open_cert_window(req).await {
        Ok(o) => sdk_json_for(
            json!({
                "success": true,
                "imp_uid": o.imp_uid,
                "merchant_uid": merchant_uid,
                "checkout_id": o.window_id,
                "window_url": o.window_url,
                "mode": mode.as_str(),
            }),
            o.cors_origin.as_deref().map_or(Cors::Any, Cors::Only),
        ),
        Err(e) => fail(e),
    }
}

/// `POST /checkout/certification/cancel/{id}`: readable by the opening page only when the
/// merchant has allowed origins (as `/checkout/cancel/{id}`).
pub async fn sdk_cancel(State(engine): State<AppState>, Path(id): Path<String>) -> Response {
    let ended = match engine.cert_window(&id).await {
        Ok((c, _)) => engine.cert_window_cancel(&c).await,
        Err(e) => Err(e),
    };
    match ended {
        Ok(c) => {
            let r = cert_result(&c).unwrap_or_else(|| json!({"success": false}));
            let allowed = engine.merchant_origins(&c.merchant_id).await.into_list();
            match allowed {
                None => sdk_json(r),
                Some(list) => match c.parent_origin.as_deref() {
                    Some(o) if list.iter().any(|a| a == o) => sdk_json_for(r, Cors::Only(o)),
                    _ => sdk_json_for(r, Cors::Nobody),
                },
            }
        }
        Err(e) => {
            let e = WindowError::new(codes::SESSION_EXPIRED, e.to_string());
            sdk_json(prevalidation_result(None, &e))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The test identity provider's window.

fn csrf(engine: &Engine, id: &str) -> String {
    engine.redirect_binding(&format!("testid-csrf:{id}"))
}

fn csrf_ok(engine: &Engine, id: &str, p: &Params) -> bool {
    let sent = p.str_opt("csrf", 64).ok().flatten().unwrap_or_default();
    bool::from(subtle::ConstantTimeEq::ct_eq(
        sent.as_bytes(),
        csrf(engine, id).as_bytes(),
    ))
}

fn binding_cookie_name(id: &str) -> String {
    format!("pier_cert_{id}")
}

fn has_binding(engine: &Engine, id: &str, headers: &HeaderMap) -> bool {
    let name = binding_cookie_name(id);
    let want = engine.cert_binding(id);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .any(|(k, v)| {
            k == name && bool::from(subtle::ConstantTimeEq::ct_eq(v.as_bytes(), want.as_bytes()))
        })
}

fn shell(inner: &str, head: &str) -> String {
    format!(
        "<!doctype html><html lang=\"ko\"><head><meta charset=\"utf-8\"><title>Pier 테스트 본인인증</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/checkout/static/pier.css\">{head}</head>\
         <body data-testid=\"testid-window\"><main class=\"box\"><h1>Pier 테스트 본인인증</h1>\
         <p class=\"hint\" data-testid=\"testid-banner\">테스트 본인인증입니다 (Pier test identity provider). \
         실제 통신사 인증이 일어나지 않으며 SMS는 발송되지 않습니다.</p>{inner}</main></body></html>"
    )
}

async fn window_page(
    engine: &Engine,
    c: &Certification,
    inner: String,
    status: StatusCode,
) -> Response {
    let fa = frame_ancestors(engine, &c.merchant_id).await;
    let mut res = page_with(shell(&inner, ""), &fa, "");
    *res.status_mut() = status;
    res
}

fn error_html(msg: Option<&str>) -> String {
    msg.map(|m| {
        format!(
            "<p class=\"error\" role=\"alert\" data-testid=\"testid-error\">{}</p>",
            esc(m)
        )
    })
    .unwrap_or_default()
}

fn cancel_form(id: &str, token: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/testid/{id}/cancel\" data-testid=\"testid-cancel-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
         <button type=\"submit\" data-testid=\"testid-cancel\">인증 취소</button></form>"
    )
}

fn person_form(
    engine: &Engine,
    c: &Certification,
    prefill: &Prefill,
    error: Option<&str>,
) -> String {
    let id = c.window_id.as_deref().unwrap_or("");
    let token = csrf(engine, id);
    let chosen = prefill.carrier.as_deref().unwrap_or("SKT");
    let carriers: String = [("SKT", "SKT"), ("KT", "KT"), ("LGT", "LG U+")]
        .iter()
        .map(|(v, label)| {
            format!(
                "<option value=\"{v}\"{sel} data-testid=\"testid-carrier-{v}\">{label}</option>",
                sel = if *v == chosen { " selected" } else { "" }
            )
        })
        .collect();
    let mvno = if chosen == "MVNO" { " checked" } else { "" };
    let company = c
        .company
        .as_deref()
        .map(|co| format!("<p data-testid=\"testid-company\">{}</p>", esc(co)))
        .unwrap_or_default();
    format!(
        "{company}{error}<form method=\"post\" action=\"/testid/{id}/request\" data-testid=\"testid-form\" autocomplete=\"off\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
         <label class=\"field\">통신사<select name=\"carrier\" data-testid=\"testid-carrier\">{carriers}</select></label>\
         <label class=\"field\"><input type=\"checkbox\" name=\"is_mvno\" value=\"true\" data-testid=\"testid-mvno\"{mvno}>알뜰폰</label>\
         <label class=\"field\">이름<input name=\"name\" maxlength=\"40\" value=\"{name}\" data-testid=\"testid-name\" required></label>\
         <label class=\"field\">생년월일<input name=\"birth\" inputmode=\"numeric\" maxlength=\"10\" placeholder=\"19880101\" data-testid=\"testid-birth\" required></label>\
         <label class=\"field\">주민등록번호 뒷자리 첫 숫자<input name=\"gender_digit\" inputmode=\"numeric\" maxlength=\"1\" placeholder=\"1\" data-testid=\"testid-gender-digit\" required></label>\
         <label class=\"field\">휴대폰 번호<input name=\"phone\" inputmode=\"numeric\" maxlength=\"13\" placeholder=\"01012345678\" value=\"{phone}\" data-testid=\"testid-phone\" required></label>\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\" data-testid=\"testid-request\">인증번호 요청</button></div></form>{cancel}",
        error = error_html(error),
        name = esc(prefill.name.as_deref().unwrap_or("")),
        phone = esc(prefill.phone.as_deref().unwrap_or("")),
        cancel = cancel_form(id, &token),
    )
}

fn code_form(engine: &Engine, c: &Certification, error: Option<&str>) -> String {
    let id = c.window_id.as_deref().unwrap_or("");
    let token = csrf(engine, id);
    format!(
        "<p data-testid=\"testid-sent\">입력하신 휴대폰 번호로 인증번호를 발송했습니다.</p>\
         <p class=\"hint\">테스트 인증번호 (실제 SMS는 발송되지 않습니다): \
         <strong class=\"code\" data-testid=\"testid-sms-code\">{TEST_OTP}</strong></p>{error}\
         <form method=\"post\" action=\"/testid/{id}/confirm\" data-testid=\"testid-otp-form\" autocomplete=\"off\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
         <label class=\"field\">인증번호<input name=\"otp\" inputmode=\"numeric\" maxlength=\"6\" data-testid=\"testid-otp\" required></label>\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\" data-testid=\"testid-confirm\">확인</button></div></form>{cancel}",
        error = error_html(error),
        cancel = cancel_form(id, &token),
    )
}

/// A page that moves on to `/testid/{id}/result` (a new navigation, see the module doc).
async fn returning(engine: &Engine, c: &Certification) -> Response {
    let id = c.window_id.as_deref().unwrap_or("");
    let head = format!("<meta http-equiv=\"refresh\" content=\"0;url=/testid/{id}/result\">");
    let inner = format!(
        "<p data-testid=\"testid-returning\">인증 결과를 가맹점으로 전달하고 있습니다…</p>\
         <p><a href=\"/testid/{id}/result\" data-testid=\"testid-continue\">계속</a></p>"
    );
    let fa = frame_ancestors(engine, &c.merchant_id).await;
    page_with(shell(&inner, &head), &fa, "")
}

async fn expired(engine: &Engine, c: &Certification) -> Response {
    window_page(
        engine,
        c,
        "<p data-testid=\"testid-expired\">본인인증 가능 시간이 지났습니다. (this window has expired)</p>"
            .into(),
        StatusCode::NOT_FOUND,
    )
    .await
}

async fn form_params(body: &Bytes) -> ApiResult<Params> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
    Params::from_form(text)
}

/// `GET /testid/{id}`.
pub async fn window(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (c, prefill) = engine.cert_window(&id).await?;
    if cert_result(&c).is_some() {
        return Ok(deliver(&engine, &c, &headers).await);
    }
    if engine.cert_window_expired(&c) {
        return Ok(expired(&engine, &c).await);
    }
    let inner = if engine.cert_code_expired(&c) {
        person_form(&engine, &c, &prefill, Some(MSG_CODE_EXPIRED))
    } else if c.status == CertificationStatus::Requested {
        code_form(&engine, &c, None)
    } else {
        person_form(&engine, &c, &prefill, None)
    };
    let mut res = window_page(&engine, &c, inner, StatusCode::OK).await;
    if c.window_mode.as_deref() == Some("redirect") {
        let secure = if engine.public_base().starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        let max_age = (c.created_at + engine.config().checkout_ttl_secs - engine.now()).max(1);
        let cookie = format!(
            "{}={}; Path=/testid/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
            binding_cookie_name(&id),
            engine.cert_binding(&id),
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    Ok(res)
}

fn refused_csrf() -> ApiError {
    ApiError::bad_request("잘못된 요청입니다. (invalid CSRF token)")
}

/// `POST /testid/{id}/request`.
pub async fn request(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let (c, _) = engine.cert_window(&id).await?;
    let p = form_params(&body).await?;
    if !csrf_ok(&engine, &id, &p) {
        return Err(refused_csrf());
    }
    if cert_result(&c).is_some() {
        return Ok(returning(&engine, &c).await);
    }
    let typed = Prefill {
        name: p.str_opt("name", 40).ok().flatten(),
        phone: p.str_opt("phone", 20).ok().flatten(),
        carrier: p.str_opt("carrier", 10).ok().flatten(),
    };
    let attempt = match person_input(&p) {
        Ok(i) => engine.cert_window_request(&c, &i).await,
        Err(e) => Err(Error::Invalid(e.message)),
    };
    match attempt {
        Ok(after) => Ok(window_page(
            &engine,
            &after,
            code_form(&engine, &after, None),
            StatusCode::OK,
        )
        .await),
        Err(Error::Invalid(msg)) => {
            let inner = person_form(&engine, &c, &typed, Some(&msg));
            Ok(window_page(&engine, &c, inner, StatusCode::BAD_REQUEST).await)
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /testid/{id}/confirm`.
pub async fn confirm(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let (c, _) = engine.cert_window(&id).await?;
    let p = form_params(&body).await?;
    if !csrf_ok(&engine, &id, &p) {
        return Err(refused_csrf());
    }
    if cert_result(&c).is_some() {
        return Ok(returning(&engine, &c).await);
    }
    let otp = p.str_opt("otp", 10).ok().flatten().unwrap_or_default();
    match engine.cert_window_confirm(&c, &otp).await {
        Ok(WindowConfirm::Done(after)) => Ok(returning(&engine, &after).await),
        Ok(WindowConfirm::WrongCode { attempts_left }) => {
            let msg = format!(
                "인증번호가 일치하지 않습니다. (wrong code: {attempts_left} attempts left)"
            );
            Ok(window_page(
                &engine,
                &c,
                code_form(&engine, &c, Some(&msg)),
                StatusCode::OK,
            )
            .await)
        }
        Err(Error::Invalid(msg)) => {
            let inner =
                if c.status == CertificationStatus::Requested && !engine.cert_code_expired(&c) {
                    code_form(&engine, &c, Some(&msg))
                } else {
                    person_form(&engine, &c, &Prefill::default(), Some(&msg))
                };
            Ok(window_page(&engine, &c, inner, StatusCode::BAD_REQUEST).await)
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /testid/{id}/cancel`.
pub async fn cancel(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let (c, _) = engine.cert_window(&id).await?;
    let p = form_params(&body).await?;
    if !csrf_ok(&engine, &id, &p) {
        return Err(refused_csrf());
    }
    let after = engine.cert_window_cancel(&c).await?;
    Ok(returning(&engine, &after).await)
}

/// `GET /testid/{id}/result`.
pub async fn result(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (c, _) = engine.cert_window(&id).await?;
    if cert_result(&c).is_none() {
        if engine.cert_window_expired(&c) {
            return Ok(expired(&engine, &c).await);
        }
        return Ok(redirect(&format!("/testid/{id}")));
    }
    Ok(deliver(&engine, &c, &headers).await)
}

/// The result, delivered the way the window was opened (the rules of payment windows: a redirect
/// only while the window's session lives, and only to an allowed origin or, without allowed
/// origins, for the browser that opened the window).
async fn deliver(engine: &Engine, c: &Certification, headers: &HeaderMap) -> Response {
    let Some(result) = cert_result(c) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let id = c.window_id.as_deref().unwrap_or("");
    let allowed = engine.merchant_origins(&c.merchant_id).await.into_list();
    let session_lives = engine.now() <= c.created_at + engine.config().checkout_ttl_secs;
    if c.window_mode.as_deref() == Some("redirect") && session_lives {
        if let Some(to) = c.m_redirect_url.as_deref() {
            let permitted = match &allowed {
                Some(list) => url_allowed(list, to),
                None => has_binding(engine, id, headers),
            };
            if let Some(u) = cert_redirect(to, &result).filter(|_| permitted) {
                return redirect(&u);
            }
        }
    }
    let ok = result["success"].as_bool().unwrap_or(false);
    let msg = if ok {
        "본인인증이 완료되었습니다.".to_owned()
    } else {
        result["error_msg"]
            .as_str()
            .unwrap_or("본인인증에 실패하였습니다.")
            .to_owned()
    };
    let head = "<script src=\"/checkout/static/done.js\" defer></script>";
    let html = format!(
        "<!doctype html><html lang=\"ko\"><head><meta charset=\"utf-8\"><title>Pier 본인인증 결과</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/checkout/static/pier.css\">{head}</head>\
         <body data-testid=\"testid-done\" data-mode=\"{mode}\" data-origin=\"{origin}\" data-checkout=\"{id}\" data-result=\"{result}\">\
         <main class=\"box\"><h1>Pier 테스트 본인인증</h1><p data-testid=\"testid-done-message\">{msg}</p></main></body></html>",
        mode = esc(c.window_mode.as_deref().unwrap_or("")),
        origin = esc(c.parent_origin.as_deref().unwrap_or("")),
        id = esc(id),
        result = esc(&result.to_string()),
        msg = esc(&msg),
    );
    // An unknown merchant (or a storage error) has an empty list: framed by nobody.
    let fa = match allowed {
        Some(list) if list.is_empty() => "'none'".to_owned(),
        Some(list) => list.join(" "),
        None => "*".to_owned(),
    };
    page_with(html, &fa, "")
}
