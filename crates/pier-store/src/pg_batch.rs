//! Multi-row statements for the PostgreSQL group-commit writer.
//!
//! A batch of queued charge writes used to cost one round trip per write inside the shared
//! transaction; here each kind of write in the batch is one statement over arrays
//! (`UNNEST($1::text[], …)`): all inserted attempts in one `INSERT … ON CONFLICT DO NOTHING
//! RETURNING imp_uid`, all approvals in one `UPDATE … FROM UNNEST(…) RETURNING`, all declines in
//! another, all their webhook rows in one `INSERT`. The SQL guards are the same as the
//! single-row statements in `payments` (the merchant_uid guard is the partial unique index;
//! a settle only matches a `ready` row awaiting the PG), so a batch cannot do what the writes
//! one at a time could not.

use crate::batch::{Op, OpResult};
use crate::models::{OutboxEvent, Payment, Settlement};
use crate::payments::{pg_impl, untargeted, NO_WEBHOOK_TARGET, PAYMENT_COLUMNS};
use async_trait::async_trait;
use sqlx::Row;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

/// The databases whose writer can apply a whole batch with multi-row statements.
#[async_trait]
pub(crate) trait MultiRow: sqlx::Database {
    /// `None`: not supported, apply the writes one by one.
    async fn write_batch(
        tx: &mut sqlx::Transaction<'_, Self>,
        ops: &[&Op],
    ) -> Option<sqlx::Result<Vec<OpResult>>>;
}

#[async_trait]
impl MultiRow for sqlx::Sqlite {
    async fn write_batch(
        _tx: &mut sqlx::Transaction<'_, Self>,
        _ops: &[&Op],
    ) -> Option<sqlx::Result<Vec<OpResult>>> {
        None
    }
}

#[async_trait]
impl MultiRow for sqlx::Postgres {
    async fn write_batch(
        tx: &mut sqlx::Transaction<'_, Self>,
        ops: &[&Op],
    ) -> Option<sqlx::Result<Vec<OpResult>>> {
        Some(apply(tx, ops).await)
    }
}

/// PostgreSQL type of each of `PAYMENT_COLUMNS` (the schema of `migrations/0001_core.sql`).
fn column_type(col: &str) -> &'static str {
    match col {
        "uid_lock" | "told_failed" | "sandbox" | "escrow" | "cash_receipt_issued" => "bool",
        "reconcile_attempts" | "next_reconcile_at" | "card_quota" | "card_type" | "vbank_date"
        | "vbank_issued_at" | "amount" | "cancel_amount" | "cancel_reserved" | "tax_free"
        | "vat_amount" | "started_at" | "paid_at" | "failed_at" | "cancelled_at" | "updated_at" => {
            "int8"
        }
        _ => "text",
    }
}

fn insert_sql() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| {
        let arrays: Vec<String> = PAYMENT_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, c)| format!("${}::{}[]", i + 1, column_type(c)))
            .collect();
        format!(
            "INSERT INTO payments ({}) SELECT * FROM UNNEST({}) ON CONFLICT DO NOTHING RETURNING imp_uid",
            PAYMENT_COLUMNS.join(", "),
            arrays.join(", ")
        )
    })
}

fn returning() -> String {
    PAYMENT_COLUMNS
        .iter()
        .map(|c| format!("p.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const GUARD: &str =
    "p.imp_uid = v.imp_uid AND p.status = 'ready' AND p.pg_state IN ('in_flight','unknown')";

fn paid_sql() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| {
        format!(
            "UPDATE payments AS p SET status = 'paid', pg_state = 'settled', uid_lock = TRUE, \
             updated_at = v.now, pg_tid = v.pg_tid, apply_num = v.apply_num, paid_at = v.paid_at, \
             card_code = COALESCE(v.card_code, p.card_code), card_name = COALESCE(v.card_name, p.card_name), \
             card_number = COALESCE(v.card_number, p.card_number), card_type = COALESCE(v.card_type, p.card_type), \
             card_quota = v.card_quota, bank_code = COALESCE(v.bank_code, p.bank_code), \
             bank_name = COALESCE(v.bank_name, p.bank_name), receipt_url = v.receipt_url \
             FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[], \
             $8::text[], $9::int8[], $10::int8[], $11::text[], $12::text[], $13::text[]) \
             AS v(imp_uid, now, pg_tid, apply_num, paid_at, card_code, card_name, card_number, card_type, \
             card_quota, bank_code, bank_name, receipt_url) \
             WHERE {GUARD} RETURNING {}",
            returning()
        )
    })
}

fn failed_sql() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| {
        format!(
            "UPDATE payments AS p SET status = 'failed', pg_state = 'settled', uid_lock = FALSE, \
             updated_at = v.now, fail_reason = v.reason, failed_at = v.failed_at \
             FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::int8[]) AS v(imp_uid, now, reason, failed_at) \
             WHERE {GUARD} RETURNING {}",
            returning()
        )
    })
}

/// Events of a batch; untargeted ones are written `skipped` (see `payments::untargeted!`).
const OUTBOX_SQL: &str = concat!(
    "INSERT INTO outbox (id, merchant_id, imp_uid, merchant_uid, status, cancellation_id, \
     notice_urls, created_at, next_attempt_at, state, last_error) \
     SELECT id, merchant_id, imp_uid, merchant_uid, status, cancellation_id, notice_urls, created_at, created_at, \
     CASE WHEN untargeted THEN 'skipped' ELSE 'pending' END, CASE WHEN untargeted THEN $9 END \
     FROM (SELECT v.*, ",
    untargeted!("v.merchant_id", "v.notice_urls"),
    " AS untargeted \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int8[]) \
     AS v(id, merchant_id, imp_uid, merchant_uid, status, cancellation_id, notice_urls, created_at)) AS v"
);

/// Collects one field of every item into an array parameter.
macro_rules! arr {
    ($items:expr, |$p:ident| $e:expr) => {
        $items.iter().map(|$p| $e).collect::<Vec<_>>()
    };
}

async fn insert_all(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ps: &[&Payment],
) -> sqlx::Result<HashSet<String>> {
    let rows = sqlx::query(insert_sql())
        .bind(arr!(ps, |p| p.imp_uid.clone()))
        .bind(arr!(ps, |p| p.merchant_id.clone()))
        .bind(arr!(ps, |p| p.merchant_uid.clone()))
        .bind(arr!(ps, |p| p.uid_lock))
        .bind(arr!(ps, |p| p.pg_state.as_str()))
        .bind(arr!(ps, |p| p.told_failed))
        .bind(arr!(ps, |p| p.reconcile_attempts))
        .bind(arr!(ps, |p| p.next_reconcile_at))
        .bind(arr!(ps, |p| p.channel_id.clone()))
        .bind(arr!(ps, |p| p.pay_method.clone()))
        .bind(arr!(ps, |p| p.channel.clone()))
        .bind(arr!(ps, |p| p.pg_provider.clone()))
        .bind(arr!(ps, |p| p.emb_pg_provider.clone()))
        .bind(arr!(ps, |p| p.pg_tid.clone()))
        .bind(arr!(ps, |p| p.pg_id.clone()))
        .bind(arr!(ps, |p| p.sandbox))
        .bind(arr!(ps, |p| p.escrow))
        .bind(arr!(ps, |p| p.apply_num.clone()))
        .bind(arr!(ps, |p| p.bank_code.clone()))
        .bind(arr!(ps, |p| p.bank_name.clone()))
        .bind(arr!(ps, |p| p.card_code.clone()))
        .bind(arr!(ps, |p| p.card_name.clone()))
        .bind(arr!(ps, |p| p.card_quota))
        .bind(arr!(ps, |p| p.card_number.clone()))
        .bind(arr!(ps, |p| p.card_type))
        .bind(arr!(ps, |p| p.vbank_code.clone()))
        .bind(arr!(ps, |p| p.vbank_name.clone()))
        .bind(arr!(ps, |p| p.vbank_num.clone()))
        .bind(arr!(ps, |p| p.vbank_holder.clone()))
        .bind(arr!(ps, |p| p.vbank_date))
        .bind(arr!(ps, |p| p.vbank_issued_at))
        .bind(arr!(ps, |p| p.name.clone()))
        .bind(arr!(ps, |p| p.amount))
        .bind(arr!(ps, |p| p.cancel_amount))
        .bind(arr!(ps, |p| p.cancel_reserved))
        .bind(arr!(ps, |p| p.tax_free))
        .bind(arr!(ps, |p| p.vat_amount))
        .bind(arr!(ps, |p| p.currency.clone()))
        .bind(arr!(ps, |p| p.buyer_name.clone()))
        .bind(arr!(ps, |p| p.buyer_email.clone()))
        .bind(arr!(ps, |p| p.buyer_tel.clone()))
        .bind(arr!(ps, |p| p.buyer_addr.clone()))
        .bind(arr!(ps, |p| p.buyer_postcode.clone()))
        .bind(arr!(ps, |p| p.custom_data.clone()))
        .bind(arr!(ps, |p| p.user_agent.clone()))
        .bind(arr!(ps, |p| p.notice_url.clone()))
        .bind(arr!(ps, |p| p.status.clone()))
        .bind(arr!(ps, |p| p.started_at))
        .bind(arr!(ps, |p| p.paid_at))
        .bind(arr!(ps, |p| p.failed_at))
        .bind(arr!(ps, |p| p.cancelled_at))
        .bind(arr!(ps, |p| p.updated_at))
        .bind(arr!(ps, |p| p.fail_reason.clone()))
        .bind(arr!(ps, |p| p.cancel_reason.clone()))
        .bind(arr!(ps, |p| p.receipt_url.clone()))
        .bind(arr!(ps, |p| p.cash_receipt_issued))
        .bind(arr!(ps, |p| p.customer_uid.clone()))
        .bind(arr!(ps, |p| p.customer_uid_usage.clone()))
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(|r| r.try_get::<String, _>(0)).collect()
}

/// One settle of the batch.
struct PaidRow<'a> {
    imp_uid: &'a str,
    now: i64,
    s: &'a Settlement,
}

async fn settle_paid(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    rows: &[&PaidRow<'_>],
) -> sqlx::Result<Vec<Payment>> {
    macro_rules! f {
        ($field:ident, $default:expr) => {
            arr!(rows, |r| match r.s {
                Settlement::Paid { $field, .. } => $field.clone(),
                _ => $default,
            })
        };
    }
    let out = sqlx::query(paid_sql())
        .bind(arr!(rows, |r| r.imp_uid.to_owned()))
        .bind(arr!(rows, |r| r.now))
        .bind(f!(pg_tid, String::new()))
        .bind(f!(apply_num, None))
        .bind(f!(paid_at, 0))
        .bind(f!(card_code, None))
        .bind(f!(card_name, None))
        .bind(f!(card_number, None))
        .bind(f!(card_type, None))
        .bind(f!(card_quota, 0))
        .bind(f!(bank_code, None))
        .bind(f!(bank_name, None))
        .bind(f!(receipt_url, None))
        .fetch_all(&mut **tx)
        .await?;
    out.iter().map(pg_impl::payment).collect()
}

async fn settle_failed(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    rows: &[&PaidRow<'_>],
) -> sqlx::Result<Vec<Payment>> {
    let out = sqlx::query(failed_sql())
        .bind(arr!(rows, |r| r.imp_uid.to_owned()))
        .bind(arr!(rows, |r| r.now))
        .bind(arr!(rows, |r| match r.s {
            Settlement::Failed { reason, .. } => reason.clone(),
            _ => String::new(),
        }))
        .bind(arr!(rows, |r| match r.s {
            Settlement::Failed { failed_at, .. } => *failed_at,
            _ => 0,
        }))
        .fetch_all(&mut **tx)
        .await?;
    out.iter().map(pg_impl::payment).collect()
}

async fn insert_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    evs: &[&OutboxEvent],
) -> sqlx::Result<()> {
    if evs.is_empty() {
        return Ok(());
    }
    sqlx::query(OUTBOX_SQL)
        .bind(arr!(evs, |e| e.id.clone()))
        .bind(arr!(evs, |e| e.merchant_id.clone()))
        .bind(arr!(evs, |e| e.imp_uid.clone()))
        .bind(arr!(evs, |e| e.merchant_uid.clone()))
        .bind(arr!(evs, |e| e.status.clone()))
        .bind(arr!(evs, |e| e.cancellation_id.clone()))
        .bind(arr!(evs, |e| e.notice_urls.clone()))
        .bind(arr!(evs, |e| e.created_at))
        .bind(NO_WEBHOOK_TARGET)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Applies a batch: inserts, then approvals, then declines, each as one statement; the rare
/// `Unknown` settlements and a second settle of the same attempt in one batch go one by one
/// (after the others, so the second finds the row settled, as it would have alone).
async fn apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ops: &[&Op],
) -> sqlx::Result<Vec<OpResult>> {
    // Each settle must find its row by primary key. With bitmap scans allowed, PostgreSQL may
    // answer the guard (`status = 'ready'`) from a status index instead, reading the dead
    // entries of every settled attempt on each batch.
    sqlx::query("SET LOCAL enable_bitmapscan = off")
        .execute(&mut **tx)
        .await?;
    let mut results: Vec<Option<OpResult>> = (0..ops.len()).map(|_| None).collect();

    let inserts: Vec<(usize, &Payment)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            Op::Insert(p) => Some((i, p.as_ref())),
            _ => None,
        })
        .collect();
    if !inserts.is_empty() {
        let ps: Vec<&Payment> = inserts.iter().map(|(_, p)| *p).collect();
        let inserted = insert_all(tx, &ps).await?;
        for (i, p) in &inserts {
            results[*i] = Some(OpResult::Inserted(inserted.contains(&p.imp_uid) as u64));
        }
    }

    let mut seen = HashSet::new();
    let (mut paid, mut failed, mut one_by_one) = (Vec::new(), Vec::new(), Vec::new());
    for (i, op) in ops.iter().enumerate() {
        if let Op::Settle {
            imp_uid, s, now, ..
        } = op
        {
            let row = PaidRow {
                imp_uid,
                now: *now,
                s,
            };
            match s.as_ref() {
                _ if !seen.insert(imp_uid.as_str()) => one_by_one.push(i),
                Settlement::Paid { .. } => paid.push((i, row)),
                Settlement::Failed { .. } => failed.push((i, row)),
                Settlement::Unknown { .. } => one_by_one.push(i),
            }
        }
    }
    let mut settled: HashMap<String, Payment> = HashMap::new();
    for (group, paid_group) in [(&paid, true), (&failed, false)] {
        if group.is_empty() {
            continue;
        }
        let rows: Vec<&PaidRow> = group.iter().map(|(_, r)| r).collect();
        let out = if paid_group {
            settle_paid(tx, &rows).await?
        } else {
            settle_failed(tx, &rows).await?
        };
        settled.extend(out.into_iter().map(|p| (p.imp_uid.clone(), p)));
    }
    let mut events = Vec::new();
    for (i, r) in paid.iter().chain(failed.iter()) {
        let p = settled.remove(r.imp_uid);
        if p.is_some() {
            if let Op::Settle { events: evs, .. } = ops[*i] {
                events.extend(evs.iter());
            }
        }
        results[*i] = Some(OpResult::Settled(p.map(Box::new)));
    }
    insert_events(tx, &events).await?;

    for i in one_by_one {
        if let Op::Settle {
            imp_uid,
            s,
            now,
            events,
        } = ops[i]
        {
            let p = pg_impl::settle_tx(tx, imp_uid, s, *now, events).await?;
            results[i] = Some(OpResult::Settled(p.map(Box::new)));
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every write of the batch has a result"))
        .collect())
}
