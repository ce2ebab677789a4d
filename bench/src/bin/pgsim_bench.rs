//! pgsim_bench: what does talking to the test PG over HTTP cost?
//!
//! Starts pgsim in this process on loopback (no faults) and drives `approve_keyed` through
//! `pgsim::Client` with N concurrent tasks for D seconds; then the same through
//! `testpg::InProcess`, which is the ceiling (same engine code, no network). Prints requests/s and
//! latency percentiles of both and the difference, which is what pgsim adds.
//!
//! `cargo run --release -p pier-bench --bin pgsim_bench -- --concurrency 1,32 --seconds 5`

use clap::Parser;
use pier_domain::{CardNumber, Expiry, SystemClock};
use pier_pg::pgsim::{self, FaultControl};
use pier_pg::testpg::{Engine, EngineConfig, InProcess};
use pier_pg::{CardData, Mid, Order, Pg};
use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Round trips/s and latency of approve_keyed: pgsim over loopback vs in-process")]
struct Args {
    /// Concurrent tasks; a comma-separated list runs each level in turn.
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 32])]
    concurrency: Vec<u32>,
    /// Measured seconds per connector and level.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Unmeasured seconds before each measurement (connection pool, allocator, caches).
    #[arg(long, default_value_t = 1)]
    warmup_seconds: u64,
}

const MAX_CONCURRENCY: u32 = 1_024;
const MAX_SECONDS: u64 = 120;

struct Stats {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    /// Sorted, microseconds.
    latencies_us: Vec<u32>,
}

impl Stats {
    fn per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn pct(&self, p: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i.min(self.latencies_us.len() - 1)]
    }
}

async fn drive(
    pg: Arc<dyn Pg>,
    concurrency: u32,
    duration: Duration,
    ids: Arc<AtomicU64>,
) -> Stats {
    let card = CardData {
        number: CardNumber::parse("4242-4242-4242-4242").expect("valid test card"),
        expiry: Expiry::parse("2099-12").expect("valid expiry"),
        birth: None,
        pwd_2digit: None,
    };
    let mid = Mid::new("bench_mid");
    let started = Instant::now();
    let stop_at = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (pg, card, mid, ids) = (pg.clone(), card.clone(), mid.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut errors = 0usize;
            while Instant::now() < stop_at {
                let n = ids.fetch_add(1, Ordering::Relaxed);
                let order = Order {
                    order_id: format!("imp_{n:012}"),
                    merchant_uid: format!("bench-{n}"),
                    amount_krw: 10_000,
                    tax_free_krw: 0,
                    name: Some("bench".into()),
                    buyer_name: None,
                    card_quota: 0,
                };
                let t = Instant::now();
                let ok = pg.approve_keyed(&mid, &order, card.clone()).await.is_ok();
                lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                if !ok {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            latencies_us.extend(lat);
            errors += e;
        }
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Stats {
        requests: latencies_us.len(),
        errors,
        elapsed,
        latencies_us,
    }
}

async fn measure(pg: Arc<dyn Pg>, concurrency: u32, args: &Args, ids: Arc<AtomicU64>) -> Stats {
    if args.warmup_seconds > 0 {
        drive(
            pg.clone(),
            concurrency,
            Duration::from_secs(args.warmup_seconds),
            ids.clone(),
        )
        .await;
    }
    drive(pg, concurrency, Duration::from_secs(args.seconds), ids).await
}

fn row(name: &str, concurrency: u32, s: &Stats) {
    println!(
        "{name:<11} {concurrency:>5} {:>9} {:>10.0} {:>8} {:>8} {:>9} {:>8} {:>6}",
        s.requests,
        s.per_sec(),
        s.pct(0.50),
        s.pct(0.99),
        s.pct(0.999),
        s.latencies_us.last().copied().unwrap_or(0),
        s.errors,
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    if args.seconds == 0 || args.seconds > MAX_SECONDS || args.warmup_seconds > MAX_SECONDS {
        return Err(format!("--seconds must be 1..={MAX_SECONDS}").into());
    }
    if args
        .concurrency
        .iter()
        .any(|c| !(1..=MAX_CONCURRENCY).contains(c))
    {
        return Err(format!("--concurrency must be 1..={MAX_CONCURRENCY}").into());
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let sim_engine = Engine::new(EngineConfig::ephemeral(&base), Arc::new(SystemClock))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(pgsim::serve_engine(
        sim_engine,
        FaultControl::default(),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    let sim: Arc<dyn Pg> = Arc::new(pgsim::Client::new(&base)?);
    // Its own engine, so both connectors start from an equally empty ledger.
    let local_engine = Engine::new(EngineConfig::ephemeral(&base), Arc::new(SystemClock))?;
    let local: Arc<dyn Pg> = Arc::new(InProcess::new(local_engine));
    let ids = Arc::new(AtomicU64::new(1));

    println!(
        "approve_keyed, {} s per run after {} s warm-up, latencies in µs",
        args.seconds, args.warmup_seconds
    );
    println!(
        "{:<11} {:>5} {:>9} {:>10} {:>8} {:>8} {:>9} {:>8} {:>6}",
        "connector", "tasks", "requests", "req/s", "p50", "p99", "p99.9", "max", "errors"
    );
    let mut summary = Vec::new();
    for &c in &args.concurrency {
        let inproc = measure(local.clone(), c, &args, ids.clone()).await;
        row("in-process", c, &inproc);
        let over_http = measure(sim.clone(), c, &args, ids.clone()).await;
        row("pgsim", c, &over_http);
        summary.push((c, inproc, over_http));
    }
    println!();
    for (c, inproc, over_http) in &summary {
        let added_p50 = i64::from(over_http.pct(0.50)) - i64::from(inproc.pct(0.50));
        let added_p99 = i64::from(over_http.pct(0.99)) - i64::from(inproc.pct(0.99));
        println!(
            "{c:>4} tasks: pgsim adds {added_p50} µs at p50, {added_p99} µs at p99 (target < 1000); \
             throughput {:.1}% of in-process",
            100.0 * over_http.per_sec() / inproc.per_sec().max(1.0),
        );
    }

    let _ = stop.send(());
    server.await??;
    Ok(())
}
