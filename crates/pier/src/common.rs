//! The flags every database command shares (`Common`), and what they open: the data dir and
//! the server key (created owner-only), the database, an engine on it.

use crate::{backup, cli_config};
use anyhow::{bail, Context, Result};
use clap::Args;
use pier_server::app::build_engine;
use pier_server::config::Config;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Args, Clone)]
pub struct Common {
    /// Database URL: `sqlite:PATH` or `postgres://…`. Default: a SQLite file in the data dir.
    #[arg(long, env = "PIER_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the default SQLite file, the server key and the test PG journal.
    #[arg(long, env = "PIER_DATA_DIR", default_value = "./pier-data")]
    pub data_dir: PathBuf,
    /// Server key (64 hex chars). Default: read from (or created at) DATA_DIR/server.key.
    /// Every instance sharing a database needs the same key.
    #[arg(long, env = "PIER_SERVER_KEY", hide_env_values = true)]
    pub server_key: Option<String>,
}

impl Common {
    /// Creates the data dir (owner-only, 0700) when something is about to be written in it:
    /// the default SQLite file, the server key, the test PG journal.
    pub fn ensure_data_dir(&self) -> Result<()> {
        create_private_dir(&self.data_dir)
    }

    pub fn database_url(&self) -> Result<String> {
        if let Some(u) = &self.database_url {
            return Ok(u.clone());
        }
        self.ensure_data_dir()?;
        Ok(format!(
            "sqlite:{}",
            self.data_dir.join("pier.db").display()
        ))
    }

    /// The database URL for a command that must not create one: a SQLite file that does not
    /// exist is an error, and no data dir is created.
    pub fn existing_database_url(&self) -> Result<String> {
        let url = match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite:{}", self.data_dir.join("pier.db").display()),
        };
        if let Some(p) = backup::sqlite_path(&url).filter(|p| !p.exists()) {
            bail!(
                "no database at {}: run `pier migrate` (or start `pier serve`) first, or pass --database-url / PIER_DATABASE_URL",
                p.display()
            );
        }
        Ok(url)
    }

    pub fn server_key(&self) -> Result<[u8; 32]> {
        self.server_key_with(true)
    }

    /// The server key; `create`: make one in the data dir if there is none.
    pub fn server_key_with(&self, create: bool) -> Result<[u8; 32]> {
        let text = match &self.server_key {
            Some(k) => k.clone(),
            None if create => load_or_create_key(&self.data_dir.join("server.key"))?,
            None => {
                let path = self.data_dir.join("server.key");
                std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "no server key at {} (pass --server-key / PIER_SERVER_KEY, or restore the key file)",
                        path.display()
                    )
                })?
            }
        };
        let bytes = hex::decode(text.trim()).context("the server key must be 64 hex characters")?;
        let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) else {
            bail!("the server key must be 64 hex characters")
        };
        Ok(key)
    }

    pub fn config(&self, listen: SocketAddr) -> Result<Config> {
        Ok(Config::new(
            listen,
            self.database_url()?,
            self.server_key()?,
        ))
    }
}

/// Pier's own files in the data dir left readable by others by an older version are made
/// owner-only (0600); a data dir open to others only gets a warning (it may be a shared dir).
pub fn tighten_existing(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        const OURS: &[&str] = &[
            "server.key",
            "pier.db",
            "pier.db-wal",
            "pier.db-shm",
            "pier.db-journal",
            "testpg-journal.jsonl",
        ];
        if let Ok(m) = std::fs::metadata(dir) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(dir = %dir.display(), "the data dir is open to other users; chmod 700 it");
            }
        }
        for name in OURS {
            let p = dir.join(name);
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_file() && m.permissions().mode() & 0o077 != 0 {
                match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
                    Ok(()) => {
                        tracing::warn!(file = %p.display(), "was readable by others; now 0600")
                    }
                    Err(e) => {
                        tracing::warn!(file = %p.display(), error = %e, "could not make it 0600")
                    }
                }
            }
        }
    }
}

/// Every file and directory this process creates is owner-only (0600 / 0700) from creation,
/// including the ones SQLite creates itself (the database, -wal, -shm, -journal): the database
/// holds card and personal data and the key directory the server key.
pub fn restrict_umask() {
    #[cfg(unix)]
    // SAFETY: umask only sets this process's file-mode creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

fn load_or_create_key(path: &Path) -> Result<String> {
    if let Ok(k) = std::fs::read_to_string(path) {
        return Ok(k);
    }
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let mut key = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut key);
    let text = hex::encode(key);
    // 0600 from creation (never readable by others, not even between write and chmod), and
    // create_new so two processes starting at once cannot overwrite each other's key.
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(text.as_bytes())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// Creates the data dir owner-only (0700): it holds the database and the server key.
fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// An engine on the command's existing database: the data dir, the database and the key must
/// exist, so a mistyped command never leaves a `./pier-data` behind.
pub async fn engine_for(common: &Common) -> Result<Arc<pier_server::engine::Engine>> {
    engine_on(common, false).await
}

/// An engine for a command that may create the data dir, the database and the key
/// (`merchant create` on a new setup).
pub async fn engine_creating(common: &Common) -> Result<Arc<pier_server::engine::Engine>> {
    engine_on(common, true).await
}

async fn engine_on(common: &Common, create: bool) -> Result<Arc<pier_server::engine::Engine>> {
    let url = if create {
        common.database_url()?
    } else {
        common.existing_database_url()?
    };
    let mut cfg = Config::new(
        "127.0.0.1:0".parse()?,
        url.clone(),
        common.server_key_with(create)?,
    );
    cfg.testpg_journal = None;
    let (engine, _) = build_engine(cfg, Arc::new(pier_domain::SystemClock))
        .await
        .with_context(|| format!("cannot open the database {}", cli_config::redact_url(&url)))?;
    Ok(engine)
}
