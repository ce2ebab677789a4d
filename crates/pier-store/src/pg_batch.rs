//! Multi-row statements for the PostgreSQL group-commit writer.
//!
//! A batch of queued charge writes is one statement over arrays (`UNNEST($1::text[], …)`),
//! `batch_sql`: all inserted attempts (`INSERT … ON CONFLICT DO NOTHING`), all approvals and all
//! declines (`UPDATE … FROM UNNEST(…)`), and the webhook rows of the settles that matched, as
//! data-modifying CTEs. One statement is its own transaction, so a batch costs one round trip
//! and one WAL flush; only a batch holding a rare write that must follow the others (an
//! `Unknown` settlement, a second settle of one attempt) opens a transaction around it and
//! them. The SQL guards are the same as the single-row statements in `payments` (the
//! merchant_uid guard is the partial unique index; a settle only matches a `ready` row awaiting
//! the PG), so a batch cannot do what the writes one at a time could not.

use crate::batch::{MultiRow, Op, OpResult};
use crate::models::{OutboxEvent, Payment, Settlement};
use crate::outbox_row::{outbox_batch_sql, NO_WEBHOOK_TARGET, OUTBOX_BATCH_PARAMS};
use crate::payment_row::{cols, Val, PAYMENT_ROW};
use crate::payment_settle::{settle_batch_sql, settle_vals, SettleKind, SETTLES};
use crate::payment_write::pg::settle_tx;
use crate::row::{bind_arrays, bind_column};
use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

#[async_trait]
impl MultiRow for sqlx::Postgres {
    async fn write_batch(
        pool: &sqlx::Pool<Self>,
        ops: &[&Op],
    ) -> Option<sqlx::Result<Vec<OpResult>>> {
        Some(apply(pool, ops).await)
    }
}

/// The arrays of a batch's inserts: `$first`… in `PAYMENT_ROW` order.
fn insert_arrays(first: usize) -> String {
    arrays(first, PAYMENT_ROW.iter().map(|c| c.ty.pg()))
}

/// `$first::type[], …`: array parameters of the given element types, numbered from `first`.
fn arrays<'a>(first: usize, types: impl Iterator<Item = &'a str>) -> String {
    types
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `imp_uid` and a typed NULL for every other column: an insert's line of the batch's answer.
/// Named, as the answer's columns are named by its first line, whichever part comes first.
fn inserted_line() -> String {
    PAYMENT_ROW
        .iter()
        .map(|c| match c.name {
            "imp_uid" => "imp_uid".to_owned(),
            name => format!("NULL::{} AS {name}", c.ty.pg()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The parts a batch holds. Its statement has only those (`batch_sql`): PostgreSQL sets up
/// every node of a statement's plan whether its input is empty or not, so a batch pays for its
/// own parts only (a batch of inserts alone sets up no settle update).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    /// Inserted attempts (`Op::Insert`).
    plain: bool,
    /// Approvals.
    paid: bool,
    /// Declines.
    failed: bool,
    /// Webhook rows of the settles.
    events: bool,
}

impl Shape {
    fn index(self) -> usize {
        [self.plain, self.paid, self.failed, self.events]
            .iter()
            .enumerate()
            .map(|(i, on)| (*on as usize) << i)
            .sum()
    }
}

/// The statement of a batch of `shape`, built once per shape.
///
/// A whole batch in one statement, so one round trip and, as its own transaction, one WAL
/// flush: the inserted attempts (`ON CONFLICT DO NOTHING`: the merchant_uid guard is the
/// partial unique index; every attempt arrives decided, `engine::attempt`), the approvals and
/// the declines (each an `UPDATE … FROM UNNEST` guarded on a `ready` row awaiting the PG), and
/// the webhook rows of the settles that matched. The sub-statements share one snapshot, so
/// none sees another's rows: a batch never holds the insert and the settle of one attempt (a
/// settle is queued after its insert committed), nor two settles of one attempt (`apply` sends
/// the second alone). Answer: a line per inserted attempt (`batch_kind` 'i', imp_uid only) and
/// the settled row of each matched settle ('p' or 'f'). Parameters are numbered in that order,
/// a part's only if it is present: the inserts' arrays (`PAYMENT_ROW` order); the approvals'
/// arrays; the declines'; the events' and the reason written on untargeted events.
fn batch_sql(shape: Shape) -> &'static str {
    static S: [OnceLock<String>; 16] = [const { OnceLock::new() }; 16];
    S[shape.index()].get_or_init(|| build_sql(shape))
}

fn build_sql(shape: Shape) -> String {
    let mut next = 0;
    let mut params = |n: usize| {
        next += n;
        next + 1 - n
    };
    let cols = cols();
    let mut ctes: Vec<String> = Vec::new();
    let mut answer: Vec<String> = Vec::new();
    if shape.plain {
        let ins = insert_arrays(params(PAYMENT_ROW.len()));
        ctes.push(format!(
            "ins AS (INSERT INTO payments ({cols}) SELECT * FROM UNNEST({ins}) \
             ON CONFLICT DO NOTHING RETURNING imp_uid)"
        ));
        answer.push(format!(
            "SELECT 'i' AS batch_kind, {} FROM ins",
            inserted_line()
        ));
    }
    let mut settled: Vec<&str> = Vec::new();
    if shape.paid {
        let update = settle_batch_sql(SettleKind::Paid, params(SETTLES[0].params.len()));
        ctes.push(format!("paid AS ({update})"));
        answer.push("SELECT 'p' AS batch_kind, * FROM paid".to_owned());
        settled.push("SELECT imp_uid FROM paid");
    }
    if shape.failed {
        let update = settle_batch_sql(SettleKind::Failed, params(SETTLES[1].params.len()));
        ctes.push(format!("failed AS ({update})"));
        answer.push("SELECT 'f' AS batch_kind, * FROM failed".to_owned());
        settled.push("SELECT imp_uid FROM failed");
    }
    if shape.events {
        // The events' arrays, then the reason written on untargeted events.
        let first = params(OUTBOX_BATCH_PARAMS);
        ctes.push(format!(
            "events AS ({})",
            outbox_batch_sql(first, &settled.join(" UNION ALL "))
        ));
    }
    format!("WITH {} {}", ctes.join(", "), answer.join(" UNION ALL "))
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds the inserts' arrays, one per declared column.
fn bind_inserts<'q>(q: PgQuery<'q>, ps: &[&'q Payment]) -> PgQuery<'q> {
    bind_arrays(q, ps)
}

/// One settle of the batch.
struct PaidRow<'a> {
    imp_uid: &'a str,
    now: i64,
    s: &'a Settlement,
}

/// Binds the arrays of the settles of `kind` (`SETTLES` parameters, `settle_vals` values).
fn bind_settles<'q>(mut q: PgQuery<'q>, kind: SettleKind, rows: &[PaidRow<'q>]) -> PgQuery<'q> {
    let vals: Vec<Vec<Val<'q>>> = rows
        .iter()
        .map(|r| settle_vals(r.imp_uid, r.now, r.s).1)
        .collect();
    for (i, (_, ty)) in SETTLES[kind as usize].params.iter().enumerate() {
        q = bind_column(q, *ty, vals.iter().map(|v| v[i]));
    }
    q
}

fn bind_events<'q>(q: PgQuery<'q>, evs: &[&'q OutboxEvent]) -> PgQuery<'q> {
    bind_arrays(q, evs).bind(NO_WEBHOOK_TARGET)
}

/// Applies a batch: its inserts, approvals, declines and their events in one statement
/// (`batch_sql`); the rare `Unknown` settlements and a second settle of the same attempt in one
/// batch go one by one after it (so the second finds the row settled, as it would have alone).
async fn apply(pool: &sqlx::PgPool, ops: &[&Op]) -> sqlx::Result<Vec<OpResult>> {
    let mut inserts: Vec<&Payment> = Vec::new();
    let mut seen = HashSet::new();
    let (mut paid, mut failed, mut one_by_one) = (Vec::new(), Vec::new(), Vec::new());
    let mut events: Vec<&OutboxEvent> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Insert(p) => inserts.push(p.as_ref()),
            Op::Settle {
                imp_uid,
                s,
                now,
                events: evs,
            } => {
                let row = PaidRow {
                    imp_uid,
                    now: *now,
                    s,
                };
                // A later settle of an attempt already in the batch goes after, alone.
                let first = seen.insert(imp_uid.as_str());
                match s.as_ref() {
                    Settlement::Paid { .. } if first => paid.push(row),
                    Settlement::Failed { .. } if first => failed.push(row),
                    _ => {
                        one_by_one.push(i);
                        continue;
                    }
                }
                events.extend(evs.iter());
            }
        }
    }

    let shape = Shape {
        plain: !inserts.is_empty(),
        paid: !paid.is_empty(),
        failed: !failed.is_empty(),
        events: !events.is_empty(),
    };
    // Parameters in `batch_sql`'s order, a part's only if it is present.
    let mut q = sqlx::query(batch_sql(shape));
    if shape.plain {
        q = bind_inserts(q, &inserts);
    }
    if shape.paid {
        q = bind_settles(q, SettleKind::Paid, &paid);
    }
    if shape.failed {
        q = bind_settles(q, SettleKind::Failed, &failed);
    }
    if shape.events {
        q = bind_events(q, &events);
    }
    let mut inserted: HashSet<String> = HashSet::new();
    // Rows of settles by imp_uid, decoded by the callers.
    let mut settled: HashMap<String, PgRow> = HashMap::new();
    let (rows, tx) = if one_by_one.is_empty() {
        // The batch is one statement, so its own transaction: no BEGIN and COMMIT round trips.
        (q.fetch_all(pool).await?, None)
    } else {
        // Only a settle that must follow the batch's: the batch (if it holds anything else)
        // and those settles in one transaction.
        let mut tx = pool.begin().await?;
        let rows = if shape.index() == 0 {
            Vec::new()
        } else {
            q.fetch_all(&mut *tx).await?
        };
        (rows, Some(tx))
    };
    for row in rows {
        let imp_uid: String = row.try_get("imp_uid")?;
        match row.try_get::<&str, _>("batch_kind")? {
            "i" => {
                inserted.insert(imp_uid);
            }
            _ => {
                settled.insert(imp_uid, row);
            }
        }
    }

    let mut results: Vec<Option<OpResult>> = ops
        .iter()
        .map(|op| match op {
            Op::Insert(p) => Some(OpResult::Inserted(inserted.contains(&p.imp_uid) as u64)),
            Op::Settle { imp_uid, .. } => settled
                .remove(imp_uid.as_str())
                .map(|row| OpResult::SettledRow(Box::new(row))),
        })
        .collect();
    if let Some(mut tx) = tx {
        for i in one_by_one {
            if let Op::Settle {
                imp_uid,
                s,
                now,
                events,
            } = ops[i]
            {
                let p = settle_tx(&mut tx, imp_uid, s, *now, events).await?;
                results[i] = Some(OpResult::Settled(p.map(Box::new)));
            }
        }
        tx.commit().await?;
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(OpResult::Settled(None)))
        .collect())
}
