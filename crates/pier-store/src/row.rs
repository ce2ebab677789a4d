//! Rows declared once: the machinery.
//!
//! A hot row (a payment, a channel, a billing key, a pre-registration, an outbox event) is
//! declared by `declare_row!` as the list of its columns, each a field of its model of the same
//! name; a column's SQL type follows from the field's Rust type (`Column`). From that one list
//! come the column lists of its statements (`Row::LIST`, `qualified`, a join's aliases), the single-row
//! insert (`insert_sql`, bound with `Row::vals` by sqlx and by the SQLite lane), the arrays of
//! PostgreSQL's batched statements (`Col::ty`, `Col::get`) and the reading of a row by every
//! driver (`Row::read` over `ReadRow`). Adding a column is: the model's field, its name in the
//! declaration, the migration (the test `declared_columns_exist` fails when the schema of
//! either database lacks a declared column or types it differently).

use crate::models::{PaymentStatus, PgState};

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

/// One bound value, borrowed from the row (no copy of its strings).
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

/// A field type of a row: its SQL type, how it is bound and how it is read.
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

/// A column of a declaration: its name, type and the field it binds.
pub(crate) struct Col<T: 'static> {
    pub(crate) name: &'static str,
    pub(crate) ty: Ty,
    /// Read by the schema test only (`declared_columns_exist`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) nullable: bool,
    pub(crate) get: for<'a> fn(&'a T) -> Val<'a>,
}

pub(crate) const fn ty_of<R, T: Column>(_field: for<'a> fn(&'a R) -> &'a T) -> Ty {
    T::TY
}

pub(crate) const fn nullable<R, T: Column>(_field: for<'a> fn(&'a R) -> &'a T) -> bool {
    T::NULLABLE
}

/// A declared row (`declare_row!`).
pub(crate) trait Row: Sized + 'static {
    /// Its table.
    const TABLE: &'static str;
    /// Its columns, in the order every statement lists them.
    const COLS: &'static [Col<Self>];
    /// The column names, in order.
    const NAMES: &'static [&'static str];
    /// `a, b, c`: every declared column.
    const LIST: &'static str;

    /// The row from columns named `names` (the declared columns in order, under other names:
    /// a join's aliases); the lane's reader tries the next column's index first.
    fn read_as<R: ReadRow>(r: &R, names: &[&str]) -> Result<Self, R::Error>;

    /// The row from its declared columns, by name.
    fn read<R: ReadRow>(r: &R) -> Result<Self, R::Error> {
        Self::read_as(r, Self::NAMES)
    }

    /// The values of `self` in declared order (an insert's `$1…`).
    fn vals(&self) -> impl Iterator<Item = Val<'_>> {
        Self::COLS.iter().map(move |c| (c.get)(self))
    }
}

/// Declares a row: `declare_row!(Model in "table" { col, … } $(also { field: value, … })?)`,
/// where each column is a field of `Model` and `also` fills the fields that are not columns.
/// With `as a => LIST, NAMES` it also declares the row's columns of a table aliased `a`, renamed
/// `a_col` so that they do not clash with another row's in a join: `LIST` (`a.col AS a_col, …`)
/// and `NAMES` (to read them by, `Row::read_as`).
macro_rules! declare_row {
    ($ty:ident in $table:literal as $alias:ident => $list:ident, $names:ident
     { $first:ident $(, $field:ident)* $(,)? }) => {
        declare_row!($ty in $table { $first $(, $field)* });
        pub(crate) const $list: &str = concat!(
            stringify!($alias), ".", stringify!($first), " AS ", stringify!($alias), "_", stringify!($first)
            $(, ", ", stringify!($alias), ".", stringify!($field), " AS ", stringify!($alias), "_", stringify!($field))*
        );
        pub(crate) const $names: &[&str] = &[
            concat!(stringify!($alias), "_", stringify!($first))
            $(, concat!(stringify!($alias), "_", stringify!($field)))*
        ];
    };
    ($ty:ident in $table:literal { $first:ident $(, $field:ident)* $(,)? }
     $(also { $($x:ident: $xv:expr),* $(,)? })?) => {
        impl $crate::row::Row for $ty {
            const TABLE: &'static str = $table;
            const COLS: &'static [$crate::row::Col<Self>] = &[
                $crate::row::Col {
                    name: stringify!($first),
                    ty: $crate::row::ty_of::<$ty, _>(|r| &r.$first),
                    nullable: $crate::row::nullable::<$ty, _>(|r| &r.$first),
                    get: |r| $crate::row::Column::val(&r.$first),
                },
                $($crate::row::Col {
                    name: stringify!($field),
                    ty: $crate::row::ty_of::<$ty, _>(|r| &r.$field),
                    nullable: $crate::row::nullable::<$ty, _>(|r| &r.$field),
                    get: |r| $crate::row::Column::val(&r.$field),
                }),*
            ];
            const NAMES: &'static [&'static str] = &[stringify!($first) $(, stringify!($field))*];
            const LIST: &'static str = concat!(stringify!($first) $(, ", ", stringify!($field))*);

            fn read_as<R: $crate::row::ReadRow>(r: &R, names: &[&str]) -> Result<Self, R::Error> {
                let mut n = names.iter().copied();
                Ok(Self {
                    $first: $crate::row::Column::read(r, n.next().unwrap_or(stringify!($first)))?,
                    $($field: $crate::row::Column::read(r, n.next().unwrap_or(stringify!($field)))?,)*
                    $($($x: $xv,)*)?
                })
            }
        }
    };
}
pub(crate) use declare_row;

/// `T`'s columns qualified by a table alias: `a.x, a.y, …`.
pub(crate) fn qualified<T: Row>(alias: &str) -> String {
    T::NAMES
        .iter()
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$start, …` for `n` parameters.
pub(crate) fn numbered(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `INSERT INTO table (columns) VALUES ($1, …)`, bound with `Row::vals`.
pub(crate) fn insert_sql<T: Row>() -> String {
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        T::TABLE,
        T::LIST,
        numbered(1, T::COLS.len())
    )
}

/// `SELECT columns FROM table` (the caller adds its `WHERE`).
pub(crate) fn select_sql<T: Row>() -> String {
    format!("SELECT {} FROM {}", T::LIST, T::TABLE)
}

/// The 1-based parameter number of column `name` in `insert_sql` (statements that use a
/// bound column twice name it by this).
pub(crate) fn param_of<T: Row>(name: &str) -> usize {
    T::NAMES
        .iter()
        .position(|c| *c == name)
        .map_or(0, |i| i + 1)
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

/// Binds every declared column of `row` in order.
pub(crate) fn bind_row<'q, DB: sqlx::Database, T: Row>(
    q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    row: &'q T,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    row.vals().fold(q, bind_val)
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds one column of values as a PostgreSQL array of its type (a batch's parameter).
pub(crate) fn bind_column<'q>(
    q: PgQuery<'q>,
    ty: Ty,
    vals: impl Iterator<Item = Val<'q>>,
) -> PgQuery<'q> {
    match ty {
        Ty::Text => q.bind(
            vals.map(|v| match v {
                Val::Text(s) => s,
                _ => None,
            })
            .collect::<Vec<_>>(),
        ),
        Ty::Int => q.bind(
            vals.map(|v| match v {
                Val::Int(i) => i,
                _ => None,
            })
            .collect::<Vec<_>>(),
        ),
        Ty::Bool => q.bind(
            vals.map(|v| matches!(v, Val::Bool(true)))
                .collect::<Vec<_>>(),
        ),
    }
}

/// Binds the rows as one array per declared column (`UNNEST(arrays(first))`).
pub(crate) fn bind_arrays<'q, T: Row>(mut q: PgQuery<'q>, rows: &[&'q T]) -> PgQuery<'q> {
    for c in T::COLS {
        q = bind_column(q, c.ty, rows.iter().map(|r| (c.get)(r)));
    }
    q
}

/// `$first::type[], …`: one array parameter per declared column of `T`, numbered from `first`.
pub(crate) fn arrays<T: Row>(first: usize) -> String {
    T::COLS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", first + i, c.ty.pg()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Channel, Customer, OutboxEvent, Payment};
    use crate::rows::Prepared;

    /// `(name, type, nullable)` of a table's columns as the database reports them.
    type Schema = Vec<(String, String, bool)>;

    /// A declared row's table and `(name, type, nullable)` of its columns.
    type Declared = (&'static str, Vec<(&'static str, Ty, bool)>);

    fn declared<T: Row>() -> Declared {
        (
            T::TABLE,
            T::COLS.iter().map(|c| (c.name, c.ty, c.nullable)).collect(),
        )
    }

    /// Every row declared with `declare_row!`.
    fn every_row() -> Vec<Declared> {
        vec![
            declared::<Payment>(),
            declared::<Channel>(),
            declared::<Customer>(),
            declared::<Prepared>(),
            declared::<OutboxEvent>(),
        ]
    }

    /// Every declared column is in the migrated schema, with the declared type and a NOT NULL
    /// wherever the model's field cannot hold NULL.
    async fn check<F>(
        db: &str,
        schema_of: impl Fn(&'static str) -> F,
        ty_ok: impl Fn(Ty, &str) -> bool,
    ) where
        F: std::future::Future<Output = Schema>,
    {
        for (table, cols) in every_row() {
            let schema = schema_of(table).await;
            assert!(!schema.is_empty(), "{db}: no {table} table");
            for (name, decl, nullable) in cols {
                let Some((_, ty, null)) = schema.iter().find(|(n, _, _)| n == name) else {
                    panic!("{db}: declared column {table}.{name} is missing from the schema");
                };
                assert!(
                    ty_ok(decl, ty),
                    "{db}: {table}.{name} is {ty}, declared {decl:?}"
                );
                assert!(
                    nullable || !null,
                    "{db}: {table}.{name} may be NULL but its field is not an Option"
                );
            }
        }
    }

    #[tokio::test]
    async fn declared_columns_exist() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("s.db").display());
        let (_store, _) = crate::connect(&url, true).await.unwrap();
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let schema_of = |table: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_as::<_, (String, String, bool)>(
                    "SELECT name, type, \"notnull\" = 0 AND pk = 0 FROM pragma_table_info($1)",
                )
                .bind(table)
                .fetch_all(&pool)
                .await
                .unwrap()
            }
        };
        check("sqlite", schema_of, |t, sql| match t {
            Ty::Text => sql == "TEXT",
            Ty::Int => sql == "BIGINT" || sql == "INTEGER",
            Ty::Bool => sql == "BOOLEAN",
        })
        .await;

        let Ok(base) = std::env::var("PIER_TEST_DATABASE_URL") else {
            eprintln!("PIER_TEST_DATABASE_URL not set: the PostgreSQL schema was not checked");
            return;
        };
        let db = crate::testdb::fresh_postgres(&base).await.unwrap();
        let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
        let schema_of = |table: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_as::<_, (String, String, bool)>(
                    "SELECT column_name::text, data_type::text, is_nullable = 'YES' \
                     FROM information_schema.columns WHERE table_schema = current_schema() \
                     AND table_name = $1",
                )
                .bind(table)
                .fetch_all(&pool)
                .await
                .unwrap()
            }
        };
        check("postgres", schema_of, |t, sql| match t {
            Ty::Text => sql == "text",
            Ty::Int => sql == "bigint",
            Ty::Bool => sql == "boolean",
        })
        .await;
        pool.close().await;
    }
}
