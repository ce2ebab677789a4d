//! Opening a store from a URL, and the two store types.

use crate::batch::Writer;
use crate::error::{StoreError, StoreResult};
use crate::lane::Lane;
use crate::owner::Owner;
use crate::pg_reads::PgReads;
use crate::Store;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The schema both engines share (`migrations/`), then each engine's own part
/// (`migrations-postgres/`, `migrations-sqlite/`: triggers and storage settings, numbered from
/// 1000). They keep one history table, so each skips the versions that are the other's.
macro_rules! skipping_others {
    ($dir:literal) => {
        Migrator {
            ignore_missing: true,
            ..sqlx::migrate!($dir)
        }
    };
}
static MIGRATOR: Migrator = skipping_others!("./migrations");
static PG_MIGRATOR: Migrator = skipping_others!("./migrations-postgres");
static SQLITE_MIGRATOR: Migrator = skipping_others!("./migrations-sqlite");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) pool: sqlx::SqlitePool,
    /// Group-commit writer for the charge hot path (`None`: write directly).
    pub(crate) writer: Option<Writer>,
    /// Hot reads and the writer on rusqlite (`None` for an in-memory database).
    pub(crate) lane: Option<Arc<Lane>>,
    /// The writer task or threads, joined at shutdown.
    pub(crate) owner: Owner,
}

#[derive(Clone, Debug)]
pub struct PgStore {
    pub(crate) pool: sqlx::PgPool,
    pub(crate) writer: Option<Writer>,
    /// Batched point reads of the charge path (`None`: read directly).
    pub(crate) reads: Option<Arc<PgReads>>,
    /// The writer and reader tasks (and the analyze loop, `pg_stats`), joined at shutdown.
    pub(crate) owner: Owner,
}

/// PostgreSQL writers sharing the group-commit queue (each holds one connection while writing);
/// `PIER_PG_WRITERS` overrides. Two rather than more: fewer writers make bigger batches (fewer
/// statements and commits per payment); measured in alternating runs on the 2-core box,
/// 2 writers gave the scheduler ~8 % more executions/s than 4 and `again` the same rate with a
/// lower p99 (docs/PERFORMANCE.md).
pub const PG_WRITERS: usize = 2;
/// PostgreSQL connections per instance; `PIER_PG_POOL` overrides.
pub const PG_POOL: usize = 32;

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
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
            // The lane's checkpointer keeps the WAL short (`lane::Checkpointer`); these
            // connections checkpoint only if it did not, so their commits do not copy pages
            // back whenever the WAL is past SQLite's default 1,000 frames.
            .pragma(
                "wal_autocheckpoint",
                crate::lane::SQLX_WAL_AUTOCHECKPOINT.to_string(),
            )
            .busy_timeout(Duration::from_secs(10));
        let max = env_usize("PIER_SQLITE_POOL").unwrap_or(8) as u32;
        // sqlx names an in-memory database `file:sqlx-in-memory-N`: no file for rusqlite, and
        // it lives only while a connection is open, so the pool keeps one.
        let file = opts.get_filename();
        let in_memory = url.contains(":memory:") || file.to_string_lossy().contains(":memory:");
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(u32::from(in_memory))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts.clone())
            .await?;
        // SQLite has one writer at a time anyway: one group-commit writer, on its own thread
        // with rusqlite when the database is a file (see `lane`).
        let (writer, queue) = Writer::new();
        let owner = Owner::default();
        let lane = if file.as_os_str().is_empty() || in_memory {
            owner.spawn(
                "sqlite-writer",
                crate::payment_write::sqlite::run_writer(pool.clone(), queue),
            );
            None
        } else {
            let lane = Arc::new(Lane::new(file));
            crate::lane::spawn_writer(lane.clone(), queue, &owner)
                .map_err(|e| StoreError::Sqlite(format!("cannot start the writer thread: {e}")))?;
            Some(lane)
        };
        Ok(Self {
            pool,
            writer: Some(writer),
            lane,
            owner,
        })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        SQLITE_MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }
}

impl PgStore {
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        // No ping before each checkout (sqlx's default): it is a round trip per statement, which
        // cost the charge path ~5 % of its throughput and the PostgreSQL lookups ~15 %. A
        // connection that died while idle fails the one statement that uses it, which every
        // caller handles already (a connection can die between a ping and a statement too).
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false)
            .connect(url)
            .await?;
        let (writer, queue) = Writer::new();
        let writers = env_usize("PIER_PG_WRITERS").unwrap_or(PG_WRITERS).max(1);
        // The writers' own connections. Every settle of a batch must find its row by primary
        // key: with bitmap scans allowed PostgreSQL may answer the guard (`status = 'ready'`)
        // from another index, reading the dead entries of every settled attempt; and a plan
        // made while the table was small (a new database) scans the whole table and stays
        // cached until the next ANALYZE.
        let writer_pool = PgPoolOptions::new()
            .max_connections(writers as u32)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false)
            .connect_with(
                PgConnectOptions::from_str(url)?
                    .options([("enable_bitmapscan", "off"), ("enable_seqscan", "off")]),
            )
            .await?;
        let owner = Owner::default();
        for _ in 0..writers {
            owner.spawn(
                "pg-writer",
                crate::payment_write::pg::run_writer(writer_pool.clone(), queue.clone()),
            );
        }
        let reads = PgReads::start(&pool, &owner);
        Ok(Self {
            pool,
            writer: Some(writer),
            reads: Some(Arc::new(reads)),
            owner,
        })
    }

    /// Migrations take an advisory lock, so several instances may start at once.
    pub async fn migrate(&self) -> StoreResult<()> {
        migrate_postgres(&self.pool).await
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }
}

/// Brings a PostgreSQL database's schema up to this build (also used to build the tests'
/// template database, `crate::testdb`).
pub(crate) async fn migrate_postgres(pool: &sqlx::PgPool) -> StoreResult<()> {
    MIGRATOR.run(pool).await?;
    PG_MIGRATOR.run(pool).await?;
    // PostgreSQL only (SQLite cannot drop a constraint, and there it costs nothing): the
    // payments → merchants foreign key. Its check runs a locking read of the merchant row
    // (`FOR KEY SHARE`) in every transaction that inserts a payment, so concurrent
    // group-commit batches of one merchant contend on that row through multixacts; measured
    // at ~15 % of PostgreSQL's CPU per `again`. Merchants are never deleted, and a payment's
    // merchant always comes from the token that authenticated it. Idempotent, and the
    // table lock is only taken while the constraint still exists.
    sqlx::query(
            "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'payments_merchant_id_fkey' \
             AND conrelid = 'payments'::regclass) THEN \
             ALTER TABLE payments DROP CONSTRAINT payments_merchant_id_fkey; END IF; END $$",
        )
        .execute(pool)
        .await?;
    Ok(())
}

/// Opens (and migrates) the store a URL names: `postgres://…` or `sqlite:…`.
pub async fn connect(url: &str, migrate: bool) -> StoreResult<(Arc<dyn Store>, StoreKind)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pool = env_usize("PIER_PG_POOL").unwrap_or(PG_POOL) as u32;
        let s = PgStore::open(url, pool.max(2)).await?;
        if migrate {
            s.migrate().await?;
            crate::pg_stats::at_start(&s.pool, &s.owner).await;
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

/// The SQLite fast lane of a store, if it has one (PostgreSQL never does).
pub(crate) trait HasLane {
    fn lane(&self) -> Option<&Lane>;
}

impl HasLane for SqliteStore {
    fn lane(&self) -> Option<&Lane> {
        self.lane.as_deref()
    }
}

impl HasLane for PgStore {
    fn lane(&self) -> Option<&Lane> {
        None
    }
}

/// Where a store batches the point reads of the charge path (PostgreSQL; SQLite reads inline).
pub(crate) trait HasPgReads {
    fn pg_reads(&self) -> Option<&PgReads>;
}

impl HasPgReads for SqliteStore {
    fn pg_reads(&self) -> Option<&PgReads> {
        None
    }
}

impl HasPgReads for PgStore {
    fn pg_reads(&self) -> Option<&PgReads> {
        self.reads.as_deref()
    }
}

/// A digest of every migration this build applies to PostgreSQL (versions and checksums): the
/// tests' template database is named after it, so a changed migration builds a new one.
pub(crate) fn postgres_migrations_digest() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for m in MIGRATOR.iter().chain(PG_MIGRATOR.iter()) {
        m.version.hash(&mut h);
        m.checksum.hash(&mut h);
    }
    h.finish()
}

/// The migration versions this build applies to a database of `kind` (`pier doctor` compares
/// them with the database's history).
pub fn migration_versions(kind: StoreKind) -> Vec<i64> {
    let own = match kind {
        StoreKind::Postgres => &PG_MIGRATOR,
        StoreKind::Sqlite => &SQLITE_MIGRATOR,
    };
    MIGRATOR
        .iter()
        .chain(own.iter())
        .map(|m| m.version)
        .collect()
}
