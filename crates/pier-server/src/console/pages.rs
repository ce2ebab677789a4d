//! The console's pages: one handler per page or form, one askama template each.

use super::{actor, cross_site, post_actor, refused, set_cookie, Form, PRE_COOKIE, SESSION_COOKIE};
use crate::engine::console::{
    kst_day_label, kst_day_start, kst_time, Actor, Dashboard, Totals, MSG_FORBIDDEN,
    MSG_SIGN_IN_FAILED, SESSION_ABSOLUTE_SECS,
};
use crate::engine::Error;
use crate::http::AppState;
use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use pier_domain::ids::random_hex;
use pier_domain::PaymentStatus;
use pier_store::{ConsoleFilter, Payment};

/// What every signed-in page's frame shows.
pub struct Layout {
    pub email: String,
    pub role: &'static str,
    pub csrf: String,
    pub test_mode: bool,
    pub nav: &'static str,
}

pub(super) async fn layout(state: &AppState, a: &Actor, nav: &'static str) -> Layout {
    Layout {
        email: a.email.clone(),
        role: a.role.label(),
        csrf: a.csrf.clone(),
        // A store error here only hides the banner; the page itself reports its own errors.
        test_mode: state.console_test_mode(a).await.unwrap_or(false),
        nav,
    }
}

pub(super) fn html(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "페이지를 만들지 못했습니다. (render failed)",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage<'a> {
    message: &'a str,
}

pub fn message_page(status: StatusCode, message: &str) -> Response {
    html(status, &MessagePage { message })
}

pub fn error_page(e: &Error) -> Response {
    let status = match e {
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        Error::Unauthorized => return message_page(StatusCode::FORBIDDEN, MSG_FORBIDDEN),
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Refused(_) | Error::PgRefused(_) | Error::Busy(_) | Error::Conflict(_) => {
            StatusCode::CONFLICT
        }
        Error::PgUnknown { .. } => StatusCode::ACCEPTED,
        Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    message_page(status, &e.to_string())
}

pub(super) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// `1234567` → `1,234,567`.
pub fn won(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
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

fn status_label(s: &str) -> &'static str {
    match s {
        "ready" => "미결제",
        "paid" => "결제완료",
        "cancelled" => "취소",
        "failed" => "실패",
        _ => "기타",
    }
}

pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match actor(&state, &headers).await {
        Ok(_) => see_other("/console/dashboard"),
        Err(r) => r,
    }
}

// ---- sign-in ----

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

fn pre_token(headers: &HeaderMap) -> Option<String> {
    super::cookie(headers, PRE_COOKIE)
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The pre-session cookie lives an hour: a sign-in form left open longer is reloaded.
const PRE_COOKIE_SECS: i64 = 3600;

fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> Response {
    let pre = pre_token(headers).unwrap_or_else(|| random_hex(16));
    let csrf = state.sign_in_csrf(&pre);
    let mut res = html(
        status,
        &LoginPage {
            csrf: &csrf,
            email,
            error,
        },
    );
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            PRE_COOKIE,
            &pre,
            PRE_COOKIE_SECS,
            super::secure(state, headers),
        ),
    );
    res
}

pub async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    login_page(&state, &headers, StatusCode::OK, "", None)
}

pub async fn login(State(state): State<AppState>, req: Request) -> Response {
    let client = crate::edge::client_of(&req);
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), crate::http::BODY_LIMIT_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return message_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "요청이 너무 큽니다. (request too large)",
            )
        }
    };
    if cross_site(&state, &headers) {
        return refused("다른 사이트에서 보낸 요청은 받지 않습니다. (cross-site request refused)");
    }
    let form = Form::parse(&body);
    let csrf_good = pre_token(&headers)
        .is_some_and(|pre| super::csrf_ok(&state.sign_in_csrf(&pre), form.get("csrf")));
    if !csrf_good {
        return refused("보안 토큰이 없거나 올바르지 않습니다. 페이지를 새로 고친 뒤 다시 시도해주세요. (missing or wrong CSRF token)");
    }
    let email = form.get("email").unwrap_or("");
    let password = form.get("password").unwrap_or("");
    match state.console_sign_in(email, password, client).await {
        Ok(token) => {
            let secure = super::secure(&state, &headers);
            let mut res = see_other("/console/dashboard");
            let h = res.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &token, SESSION_ABSOLUTE_SECS, secure),
            );
            h.append(header::SET_COOKIE, set_cookie(PRE_COOKIE, "", 0, secure));
            res
        }
        Err(Error::Unauthorized) => login_page(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            email,
            Some(MSG_SIGN_IN_FAILED),
        ),
        Err(Error::RateLimited(m)) => login_page(
            &state,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            email,
            Some(&m),
        ),
        Err(e) => error_page(&e),
    }
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    if let Err(r) = post_actor(&state, &headers, &form).await {
        return r;
    }
    if let Some(token) = super::cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = state.console_sign_out(&token).await {
            return error_page(&e);
        }
    }
    let mut res = see_other("/console/login");
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, super::secure(&state, &headers)),
    );
    res
}

// ---- dashboard ----

pub struct TotalsView {
    pub label: &'static str,
    pub paid_amount: String,
    pub paid_count: i64,
    pub cancel_amount: String,
    pub failure_rate: String,
}

impl TotalsView {
    fn of(label: &'static str, t: &Totals) -> Self {
        let pm = t.failure_permille();
        Self {
            label,
            paid_amount: won(t.paid_amount),
            paid_count: t.paid_count,
            cancel_amount: won(t.cancel_amount),
            failure_rate: format!("{}.{}%", pm / 10, pm % 10),
        }
    }
}

pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub h: i64,
    pub title: String,
}

/// Chart geometry: 30 bars of 10 units with 2 between, 120 units high (the SVG scales).
const BAR_W: i64 = 10;
const BAR_STEP: i64 = 12;
const CHART_H: i64 = 120;

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    layout: Layout,
    periods: Vec<TotalsView>,
    bars: Vec<Bar>,
    chart_w: i64,
    chart_h: i64,
    bar_w: i64,
    max_label: String,
    first_label: String,
    last_label: String,
    failures: Vec<(String, i64)>,
}

fn bars(d: &Dashboard) -> Vec<Bar> {
    let max = d.chart.iter().map(|(_, a)| *a).max().unwrap_or(0).max(1);
    d.chart
        .iter()
        .enumerate()
        .map(|(i, (day, amt))| {
            // At least 1 unit for a non-empty day, so it shows.
            let h = if *amt > 0 {
                (amt.saturating_mul(CHART_H) / max).max(1)
            } else {
                0
            };
            Bar {
                x: i as i64 * BAR_STEP,
                y: CHART_H - h,
                h,
                title: format!("{} {}원", kst_day_label(*day), won(*amt)),
            }
        })
        .collect()
}

pub async fn dashboard(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let a = match actor(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let d = match state.console_dashboard(&a).await {
        Ok(d) => d,
        Err(e) => return error_page(&e),
    };
    let max = d.chart.iter().map(|(_, a)| *a).max().unwrap_or(0);
    let page = DashboardPage {
        layout: layout(&state, &a, "dashboard").await,
        periods: vec![
            TotalsView::of("오늘", &d.today),
            TotalsView::of("최근 7일", &d.week),
            TotalsView::of("최근 30일", &d.month),
        ],
        bars: bars(&d),
        chart_w: BAR_STEP * d.chart.len() as i64,
        chart_h: CHART_H,
        bar_w: BAR_W,
        max_label: won(max),
        first_label: d
            .chart
            .first()
            .map(|(day, _)| kst_day_label(*day))
            .unwrap_or_default(),
        last_label: d
            .chart
            .last()
            .map(|(day, _)| kst_day_label(*day))
            .unwrap_or_default(),
        failures: d
            .top_failures
            .into_iter()
            .map(|(r, n)| {
                (
                    if r.is_empty() {
                        "(사유 없음)".into()
                    } else {
                        r
                    },
                    n,
                )
            })
            .collect(),
    };
    html(StatusCode::OK, &page)
}

// ---- payments ----

pub struct Row {
    pub imp_uid: String,
    pub merchant_uid: String,
    pub name: String,
    pub buyer: String,
    pub amount: String,
    pub cancelled: String,
    pub status: String,
    pub status_label: &'static str,
    pub pay_method: String,
    pub started: String,
}

fn row(p: &Payment) -> Row {
    Row {
        imp_uid: p.imp_uid.clone(),
        merchant_uid: p.merchant_uid.clone(),
        name: p.name.clone().unwrap_or_default(),
        buyer: p.buyer_name.clone().unwrap_or_default(),
        amount: won(p.amount),
        cancelled: if p.cancel_amount > 0 {
            won(p.cancel_amount)
        } else {
            String::new()
        },
        status: p.status.to_string(),
        // i'mport marks a payment `cancelled` from its first partial cancel; say which.
        status_label: if p.status == PaymentStatus::Cancelled
            && p.paid_at > 0
            && p.cancel_amount < p.amount
        {
            "부분취소"
        } else {
            status_label(p.status.as_str())
        },
        pay_method: p.pay_method.clone().unwrap_or_default(),
        started: kst_time(p.started_at),
    }
}

/// The list's filters as given (echoed into the form) and as the store takes them.
#[derive(Default)]
pub struct Filters {
    pub status: String,
    pub pay_method: String,
    pub pg: String,
    pub from: String,
    pub to: String,
    pub q: String,
}

const STATUSES: &[&str] = &["ready", "paid", "cancelled", "failed"];
const MAX_FILTER_CHARS: usize = 40;

fn filters(query: Option<&str>) -> Result<(Filters, ConsoleFilter), Error> {
    let form = Form::parse(query.unwrap_or("").as_bytes());
    let get = |k: &str| form.get(k).map(str::trim).unwrap_or("").to_owned();
    let shown = Filters {
        status: get("status"),
        pay_method: get("pay_method"),
        pg: get("pg"),
        from: get("from"),
        to: get("to"),
        q: get("q"),
    };
    let mut f = ConsoleFilter::default();
    if !shown.status.is_empty() {
        if !STATUSES.contains(&shown.status.as_str()) {
            return Err(Error::Invalid(format!(
                "알 수 없는 상태입니다. (status must be one of {})",
                STATUSES.join(", ")
            )));
        }
        f.status = Some(shown.status.clone());
    }
    if !shown.pay_method.is_empty() {
        if shown.pay_method.chars().count() > MAX_FILTER_CHARS {
            return Err(Error::Invalid("pay_method is too long".into()));
        }
        f.pay_method = Some(shown.pay_method.clone());
    }
    if !shown.pg.is_empty() {
        if shown.pg.chars().count() > MAX_FILTER_CHARS {
            return Err(Error::Invalid("pg is too long".into()));
        }
        f.pg = Some(shown.pg.clone());
    }
    let day = |s: &str| {
        kst_day_start(s).ok_or_else(|| {
            Error::Invalid(format!(
                "날짜는 YYYY-MM-DD 형식입니다. ({s:.20?} is not a date)"
            ))
        })
    };
    if !shown.from.is_empty() {
        f.from = Some(day(&shown.from)?);
    }
    if !shown.to.is_empty() {
        f.to = Some(day(&shown.to)? + 86_400);
    }
    if !shown.q.is_empty() {
        f.search = Some(shown.q.clone());
    }
    if let Some(b) = form.get("before").filter(|b| !b.is_empty()) {
        let parsed = b
            .split_once(':')
            .and_then(|(t, u)| Some((t.parse::<i64>().ok()?, u.to_owned())))
            .ok_or_else(|| Error::Invalid("invalid page cursor".into()))?;
        f.before = Some(parsed);
    }
    Ok((shown, f))
}

pub(super) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Template)]
#[template(path = "console/payments.html")]
struct PaymentsPage {
    layout: Layout,
    f: Filters,
    statuses: Vec<(&'static str, &'static str)>,
    rows: Vec<Row>,
    next: Option<String>,
    csv: String,
}

pub async fn payments(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let a = match actor(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (shown, f) = match filters(query.as_deref()) {
        Ok(x) => x,
        Err(e) => return error_page(&e),
    };
    let page = match state.console_payments(&a, &f).await {
        Ok(p) => p,
        Err(e) => return error_page(&e),
    };
    let keep = format!(
        "status={}&pay_method={}&pg={}&from={}&to={}&q={}",
        enc(&shown.status),
        enc(&shown.pay_method),
        enc(&shown.pg),
        enc(&shown.from),
        enc(&shown.to),
        enc(&shown.q)
    );
    let next = page.next.map(|(t, u)| {
        format!(
            "/console/payments?{keep}&before={}",
            enc(&format!("{t}:{u}"))
        )
    });
    let p = PaymentsPage {
        layout: layout(&state, &a, "payments").await,
        statuses: STATUSES.iter().map(|s| (*s, status_label(s))).collect(),
        rows: page.items.iter().map(row).collect(),
        next,
        csv: format!("/console/payments.csv?{keep}"),
        f: shown,
    };
    html(StatusCode::OK, &p)
}

pub struct CancelRow {
    pub at: String,
    pub amount: String,
    pub reason: String,
}

pub struct Event {
    pub at: String,
    pub what: String,
}

pub struct DeliveryRow {
    pub event_id: String,
    pub imp_uid: String,
    pub status: String,
    pub url: String,
    pub attempt: i64,
    pub status_code: i64,
    pub latency_ms: i64,
    pub error: String,
    pub at: String,
}

fn delivery_row(d: &pier_store::Delivery) -> DeliveryRow {
    DeliveryRow {
        event_id: d.event_id.clone(),
        imp_uid: d.imp_uid.clone(),
        status: d.status.clone(),
        url: d.url.clone(),
        attempt: d.attempt,
        status_code: d.status_code,
        latency_ms: d.latency_ms,
        error: d.error.clone().unwrap_or_default(),
        at: kst_time(d.at),
    }
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
    headers: HeaderMap,
    Path(imp_uid): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let a = match actor(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
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
    headers: HeaderMap,
    Path(imp_uid): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let a = match post_actor(&state, &headers, &form).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !a.role.can_operate() {
        return error_page(&Error::Unauthorized);
    }
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

// ---- CSV export ----

/// Rows read per store round trip while streaming (one keyset page).
const CSV_PAGE: usize = 50;

fn csv_cell(s: &str) -> String {
    // A cell starting with = + - @ is a formula to spreadsheets: quote it as text (OWASP CSV
    // injection).
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn csv_line(p: &Payment) -> String {
    let cells = [
        p.imp_uid.clone(),
        p.merchant_uid.clone(),
        p.status.to_string(),
        p.pay_method.clone().unwrap_or_default(),
        p.amount.to_string(),
        p.cancel_amount.to_string(),
        p.name.clone().unwrap_or_default(),
        p.buyer_name.clone().unwrap_or_default(),
        kst_time(p.started_at),
        kst_time(p.paid_at),
    ];
    let mut line = cells
        .iter()
        .map(|c| csv_cell(c))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// The filtered list as CSV, streamed page by page (constant memory whatever the range).
pub async fn payments_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let a = match actor(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (_, f) = match filters(query.as_deref()) {
        Ok(x) => x,
        Err(e) => return error_page(&e),
    };
    let head = "imp_uid,merchant_uid,status,pay_method,amount,cancel_amount,name,buyer_name,started_at,paid_at\r\n";
    let first =
        futures_util::stream::once(
            async move { Ok::<_, std::convert::Infallible>(Bytes::from(head)) },
        );
    let rest = futures_util::stream::unfold(Some(f), move |f| {
        let state = state.clone();
        let a = a.clone();
        async move {
            let f = f?;
            match state.console_payments(&a, &f).await {
                Ok(page) => {
                    let mut chunk = String::new();
                    for p in page.items.iter().take(CSV_PAGE) {
                        chunk.push_str(&csv_line(p));
                    }
                    let next = page.next.map(|c| ConsoleFilter {
                        before: Some(c),
                        ..f
                    });
                    Some((Ok(Bytes::from(chunk)), next))
                }
                Err(e) => {
                    tracing::error!(error = %e, "console CSV export stopped");
                    Some((Ok(Bytes::from("# export stopped: storage error\r\n")), None))
                }
            }
        }
    });
    let body = Body::from_stream(futures_util::StreamExt::chain(first, rest));
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"payments.csv\""),
    );
    res
}

// ---- webhooks ----

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct WebhooksPage {
    layout: Layout,
    webhook_url: String,
    webhook_format: String,
    has_secret: bool,
    rows: Vec<DeliveryRow>,
    can_redeliver: bool,
    is_admin: bool,
    flash: Option<&'static str>,
}

pub async fn webhooks(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let a = match actor(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (m, rows) =
        match tokio::try_join!(state.console_merchant(&a), state.console_deliveries(&a, 0)) {
            Ok(x) => x,
            Err(e) => return error_page(&e),
        };
    let page = WebhooksPage {
        layout: layout(&state, &a, "webhooks").await,
        webhook_url: m.webhook_url.unwrap_or_default(),
        webhook_format: m.webhook_format,
        has_secret: m.webhook_secret.is_some(),
        rows: rows.iter().map(delivery_row).collect(),
        can_redeliver: a.role.can_operate(),
        is_admin: a.role.can_admin(),
        flash: match query.as_deref() {
            Some("redelivered=1") => Some("재전송을 예약했습니다. (redelivery queued)"),
            Some("saved=1") => Some("저장했습니다. (saved)"),
            _ => None,
        },
    };
    html(StatusCode::OK, &page)
}

pub async fn redeliver(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let a = match post_actor(&state, &headers, &form).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match state.console_redeliver(&a, &event_id).await {
        Ok(()) => see_other("/console/webhooks?redelivered=1"),
        Err(e) => error_page(&e),
    }
}

// ---- settings, billing, audit ----

pub struct OperatorRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub disabled: bool,
    pub created: String,
}

pub struct ChannelRow {
    pub id: String,
    pub pg: String,
    pub sandbox: bool,
    pub is_default: bool,
}

#[derive(Template)]
#[template(path = "console/settings.html")]
struct SettingsPage {
    layout: Layout,
    imp_code: String,
    imp_key: String,
    origins: String,
    is_admin: bool,
    channels: Vec<ChannelRow>,
    operators: Vec<OperatorRow>,
    roles: [&'static str; 3],
    flash: Option<&'static str>,
}

pub async fn settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let a = match actor(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (m, channels) =
        match tokio::try_join!(state.console_merchant(&a), state.console_channels(&a)) {
            Ok(x) => x,
            Err(e) => return error_page(&e),
        };
    let operators = if a.role.can_admin() {
        match state.console_operators(&a).await {
            Ok(o) => o,
            Err(e) => return error_page(&e),
        }
    } else {
        Vec::new()
    };
    let origins = crate::engine::origins::stored_origins(&m)
        .map(|l| l.join("\n"))
        .unwrap_or_default();
    let page = SettingsPage {
        layout: layout(&state, &a, "settings").await,
        imp_code: m.imp_code,
        imp_key: m.imp_key,
        origins,
        is_admin: a.role.can_admin(),
        channels: channels
            .into_iter()
            .map(|c| ChannelRow {
                pg: format!("{}.{}", c.pg_provider, c.mid),
                id: c.id,
                sandbox: c.sandbox,
                is_default: c.is_default,
            })
            .collect(),
        operators: operators
            .into_iter()
            .map(|o| OperatorRow {
                id: o.id,
                email: o.email,
                role: o.role,
                disabled: o.disabled,
                created: kst_time(o.created_at),
            })
            .collect(),
        roles: ["admin", "operator", "viewer"],
        flash: (query.as_deref() == Some("saved=1")).then_some("저장했습니다. (saved)"),
    };
    html(StatusCode::OK, &page)
}

pub async fn save_origins(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let a = match post_actor(&state, &headers, &form).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match state
        .console_set_origins(&a, form.get("origins").unwrap_or(""))
        .await
    {
        Ok(_) => see_other("/console/settings?saved=1"),
        Err(e) => error_page(&e),
    }
}

pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    layout: Layout,
    rows: Vec<AuditRow>,
    next: Option<String>,
}

pub async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let a = match actor(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let form = Form::parse(query.unwrap_or_default().as_bytes());
    let before = form
        .get("before")
        .and_then(|b| b.split_once(':'))
        .and_then(|(t, id)| Some((t.parse::<i64>().ok()?, id.to_owned())));
    let rows = match state.console_audit(&a, before).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let next = (rows.len() as i64 == crate::engine::console::PAGE_SIZE)
        .then(|| rows.last())
        .flatten()
        .map(|r| {
            format!(
                "/console/audit?before={}",
                enc(&format!("{}:{}", r.at, r.id))
            )
        });
    let page = AuditPage {
        layout: layout(&state, &a, "audit").await,
        rows: rows
            .into_iter()
            .map(|r| AuditRow {
                at: kst_time(r.at),
                actor: r.actor,
                action: r.action,
                target: r.target.unwrap_or_default(),
                detail: r.detail.unwrap_or_default(),
            })
            .collect(),
        next,
    };
    html(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_csv() {
        assert_eq!(won(0), "0");
        assert_eq!(won(1000), "1,000");
        assert_eq!(won(1234567), "1,234,567");
        assert_eq!(won(-1500), "-1,500");
        assert_eq!(csv_cell("=SUM(A1)"), "\"'=SUM(A1)\"");
        assert_eq!(csv_cell("a\"b"), "\"a\"\"b\"");
        assert_eq!(parse_amount(" 1,000 ").unwrap(), Some(1000));
        assert_eq!(parse_amount("").unwrap(), None);
        assert!(parse_amount("1e3").is_err());
    }
}
