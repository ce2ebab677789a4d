//! The payment row, declared once.
//!
//! `declare_row!` below lists the columns of `payments` in the order every statement uses;
//! each column is a field of `models::Payment` of the same name, and its SQL type follows from
//! the field's Rust type (`row::Column`). From that one list come: the column lists of every
//! `SELECT`/`RETURNING` (`cols`, `p_cols`), the single-row insert (`insert_sql`, bound with
//! `vals` by sqlx and the SQLite lane), the batched insert's arrays (`pg_batch`), and the
//! reading of a row by all three drivers (`read_payment` over `ReadRow`). Adding a column is:
//! the model's field, its name here, the migration (the test `declared_columns_exist` fails
//! when the schema of either database lacks a declared column or types it differently).
//!
//! The settle statements are declared once too, in `payment_settle`; the other hot rows in
//! `rows`.

use crate::models::{CancelEntry, Payment};
use crate::row::{declare_row, Col, Row};
pub(crate) use crate::row::{numbered, Column, ReadRow, Ty, Val};
use std::sync::OnceLock;

declare_row!(Payment in "payments" {
    imp_uid,
    merchant_id,
    merchant_uid,
    uid_lock,
    pg_state,
    told_failed,
    reconcile_attempts,
    next_reconcile_at,
    channel_id,
    pay_method,
    channel,
    pg_provider,
    emb_pg_provider,
    pg_tid,
    pg_id,
    sandbox,
    escrow,
    apply_num,
    bank_code,
    bank_name,
    card_code,
    card_name,
    card_quota,
    card_number,
    card_type,
    vbank_code,
    vbank_name,
    vbank_num,
    vbank_holder,
    vbank_date,
    vbank_issued_at,
    name,
    amount,
    cancel_amount,
    cancel_reserved,
    tax_free,
    vat_amount,
    currency,
    buyer_name,
    buyer_email,
    buyer_tel,
    buyer_addr,
    buyer_postcode,
    custom_data,
    user_agent,
    notice_url,
    status,
    started_at,
    paid_at,
    failed_at,
    cancelled_at,
    updated_at,
    fail_reason,
    cancel_reason,
    receipt_url,
    cash_receipt_issued,
    customer_uid,
    customer_uid_usage,
} also { cancel_history: Vec::new() });

/// The declared columns of `payments`, in order.
pub(crate) const PAYMENT_ROW: &[Col<Payment>] = <Payment as Row>::COLS;

/// A `Payment` from a row holding the declared columns by name (`cancel_history` empty: it is
/// another table's).
pub(crate) fn read_payment<R: ReadRow>(r: &R) -> Result<Payment, R::Error> {
    Payment::read(r)
}

/// The values of `p` in `PAYMENT_ROW` order (the insert's `$1…`).
pub(crate) fn vals(p: &Payment) -> impl Iterator<Item = Val<'_>> {
    p.vals()
}

/// Every declared column: `imp_uid, merchant_id, …`.
pub(crate) fn cols() -> &'static str {
    Payment::LIST
}

/// `cols()` qualified by the alias `p` (for joins and `UPDATE … FROM`).
pub(crate) fn p_cols() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| crate::row::qualified::<Payment>("p"))
}

/// The single-row insert, bound with `vals`.
pub(crate) fn insert_sql() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| {
        // DO NOTHING: a taken merchant_uid guard (partial unique index) inserts no row, and the
        // caller reports the conflict, instead of failing the whole group-commit batch.
        format!(
            "INSERT INTO payments ({}) VALUES ({}) ON CONFLICT DO NOTHING",
            cols(),
            numbered(1, PAYMENT_ROW.len())
        )
    })
}

/// Reads one payment of one merchant (`$1` imp_uid, `$2` merchant_id), or of any (`$1` only).
pub(crate) fn get_sql(with_merchant: bool) -> &'static str {
    static S: OnceLock<[String; 2]> = OnceLock::new();
    let all = S.get_or_init(|| {
        [
            format!("SELECT {} FROM payments WHERE imp_uid = $1", cols()),
            format!(
                "SELECT {} FROM payments WHERE imp_uid = $1 AND merchant_id = $2",
                cols()
            ),
        ]
    });
    &all[with_merchant as usize]
}

/// `(imp_uid, entry)` from a `cancel_history` row (`CANCEL_HISTORY_COLS`).
pub(crate) fn read_cancel_entry<R: ReadRow>(r: &R) -> Result<(String, CancelEntry), R::Error> {
    Ok((
        r.text("imp_uid")?,
        CancelEntry {
            cancellation_id: r.text("cancellation_id")?,
            pg_tid: r.opt_text("pg_tid")?,
            amount: r.int("amount")?,
            cancelled_at: r.int("cancelled_at")?,
            reason: r.opt_text("reason")?,
            receipt_url: r.opt_text("receipt_url")?,
        },
    ))
}

pub(crate) const CANCEL_HISTORY_COLS: &str =
    "imp_uid, cancellation_id, pg_tid, amount, cancelled_at, reason, receipt_url";
pub(crate) const CANCEL_HISTORY_ONE: &str =
    "SELECT imp_uid, cancellation_id, pg_tid, amount, cancelled_at, reason, receipt_url \
     FROM cancel_history WHERE imp_uid = $1 ORDER BY seq";
