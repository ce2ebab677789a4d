//! `pier pgsim`: run the test PG as a separate process (with fault injection), or drive a
//! running one (`deposit`, `ledger`).

use crate::serve::shutdown_signal;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PgsimArgs {
    #[command(subcommand)]
    action: Option<PgsimAction>,
    #[command(flatten)]
    serve: PgsimServe,
}

#[derive(Subcommand)]
pub enum PgsimAction {
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
pub struct PgsimServe {
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

pub async fn run(a: PgsimArgs) -> Result<()> {
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
