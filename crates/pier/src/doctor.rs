//! `pier doctor`: checks a setup and names each problem with its fix. Reads only: it never
//! creates a data directory, a key or a database, and never runs migrations.
//!
//! A `FAIL` makes the exit status 1; a `warn` is advice (exit 0).

use crate::backup::{is_postgres, sqlite_path};
use crate::cli_config::redact_url;
use anyhow::Result;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Row};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the doctor looks at: the same settings `pier serve` would use.
pub struct Input {
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    /// The key given by flag or environment (then there is no key file to check).
    pub server_key: Option<String>,
    pub listen: SocketAddr,
    pub public_url: Option<String>,
}

/// Clock difference between this host and the database beyond which the doctor fails: access
/// tokens, schedule leases (120 s by default) and webhook retries compare the database's
/// timestamps with the instance's clock, so a few seconds already show. NTP keeps hosts within
/// milliseconds; 2 s means no time sync.
const MAX_SKEW_SECS: f64 = 2.0;
/// How long reaching the database may take before it counts as unreachable: Pier's own pool
/// gives up after 10 s, and a database that needs more than 5 s to accept a connection is
/// already failing payments; the doctor should not hang on it either.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Default)]
struct Findings {
    lines: Vec<(Level, String, Option<String>)>,
}

impl Findings {
    fn ok(&mut self, what: impl Into<String>) {
        self.lines.push((Level::Ok, what.into(), None));
    }
    fn warn(&mut self, what: impl Into<String>, fix: impl Into<String>) {
        self.lines
            .push((Level::Warn, what.into(), Some(fix.into())));
    }
    fn fail(&mut self, what: impl Into<String>, fix: impl Into<String>) {
        self.lines
            .push((Level::Fail, what.into(), Some(fix.into())));
    }
}

enum Conn {
    Sqlite(sqlx::SqliteConnection),
    Pg(sqlx::PgConnection),
}

impl Conn {
    /// Every column as text (queries cast), `None` for NULL.
    async fn rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, sqlx::Error> {
        fn texts<R: Row>(r: &R) -> Vec<Option<String>>
        where
            for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            usize: sqlx::ColumnIndex<R>,
        {
            (0..r.len())
                .map(|i| r.try_get::<Option<String>, _>(i).ok().flatten())
                .collect()
        }
        Ok(match self {
            Conn::Sqlite(c) => sqlx::query(sql)
                .fetch_all(c)
                .await?
                .iter()
                .map(texts)
                .collect(),
            Conn::Pg(c) => sqlx::query(sql)
                .fetch_all(c)
                .await?
                .iter()
                .map(texts)
                .collect(),
        })
    }
}

/// Runs every check, prints the findings, returns whether there was no FAIL.
pub async fn run(input: &Input) -> Result<bool> {
    let mut f = Findings::default();
    let url = input
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", input.data_dir.join("pier.db").display()));
    let uses_data_dir = input.database_url.is_none() || input.server_key.is_none();
    check_data_dir(&mut f, input, uses_data_dir);
    check_server_key(&mut f, input);
    check_public_url(&mut f, input);
    if let Some(mut conn) = check_database(&mut f, &url).await {
        check_migrations(&mut f, &mut conn).await;
        if let Conn::Pg(_) = conn {
            check_autovacuum(&mut f, &mut conn).await;
        }
        check_clock(&mut f, &mut conn).await;
        check_merchants(&mut f, &mut conn).await;
    }
    let mut fails = 0;
    let mut warns = 0;
    for (level, what, fix) in &f.lines {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => {
                warns += 1;
                "warn"
            }
            Level::Fail => {
                fails += 1;
                "FAIL"
            }
        };
        println!("{tag}  {what}");
        if let Some(fix) = fix {
            println!("      fix: {fix}");
        }
    }
    println!(
        "pier doctor: {} ({fails} problem{}, {warns} warning{})",
        if fails == 0 {
            "healthy"
        } else {
            "problems found"
        },
        if fails == 1 { "" } else { "s" },
        if warns == 1 { "" } else { "s" }
    );
    Ok(fails == 0)
}

#[cfg(unix)]
fn mode_of(p: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}
#[cfg(not(unix))]
fn mode_of(_: &std::path::Path) -> Option<u32> {
    None
}

fn check_data_dir(f: &mut Findings, input: &Input, needed: bool) {
    let dir = &input.data_dir;
    if !dir.is_dir() {
        if needed {
            f.fail(
                format!("data dir {} does not exist", dir.display()),
                format!("create it with `mkdir -m 700 {}` and run `pier migrate`, or point --data-dir / PIER_DATA_DIR at the right place", dir.display()),
            );
        }
        return;
    }
    match mode_of(dir) {
        // The directory holds the database and the server key: no one else's business.
        Some(m) if m & 0o077 != 0 => f.fail(
            format!(
                "data dir {} is open to group or others (mode {m:04o})",
                dir.display()
            ),
            format!("chmod 700 {}", dir.display()),
        ),
        _ => f.ok(format!("data dir {} exists, owner-only", dir.display())),
    }
}

fn check_server_key(f: &mut Findings, input: &Input) {
    let (text, origin) = match &input.server_key {
        Some(k) => (
            k.clone(),
            "given by --server-key / PIER_SERVER_KEY".to_owned(),
        ),
        None => {
            let path = input.data_dir.join("server.key");
            let Ok(text) = std::fs::read_to_string(&path) else {
                f.fail(
                    format!("server key {} is missing", path.display()),
                    "restore the key from your backup (without it card data behind billing keys and encrypted secrets cannot be read); on a new setup `pier serve` or `pier migrate` creates it",
                );
                return;
            };
            if let Some(m) = mode_of(&path).filter(|m| m & 0o077 != 0) {
                f.fail(
                    format!(
                        "server key {} is readable by group or others (mode {m:04o})",
                        path.display()
                    ),
                    format!("chmod 600 {}", path.display()),
                );
                return;
            }
            (text, format!("{} (mode 0600)", path.display()))
        }
    };
    let valid = hex::decode(text.trim()).is_ok_and(|b| b.len() == 32);
    if valid {
        f.ok(format!("server key present: {origin}"));
    } else {
        f.fail(
            format!("server key ({origin}) is not 64 hex characters"),
            "restore the key from your backup; every instance sharing a database needs the same key",
        );
    }
}

fn check_public_url(f: &mut Findings, input: &Input) {
    let listen = input.listen;
    let Some(public) = &input.public_url else {
        if listen.ip().is_unspecified() {
            f.fail(
                format!(
                    "no public URL: it defaults to http://{listen}, which browsers cannot reach"
                ),
                "set --public-url (PIER_PUBLIC_URL) to the https URL of your reverse proxy",
            );
        } else if !listen.ip().is_loopback() {
            f.warn(
                format!("no public URL: checkout pages will point at http://{listen}"),
                "set --public-url (PIER_PUBLIC_URL) to the https URL of your reverse proxy",
            );
        } else {
            f.ok(format!(
                "public URL: http://{listen} (listen address; development)"
            ));
        }
        return;
    };
    let parsed = match url::Url::parse(public) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
        _ => {
            f.fail(
                format!("public URL `{public}` is not an http(s) URL with a host"),
                "set --public-url to e.g. https://pay.example.com",
            );
            return;
        }
    };
    let host_is_loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if host_is_loopback {
        let port = parsed.port_or_known_default();
        if !listen.ip().is_loopback() && !listen.ip().is_unspecified() {
            f.warn(
                format!("public URL {public} is on loopback but Pier listens on {listen}"),
                "set --public-url to the address browsers use",
            );
        } else if port != Some(listen.port()) {
            f.warn(
                format!("public URL {public} is on loopback with another port than the listen address {listen}"),
                "fine behind a local proxy; otherwise make the ports agree",
            );
        } else {
            f.ok(format!("public URL {public} matches the listen address"));
        }
    } else if parsed.scheme() == "http" {
        f.warn(
            format!("public URL {public} is plain http: card forms and tokens cross the network unencrypted"),
            "put a TLS-terminating reverse proxy in front and use its https URL (docs/OPERATIONS.md)",
        );
    } else {
        f.ok(format!("public URL {public} (https)"));
    }
}

async fn check_database(f: &mut Findings, url: &str) -> Option<Conn> {
    let shown = redact_url(url);
    let conn = if is_postgres(url) {
        match PgConnectOptions::from_str(url) {
            Ok(o) => tokio::time::timeout(CONNECT_TIMEOUT, o.connect())
                .await
                .map_err(|_| format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))
                .and_then(|r| r.map_err(|e| e.to_string()))
                .map(Conn::Pg),
            Err(e) => Err(e.to_string()),
        }
    } else {
        match sqlite_path(url) {
            Some(p) if !p.exists() => Err(format!("no database file at {}", p.display())),
            _ => match SqliteConnectOptions::from_str(url) {
                // Read-only: the doctor changes nothing (not even the journal mode).
                Ok(o) => o
                    .create_if_missing(false)
                    .read_only(true)
                    .connect()
                    .await
                    .map(Conn::Sqlite)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
        }
    };
    match conn {
        Ok(c) => {
            f.ok(format!("database {shown} reachable"));
            Some(c)
        }
        Err(e) => {
            f.fail(
                format!("database {shown} unreachable: {e}"),
                "check --database-url / PIER_DATABASE_URL and that the database runs; on a new setup run `pier migrate`",
            );
            None
        }
    }
}

async fn check_migrations(f: &mut Findings, conn: &mut Conn) {
    let kind = match conn {
        Conn::Sqlite(_) => pier_store::StoreKind::Sqlite,
        Conn::Pg(_) => pier_store::StoreKind::Postgres,
    };
    let applied: BTreeSet<i64> = match conn
        .rows("SELECT CAST(version AS TEXT) FROM _sqlx_migrations WHERE success")
        .await
    {
        Ok(rows) => rows
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten()?.parse().ok())
            .collect(),
        Err(_) => BTreeSet::new(),
    };
    let expected: BTreeSet<i64> = pier_store::migration_versions(kind).into_iter().collect();
    let missing: Vec<_> = expected.difference(&applied).collect();
    let newer: Vec<_> = applied.difference(&expected).collect();
    if !newer.is_empty() {
        f.fail(
            format!("the database has migrations this binary does not know ({newer:?}): it was upgraded by a newer Pier"),
            "run the newer Pier version (downgrades are not supported; docs/OPERATIONS.md, \"Upgrades\")",
        );
    } else if !missing.is_empty() {
        f.fail(
            format!(
                "database not migrated: {} of {} migrations missing (first: {})",
                missing.len(),
                expected.len(),
                missing[0]
            ),
            "run `pier migrate` with the same --database-url (`pier serve` also migrates on start)",
        );
    } else {
        f.ok(format!("database migrated ({} migrations)", expected.len()));
    }
}

async fn check_autovacuum(f: &mut Findings, conn: &mut Conn) {
    let settings = conn
        .rows("SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', 'track_counts')")
        .await
        .unwrap_or_default();
    let off: Vec<String> = settings
        .iter()
        .filter(|r| r.get(1).cloned().flatten().as_deref() != Some("on"))
        .filter_map(|r| r.first().cloned().flatten())
        .collect();
    let tables = conn
        .rows(
            "SELECT CAST(relname AS TEXT) FROM pg_class WHERE relkind = 'r' \
             AND relnamespace = CAST(current_schema() AS regnamespace) \
             AND CAST(reloptions AS TEXT) LIKE '%autovacuum_enabled=false%'",
        )
        .await
        .unwrap_or_default();
    let tables: Vec<String> = tables
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    if !off.is_empty() {
        f.fail(
            format!("PostgreSQL autovacuum is off ({})", off.join(", ")),
            "set `autovacuum = on` and `track_counts = on` in postgresql.conf: Pier updates payment rows constantly and their dead versions must be reclaimed",
        );
    } else if !tables.is_empty() {
        f.fail(
            format!("autovacuum disabled on tables: {}", tables.join(", ")),
            format!("ALTER TABLE {} RESET (autovacuum_enabled)", tables[0]),
        );
    } else if settings.is_empty() {
        f.warn(
            "could not read PostgreSQL's autovacuum settings",
            "grant the Pier role read access to pg_settings, or check `SHOW autovacuum` by hand",
        );
    } else {
        f.ok("PostgreSQL autovacuum on");
    }
}

async fn check_clock(f: &mut Findings, conn: &mut Conn) {
    let sql = match conn {
        Conn::Pg(_) => "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS TEXT)",
        Conn::Sqlite(_) => "SELECT CAST((julianday('now') - 2440587.5) * 86400.0 AS TEXT)",
    };
    let db: Option<f64> = conn.rows(sql).await.ok().and_then(|r| {
        r.into_iter()
            .next()?
            .into_iter()
            .next()
            .flatten()?
            .parse()
            .ok()
    });
    let local = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    match db {
        Some(db) if (db - local).abs() > MAX_SKEW_SECS => f.fail(
            format!("clock skew against the database: {:+.1}s", local - db),
            "run time synchronisation (chrony or systemd-timesyncd) on this host and the database host",
        ),
        Some(db) => f.ok(format!("clock skew against the database {:+.3}s", local - db)),
        None => f.warn("could not read the database's clock", "check the database connection"),
    }
}

async fn check_merchants(f: &mut Findings, conn: &mut Conn) {
    let Ok(merchants) = conn
        .rows("SELECT imp_code, allowed_origins, CAST(is_demo AS TEXT) FROM merchants ORDER BY imp_code")
        .await
    else {
        return;
    };
    let channels = conn
        .rows("SELECT id, merchant_id, pg_provider, mid, target FROM channels ORDER BY id")
        .await
        .unwrap_or_default();
    let mut with_channel = BTreeSet::new();
    let mut bad_channels = 0;
    for c in &channels {
        let get = |i: usize| c.get(i).cloned().flatten().unwrap_or_default();
        let (id, merchant, pg, mid, target) = (get(0), get(1), get(2), get(3), get(4));
        with_channel.insert(merchant.clone());
        if mid.trim().is_empty() {
            bad_channels += 1;
            f.fail(
                format!("channel {id} ({pg}) of merchant {merchant} has no credentials (empty MID)"),
                format!("add the channel again with its MID: pier channel add --merchant {merchant} --pg {pg} --mid MID"),
            );
        } else if target != "inprocess"
            && url::Url::parse(&target).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
        {
            bad_channels += 1;
            f.fail(
                format!("channel {id} ({pg}) of merchant {merchant} has an invalid target `{target}`"),
                format!("add the channel again with --target inprocess or the pgsim's http(s) URL: pier channel add --merchant {merchant} --pg {pg} --mid {mid} --target URL"),
            );
        }
    }
    if bad_channels == 0 && !channels.is_empty() {
        f.ok(format!("{} channel(s) with credentials", channels.len()));
    }
    let mut open = 0;
    for m in &merchants {
        let get = |i: usize| m.get(i).cloned().flatten();
        let code = get(0).unwrap_or_default();
        let demo = matches!(get(2).as_deref(), Some("1" | "true"));
        if !with_channel.contains(&code) {
            f.warn(
                format!("merchant {code} has no PG channel: its payments fail"),
                format!("pier channel add --merchant {code} --pg jtnet --mid MID --default"),
            );
        }
        let origins = get(1).unwrap_or_default();
        if !demo && origins.trim().is_empty() {
            open += 1;
            f.warn(
                format!("merchant {code} has no allowed origins: any web page may open its checkout"),
                format!("set the shop's origins (pier merchant set-origins --merchant {code} --origins https://shop.example)"),
            );
        }
        if demo {
            f.warn(
                format!("merchant {code} is the demo merchant"),
                "start production instances with --no-demo and do not give the demo credentials to a shop",
            );
        }
    }
    let shops = merchants
        .iter()
        .filter(|m| !matches!(m.get(2).cloned().flatten().as_deref(), Some("1" | "true")))
        .count();
    if open == 0 && shops > 0 {
        f.ok(format!("{shops} merchant(s) with allowed origins"));
    }
}
