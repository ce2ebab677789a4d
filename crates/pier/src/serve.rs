//! `pier serve`: its flags, the server run until SIGTERM or Ctrl-C, and the shutdown signal
//! the other long-running commands (`pgsim`, `tosssim`) share.

use crate::common::{tighten_existing, Common};
use crate::logging;
use anyhow::{Context, Result};
use clap::Args;
use pier_server::app::Pier;
use pier_server::config::DemoCredentials;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct ServeArgs {
    /// Config file (TOML): keys are the long flag names of `pier serve`, e.g.
    /// `listen = "127.0.0.1:8080"`; flags and environment variables override it.
    #[arg(long, env = "PIER_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
    /// Address to listen on.
    #[arg(long, env = "PIER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Base URL browsers use to reach this server (default: http://LISTEN).
    #[arg(long, env = "PIER_PUBLIC_URL")]
    pub public_url: Option<String>,
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

pub async fn serve(a: ServeArgs) -> Result<()> {
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

/// SIGTERM or Ctrl-C. SIGTERM is caught from the moment this is called, not from the first
/// poll: `serve` calls it before the server answers, so a SIGTERM during start-up (an
/// orchestrator, a script that saw /healthz answer) shuts down gracefully after start-up instead
/// of killing the process with the default action.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
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
    use crate::{Cli, Cmd};
    use clap::Parser;

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
