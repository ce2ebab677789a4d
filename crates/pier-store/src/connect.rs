//! Opening a store from a URL, and the two store types.

use crate::error::StoreResult;
use crate::Store;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) pool: sqlx::SqlitePool,
}

#[derive(Clone, Debug)]
pub struct PgStore {
    pub(crate) pool: sqlx::PgPool,
}

impl SqliteStore {
    /// WAL with `synchronous=FULL`: a commit that returned is on disk, so a payment that was
    /// acknowledged survives a power cut.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }
}

impl PgStore {
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    /// Migrations take an advisory lock, so several instances may start at once.
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }
}

/// Opens (and migrates) the store a URL names: `postgres://…` or `sqlite:…`.
pub async fn connect(url: &str, migrate: bool) -> StoreResult<(Arc<dyn Store>, StoreKind)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let s = PgStore::open(url, 32).await?;
        if migrate {
            s.migrate().await?;
        }
        Ok((Arc::new(s), StoreKind::Postgres))
    } else {
        let s = SqliteStore::open(url).await?;
        if migrate {
            s.migrate().await?;
        }
        Ok((Arc::new(s), StoreKind::Sqlite))
    }
}
