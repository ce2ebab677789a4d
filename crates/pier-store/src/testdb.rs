//! Fresh PostgreSQL databases for tests and benchmarks, cloned from a migrated template.
//!
//! Migrating a new PostgreSQL database takes ~3 s on the 2-core CI machine (migration 1008
//! rewrites every text column, one `ALTER TABLE` each), and the HTTP suite starts ~150 of them:
//! 443 s of the PostgreSQL suite's 443 s wall time went to waiting, 12 s to the tests' own CPU.
//! Cloning a migrated template (`CREATE DATABASE … TEMPLATE`, PostgreSQL's default WAL_LOG
//! strategy) takes ~0.2–0.4 s. The template is built once per set of migrations (it is named after
//! their digest) under an advisory lock, so test processes running at once share it, and a branch
//! that changes a migration gets its own.
//!
//! Every database is dropped when its handle is, in the background; one whose process died first
//! (killed, or exited before the drop ran) is dropped by the next process that builds or reuses
//! the template.

use crate::connect::{migrate_postgres, postgres_migrations_digest};
use crate::error::StoreResult;
use sqlx::{Connection, PgConnection};

/// Arbitrary, fixed: the advisory lock under which the template is built ("pier tdb").
const TEMPLATE_LOCK: i64 = 0x7069_6572_7464_6200;
/// Test databases' name prefix; the creating process's id follows, so a sweep can tell the
/// orphans (their process is gone) from the databases of tests still running.
const PREFIX: &str = "pier_t_";

/// A migrated PostgreSQL database of its own, dropped (in the background) with this handle.
#[derive(Debug)]
pub struct FreshPostgres {
    url: String,
    name: String,
    base: String,
}

impl FreshPostgres {
    /// The URL of the new database (the base URL with its database name replaced).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The new database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        drop_in_background(self.base.clone(), vec![self.name.clone()]);
    }
}

/// A new database cloned from the migrated template, reached through the server `base` names
/// (any database on it the user may connect to; the user must be allowed to create databases).
pub async fn fresh_postgres(base: &str) -> StoreResult<FreshPostgres> {
    let template = template(base).await?;
    let name = format!(
        "{PREFIX}{}_{}",
        std::process::id(),
        pier_domain::ids::random_hex(6)
    );
    let mut admin = PgConnection::connect(base).await?;
    sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(FreshPostgres {
        url: with_database(base, &name),
        name,
        base: base.to_owned(),
    })
}

/// The template's name, built on first use in this process (tests run on runtimes of their own,
/// so the cell holds only the name, no connection).
async fn template(base: &str) -> StoreResult<String> {
    static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    TEMPLATE
        .get_or_try_init(|| build_template(base))
        .await
        .cloned()
}

async fn build_template(base: &str) -> StoreResult<String> {
    let name = format!("pier_tmpl_{:016x}", postgres_migrations_digest());
    let mut admin = PgConnection::connect(base).await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut admin)
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        // Built under another name and renamed when complete, so a process killed mid-build
        // leaves no half-migrated template behind the real name.
        let building = format!("{name}_build");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {building}"))
            .execute(&mut admin)
            .await?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&with_database(base, &building))
            .await?;
        let migrated = migrate_postgres(&pool).await;
        // Cloning needs the template without connections.
        pool.close().await;
        migrated?;
        sqlx::query(&format!("ALTER DATABASE {building} RENAME TO {name}"))
            .execute(&mut admin)
            .await?;
    }
    let orphans: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'pier\\_t\\_%' ORDER BY datname",
    )
    .fetch_all(&mut admin)
    .await?;
    drop_in_background(
        base.to_owned(),
        orphans.into_iter().filter(|d| !process_alive(d)).collect(),
    );
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(name)
}

/// Whether the process that created test database `name` still runs. Only where `/proc` tells
/// (Linux); elsewhere every database counts as alive and none is swept.
fn process_alive(name: &str) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    let pid = name
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split('_').next())
        .and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(pid) => std::path::Path::new(&format!("/proc/{pid}")).exists(),
        None => true,
    }
}

/// Drops `names` on a thread of its own (a handle may be dropped outside any runtime, or on a
/// current-thread one that must not block). Best effort: what is left is swept later.
fn drop_in_background(base: String, names: Vec<String>) {
    if names.is_empty() {
        return;
    }
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let Ok(mut admin) = PgConnection::connect(&base).await else {
                return;
            };
            for name in names {
                // FORCE: a server under test may still hold connections when its handle drops.
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
            }
            let _ = admin.close().await;
        });
    });
}

/// `base` with its database name replaced by `db` (query parameters kept).
fn with_database(base: &str, db: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    let authority = head.find("://").map_or(0, |i| i + 3);
    let path = head[authority..]
        .find('/')
        .map_or(head.len(), |i| authority + i);
    let mut out = format!("{}/{db}", &head[..path]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced_and_parameters_kept() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5432/test", "x"),
            "postgres://u@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }

    #[test]
    fn only_databases_of_dead_processes_are_orphans() {
        if !std::path::Path::new("/proc/self").exists() {
            return;
        }
        let mine = format!("{PREFIX}{}_abcdef", std::process::id());
        assert!(process_alive(&mine));
        // PIDs stop below 2^22 on Linux (pid_max's ceiling).
        assert!(!process_alive(&format!("{PREFIX}4294967295_abcdef")));
    }
}
