//! The payments list as CSV (`/console/payments.csv`), streamed page by page.

use super::payments::filters;
use super::view::error_page;
use super::Signed;
use crate::engine::console::kst_time;
use crate::http::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pier_store::{ConsoleFilter, Payment};

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
    RawQuery(query): RawQuery,
    Signed(a): Signed,
) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_quoted_as_text() {
        assert_eq!(csv_cell("=SUM(A1)"), "\"'=SUM(A1)\"");
        assert_eq!(csv_cell("a\"b"), "\"a\"\"b\"");
    }
}
