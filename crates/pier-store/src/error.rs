use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// A unique constraint refused the write: the caller lost a race or repeated itself.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A guarded update matched no row (the state had moved on).
    #[error("state changed concurrently: {0}")]
    Stale(String),
    /// The store cannot take the request now (its writer was stopped, a queue dropped it): the
    /// state did NOT move on, and the same request may succeed later. Never read it as `Stale`:
    /// a caller that did would answer a final refusal for a write that simply did not happen.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// An error of the SQLite fast lane (`lane`), as text: rusqlite's error is not `Sync`.
    #[error("database error: {0}")]
    Sqlite(String),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the same request may succeed if repeated later: nothing was decided. `Conflict`
    /// and `Stale` are answers about the data; migration errors are for the operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) | StoreError::Db(_) | StoreError::Sqlite(_) => true,
            StoreError::Conflict(_) | StoreError::Stale(_) | StoreError::Migrate(_) => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Turns a unique-constraint violation into `Conflict`, everything else into `Db`.
pub(crate) fn on_conflict(e: sqlx::Error, what: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict(what.to_owned());
        }
    }
    StoreError::Db(e)
}
