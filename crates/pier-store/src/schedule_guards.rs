//! The SQL guards of the schedules' transitions, generated from the domain's one state machine
//! (`ScheduleStatus::can_become`, `ScheduleStatus::rearmable`), so no status list is written
//! twice: the store guards what the domain decides.

use crate::models::{PaymentStatus, ScheduleStatus};

/// `'a', 'b'`: SQL literals of statuses.
fn sql_list<T: Copy>(items: impl Iterator<Item = T>, name: fn(T) -> &'static str) -> String {
    items
        .map(|t| format!("'{}'", name(t)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The guard of an update moving a schedule to `to`: the statuses the domain lets become `to`
/// (`ScheduleStatus::can_become`), so the SQL guards follow the one state machine.
pub(crate) fn may_become(to: ScheduleStatus) -> String {
    let from = ScheduleStatus::ALL.into_iter().filter(|s| s.can_become(to));
    format!(
        "schedule_status IN ({})",
        sql_list(from, ScheduleStatus::as_str)
    )
}

/// The guard of a re-arm, from `ScheduleStatus::rearmable`: each status that may be re-armed,
/// with the payment statuses it may be re-armed after where that matters.
pub(crate) fn rearmable() -> &'static str {
    static S: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let payments = || PaymentStatus::ALL.into_iter().map(Some).chain([None]);
        let mut any = Vec::new();
        for st in ScheduleStatus::ALL {
            let ok: Vec<Option<PaymentStatus>> = payments().filter(|p| st.rearmable(*p)).collect();
            let is = format!("schedule_status = '{}'", st.as_str());
            if ok.len() == payments().count() {
                any.push(is);
            } else if !ok.is_empty() {
                let mut p = Vec::new();
                let named = ok.iter().flatten().copied();
                if named.clone().next().is_some() {
                    p.push(format!(
                        "payment_status IN ({})",
                        sql_list(named, PaymentStatus::as_str)
                    ));
                }
                if ok.contains(&None) {
                    p.push("payment_status IS NULL".into());
                }
                any.push(format!("({is} AND ({}))", p.join(" OR ")));
            }
        }
        format!("({})", any.join(" OR "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_follow_the_domain() {
        assert_eq!(
            may_become(ScheduleStatus::Revoked),
            "schedule_status IN ('scheduled')"
        );
        assert_eq!(
            may_become(ScheduleStatus::Executed),
            "schedule_status IN ('scheduled')"
        );
        assert_eq!(
            rearmable(),
            "((schedule_status = 'executed' AND (payment_status IN ('failed'))) \
             OR schedule_status = 'revoked')"
        );
    }
}
