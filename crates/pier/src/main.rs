//! The `pier` binary: `serve`, `merchant`, `channel`, `migrate`, `pgsim`, `reconcile`.
//!
//! Every command that touches the database opens it with the same URL and server key as the
//! server, so they work against a running server's database.

mod backup;
mod cli_config;
mod doctor;
mod logging;
mod operator;
mod tosssim;

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use pier_server::app::{build_engine, Pier};
use pier_server::config::{Config, DemoCredentials};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// mimalloc: the allocator matters on the request path (glibc malloc/free were ~8 % of a
/// lookup's profile); see docs/ARCHITECTURE.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pier",
    version = env!("PIER_VERSION"),
    about = "Pier: a self-hosted payment gateway that speaks the i'mport (PortOne V1) API"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Log format: `text` (coloured only on a terminal) or `json` (one object per line).
    /// Filter with `RUST_LOG` (default `info,sqlx=warn`).
    #[arg(
        long,
        global = true,
        env = "PIER_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: logging::LogFormat,
}

#[derive(Args, Clone)]
struct Common {
    /// Database URL: `sqlite:PATH` or `postgres://…`. Default: a SQLite file in the data dir.
    #[arg(long, env = "PIER_DATABASE_URL")]
    database_url: Option<String>,
    /// Directory for the default SQLite file, the server key and the test PG journal.
    #[arg(long, env = "PIER_DATA_DIR", default_value = "./pier-data")]
    data_dir: PathBuf,
    /// Server key (64 hex chars). Default: read from (or created at) DATA_DIR/server.key.
    /// Every instance sharing a database needs the same key.
    #[arg(long, env = "PIER_SERVER_KEY", hide_env_values = true)]
    server_key: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve(ServeArgs),
    /// Run database migrations and exit.
    Migrate(Common),
    /// Manage merchants.
    Merchant {
        #[command(subcommand)]
        cmd: MerchantCmd,
    },
    /// Manage console operators (docs/console.md).
    Operator {
        #[command(subcommand)]
        cmd: operator::OperatorCmd,
    },
    /// Manage PG channels.
    Channel {
        #[command(subcommand)]
        cmd: ChannelCmd,
    },
    /// Run the test PG as a separate process (with fault injection), or drive a running one.
    Pgsim(PgsimArgs),
    /// Run the Toss Payments simulator (`tosspayments` channels' `--api-base` in development).
    Tosssim(tosssim::TosssimArgs),
    /// Print the secret a pgsim must send (`x-pgsim-secret`) with its deposit notifications to
    /// `POST /pg/pgsim/notify` of a Pier with this server key.
    PgsimNotifySecret(Common),
    /// Run one reconciliation pass now: settle every payment attempt whose PG outcome is
    /// unknown (or left in flight by a crash), then print what it did and the attempts that
    /// still need an operator.
    Reconcile {
        #[command(flatten)]
        common: Common,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy the SQLite database consistently while Pier runs (PostgreSQL: use pg_dump; see
    /// docs/OPERATIONS.md). The server key is not in the copy: keep it with the backup.
    Backup {
        #[command(flatten)]
        common: Common,
        /// The file to write (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Check a setup (the settings `pier serve` would use) and name each problem with its fix.
    Doctor(ServeArgs),
    /// Show configuration.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Print the effective configuration of `pier serve` (same flags, environment and config
    /// file), with the source of each value; secrets redacted.
    Print(ServeArgs),
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct PgsimArgs {
    #[command(subcommand)]
    action: Option<PgsimAction>,
    #[command(flatten)]
    serve: PgsimServe,
}

#[derive(Subcommand)]
enum PgsimAction {
    /// Simulate a deposit into a virtual account issued by a running pgsim.
    Deposit {
        /// Base URL of the pgsim.
        #[arg(long, default_value = "http://127.0.0.1:7070")]
        url: String,
        /// The order (Pier's imp_uid) of the virtual account.
        #[arg(long, conflicts_with = "account_num")]
        order_id: Option<String>,
        /// Or the account number.
        #[arg(long)]
        account_num: Option<String>,
        /// Deposited amount (must equal the order amount when given).
        #[arg(long)]
        amount: Option<i64>,
    },
    /// Print a running pgsim's ledger.
    Ledger {
        #[arg(long, default_value = "http://127.0.0.1:7070")]
        url: String,
    },
}

#[derive(Args)]
struct PgsimServe {
    #[arg(long, env = "PGSIM_LISTEN", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Fixed latency added to every payment call, in ms.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Random extra latency up to this many ms.
    #[arg(long, default_value_t = 0)]
    latency_jitter_ms: u64,
    /// Share of calls that are never answered (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    timeout_rate: f64,
    /// Share of calls answered with HTTP 5xx without being processed.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Share of calls processed (approved) whose answer is then dropped.
    #[arg(long, default_value_t = 0.0)]
    drop_response_rate: f64,
    /// Start down (every payment call refused).
    #[arg(long)]
    down: bool,
    /// Seed of the fault RNG.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to POST events (vbank deposits), e.g. Pier's notify endpoint.
    #[arg(long, env = "PGSIM_NOTIFY_URL")]
    notify_url: Option<String>,
    #[arg(long, env = "PGSIM_NOTIFY_SECRET", hide_env_values = true)]
    notify_secret: Option<String>,
    /// AES-256 key for card data behind billing keys (64 hex chars). Default: random per run.
    #[arg(
        long,
        alias = "key",
        env = "PGSIM_ENCRYPTION_KEY",
        hide_env_values = true
    )]
    encryption_key: Option<String>,
    /// How long an unanswered request is held open (ms).
    #[arg(long, default_value_t = 30_000)]
    hang_ms: u64,
    /// Journal file (keeps the ledger across restarts).
    #[arg(long)]
    journal: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// Config file (TOML): keys are the long flag names of `pier serve`, e.g.
    /// `listen = "127.0.0.1:8080"`; flags and environment variables override it.
    #[arg(long, env = "PIER_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
    /// Address to listen on.
    #[arg(long, env = "PIER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Base URL browsers use to reach this server (default: http://LISTEN).
    #[arg(long, env = "PIER_PUBLIC_URL")]
    public_url: Option<String>,
    /// Deadline of every PG call, in milliseconds.
    #[arg(long, env = "PIER_PG_DEADLINE_MS", default_value_t = 5000)]
    pg_deadline_ms: u64,
    /// Do not run background jobs in this instance.
    #[arg(long, env = "PIER_NO_JOBS")]
    no_jobs: bool,
    /// How long a scheduler's claim on a schedule holds before another instance may take it
    /// over (an instance that died mid-run), in seconds.
    #[arg(long, env = "PIER_SCHEDULE_LEASE_SECS", default_value_t = 120, value_parser = clap::value_parser!(i64).range(1..=86_400))]
    schedule_lease_secs: i64,
    /// How often idle background jobs (scheduler, webhook dispatcher) look for due work, in ms.
    #[arg(long, env = "PIER_JOBS_POLL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    jobs_poll_ms: u64,
    /// Allow outbound requests (webhooks, notice_url, confirm_url) to loopback, private and
    /// other internal addresses: local development and tests only. Old name
    /// --webhook-allow-private (and PIER_WEBHOOK_ALLOW_PRIVATE) still works.
    #[arg(
        long = "outbound-allow-private",
        alias = "webhook-allow-private",
        env = "PIER_OUTBOUND_ALLOW_PRIVATE"
    )]
    outbound_allow_private: bool,
    /// The old environment variable of --outbound-allow-private.
    #[arg(
        long = "webhook-allow-private-env",
        hide = true,
        env = "PIER_WEBHOOK_ALLOW_PRIVATE"
    )]
    webhook_allow_private: bool,
    #[arg(long, env = "PIER_DEMO_IMP_CODE")]
    demo_imp_code: Option<String>,
    #[arg(long, env = "PIER_DEMO_IMP_KEY")]
    demo_imp_key: Option<String>,
    #[arg(long, env = "PIER_DEMO_IMP_SECRET", hide_env_values = true)]
    demo_imp_secret: Option<String>,
    /// Do not create the demo merchant on a fresh database.
    #[arg(long)]
    no_demo: bool,
    /// How long a payment window may take before its unsent attempt fails, in seconds
    /// (default 1800).
    #[arg(long, env = "PIER_CHECKOUT_TTL_SECS", value_parser = clap::value_parser!(i64).range(60..=86_400))]
    checkout_ttl_secs: Option<i64>,
    /// How long expired payment windows are kept, in days (default 7).
    #[arg(long, env = "PIER_CHECKOUT_RETENTION_DAYS", value_parser = clap::value_parser!(i64).range(1..=3650))]
    checkout_retention_days: Option<i64>,
    /// How long delivered/dead webhook events and delivery logs are kept, in days (default 90).
    #[arg(long, env = "PIER_WEBHOOK_LOG_RETENTION_DAYS", value_parser = clap::value_parser!(i64).range(1..=3650))]
    webhook_log_retention_days: Option<i64>,
    // --- The network edge (docs/security/edge.md has every default). ---
    /// Reverse proxies (CIDRs or addresses, comma-separated) whose X-Forwarded-For is believed.
    #[arg(long, env = "PIER_TRUSTED_PROXIES", value_delimiter = ',', num_args = 1.., value_parser = pier_server::edge::parse_cidr)]
    trusted_proxies: Vec<pier_server::edge::IpNet>,
    /// Failed getToken attempts per minute per client address, and per (address, imp_key).
    #[arg(long, env = "PIER_AUTH_FAILURES_PER_MINUTE", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    auth_failures_per_minute: Option<u32>,
    /// POST /checkout/prepare per client address: requests per second, and burst.
    #[arg(long, env = "PIER_PREPARE_PER_ADDR_PER_SEC", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    prepare_per_addr_per_sec: Option<u32>,
    #[arg(long, env = "PIER_PREPARE_PER_ADDR_BURST", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    prepare_per_addr_burst: Option<u32>,
    /// POST /checkout/prepare per merchant: requests per second, and burst.
    #[arg(long, env = "PIER_PREPARE_PER_MERCHANT_PER_SEC", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    prepare_per_merchant_per_sec: Option<u32>,
    #[arg(long, env = "PIER_PREPARE_PER_MERCHANT_BURST", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    prepare_per_merchant_burst: Option<u32>,
    /// Other anonymous endpoints (windows, returns, cancels, test-PG pages, demo verify) per
    /// client address: requests per second, and burst.
    #[arg(long, env = "PIER_ANON_PER_ADDR_PER_SEC", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    anon_per_addr_per_sec: Option<u32>,
    #[arg(long, env = "PIER_ANON_PER_ADDR_BURST", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    anon_per_addr_burst: Option<u32>,
    /// Time a client has to send a request's headers, in ms.
    #[arg(long, env = "PIER_HEADER_READ_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(100..=600_000))]
    header_read_timeout_ms: Option<u64>,
    /// Time a connection may sit without a request before it is closed, in ms.
    #[arg(long, env = "PIER_IDLE_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    idle_timeout_ms: Option<u64>,
    /// Connections open at once; past it new ones wait in the kernel's backlog.
    #[arg(long, env = "PIER_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: Option<u64>,
    /// Serve /metrics on this address only (not on the public listener).
    #[arg(long, env = "PIER_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
}

impl ServeArgs {
    /// `--outbound-allow-private` under any of its names (flag, alias, either env var).
    fn allow_private(&self) -> bool {
        self.outbound_allow_private || self.webhook_allow_private
    }
}

#[derive(Subcommand)]
enum MerchantCmd {
    /// Create a merchant and print its credentials (shown once).
    Create {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List merchants.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Set the merchant's webhook URL and body format, and rotate its signing secret (printed
    /// once; see docs/webhooks.md for verification).
    SetWebhook {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        merchant: String,
        /// Webhook target (http or https). Requests' notice_url overrides it.
        #[arg(long)]
        url: String,
        /// Body encoding: json or form.
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Set the web origins the merchant's checkout pages live on (docs/security/origins.md):
    /// page origins allowed to open a payment window, hosts of m_redirect_url / confirm_url /
    /// notice_url, and the frame-ancestors of the window pages. `--origins ""` clears them.
    SetOrigins {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        merchant: String,
        /// Space- or comma-separated origins, e.g. "https://shop.example https://m.shop.example".
        #[arg(long)]
        origins: String,
    },
    /// Give the merchant a new imp_secret (printed once); the old secret and all of the
    /// merchant's access tokens stop working (in a running server within 10 s).
    RotateSecret {
        #[command(flatten)]
        common: Common,
        /// The merchant's imp_code.
        #[arg(long)]
        merchant: String,
    },
    /// Revoke all of the merchant's access tokens (in a running server within 5 s).
    RevokeTokens {
        #[command(flatten)]
        common: Common,
        /// The merchant's imp_code.
        #[arg(long)]
        merchant: String,
    },
}

#[derive(Subcommand)]
enum ChannelCmd {
    /// Add a PG channel to a merchant.
    Add {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        pg: String,
        #[arg(long)]
        mid: Option<String>,
        #[arg(long)]
        default: bool,
        /// `inprocess` (default) or the base URL of a `pier pgsim`.
        #[arg(long)]
        target: Option<String>,
        /// `--pg tosspayments`: the secret key (`test_sk_…`/`live_sk_…`). Prefer
        /// `--secret-key-stdin` or PIER_TOSS_SECRET_KEY so it stays out of shell history.
        #[arg(long, env = "PIER_TOSS_SECRET_KEY", hide_env_values = true)]
        secret_key: Option<String>,
        /// Read the secret key from the first line of standard input.
        #[arg(long, conflicts_with = "secret_key")]
        secret_key_stdin: bool,
        /// `--pg tosspayments`: the client key (`test_ck_…`/`live_ck_…`, public).
        #[arg(long)]
        client_key: Option<String>,
        /// `--pg tosspayments`: the API base (default https://api.tosspayments.com); set by the
        /// operator only, so it may name loopback (the Toss simulator).
        #[arg(long)]
        api_base: Option<String>,
    },
    /// List channels.
    List {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        merchant: Option<String>,
    },
    /// Replace a channel's PG secret key (`tosspayments`), read from the first line of standard
    /// input so it never appears in argv, shell history or `ps`. Running servers pick it up
    /// at their next call through the channel.
    RotateSecret {
        #[command(flatten)]
        common: Common,
        /// The channel's id (`pier channel list`, first column).
        #[arg(long)]
        channel: String,
    },
    /// Remove a channel. Refused while it is its merchant's default, while billing keys issued
    /// through it exist, or while payments on it are in flight, awaiting a deposit or paid.
    Remove {
        #[command(flatten)]
        common: Common,
        /// The channel's id (`pier channel list`, first column).
        #[arg(long)]
        channel: String,
    },
}

impl Common {
    /// Creates the data dir (owner-only, 0700) when something is about to be written in it:
    /// the default SQLite file, the server key, the test PG journal.
    fn ensure_data_dir(&self) -> Result<()> {
        create_private_dir(&self.data_dir)
    }

    fn database_url(&self) -> Result<String> {
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
    fn existing_database_url(&self) -> Result<String> {
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

    fn server_key(&self) -> Result<[u8; 32]> {
        self.server_key_with(true)
    }

    /// The server key; `create`: make one in the data dir if there is none.
    fn server_key_with(&self, create: bool) -> Result<[u8; 32]> {
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

    fn config(&self, listen: SocketAddr) -> Result<Config> {
        Ok(Config::new(
            listen,
            self.database_url()?,
            self.server_key()?,
        ))
    }
}

/// Pier's own files in the data dir left readable by others by an older version are made
/// owner-only (0600); a data dir open to others only gets a warning (it may be a shared dir).
fn tighten_existing(dir: &Path) {
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
fn restrict_umask() {
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
async fn engine_for(common: &Common) -> Result<Arc<pier_server::engine::Engine>> {
    engine_on(common, false).await
}

/// An engine for a command that may create the data dir, the database and the key
/// (`merchant create` on a new setup).
async fn engine_creating(common: &Common) -> Result<Arc<pier_server::engine::Engine>> {
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

/// Errors print as one line on stderr (the cause chain joined by `: `), never with a
/// backtrace, whatever `RUST_BACKTRACE` says; the exit status is 1 (2 for usage errors).
fn main() -> std::process::ExitCode {
    use std::process::ExitCode;
    restrict_umask();
    let parsed = match cli_config::parse(Cli::command(), std::env::args_os().collect()) {
        Ok(p) => p,
        Err(e) => {
            if let Some(ce) = e.downcast_ref::<clap::Error>() {
                if !ce.use_stderr()
                    || ce.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                {
                    // --help, --version
                    let _ = ce.print();
                    return if ce.use_stderr() {
                        ExitCode::from(2)
                    } else {
                        ExitCode::SUCCESS
                    };
                }
                eprintln!(
                    "error: {}",
                    cli_config::first_line(&ce.render().to_string())
                );
                return ExitCode::from(2);
            }
            eprintln!("error: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::from_arg_matches(&parsed.matches) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}", cli_config::first_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let server = matches!(cli.cmd, Cmd::Serve(_) | Cmd::Pgsim(_) | Cmd::Tosssim(_));
    logging::init(cli.log_format, !server);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, &parsed)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace(['\n', '\r'], " ")
}

async fn run(cli: Cli, parsed: &cli_config::Parsed) -> Result<std::process::ExitCode> {
    use std::process::ExitCode;
    let done: Result<()> = match cli.cmd {
        Cmd::Serve(a) => serve(a).await,
        Cmd::Pgsim(a) => pgsim(a).await,
        Cmd::Tosssim(a) => tosssim::run(a, shutdown_signal()).await,
        Cmd::Operator { cmd } => operator::run(cmd).await,
        Cmd::PgsimNotifySecret(c) => {
            println!(
                "{}",
                pier_server::http::vbanks::pgsim_notify_secret(&c.server_key_with(false)?)
            );
            Ok(())
        }
        Cmd::Backup { common, to } => {
            let url = common.existing_database_url()?;
            let r = backup::backup(&url, &to).await?;
            println!(
                "backup written to {} ({} bytes, {} merchants, {} payments)",
                to.display(),
                r.bytes,
                r.merchants,
                r.payments
            );
            println!(
                "  the server key is not in the copy: keep it with the backup (docs/OPERATIONS.md)"
            );
            Ok(())
        }
        Cmd::Doctor(a) => {
            let input = doctor::Input {
                database_url: a.common.database_url.clone(),
                data_dir: a.common.data_dir.clone(),
                server_key: a.common.server_key.clone(),
                listen: a.listen,
                public_url: a.public_url.clone(),
            };
            if !doctor::run(&input).await? {
                return Ok(ExitCode::FAILURE);
            }
            Ok(())
        }
        Cmd::Config {
            cmd: ConfigCmd::Print(_),
        } => {
            print!("{}", cli_config::render(&Cli::command(), parsed));
            Ok(())
        }
        Cmd::Migrate(c) => {
            let url = c.database_url()?;
            pier_store::connect(&url, true).await?;
            println!("migrations applied to {url}");
            Ok(())
        }
        Cmd::Merchant {
            cmd: MerchantCmd::Create { common, name, json },
        } => {
            let engine = engine_creating(&common).await?;
            let c = engine
                .create_merchant(&name, None, None, None, false)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                println!("merchant created: {}\n  imp_code:   {}\n  imp_key:    {}\n  imp_secret: {}  (shown once; keep it safe)", c.name, c.imp_code, c.imp_key, c.imp_secret);
                println!(
                    "add a PG channel: pier channel add --merchant {} --pg jtnet --default",
                    c.imp_code
                );
            }
            Ok(())
        }
        Cmd::Merchant {
            cmd: MerchantCmd::List { common },
        } => {
            let engine = engine_for(&common).await?;
            for m in engine.merchants().await? {
                println!(
                    "{}\t{}\t{}{}",
                    m.imp_code,
                    m.imp_key,
                    m.name,
                    if m.is_demo { "\t(demo)" } else { "" }
                );
            }
            Ok(())
        }
        Cmd::Merchant {
            cmd:
                MerchantCmd::SetWebhook {
                    common,
                    merchant,
                    url,
                    format,
                },
        } => {
            let engine = engine_for(&common).await?;
            let secret = engine
                .set_webhook(&merchant, Some(url.clone()), &format)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("webhook set for {merchant}: {url} ({format})");
            println!(
                "  signing secret: {secret}  (shown once; the previous secret no longer verifies)"
            );
            Ok(())
        }
        Cmd::Merchant {
            cmd:
                MerchantCmd::SetOrigins {
                    common,
                    merchant,
                    origins,
                },
        } => {
            let engine = engine_for(&common).await?;
            match engine
                .set_allowed_origins(&merchant, &origins)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                Some(list) => println!("allowed origins of {merchant}: {}", list.join(" ")),
                None => println!(
                    "allowed origins of {merchant} cleared: any page may open its payment window"
                ),
            }
            Ok(())
        }
        Cmd::Merchant {
            cmd: MerchantCmd::RotateSecret { common, merchant },
        } => {
            let engine = engine_for(&common).await?;
            let secret = engine
                .rotate_secret(&merchant)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("imp_secret rotated for {merchant}; its tokens are revoked");
            println!("  imp_secret: {secret}  (shown once; the previous secret no longer works)");
            Ok(())
        }
        Cmd::Merchant {
            cmd: MerchantCmd::RevokeTokens { common, merchant },
        } => {
            let engine = engine_for(&common).await?;
            let n = engine
                .revoke_tokens(&merchant)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("revoked {n} access token(s) of {merchant}");
            Ok(())
        }
        Cmd::Channel {
            cmd:
                ChannelCmd::Add {
                    common,
                    merchant,
                    pg,
                    mid,
                    default,
                    target,
                    secret_key,
                    secret_key_stdin,
                    client_key,
                    api_base,
                },
        } => {
            let engine = engine_for(&common).await?;
            let c = if pg == pier_server::engine::channels::TOSS {
                let secret_key = if secret_key_stdin {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim().to_owned()
                } else {
                    secret_key.ok_or_else(|| {
                        anyhow::anyhow!("--pg tosspayments needs --secret-key-stdin (or --secret-key / PIER_TOSS_SECRET_KEY)")
                    })?
                };
                let client_key = client_key
                    .ok_or_else(|| anyhow::anyhow!("--pg tosspayments needs --client-key"))?;
                anyhow::ensure!(target.is_none(), "--target is for test PG channels; Toss uses --api-base");
                engine
                    .add_toss_channel(pier_server::engine::channels::TossChannel {
                        merchant,
                        secret_key,
                        client_key,
                        api_base,
                        mid,
                        is_default: default,
                    })
                    .await
            } else {
                anyhow::ensure!(
                    secret_key.is_none() && !secret_key_stdin && client_key.is_none() && api_base.is_none(),
                    "--secret-key, --client-key and --api-base are for --pg tosspayments"
                );
                engine.add_channel(&merchant, &pg, mid, default, target).await
            }
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&c)?);
            Ok(())
        }
        Cmd::Reconcile { common, json } => {
            let engine = engine_for(&common).await?;
            let report = engine
                .reconcile_pass()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let stuck = engine
                .stuck_everywhere(pier_server::engine::reconcile::STUCK_AFTER_ATTEMPTS, 1000)
                .await?;
            if json {
                let stuck: Vec<_> = stuck
                    .iter()
                    .map(|p| serde_json::json!({"imp_uid": p.imp_uid, "merchant_id": p.merchant_id, "merchant_uid": p.merchant_uid, "amount": p.amount, "reconcile_attempts": p.reconcile_attempts}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"report": report, "needs_operator": stuck})
                );
            } else {
                println!("{report:?}");
                for p in &stuck {
                    println!(
                        "NEEDS OPERATOR\t{}\t{}\t{}\t{} KRW\t{} looks",
                        p.imp_uid, p.merchant_id, p.merchant_uid, p.amount, p.reconcile_attempts
                    );
                }
            }
            Ok(())
        }
        Cmd::Channel {
            cmd: ChannelCmd::RotateSecret { common, channel },
        } => {
            let engine = engine_for(&common).await?;
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let secret_key = line.trim();
            anyhow::ensure!(
                !secret_key.is_empty(),
                "give the new secret key on the first line of standard input"
            );
            let c = engine
                .rotate_channel_secret(&channel, secret_key)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "secret key of channel {} ({}.{}, merchant {}) replaced",
                c.id, c.pg_provider, c.mid, c.merchant_id
            );
            Ok(())
        }
        Cmd::Channel {
            cmd: ChannelCmd::Remove { common, channel },
        } => {
            let engine = engine_for(&common).await?;
            let c = engine
                .remove_channel(&channel)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "channel {} ({}.{}, merchant {}) removed",
                c.id, c.pg_provider, c.mid, c.merchant_id
            );
            Ok(())
        }
        Cmd::Channel {
            cmd: ChannelCmd::List { common, merchant },
        } => {
            let engine = engine_for(&common).await?;
            for c in engine.channels(merchant.as_deref()).await? {
                // The secret key itself is never printed (it is sealed in the database).
                let creds = match (&c.api_base, &c.client_key, &c.secret_sealed) {
                    (None, None, None) => String::new(),
                    (base, ck, sk) => format!(
                        "\tapi_base: {}\tclient_key: {}\tsecret: {}",
                        base.as_deref().unwrap_or("-"),
                        ck.as_deref().unwrap_or("-"),
                        if sk.is_some() { "set" } else { "missing" }
                    ),
                };
                println!(
                    "{}\t{}\t{}.{}\t{}{}{}",
                    c.id,
                    c.merchant_id,
                    c.pg_provider,
                    c.mid,
                    c.target,
                    if c.is_default { "\tdefault" } else { "" },
                    creds
                );
            }
            Ok(())
        }
    };
    done?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(a: ServeArgs) -> Result<()> {
    // With JSON logs stdout carries only log objects; the lines for people go to stderr.
    let json = logging::is_json();
    let say = |line: String| {
        if json {
            eprintln!("{line}")
        } else {
            println!("{line}")
        }
    };
    let mut cfg = a.common.config(a.listen)?;
    cfg.webhook_allow_private = a.allow_private();
    // On SQLite the test PG journal is the one file `serve` always keeps in the data dir, so the
    // dir is made here. On PostgreSQL the test PG journals to the database, shared by every
    // instance (a PostgreSQL URL with --server-key needs nothing from the data dir).
    let on_postgres = cfg.database_url.starts_with("postgres://")
        || cfg.database_url.starts_with("postgresql://");
    if !on_postgres {
        a.common.ensure_data_dir()?;
        cfg.testpg_journal = Some(a.common.data_dir.join("testpg-journal.jsonl"));
    }
    if a.common.data_dir.is_dir() {
        tighten_existing(&a.common.data_dir);
    }
    cfg.public_url = a.public_url;
    cfg.pg_deadline = Duration::from_millis(a.pg_deadline_ms);
    cfg.run_jobs = !a.no_jobs;
    cfg.schedule_lease_secs = a.schedule_lease_secs;
    cfg.jobs_poll_interval = Duration::from_millis(a.jobs_poll_ms);
    cfg.create_demo = !a.no_demo;
    if let Some(v) = a.checkout_ttl_secs {
        cfg.checkout_ttl_secs = v;
    }
    if let Some(d) = a.checkout_retention_days {
        cfg.checkout_retention_secs = d * 86_400;
    }
    if let Some(d) = a.webhook_log_retention_days {
        cfg.webhook_log_retention_secs = d * 86_400;
    }
    cfg.demo = DemoCredentials {
        imp_code: a.demo_imp_code,
        imp_key: a.demo_imp_key,
        imp_secret: a.demo_imp_secret,
    };
    // The network edge: only what was given overrides Config::new's defaults.
    cfg.trusted_proxies = a.trusted_proxies;
    let set = |slot: &mut u32, v: Option<u32>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(
        &mut cfg.auth_failures_per_minute,
        a.auth_failures_per_minute,
    );
    set(
        &mut cfg.prepare_per_addr_per_sec,
        a.prepare_per_addr_per_sec,
    );
    set(&mut cfg.prepare_per_addr_burst, a.prepare_per_addr_burst);
    set(
        &mut cfg.prepare_per_merchant_per_sec,
        a.prepare_per_merchant_per_sec,
    );
    set(
        &mut cfg.prepare_per_merchant_burst,
        a.prepare_per_merchant_burst,
    );
    set(&mut cfg.anon_per_addr_per_sec, a.anon_per_addr_per_sec);
    set(&mut cfg.anon_per_addr_burst, a.anon_per_addr_burst);
    if let Some(ms) = a.header_read_timeout_ms {
        cfg.header_read_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = a.idle_timeout_ms {
        cfg.idle_timeout = Duration::from_millis(ms);
    }
    if let Some(n) = a.max_connections {
        cfg.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
    }
    cfg.metrics_listen = a.metrics_listen;
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    let stop = shutdown_signal();
    let pier = Pier::start(cfg, Arc::new(pier_domain::SystemClock), listener).await?;
    if let Some(d) = &pier.demo {
        say("================ Pier demo merchant (shown once) ================".into());
        say(format!("  imp_code:   {}", d.imp_code));
        say(format!("  imp_key:    {}", d.imp_key));
        say(format!("  imp_secret: {}", d.imp_secret));
        say("  PG channel: jtnet (the built-in test PG; see docs/test-cards.md)".into());
        say("=================================================================".into());
    }
    warn_open_merchants(&pier).await;
    say(format!("Pier listening on {}", pier.base_url()));
    tracing::info!(addr = %pier.addr, "listening");
    stop.await;
    tracing::info!("shutting down: finishing in-flight requests");
    pier.shutdown().await;
    Ok(())
}

/// Warns about each merchant (but the demo) that any web page may open a payment window for:
/// it has no allowed origins (docs/security/origins.md). At most `SHOWN` are named, then a count,
/// so a server with many merchants does not flood its log.
async fn warn_open_merchants(pier: &Pier) {
    const SHOWN: usize = 20;
    match pier.engine.merchants_without_origins().await {
        Ok(open) => {
            for m in open.iter().take(SHOWN) {
                tracing::warn!(merchant = %m, "merchant has no allowed origins: any web page may open its payment window and frame it, and m_redirect_url is unchecked; set them with `pier merchant set-origins --merchant {m} --origins \"https://…\"`");
            }
            if open.len() > SHOWN {
                tracing::warn!(
                    more = open.len() - SHOWN,
                    "more merchants have no allowed origins"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list merchants without allowed origins"),
    }
}

async fn pgsim(a: PgsimArgs) -> Result<()> {
    match a.action {
        Some(PgsimAction::Deposit {
            url,
            order_id,
            account_num,
            amount,
        }) => {
            let body = serde_json::json!({"order_id": order_id, "account_num": account_num, "amount_krw": amount});
            let res = reqwest::Client::new()
                .post(format!("{}/admin/vbank/deposit", url.trim_end_matches('/')))
                .timeout(Duration::from_secs(10))
                .json(&body)
                .send()
                .await?;
            let status = res.status();
            println!("{}", res.text().await?);
            if !status.is_success() {
                bail!("deposit refused ({status})");
            }
            Ok(())
        }
        Some(PgsimAction::Ledger { url }) => {
            let res = reqwest::Client::new()
                .get(format!("{}/admin/ledger", url.trim_end_matches('/')))
                .timeout(Duration::from_secs(10))
                .send()
                .await?;
            println!("{}", res.text().await?);
            Ok(())
        }
        None => {
            let s = a.serve;
            let key = match &s.encryption_key {
                Some(k) => {
                    pier_pg::testpg::parse_encryption_key(k).map_err(|e| anyhow::anyhow!(e))?
                }
                None => {
                    let mut k = [0u8; 32];
                    rand::Rng::fill(&mut rand::thread_rng(), &mut k);
                    k
                }
            };
            let mut opts = pier_pg::pgsim::PgsimOptions::new(key);
            opts.faults = pier_pg::pgsim::Faults {
                latency_ms: s.latency_ms,
                latency_jitter_ms: s.latency_jitter_ms,
                timeout_rate: s.timeout_rate,
                error_rate: s.error_rate,
                drop_response_rate: s.drop_response_rate,
                down: s.down,
                hang_ms: s.hang_ms,
            };
            opts.faults.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
            opts.seed = s.seed;
            opts.notify_url = s.notify_url;
            opts.notify_secret = s.notify_secret;
            opts.journal_path = s.journal;
            let listener = tokio::net::TcpListener::bind(s.listen)
                .await
                .with_context(|| format!("binding {}", s.listen))?;
            println!("pgsim listening on http://{}", listener.local_addr()?);
            pier_pg::pgsim::serve(opts, listener, shutdown_signal()).await?;
            Ok(())
        }
    }
}

/// SIGTERM or Ctrl-C. SIGTERM is caught from the moment this is called, not from the first
/// poll: `serve` calls it before the server answers, so a SIGTERM during start-up (an
/// orchestrator, a script that saw /healthz answer) shuts down gracefully after start-up instead
/// of killing the process with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async move {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(args: &[&str]) -> ServeArgs {
        match Cli::try_parse_from(args) {
            Ok(Cli {
                cmd: Cmd::Serve(a), ..
            }) => a,
            Ok(_) => panic!("not serve"),
            Err(e) => panic!("{e}"),
        }
    }

    /// The flag under both names, and the hidden flag the old environment variable sets. The
    /// environment variables themselves are checked by a test of the binary
    /// (tests/ops.rs `allow_private_environment_variables_old_and_new`): changing the process
    /// environment here would race with the other unit tests that parse `serve`.
    #[test]
    fn outbound_allow_private_and_its_old_names() {
        assert!(serve_args(&["pier", "serve", "--outbound-allow-private"]).allow_private());
        assert!(serve_args(&["pier", "serve", "--webhook-allow-private"]).allow_private());
        assert!(serve_args(&["pier", "serve", "--webhook-allow-private-env"]).allow_private());
    }
}
