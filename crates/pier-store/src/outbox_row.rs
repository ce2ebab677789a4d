//! The webhook announcement row a settle writes with the payment, declared once: the outbox's
//! single-row insert (sqlx and the lane) and the batched insert of `pg_batch` are both derived
//! from the declaration and bound from it.

use crate::models::OutboxEvent;
use crate::row::{arrays, declare_row, numbered, param_of, Row};
use std::sync::OnceLock;

/// Why an event is recorded `skipped`: nothing could receive it.
pub const NO_WEBHOOK_TARGET: &str = "no webhook target (no notice_url and no merchant URL)";

declare_row!(OutboxEvent in "outbox" {
    id,
    merchant_id,
    imp_uid,
    merchant_uid,
    status,
    cancellation_id,
    notice_urls,
    created_at,
});

/// The columns an insert fills besides the declared ones: due at once, `skipped` with
/// `NO_WEBHOOK_TARGET` when it has nowhere to go (`untargeted`), else `pending`.
const FILLED: &str = "next_attempt_at, state, last_error";

/// SQL true when an event of `merchant` with `urls` (its notice_urls) has nowhere to go: no
/// notice_url of its own and no webhook URL on the merchant. Such an event is written already
/// `skipped` (most merchants of a busy instance configure no URL, and an event born pending cost
/// the dispatcher a second row version and index entries per payment).
fn untargeted(merchant: &str, urls: &str) -> String {
    format!(
        "({urls} IS NULL AND NOT EXISTS (SELECT 1 FROM merchants m WHERE m.imp_code = {merchant} \
         AND m.webhook_url IS NOT NULL))"
    )
}

/// `FILLED`'s values, from the event's `created_at`, whether it is `untargeted` and the
/// parameter holding `NO_WEBHOOK_TARGET`.
fn filled(created_at: &str, untargeted: &str, no_target: usize) -> String {
    format!(
        "{created_at}, CASE WHEN {untargeted} THEN 'skipped' ELSE 'pending' END, \
         CASE WHEN {untargeted} THEN ${no_target} END"
    )
}

/// One event, bound with `bind_event`'s values: the declared columns, then
/// `NO_WEBHOOK_TARGET`.
pub(crate) fn outbox_insert_sql() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| {
        let n = OutboxEvent::COLS.len();
        let p = |col: &str| format!("${}", param_of::<OutboxEvent>(col));
        let untargeted = untargeted(&p("merchant_id"), &p("notice_urls"));
        format!(
            "INSERT INTO outbox ({}, {FILLED}) VALUES ({}, {})",
            OutboxEvent::LIST,
            numbered(1, n),
            filled(&p("created_at"), &untargeted, n + 1)
        )
    })
}

/// The parameters of `outbox_batch_sql` (the arrays, then `NO_WEBHOOK_TARGET`).
pub(crate) const OUTBOX_BATCH_PARAMS: usize = OutboxEvent::COLS.len() + 1;

/// The batch's insert of the events (arrays of the declared columns from `$first`, bound by
/// `row::bind_arrays`, then `NO_WEBHOOK_TARGET`) whose imp_uid `settled` selects.
pub(crate) fn outbox_batch_sql(first: usize, settled: &str) -> String {
    let untargeted = untargeted("v.merchant_id", "v.notice_urls");
    format!(
        "INSERT INTO outbox ({list}, {FILLED}) SELECT {list}, {} \
         FROM (SELECT v.*, {untargeted} AS untargeted FROM UNNEST({}) AS v({list})) AS v \
         WHERE imp_uid IN ({settled})",
        filled("created_at", "untargeted", first + OutboxEvent::COLS.len()),
        arrays::<OutboxEvent>(first),
        list = OutboxEvent::LIST,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insert_names_its_columns_by_place() {
        assert_eq!(
            outbox_insert_sql(),
            "INSERT INTO outbox (id, merchant_id, imp_uid, merchant_uid, status, cancellation_id, \
             notice_urls, created_at, next_attempt_at, state, last_error) VALUES \
             ($1,$2,$3,$4,$5,$6,$7,$8, $8, CASE WHEN ($7 IS NULL AND NOT EXISTS (SELECT 1 FROM \
             merchants m WHERE m.imp_code = $2 AND m.webhook_url IS NOT NULL)) THEN 'skipped' \
             ELSE 'pending' END, CASE WHEN ($7 IS NULL AND NOT EXISTS (SELECT 1 FROM merchants m \
             WHERE m.imp_code = $2 AND m.webhook_url IS NOT NULL)) THEN $9 END)"
        );
    }
}
