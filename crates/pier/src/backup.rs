//! `pier backup --to FILE`: a consistent copy of a SQLite database taken while Pier runs.
//!
//! `VACUUM INTO` reads the database inside one read transaction, so the copy is the database as
//! of one instant (WAL readers do not block Pier's writer, and the writer does not disturb the
//! snapshot). The copy is written to `FILE.partial`, checked, synced and renamed, so `FILE`
//! exists only when it is complete. PostgreSQL is backed up with its own tools (`pg_dump`,
//! base backups and WAL archiving; docs/OPERATIONS.md).

use anyhow::{bail, Context, Result};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Row};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The file a `sqlite:` URL names (`None`: not SQLite, or in memory).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    Some(PathBuf::from(path))
}

pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

pub struct Report {
    pub bytes: u64,
    pub payments: i64,
    pub merchants: i64,
}

/// How long the copy waits for a lock before giving up. A WAL reader only waits while a
/// checkpoint resets the WAL (milliseconds; the lane keeps it under ~4,000 frames), so 30 s is
/// generous and still ends a backup stuck behind a wedged process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn backup(url: &str, to: &Path) -> Result<Report> {
    if is_postgres(url) {
        bail!("pier backup copies SQLite databases; back up PostgreSQL with pg_dump or a base backup with WAL archiving (docs/OPERATIONS.md, \"Backups\")");
    }
    let Some(src) = sqlite_path(url) else {
        bail!("cannot back up {url}: not a SQLite file");
    };
    if !src.exists() {
        bail!("no database at {}", src.display());
    }
    if to.exists() {
        bail!(
            "{} exists; pier backup does not overwrite a file",
            to.display()
        );
    }
    let mut partial = to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    // A partial copy left by an interrupted run is garbage by construction.
    let _ = std::fs::remove_file(&partial);
    let mut conn = SqliteConnectOptions::from_str(url)?
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("cannot open {}", src.display()))?;
    sqlx::query("VACUUM INTO ?")
        .bind(partial.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await
        .with_context(|| format!("copying into {}", partial.display()))?;
    drop(conn);
    let report = check(&partial).await?;
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", partial.display()))?;
    std::fs::rename(&partial, to).with_context(|| format!("renaming to {}", to.display()))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(unix)]
    {
        // The copy holds what the database holds: readable by its owner only.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(report)
}

/// Opens a copy read-only and checks it: `PRAGMA integrity_check`, then counts.
async fn check(path: &Path) -> Result<Report> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .with_context(|| format!("cannot open the copy {}", path.display()))?;
    let verdict: String = sqlx::query("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await?
        .try_get(0)?;
    if verdict != "ok" {
        bail!(
            "the copy {} failed its integrity check: {verdict}",
            path.display()
        );
    }
    let payments: i64 = sqlx::query("SELECT COUNT(*) FROM payments")
        .fetch_one(&mut conn)
        .await?
        .try_get(0)?;
    let merchants: i64 = sqlx::query("SELECT COUNT(*) FROM merchants")
        .fetch_one(&mut conn)
        .await?
        .try_get(0)?;
    let bytes = std::fs::metadata(path)?.len();
    Ok(Report {
        bytes,
        payments,
        merchants,
    })
}
