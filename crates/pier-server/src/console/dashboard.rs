//! The dashboard (`/console/dashboard`): totals of today, 7 and 30 days, a 30-day chart and the
//! most frequent failure reasons.

use super::view::{error_page, html, layout, won, Layout};
use super::Signed;
use crate::engine::console::{kst_day_label, Dashboard, Totals};
use crate::http::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

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

pub async fn dashboard(State(state): State<AppState>, Signed(a): Signed) -> Response {
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
