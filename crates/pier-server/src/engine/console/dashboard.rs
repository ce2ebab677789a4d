//! The dashboard: totals of today, the last 7 and 30 days (KST), a 30-day chart and the most
//! frequent failure reasons. The 29 days before today are cached per merchant; today is read live.

use super::{Actor, DAY_SECS, KST_OFFSET_SECS};
use crate::engine::{Engine, Result};
use pier_store::DayTotals;
use std::sync::Arc;

/// The dashboard's figures of the 29 days before today: per-day totals and the count of every
/// failure reason (merged with today's at each view).
pub struct PastDays {
    days: Vec<DayTotals>,
    failures: Vec<(String, i64)>,
}

/// Distinct failure reasons kept per merchant for the past days. PG failure texts repeat (a
/// code and its message); past this many the rarest are dropped, which can only misrank
/// reasons that are each rarer than the 1,000th.
const PAST_FAILURE_REASONS: i64 = 1_000;

/// How long the dashboard's past days are reused: refunds of older payments and late PG
/// answers show within 5 minutes, and a dashboard view reads only today's payments (at 100,000
/// payments a month, reading all 30 days took ~0.5 s; docs/PERFORMANCE.md).
pub const PAST_DAYS_TTL_SECS: i64 = 300;
/// Merchants whose past days are kept; past it the cache starts over (bounded memory).
const PAST_DAYS_MAX_MERCHANTS: usize = 10_000;

/// Totals over a period.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub paid_count: i64,
    pub paid_amount: i64,
    pub cancel_amount: i64,
    pub failed_count: i64,
}

impl Totals {
    /// Failed attempts per 1,000 settled attempts (paid + failed), for a "12.3%" display.
    pub fn failure_permille(&self) -> i64 {
        let n = self.paid_count + self.failed_count;
        if n == 0 {
            0
        } else {
            self.failed_count * 1000 / n
        }
    }
}

pub struct Dashboard {
    pub today: Totals,
    pub week: Totals,
    pub month: Totals,
    /// 30 entries, oldest first: (day number, paid amount).
    pub chart: Vec<(i64, i64)>,
    pub top_failures: Vec<(String, i64)>,
}

impl Engine {
    pub async fn console_dashboard(&self, a: &Actor) -> Result<Dashboard> {
        let now = self.now();
        let today = (now + KST_OFFSET_SECS).div_euclid(DAY_SECS);
        let first = today - 29;
        let since = first * DAY_SECS - KST_OFFSET_SECS;
        let today_start = today * DAY_SECS - KST_OFFSET_SECS;
        let cached = self
            .console
            .past_days
            .get(&a.merchant_id)
            .filter(|e| e.0 == today && now - e.1 < PAST_DAYS_TTL_SECS && e.1 <= now)
            .map(|e| e.2.clone());
        let past = match cached {
            Some(p) => p,
            None => {
                let (days, failures) = tokio::try_join!(
                    self.store
                        .day_totals(&a.merchant_id, since, today_start, KST_OFFSET_SECS),
                    self.store.top_failures(
                        &a.merchant_id,
                        since,
                        today_start,
                        PAST_FAILURE_REASONS
                    )
                )?;
                let p = Arc::new(PastDays { days, failures });
                let cache = &self.console.past_days;
                if cache.len() >= PAST_DAYS_MAX_MERCHANTS {
                    cache.clear();
                }
                cache.insert(a.merchant_id.clone(), (today, now, p.clone()));
                p
            }
        };
        // Only today's payments are read per view: an index range of (merchant_id,
        // started_at), ~3,300 rows at 100,000 payments a month.
        let (today_totals, today_failures) = tokio::try_join!(
            self.store
                .day_totals(&a.merchant_id, today_start, i64::MAX, KST_OFFSET_SECS),
            self.store
                .top_failures(&a.merchant_id, today_start, i64::MAX, PAST_FAILURE_REASONS)
        )?;
        let mut days: Vec<DayTotals> = past.days.clone();
        days.extend(today_totals);
        let mut failures: std::collections::HashMap<String, i64> =
            past.failures.iter().cloned().collect();
        for (reason, n) in today_failures {
            *failures.entry(reason).or_default() += n;
        }
        let mut top_failures: Vec<(String, i64)> = failures.into_iter().collect();
        top_failures.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top_failures.truncate(5);
        let sum = |from_day: i64| {
            days.iter()
                .filter(|d| d.day >= from_day)
                .fold(Totals::default(), |t, d| Totals {
                    paid_count: t.paid_count + d.paid_count,
                    paid_amount: t.paid_amount + d.paid_amount,
                    cancel_amount: t.cancel_amount + d.cancel_amount,
                    failed_count: t.failed_count + d.failed_count,
                })
        };
        let chart = (first..=today)
            .map(|day| {
                let amt = days
                    .iter()
                    .find(|d| d.day == day)
                    .map_or(0, |d| d.paid_amount);
                (day, amt)
            })
            .collect();
        Ok(Dashboard {
            today: sum(today),
            week: sum(today - 6),
            month: sum(first),
            chart,
            top_failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_rate() {
        let t = Totals {
            paid_count: 3,
            failed_count: 1,
            ..Default::default()
        };
        assert_eq!(t.failure_permille(), 250);
        assert_eq!(Totals::default().failure_permille(), 0);
    }
}
