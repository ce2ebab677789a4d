//! The merchant console's storage: operators, their sessions, the audit log, and the console's
//! payment reads (keyset pages with filters, the dashboard's daily totals).
//!
//! Every read of payments here is scoped by `merchant_id`: the console never reads across
//! merchants.

use crate::connect::{PgStore, SqliteStore};
use crate::error::{on_conflict, StoreResult};
use crate::models::{Customer, Payment, PaymentStatus};
use async_trait::async_trait;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    pub id: String,
    pub merchant_id: String,
    pub email: String,
    pub role: String,
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSession {
    pub id_hash: String,
    pub operator_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: String,
    pub merchant_id: String,
    pub operator_id: String,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub at: i64,
}

/// Filters of the console's payment list. Every field narrows; `None` = any.
#[derive(Clone, Debug, Default)]
pub struct ConsoleFilter {
    pub status: Option<PaymentStatus>,
    pub pay_method: Option<String>,
    /// The PG channel: `pg_provider`, or `pg_provider.pg_id` (i'mport's `pg` syntax).
    pub pg: Option<String>,
    /// `started_at >= from`
    pub from: Option<i64>,
    /// `started_at < to`
    pub to: Option<i64>,
    /// Exact imp_uid, merchant_uid or buyer name.
    pub search: Option<String>,
    /// Keyset cursor: rows strictly older than (started_at, imp_uid).
    pub before: Option<(i64, String)>,
}

/// One day's totals of a merchant's payments (by `started_at`, days shifted by the offset
/// the caller gave).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DayTotals {
    /// Days since the epoch (after the offset).
    pub day: i64,
    /// Attempts that were paid (and possibly refunded since).
    pub paid_count: i64,
    pub paid_amount: i64,
    pub cancel_amount: i64,
    pub failed_count: i64,
}

#[async_trait]
pub trait ConsoleStore: Send + Sync {
    /// `Conflict` when the email is taken.
    async fn insert_operator(&self, o: &Operator) -> StoreResult<()>;
    async fn operator_by_email(&self, email: &str) -> StoreResult<Option<Operator>>;
    async fn get_operator(&self, id: &str) -> StoreResult<Option<Operator>>;
    async fn list_operators(&self, merchant_id: &str) -> StoreResult<Vec<Operator>>;
    async fn insert_session(&self, s: &ConsoleSession) -> StoreResult<()>;
    async fn get_session(&self, id_hash: &str) -> StoreResult<Option<ConsoleSession>>;
    async fn touch_session(&self, id_hash: &str, now: i64) -> StoreResult<()>;
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Deletes at most `limit` sessions whose absolute expiry is before `now`, or idle since
    /// before `idle_before`; returns how many.
    async fn delete_expired_sessions(
        &self,
        now: i64,
        idle_before: i64,
        limit: i64,
    ) -> StoreResult<u64>;
    async fn insert_audit(&self, e: &AuditEntry) -> StoreResult<()>;
    /// Newest first; `before` = (at, id) of the last row of the previous page.
    async fn list_audit(
        &self,
        merchant_id: &str,
        before: Option<(i64, String)>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>>;
    /// Newest first (started_at, imp_uid descending), at most `limit`.
    async fn console_payments(
        &self,
        merchant_id: &str,
        f: &ConsoleFilter,
        limit: i64,
    ) -> StoreResult<Vec<Payment>>;
    /// Totals per day of payments started in `[since, until)`; the day of a payment is
    /// `(started_at + offset_secs) / 86400`.
    async fn day_totals(
        &self,
        merchant_id: &str,
        since: i64,
        until: i64,
        offset_secs: i64,
    ) -> StoreResult<Vec<DayTotals>>;
    /// The most frequent failure reasons of payments started in `[since, until)`.
    async fn top_failures(
        &self,
        merchant_id: &str,
        since: i64,
        until: i64,
        limit: i64,
    ) -> StoreResult<Vec<(String, i64)>>;
    /// The merchant's billing keys in customer_uid order, those after `after` (keyset on the
    /// primary key, so a page is an index range however many keys there are).
    async fn console_customers(
        &self,
        merchant_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Customer>>;
    /// Sets an operator's role and disabled flag. Guard: the change is made only if the
    /// merchant still has an enabled admin afterwards (the operator itself staying one, or
    /// another); `false` when it would not, or there is no such operator.
    async fn set_operator(
        &self,
        merchant_id: &str,
        id: &str,
        role: &str,
        disabled: bool,
    ) -> StoreResult<bool>;
    /// Makes `channel_id` the merchant's only default channel in one statement; `false` when
    /// the merchant has no such channel (nothing changes).
    async fn set_default_channel(&self, merchant_id: &str, channel_id: &str) -> StoreResult<bool>;
}

const OPERATOR_COLS: &str = "id, merchant_id, email, role, password_hash, disabled, created_at";
const SESSION_COLS: &str = "id_hash, operator_id, created_at, last_seen_at, expires_at";
const AUDIT_COLS: &str = "id, merchant_id, operator_id, actor, action, target, detail, at";

enum Bind {
    S(String),
    I(i64),
}

/// The row source and WHERE clause of `console_payments` (placeholders from `$2`; `$1` is the
/// merchant) and their values in order.
///
/// A search reads the union of three index lookups (imp_uid, merchant_uid, buyer name) rather
/// than `imp_uid = $n OR merchant_uid = $n OR buyer_name = $n`: with the newest-first ORDER BY,
/// SQLite answered the OR form by walking the merchant's payments in time order (~100 ms at
/// 100,000 payments in a debug build; docs/PERFORMANCE.md), the union in a few lookups.
fn console_where(f: &ConsoleFilter) -> (String, String, Vec<Bind>) {
    let mut source = String::from("payments");
    let mut sql = String::from("merchant_id = $1");
    let mut binds: Vec<Bind> = Vec::new();
    let next = |binds: &mut Vec<Bind>, b: Bind| {
        binds.push(b);
        binds.len() + 1
    };
    if let Some(s) = f.status {
        let n = next(&mut binds, Bind::S(s.as_str().to_owned()));
        sql.push_str(&format!(" AND status = ${n}"));
    }
    if let Some(m) = &f.pay_method {
        let n = next(&mut binds, Bind::S(m.clone()));
        sql.push_str(&format!(" AND pay_method = ${n}"));
    }
    if let Some(pg) = &f.pg {
        let (provider, id) = match pg.split_once('.') {
            Some((p, i)) => (p, Some(i)),
            None => (pg.as_str(), None),
        };
        let n = next(&mut binds, Bind::S(provider.to_owned()));
        sql.push_str(&format!(" AND pg_provider = ${n}"));
        if let Some(id) = id {
            let n = next(&mut binds, Bind::S(id.to_owned()));
            sql.push_str(&format!(" AND pg_id = ${n}"));
        }
    }
    if let Some(from) = f.from {
        let n = next(&mut binds, Bind::I(from));
        sql.push_str(&format!(" AND started_at >= ${n}"));
    }
    if let Some(to) = f.to {
        let n = next(&mut binds, Bind::I(to));
        sql.push_str(&format!(" AND started_at < ${n}"));
    }
    if let Some(q) = &f.search {
        let n = next(&mut binds, Bind::S(q.clone()));
        source = format!(
            "(SELECT * FROM payments WHERE merchant_id = $1 AND imp_uid = ${n} \
             UNION SELECT * FROM payments WHERE merchant_id = $1 AND merchant_uid = ${n} \
             UNION SELECT * FROM payments WHERE merchant_id = $1 AND buyer_name = ${n}) AS payments"
        );
    }
    if let Some((at, uid)) = &f.before {
        let a = next(&mut binds, Bind::I(*at));
        let u = next(&mut binds, Bind::S(uid.clone()));
        sql.push_str(&format!(
            // `started_at <= $a` is implied by the OR; written out, it is the index range that
            // starts the walk at the cursor (without it PostgreSQL walked from the newest row
            // on every page, so a 100,000-row CSV export took 105 s instead of seconds).
            " AND started_at <= ${a} AND (started_at < ${a} OR (started_at = ${a} AND imp_uid < ${u}))"
        ));
    }
    (source, sql, binds)
}

macro_rules! impl_console_store {
    ($store:ty, $row:ty, $m:ident, $payments:path) => {
        mod $m {
            use super::*;
            use sqlx::Row;
            use crate::row::Row as _;
            use $payments as pay;

            fn operator(r: &$row) -> sqlx::Result<Operator> {
                Ok(Operator {
                    id: r.try_get("id")?,
                    merchant_id: r.try_get("merchant_id")?,
                    email: r.try_get("email")?,
                    role: r.try_get("role")?,
                    password_hash: r.try_get("password_hash")?,
                    disabled: r.try_get("disabled")?,
                    created_at: r.try_get("created_at")?,
                })
            }

            fn session(r: &$row) -> sqlx::Result<ConsoleSession> {
                Ok(ConsoleSession {
                    id_hash: r.try_get("id_hash")?,
                    operator_id: r.try_get("operator_id")?,
                    created_at: r.try_get("created_at")?,
                    last_seen_at: r.try_get("last_seen_at")?,
                    expires_at: r.try_get("expires_at")?,
                })
            }

            fn audit(r: &$row) -> sqlx::Result<AuditEntry> {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    merchant_id: r.try_get("merchant_id")?,
                    operator_id: r.try_get("operator_id")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    detail: r.try_get("detail")?,
                    at: r.try_get("at")?,
                })
            }

            #[async_trait]
            impl ConsoleStore for $store {
                async fn insert_operator(&self, o: &Operator) -> StoreResult<()> {
                    sqlx::query(&format!(
                        "INSERT INTO operators ({OPERATOR_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7)"
                    ))
                    .bind(&o.id)
                    .bind(&o.merchant_id)
                    .bind(&o.email)
                    .bind(&o.role)
                    .bind(&o.password_hash)
                    .bind(o.disabled)
                    .bind(o.created_at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| on_conflict(e, "an operator with this email exists"))?;
                    Ok(())
                }

                async fn operator_by_email(&self, email: &str) -> StoreResult<Option<Operator>> {
                    let row = sqlx::query(&format!(
                        "SELECT {OPERATOR_COLS} FROM operators WHERE email = $1"
                    ))
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(operator).transpose()?)
                }

                async fn get_operator(&self, id: &str) -> StoreResult<Option<Operator>> {
                    let row = sqlx::query(&format!(
                        "SELECT {OPERATOR_COLS} FROM operators WHERE id = $1"
                    ))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(operator).transpose()?)
                }

                async fn list_operators(&self, merchant_id: &str) -> StoreResult<Vec<Operator>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {OPERATOR_COLS} FROM operators WHERE merchant_id = $1 \
                         ORDER BY created_at, id"
                    ))
                    .bind(merchant_id)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.iter().map(operator).collect::<sqlx::Result<_>>()?)
                }

                async fn insert_session(&self, s: &ConsoleSession) -> StoreResult<()> {
                    sqlx::query(&format!(
                        "INSERT INTO console_sessions ({SESSION_COLS}) VALUES ($1,$2,$3,$4,$5)"
                    ))
                    .bind(&s.id_hash)
                    .bind(&s.operator_id)
                    .bind(s.created_at)
                    .bind(s.last_seen_at)
                    .bind(s.expires_at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| on_conflict(e, "session exists"))?;
                    Ok(())
                }

                async fn get_session(&self, id_hash: &str) -> StoreResult<Option<ConsoleSession>> {
                    let row = sqlx::query(&format!(
                        "SELECT {SESSION_COLS} FROM console_sessions WHERE id_hash = $1"
                    ))
                    .bind(id_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                    Ok(row.as_ref().map(session).transpose()?)
                }

                async fn touch_session(&self, id_hash: &str, now: i64) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE console_sessions SET last_seen_at = $2 \
                         WHERE id_hash = $1 AND last_seen_at < $2",
                    )
                    .bind(id_hash)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
                    sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
                        .bind(id_hash)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn delete_expired_sessions(
                    &self,
                    now: i64,
                    idle_before: i64,
                    limit: i64,
                ) -> StoreResult<u64> {
                    let r = sqlx::query(
                        "DELETE FROM console_sessions WHERE id_hash IN \
                         (SELECT id_hash FROM console_sessions \
                          WHERE expires_at < $1 OR last_seen_at < $2 LIMIT $3)",
                    )
                    .bind(now)
                    .bind(idle_before)
                    .bind(limit)
                    .execute(&self.pool)
                    .await?;
                    Ok(r.rows_affected())
                }

                async fn insert_audit(&self, e: &AuditEntry) -> StoreResult<()> {
                    sqlx::query(&format!(
                        "INSERT INTO audit_log ({AUDIT_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)"
                    ))
                    .bind(&e.id)
                    .bind(&e.merchant_id)
                    .bind(&e.operator_id)
                    .bind(&e.actor)
                    .bind(&e.action)
                    .bind(&e.target)
                    .bind(&e.detail)
                    .bind(e.at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| on_conflict(e, "audit entry exists"))?;
                    Ok(())
                }

                async fn list_audit(
                    &self,
                    merchant_id: &str,
                    before: Option<(i64, String)>,
                    limit: i64,
                ) -> StoreResult<Vec<AuditEntry>> {
                    let rows = match before {
                        None => sqlx::query(&format!(
                            "SELECT {AUDIT_COLS} FROM audit_log WHERE merchant_id = $1 \
                             ORDER BY at DESC, id DESC LIMIT $2"
                        ))
                        .bind(merchant_id)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?,
                        Some((at, id)) => sqlx::query(&format!(
                            "SELECT {AUDIT_COLS} FROM audit_log WHERE merchant_id = $1 \
                             AND (at < $2 OR (at = $2 AND id < $3)) \
                             ORDER BY at DESC, id DESC LIMIT $4"
                        ))
                        .bind(merchant_id)
                        .bind(at)
                        .bind(id)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?,
                    };
                    Ok(rows.iter().map(audit).collect::<sqlx::Result<_>>()?)
                }

                async fn console_payments(
                    &self,
                    merchant_id: &str,
                    f: &ConsoleFilter,
                    limit: i64,
                ) -> StoreResult<Vec<Payment>> {
                    let (source, filter, binds) = console_where(f);
                    let sql = format!(
                        "SELECT {} FROM {source} WHERE {filter} \
                         ORDER BY started_at DESC, imp_uid DESC LIMIT ${}",
                        crate::payments::cols(),
                        binds.len() + 2
                    );
                    let mut q = sqlx::query(&sql).bind(merchant_id);
                    for b in &binds {
                        q = match b {
                            Bind::S(s) => q.bind(s.as_str()),
                            Bind::I(i) => q.bind(*i),
                        };
                    }
                    let rows = q.bind(limit).fetch_all(&self.pool).await?;
                    let ps = rows.iter().map(pay::payment).collect::<sqlx::Result<Vec<_>>>()?;
                    Ok(ps)
                }

                async fn day_totals(
                    &self,
                    merchant_id: &str,
                    since: i64,
                    until: i64,
                    offset_secs: i64,
                ) -> StoreResult<Vec<DayTotals>> {
                    let rows = sqlx::query(
                        "SELECT CAST((started_at + $3) / 86400 AS BIGINT) AS day, \
                         CAST(COUNT(CASE WHEN paid_at > 0 THEN 1 END) AS BIGINT) AS paid_count, \
                         CAST(COALESCE(SUM(CASE WHEN paid_at > 0 THEN amount ELSE 0 END), 0) AS BIGINT) AS paid_amount, \
                         CAST(COALESCE(SUM(cancel_amount), 0) AS BIGINT) AS cancel_amount, \
                         CAST(COUNT(CASE WHEN status = 'failed' THEN 1 END) AS BIGINT) AS failed_count \
                         FROM payments WHERE merchant_id = $1 AND started_at >= $2 AND started_at < $4 \
                         GROUP BY CAST((started_at + $3) / 86400 AS BIGINT) ORDER BY day",
                    )
                    .bind(merchant_id)
                    .bind(since)
                    .bind(offset_secs)
                    .bind(until)
                    .fetch_all(&self.pool)
                    .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        out.push(DayTotals {
                            day: r.try_get("day")?,
                            paid_count: r.try_get("paid_count")?,
                            paid_amount: r.try_get("paid_amount")?,
                            cancel_amount: r.try_get("cancel_amount")?,
                            failed_count: r.try_get("failed_count")?,
                        });
                    }
                    Ok(out)
                }

                async fn console_customers(
                    &self,
                    merchant_id: &str,
                    after: Option<&str>,
                    limit: i64,
                ) -> StoreResult<Vec<Customer>> {
                    let rows = sqlx::query(&format!(
                        "SELECT {} FROM customers WHERE merchant_id = $1 \
                         AND customer_uid > $2 ORDER BY customer_uid LIMIT $3",
                        Customer::LIST
                    ))
                    .bind(merchant_id)
                    .bind(after.unwrap_or(""))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.iter().map(Customer::read).collect::<sqlx::Result<_>>()?)
                }

                async fn set_operator(
                    &self,
                    merchant_id: &str,
                    id: &str,
                    role: &str,
                    disabled: bool,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE operators SET role = $3, disabled = $4 \
                         WHERE merchant_id = $1 AND id = $2 \
                         AND (($3 = 'admin' AND $4 = FALSE) OR EXISTS (SELECT 1 FROM operators o \
                              WHERE o.merchant_id = $1 AND o.id <> $2 AND o.role = 'admin' \
                              AND o.disabled = FALSE))",
                    )
                    .bind(merchant_id)
                    .bind(id)
                    .bind(role)
                    .bind(disabled)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn set_default_channel(&self, merchant_id: &str, channel_id: &str) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE channels SET is_default = (id = $2) WHERE merchant_id = $1 \
                         AND EXISTS (SELECT 1 FROM channels c WHERE c.merchant_id = $1 AND c.id = $2)",
                    )
                    .bind(merchant_id)
                    .bind(channel_id)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn top_failures(
                    &self,
                    merchant_id: &str,
                    since: i64,
                    until: i64,
                    limit: i64,
                ) -> StoreResult<Vec<(String, i64)>> {
                    let rows = sqlx::query(
                        "SELECT COALESCE(fail_reason, '') AS reason, CAST(COUNT(*) AS BIGINT) AS n \
                         FROM payments WHERE merchant_id = $1 AND started_at >= $2 AND started_at < $4 \
                         AND status = 'failed' GROUP BY COALESCE(fail_reason, '') \
                         ORDER BY n DESC, reason LIMIT $3",
                    )
                    .bind(merchant_id)
                    .bind(since)
                    .bind(limit)
                    .bind(until)
                    .fetch_all(&self.pool)
                    .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        out.push((r.try_get("reason")?, r.try_get("n")?));
                    }
                    Ok(out)
                }
            }
        }
    };
}

impl_console_store!(
    SqliteStore,
    sqlx::sqlite::SqliteRow,
    sqlite_console,
    crate::payments::sqlite_impl
);
impl_console_store!(
    PgStore,
    sqlx::postgres::PgRow,
    pg_console,
    crate::payments::pg_impl
);
