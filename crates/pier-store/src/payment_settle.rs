//! The settle statements, declared once: the single-row `UPDATE` of sqlx and the lane and the
//! batched `UPDATE … FROM UNNEST` of `pg_batch` are both rendered from the same `SET` list,
//! guard and parameter list, and bound from the same values (`settle_vals`).

use crate::models::{PaymentStatus, Settlement};
use crate::payment_row::{cols, p_cols, Column, Ty, Val};
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SettleKind {
    Paid,
    Failed,
    Unknown,
}

/// A settle statement, declared once: its parameters (after `imp_uid` and `now`, which every
/// kind has) and its `SET` list, where `{name}` is a parameter and `{p}` qualifies a column of
/// the updated row. Rendered as a single-row `UPDATE` (`settle_sql`: `$n`, no alias) and as the
/// batch's `UPDATE payments AS p … FROM UNNEST(…) AS v` (`settle_batch_sql`: `v.name`, `p.`).
pub(crate) struct Settle {
    /// The status the settle writes (`None`: unchanged, the outcome is unknown); the guard
    /// matches `SETTLED_FROM` only, and `transitions_follow_the_state_machine` checks the move.
    to: Option<PaymentStatus>,
    pub(crate) params: &'static [(&'static str, Ty)],
    set: &'static str,
}

/// Every settle matches only a `ready` attempt whose PG call was under way or unknown.
const SETTLE_GUARD: &str =
    "{p}imp_uid = {imp_uid} AND {p}status = {from} AND {p}pg_state IN ('in_flight','unknown')";

/// The status every settle moves from: an attempt awaiting the PG is `ready`.
const SETTLED_FROM: PaymentStatus = PaymentStatus::Ready;

/// By `SettleKind`.
pub(crate) const SETTLES: [Settle; 3] = [
    Settle {
        params: &[
            ("imp_uid", Ty::Text),
            ("now", Ty::Int),
            ("pg_tid", Ty::Text),
            ("apply_num", Ty::Text),
            ("paid_at", Ty::Int),
            ("card_code", Ty::Text),
            ("card_name", Ty::Text),
            ("card_number", Ty::Text),
            ("card_type", Ty::Int),
            ("card_quota", Ty::Int),
            ("bank_code", Ty::Text),
            ("bank_name", Ty::Text),
            ("receipt_url", Ty::Text),
        ],
        to: Some(PaymentStatus::Paid),
        set: "pg_state = 'settled', uid_lock = TRUE, updated_at = {now}, \
              pg_tid = {pg_tid}, apply_num = {apply_num}, paid_at = {paid_at}, \
              card_code = COALESCE({card_code}, {p}card_code), card_name = COALESCE({card_name}, {p}card_name), \
              card_number = COALESCE({card_number}, {p}card_number), card_type = COALESCE({card_type}, {p}card_type), \
              card_quota = {card_quota}, bank_code = COALESCE({bank_code}, {p}bank_code), \
              bank_name = COALESCE({bank_name}, {p}bank_name), receipt_url = {receipt_url}",
    },
    Settle {
        params: &[
            ("imp_uid", Ty::Text),
            ("now", Ty::Int),
            ("reason", Ty::Text),
            ("failed_at", Ty::Int),
        ],
        to: Some(PaymentStatus::Failed),
        set: "pg_state = 'settled', uid_lock = FALSE, updated_at = {now}, \
              fail_reason = {reason}, failed_at = {failed_at}",
    },
    Settle {
        params: &[
            ("imp_uid", Ty::Text),
            ("now", Ty::Int),
            ("told_failed", Ty::Bool),
            ("next_reconcile_at", Ty::Int),
        ],
        to: None,
        set: "pg_state = 'unknown', updated_at = {now}, told_failed = ({p}told_failed OR {told_failed}), \
              next_reconcile_at = {next_reconcile_at}, reconcile_attempts = {p}reconcile_attempts + 1",
    },
];

impl Settle {
    /// The `SET` list: the status written, if any, then `set`.
    fn set_list(&self, qualifier: &str, param: impl Fn(usize, &str) -> String) -> String {
        let rest = self.render(self.set, qualifier, param);
        match self.to {
            Some(to) => format!("status = '{to}', {rest}"),
            None => rest,
        }
    }

    /// `template` with `{p}` as `qualifier` and each `{param}` as `param(i, name)`.
    fn render(
        &self,
        template: &str,
        qualifier: &str,
        param: impl Fn(usize, &str) -> String,
    ) -> String {
        let mut out = template
            .replace("{p}", qualifier)
            .replace("{from}", &format!("'{SETTLED_FROM}'"));
        for (i, (name, _)) in self.params.iter().enumerate() {
            out = out.replace(&format!("{{{name}}}"), &param(i, name));
        }
        out
    }
}

/// The single-row settle, returning the row; bound with `settle_vals` as `$1…`.
pub(crate) fn settle_sql(kind: SettleKind) -> &'static str {
    static S: OnceLock<[String; 3]> = OnceLock::new();
    let all = S.get_or_init(|| {
        SETTLES.each_ref().map(|s| {
            let n = |i: usize, _: &str| format!("${}", i + 1);
            format!(
                "UPDATE payments SET {} WHERE {} RETURNING {}",
                s.set_list("", n),
                s.render(SETTLE_GUARD, "", n),
                cols()
            )
        })
    });
    &all[kind as usize]
}

/// The batch's settle of `kind` over its arrays, numbered from `$first`, returning the rows.
pub(crate) fn settle_batch_sql(kind: SettleKind, first: usize) -> String {
    let s = &SETTLES[kind as usize];
    let v = |_: usize, name: &str| format!("v.{name}");
    let arrays = s
        .params
        .iter()
        .enumerate()
        .map(|(i, (_, t))| format!("${}::{}[]", first + i, t.pg()))
        .collect::<Vec<_>>()
        .join(", ");
    let names = s
        .params
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "UPDATE payments AS p SET {} FROM UNNEST({arrays}) AS v({names}) WHERE {} RETURNING {}",
        s.set_list("p.", v),
        s.render(SETTLE_GUARD, "p.", v),
        p_cols()
    )
}

/// A settlement's kind and parameters in `SETTLES` order.
pub(crate) fn settle_vals<'a>(
    imp_uid: &'a str,
    now: i64,
    s: &'a Settlement,
) -> (SettleKind, Vec<Val<'a>>) {
    let mut out = vec![Val::Text(Some(imp_uid)), Val::Int(Some(now))];
    let kind = match s {
        Settlement::Paid {
            pg_tid,
            apply_num,
            paid_at,
            card_code,
            card_name,
            card_number,
            card_type,
            card_quota,
            bank_code,
            bank_name,
            receipt_url,
        } => {
            out.extend([
                pg_tid.val(),
                apply_num.val(),
                paid_at.val(),
                card_code.val(),
                card_name.val(),
                card_number.val(),
                card_type.val(),
                card_quota.val(),
                bank_code.val(),
                bank_name.val(),
                receipt_url.val(),
            ]);
            SettleKind::Paid
        }
        Settlement::Failed { reason, failed_at } => {
            out.extend([reason.val(), failed_at.val()]);
            SettleKind::Failed
        }
        Settlement::Unknown {
            told_failed,
            next_reconcile_at,
        } => {
            out.extend([told_failed.val(), next_reconcile_at.val()]);
            SettleKind::Unknown
        }
    };
    (kind, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_state_machine() {
        for s in &SETTLES {
            if let Some(to) = s.to {
                assert!(SETTLED_FROM.can_become(to), "{SETTLED_FROM} → {to}");
            }
        }
        assert!(settle_sql(SettleKind::Paid).starts_with(
            "UPDATE payments SET status = 'paid', pg_state = 'settled', uid_lock = TRUE, updated_at = $2,"
        ));
        assert!(
            settle_sql(SettleKind::Failed).contains("WHERE imp_uid = $1 AND status = 'ready' AND")
        );
        assert!(settle_batch_sql(SettleKind::Unknown, 1)
            .contains("told_failed = (p.told_failed OR v.told_failed)"));
    }
}
