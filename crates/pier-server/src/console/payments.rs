//! The payments list (`/console/payments`): its rows and its filters.

use super::view::{enc, error_page, html, layout, won, Layout};
use super::{Form, Signed};
use crate::engine::console::{kst_day_start, kst_time};
use crate::engine::Error;
use crate::http::AppState;
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use pier_domain::PaymentStatus;
use pier_store::{ConsoleFilter, Payment};

pub(super) fn status_label(s: PaymentStatus) -> &'static str {
    match s {
        PaymentStatus::Ready => "미결제",
        PaymentStatus::Paid => "결제완료",
        PaymentStatus::Cancelled => "취소",
        PaymentStatus::Failed => "실패",
    }
}

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

pub(super) fn row(p: &Payment) -> Row {
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
            status_label(p.status)
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

const MAX_FILTER_CHARS: usize = 40;

pub(super) fn filters(query: Option<&str>) -> Result<(Filters, ConsoleFilter), Error> {
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
        let Ok(status) = shown.status.parse::<PaymentStatus>() else {
            let all: Vec<&str> = PaymentStatus::ALL.iter().map(|s| s.as_str()).collect();
            return Err(Error::Invalid(format!(
                "알 수 없는 상태입니다. (status must be one of {})",
                all.join(", ")
            )));
        };
        f.status = Some(status);
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
    RawQuery(query): RawQuery,
    Signed(a): Signed,
) -> Response {
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
        statuses: PaymentStatus::ALL
            .iter()
            .map(|s| (s.as_str(), status_label(*s)))
            .collect(),
        rows: page.items.iter().map(row).collect(),
        next,
        csv: format!("/console/payments.csv?{keep}"),
        f: shown,
    };
    html(StatusCode::OK, &p)
}
