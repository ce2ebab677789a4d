//! `pier tosssim`: the Toss Payments simulator (`pier_pg::toss::sim`) as a process, for offline
//! development, the browser tests and chaos runs. Point a channel at it with
//! `pier channel add --pg tosspayments --api-base http://<listen> …` (same secret and client
//! key). Its admin routes (`/admin/faults`, `/admin/orders/{orderId}/deposit`,
//! `/admin/webhook`) are unauthenticated: bind it to loopback.

use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;

#[derive(Args)]
pub struct TosssimArgs {
    #[arg(long, env = "TOSSSIM_LISTEN", default_value = "127.0.0.1:7080")]
    listen: SocketAddr,
    /// The one secret key the simulator accepts (`test_sk_…`).
    #[arg(long, env = "TOSSSIM_SECRET_KEY", hide_env_values = true)]
    secret_key: String,
    /// The client key its payment window accepts (default: any `test_ck_…`).
    #[arg(long, env = "TOSSSIM_CLIENT_KEY")]
    client_key: Option<String>,
    /// The `mId` written into its objects.
    #[arg(long, default_value = "tosspayments_sim")]
    mid: String,
    /// Where deposits are announced (Toss's `PAYMENT_STATUS_CHANGED`), e.g. Pier's
    /// `/pg/tosspayments/{channel_id}/webhook`; also settable with `PUT /admin/webhook`.
    #[arg(long, env = "TOSSSIM_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// Accept card payments without `customerIdentityNumber`.
    #[arg(long)]
    no_identity: bool,
    /// Fixed latency added to every API call, in ms.
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
    /// Share of calls processed whose answer is then dropped.
    #[arg(long, default_value_t = 0.0)]
    drop_response_rate: f64,
    /// How long a call picked for a timeout is held before the connection is dropped, in ms.
    #[arg(long, default_value_t = 30_000)]
    hang_ms: u64,
    /// Seed of the fault RNG.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub async fn run(
    a: TosssimArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    let addr = listener.local_addr()?;
    let mut cfg = pier_pg::toss::sim::SimConfig::new(a.secret_key);
    cfg.mid = a.mid;
    cfg.base_url = format!("http://{addr}");
    cfg.client_key = a.client_key;
    cfg.webhook_url = a.webhook_url;
    cfg.require_identity = !a.no_identity;
    cfg.seed = a.seed;
    cfg.faults = pier_pg::pgsim::Faults {
        latency_ms: a.latency_ms,
        latency_jitter_ms: a.latency_jitter_ms,
        timeout_rate: a.timeout_rate,
        error_rate: a.error_rate,
        drop_response_rate: a.drop_response_rate,
        hang_ms: a.hang_ms,
        ..pier_pg::pgsim::Faults::default()
    };
    let sim = pier_pg::toss::sim::Sim::new(cfg).map_err(|e| anyhow::anyhow!("{}", e.0))?;
    println!("tosssim listening on http://{addr}");
    pier_pg::toss::sim::serve(sim, listener, shutdown).await?;
    Ok(())
}
