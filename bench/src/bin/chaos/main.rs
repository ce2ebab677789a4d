//! Chaos test of Pier's money safety (Jepsen-style: drive load, inject faults, check invariants
//! against an independent record).
//!
//! It starts `pier pgsim` with faults (latency, timeouts, HTTP 500s, approvals whose answer is
//! dropped), and `pier serve` (SQLite) with a merchant whose default channel targets that pgsim.
//! Clients drive `onetime` and `again` payments, retrying each with the same merchant_uid and
//! Idempotency-Key until they get a final answer, while Pier is `kill -9`ed at random moments and
//! restarted. When every client is done and Pier has reconciled, it checks against pgsim's ledger
//! (`GET /admin/ledger`, the PG's own books):
//!
//! - **duplicates = 0**: no merchant_uid has two approvals left standing at the PG;
//! - **orphans = 0**: every approval standing at the PG is a `paid` payment in Pier;
//! - **ghosts = 0**: every `paid` payment in Pier is an approval standing at the PG;
//! - **totals equal**: Pier's paid total equals the PG's net total for the merchant;
//! - every client told "paid" sees that payment paid in Pier, and no client told "failed" was
//!   charged; nothing is left unsettled in Pier.
//!
//! With `--instances N` (2 or 3) it runs N `pier serve` on one fresh PostgreSQL database
//! (created on `--database-url`, default `PIER_TEST_DATABASE_URL`; each instance in its own
//! empty directory, one server key) instead of one on SQLite: the clients send each request to
//! the next instance (round-robin, no stickiness, retries included), and the kills alternate
//! between the instances (kill j hits instance j mod N), so work cut on one is finished by another.
//! The checks are the same.
//!
//! Usage (see bench/chaos.sh and docs/RELIABILITY.md):
//!   cargo build --release -p pier -p pier-bench
//!   target/release/chaos --payments 1000 --kills 5
//!   target/release/chaos --payments 300 --kills 4 --instances 2
//!
//! Extension points for checks being built in parallel are marked `EXTENSION POINT`.

mod check;
mod client;
mod drive;
mod procs;

use clap::Parser;
use client::{Client, Counters};
use procs::{free_port, wait_healthy, FreshDb, Pier};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(Parser, Clone, Debug)]
#[command(about = "Kill Pier under load and faults; check money invariants against the PG ledger")]
struct Args {
    /// The `pier` binary (release build recommended).
    #[arg(long, default_value = "target/release/pier")]
    pier: PathBuf,
    /// Payments to drive.
    #[arg(long, default_value_t = 1000)]
    payments: u64,
    /// Times Pier is killed with SIGKILL (and restarted) during the run.
    #[arg(long, default_value_t = 5)]
    kills: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 24)]
    concurrency: usize,
    /// Share of payments made with a billing key (`again`); the rest are `onetime`.
    #[arg(long, default_value_t = 0.3)]
    again_share: f64,
    /// Pier's PG deadline.
    #[arg(long, default_value_t = 500)]
    pg_deadline_ms: u64,
    #[arg(long, default_value_t = 0.03)]
    timeout_rate: f64,
    #[arg(long, default_value_t = 0.03)]
    error_rate: f64,
    #[arg(long, default_value_t = 0.04)]
    drop_response_rate: f64,
    #[arg(long, default_value_t = 2)]
    latency_ms: u64,
    #[arg(long, default_value_t = 20)]
    latency_jitter_ms: u64,
    /// Seed of the run (faults, amounts, cards, kill moments).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Directory for Pier's data and the logs (default: a new directory under /tmp).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// The PG: `pgsim` (the test PG over HTTP) or `toss` (`pier tosssim` behind a
    /// `tosspayments` channel, the same faults).
    #[arg(long, default_value = "pgsim", value_parser = ["pgsim", "toss"])]
    pg: String,
    /// Give up on one payment after this long (it then counts as a violation).
    #[arg(long, default_value_t = 600)]
    payment_timeout_secs: u64,
    /// `pier serve` instances behind the clients' round-robin: 1 (SQLite), or 2-3 on one fresh
    /// PostgreSQL database created on `--database-url`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=3))]
    instances: u64,
    /// A PostgreSQL URL to create the fresh database on (`--instances` > 1); the run drops it.
    #[arg(long, env = "PIER_TEST_DATABASE_URL")]
    database_url: Option<String>,
}

const CARD_APPROVE: &str = "4518-4200-0000-0000";
const CARD_APPROVE_2: &str = "4242-4242-4242-4242";
const CARD_DECLINE: &str = "5570-4200-0000-2112";
const CUSTOMERS: u64 = 16;
/// The secret key of the Toss simulator in a `--pg toss` run (a throwaway test key).
const TOSS_SECRET: &str = "test_sk_chaos_tosssim";
const MID: &str = "chaos_mid";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let started = Instant::now();
    let work = match &a.workdir {
        Some(w) => w.clone(),
        None => std::env::temp_dir().join(format!("pier-chaos-{}-{}", std::process::id(), a.seed)),
    };
    std::fs::create_dir_all(&work)?;
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs)?;
    let pier_bin = std::fs::canonicalize(&a.pier).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (build it: cargo build --release -p pier)",
            a.pier.display()
        )
    })?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency * 2)
        .no_proxy()
        .build()?;

    // The PG, with faults, and the webhook receiver.
    let (pg_url, _pgsim) = procs::start_pg(&a, &pier_bin, &logs, &http).await?;
    let toss = a.pg == "toss";
    let (announced_paid, hook_url) = check::webhook_receiver().await?;

    // Several instances: one fresh PostgreSQL database and one server key for all of them.
    let n = a.instances as usize;
    let db = if n > 1 {
        let admin = a.database_url.clone().ok_or_else(|| {
            anyhow::anyhow!("--instances > 1 needs --database-url or PIER_TEST_DATABASE_URL")
        })?;
        Some(FreshDb::create(&admin, a.seed).await?)
    } else {
        None
    };
    // A server key of 32 random bytes, as `PIER_SERVER_KEY` takes it (hex).
    let shared = db
        .as_ref()
        .map(|d| (d.url.clone(), pier_domain::ids::random_hex(32)));

    // Pier, with a merchant whose default channel is that PG.
    let piers: Vec<Arc<Mutex<Pier>>> = (0..n)
        .map(|i| {
            let port = free_port();
            Arc::new(Mutex::new(Pier {
                name: if n == 1 {
                    "pier".to_owned()
                } else {
                    format!("pier-{}", (b'a' + i as u8) as char)
                },
                bin: pier_bin.clone(),
                // Each instance in its own (empty, and left empty on PostgreSQL) directory.
                data: if n == 1 {
                    work.join("data")
                } else {
                    work.join(format!("data-{i}"))
                },
                shared: shared.clone(),
                listen: format!("127.0.0.1:{port}"),
                deadline_ms: a.pg_deadline_ms,
                child: None,
                starts: 0,
                logs: logs.clone(),
            }))
        })
        .collect();
    let bases: Vec<String> = piers
        .iter()
        .map(|p| format!("http://{}", p.lock().unwrap().listen))
        .collect();
    let pier = piers[0].clone();
    let creds: Value = procs::create_merchant(&pier.lock().unwrap(), toss, &pg_url, &hook_url)?;
    for (p, base) in piers.iter().zip(&bases) {
        p.lock().unwrap().start()?;
        wait_healthy(&http, base, Duration::from_secs(30)).await?;
    }

    let client = Arc::new(Client {
        http: http.clone(),
        bases: bases.clone(),
        turn: AtomicUsize::new(0),
        key: creds["imp_key"].as_str().unwrap_or_default().to_owned(),
        secret: creds["imp_secret"].as_str().unwrap_or_default().to_owned(),
        token: Mutex::new(String::new()),
        sem: Semaphore::new(a.concurrency),
        c: Counters::default(),
    });
    anyhow::ensure!(client.refresh_token().await, "getToken failed");

    // The drive: billing keys, then the payments under faults while Pier is killed and
    // restarted, then settling and refunds.
    drive::billing_keys(&client).await?;
    let plans = drive::plan(&a);
    let (kills_done, killer) = drive::killer(&a, &piers, &client, &http, &bases);
    let outcomes = drive::clients(&a, &client, plans).await?;
    let drive_secs = started.elapsed().as_secs_f64();
    killer.await?;
    let reconcile_out = drive::settle(&client, &pier).await?;
    let refunds = drive::refunds(&client, &outcomes).await?;

    // The verification against the PG's ledger (prints the summary).
    let ok = check::verify(check::Run {
        a: &a,
        started,
        drive_secs,
        client: &client,
        http: &http,
        pg_url: &pg_url,
        outcomes: &outcomes,
        announced_paid: &announced_paid,
        piers: &piers,
        kills_done: &kills_done,
        refunds: &refunds,
        reconcile_out: &reconcile_out,
        work: &work,
    })
    .await?;
    drop(pier);
    drop(piers);
    if let Some(db) = db {
        if ok {
            db.drop_it().await;
        } else {
            eprintln!("[chaos] the database {} is kept for inspection", db.url);
        }
    }
    if !ok {
        // An error return, not `process::exit`: the PG simulator is killed by its guard on the
        // way out (exit skipped it, and a failed run left `pier tosssim` running).
        anyhow::bail!(
            "[chaos] INVARIANT VIOLATED (see above; logs in {})",
            logs.display()
        );
    }
    eprintln!("[chaos] OK");
    Ok(())
}
