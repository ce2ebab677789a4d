//! The payment row, declared once.
//!
//! `payment_row!` below lists the columns of `payments` in the order every statement uses;
//! each column is a field of `models::Payment` of the same name, and its SQL type follows from
//! the field's Rust type (`Column`). From that one list come: the column lists of every
//! `SELECT`/`RETURNING` (`cols`, `p_cols`), the single-row insert (`insert_sql`, bound with
//! `vals` by sqlx and the SQLite lane), the batched insert's arrays (`pg_batch`), and the
//! reading of a row by all three drivers (`read_payment` over `ReadRow`). Adding a column is:
//! the model's field, its name here, the migration (the test `declared_columns_exist` fails
//! when the schema of either database lacks a declared column or types it differently).
//!
//! The settle statements are declared once too, in `payment_settle`.

use crate::models::{CancelEntry, Payment, PaymentStatus, PgState};
use std::sync::OnceLock;

/// A column's SQL type (PostgreSQL's name; SQLite's declared type in `sqlite_types`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Text,
    Int,
    Bool,
}

impl Ty {
    /// The PostgreSQL element type of a batch's array parameter.
    pub(crate) fn pg(self) -> &'static str {
        match self {
            Ty::Text => "text",
            Ty::Int => "int8",
            Ty::Bool => "bool",
        }
    }
}

/// One bound value, borrowed from the payment (no copy of its strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Val<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Bool(bool),
}

impl rusqlite::ToSql for Val<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Val::Text(s) => s.to_sql(),
            Val::Int(i) => i.to_sql(),
            Val::Bool(b) => b.to_sql(),
        }
    }
}

/// Reads a row's columns by name; implemented for sqlx's rows and the lane's rusqlite rows.
pub(crate) trait ReadRow {
    type Error;
    fn text(&self, col: &str) -> Result<String, Self::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, Self::Error>;
    fn int(&self, col: &str) -> Result<i64, Self::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, Self::Error>;
    fn boolean(&self, col: &str) -> Result<bool, Self::Error>;
    /// The error of a value the model does not know (e.g. a status outside the state machine).
    fn invalid(col: &str, value: &str) -> Self::Error;
}

/// A column value the model does not know.
#[derive(Debug)]
pub(crate) struct Invalid(pub(crate) String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

macro_rules! read_row_sqlx {
    ($row:ty) => {
        impl ReadRow for $row {
            type Error = sqlx::Error;
            fn text(&self, col: &str) -> sqlx::Result<String> {
                sqlx::Row::try_get(self, col)
            }
            fn opt_text(&self, col: &str) -> sqlx::Result<Option<String>> {
                sqlx::Row::try_get(self, col)
            }
            fn int(&self, col: &str) -> sqlx::Result<i64> {
                sqlx::Row::try_get(self, col)
            }
            fn opt_int(&self, col: &str) -> sqlx::Result<Option<i64>> {
                sqlx::Row::try_get(self, col)
            }
            fn boolean(&self, col: &str) -> sqlx::Result<bool> {
                sqlx::Row::try_get(self, col)
            }
            fn invalid(col: &str, value: &str) -> sqlx::Error {
                sqlx::Error::ColumnDecode {
                    index: col.to_owned(),
                    source: Box::new(Invalid(format!("unknown value {value:?}"))),
                }
            }
        }
    };
}
read_row_sqlx!(sqlx::sqlite::SqliteRow);
read_row_sqlx!(sqlx::postgres::PgRow);

/// A field type of the row: its SQL type, how it is bound and how it is read.
pub(crate) trait Column: Sized {
    const TY: Ty;
    /// Whether NULL is a value of the field (`Option`); a field that is not must be NOT NULL.
    const NULLABLE: bool = false;
    fn val(&self) -> Val<'_>;
    fn read<R: ReadRow>(r: &R, col: &str) -> Result<Self, R::Error>;
}

impl Column for String {
    const TY: Ty = Ty::Text;
    fn val(&self) -> Val<'_> {
        Val::Text(Some(self))
    }
    fn read<R: ReadRow>(r: &R, col: &str) -> Result<Self, R::Error> {
        r.text(col)
    }
}

impl Column for Option<String> {
    const TY: Ty = Ty::Text;
    const NULLABLE: bool = true;
    fn val(&self) -> Val<'_> {
        Val::Text(self.as_deref())
    }
    fn read<R: ReadRow>(r: &R, col: &str) -> Result<Self, R::Error> {
        r.opt_text(col)
    }
}

impl Column for i64 {
    const TY: Ty = Ty::Int;
    fn val(&self) -> Val<'_> {
        Val::Int(Some(*self))
    }
    fn read<R: ReadRow>(r: &R, col: &str) -> Result<Self, R::Error> {
        r.int(col)
    }
}

impl Column for Option<i64> {
    const TY: Ty = Ty::Int;
    const NULLABLE: bool = true;
    fn val(&self) -> Val<'_> {
        Val::Int(*self)
    }
    fn read<R: ReadRow>(r: &R, col: &str) -> Result<Self, R::Error> {
        r.opt_int(col)
    }
}

impl Column for bool {
    const TY: Ty = Ty::Bool;
    fn val(&self) -> Val<'_> {
        Val::Bool(*self)
    }
    fn read<R: ReadRow>(r: &R, col: &str) -> Result<Self, R::Error> {
        r.boolean(col)
    }
}

impl Column for PaymentStatus {
    const TY: Ty = Ty::Text;
    fn val(&self) -> Val<'_> {
        Val::Text(Some(self.as_str()))
    }
    fn read<R: ReadRow>(r: &R, col: &str) -> Result<Self, R::Error> {
        let s = r.text(col)?;
        s.parse().map_err(|()| R::invalid(col, &s))
    }
}

impl Column for PgState {
    const TY: Ty = Ty::Text;
    fn val(&self) -> Val<'_> {
        Val::Text(Some(self.as_str()))
    }
    fn read<R: ReadRow>(r: &R, col: &str) -> Result<Self, R::Error> {
        Ok(PgState::parse(&r.text(col)?))
    }
}

/// A column of the declaration: its name, type and the field it binds.
pub(crate) struct Col {
    pub(crate) name: &'static str,
    pub(crate) ty: Ty,
    /// Read by the schema test only (`declared_columns_exist`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) nullable: bool,
    pub(crate) get: for<'a> fn(&'a Payment) -> Val<'a>,
}

const fn ty_of<T: Column>(_field: for<'a> fn(&'a Payment) -> &'a T) -> Ty {
    T::TY
}

const fn nullable<T: Column>(_field: for<'a> fn(&'a Payment) -> &'a T) -> bool {
    T::NULLABLE
}

/// Declares the row: `PAYMENT_ROW` (names, types, bindings) and `read_payment`, both in the
/// listed order (the lane's reader tries the next column's index first).
macro_rules! payment_row {
    ($($field:ident),* $(,)?) => {
        pub(crate) const PAYMENT_ROW: &[Col] = &[$(Col {
            name: stringify!($field),
            ty: ty_of(|p| &p.$field),
            nullable: nullable(|p| &p.$field),
            get: |p| Column::val(&p.$field),
        }),*];

        /// A `Payment` from a row holding the declared columns by name (`cancel_history`
        /// empty: it is another table's).
        pub(crate) fn read_payment<R: ReadRow>(r: &R) -> Result<Payment, R::Error> {
            Ok(Payment {
                $($field: Column::read(r, stringify!($field))?,)*
                cancel_history: Vec::new(),
            })
        }
    };
}

payment_row!(
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
);

/// The values of `p` in `PAYMENT_ROW` order (the insert's `$1…`).
pub(crate) fn vals(p: &Payment) -> impl Iterator<Item = Val<'_>> {
    PAYMENT_ROW.iter().map(move |c| (c.get)(p))
}

/// The declared column names, in order.
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    PAYMENT_ROW.iter().map(|c| c.name)
}

/// Every declared column: `imp_uid, merchant_id, …`.
pub(crate) fn cols() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| names().collect::<Vec<_>>().join(", "))
}

/// `cols()` qualified by the alias `p` (for joins and `UPDATE … FROM`).
pub(crate) fn p_cols() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| {
        names()
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
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

/// `$start, …` for `n` parameters.
pub(crate) fn numbered(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",")
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

/// Binds one value to a sqlx query (either database).
pub(crate) fn bind_val<'q, DB: sqlx::Database>(
    q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    v: Val<'q>,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    match v {
        Val::Text(s) => q.bind(s),
        Val::Int(i) => q.bind(i),
        Val::Bool(b) => q.bind(b),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, type, nullable)` of a table's columns as the database reports them.
    type Schema = Vec<(String, String, bool)>;

    /// Every declared column is in the migrated schema, with the declared type and a NOT NULL
    /// wherever the model's field cannot hold NULL.
    fn check(db: &str, schema: &Schema, ty_ok: impl Fn(Ty, &str) -> bool) {
        assert!(!schema.is_empty(), "{db}: no payments table");
        for c in PAYMENT_ROW {
            let Some((_, ty, null)) = schema.iter().find(|(n, _, _)| n == c.name) else {
                panic!(
                    "{db}: declared column {} is missing from the schema",
                    c.name
                );
            };
            assert!(
                ty_ok(c.ty, ty),
                "{db}: {} is {ty}, declared {:?}",
                c.name,
                c.ty
            );
            assert!(
                c.nullable || !null,
                "{db}: {} may be NULL but its field is not an Option",
                c.name
            );
        }
    }

    #[tokio::test]
    async fn declared_columns_exist() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("s.db").display());
        let (_store, _) = crate::connect(&url, true).await.unwrap();
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let schema: Schema = sqlx::query_as::<_, (String, String, bool)>(
            "SELECT name, type, \"notnull\" = 0 AND pk = 0 FROM pragma_table_info('payments')",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        check("sqlite", &schema, |t, sql| match t {
            Ty::Text => sql == "TEXT",
            Ty::Int => sql == "BIGINT" || sql == "INTEGER",
            Ty::Bool => sql == "BOOLEAN",
        });

        let Ok(base) = std::env::var("PIER_TEST_DATABASE_URL") else {
            eprintln!("PIER_TEST_DATABASE_URL not set: the PostgreSQL schema was not checked");
            return;
        };
        let name = format!("rowdecl_{}", pier_domain::ids::random_hex(6));
        let admin = sqlx::PgPool::connect(&base).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&admin)
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        let (store, _) = crate::connect(&url, true).await.unwrap();
        let schema: Schema = sqlx::query_as::<_, (String, String, bool)>(
            "SELECT column_name::text, data_type::text, is_nullable = 'YES' \
             FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'payments'",
        )
        .bind(&name)
        .fetch_all(&admin)
        .await
        .unwrap();
        drop(store);
        check("postgres", &schema, |t, sql| match t {
            Ty::Text => sql == "text",
            Ty::Int => sql == "bigint",
            Ty::Bool => sql == "boolean",
        });
        sqlx::query(&format!("DROP SCHEMA {name} CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
    }
}
