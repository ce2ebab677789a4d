//! toss_bench: what does the Toss connector add over the Toss simulator's own latency?
//!
//! Starts the Toss simulator in this process on loopback (no faults) and drives keyed payments
//! (`POST /v1/payments/key-in`) with N concurrent tasks for D seconds, twice in the same run:
//! first with a bare HTTP client sending the same request body, auth header and idempotency key
//! (the ceiling: the simulator and loopback HTTP alone), then through `toss::Connector::
//! approve_keyed` (building and checking the request, the idempotency key, the deadline, reading
//! and mapping the answer). Prints requests/s and latency percentiles of both and the difference
//! at p50 and p99, which is what the connector adds (target: < 1 ms at p50).
//!
//! `cargo run --release -p pier-bench --bin toss_bench -- --concurrency 1,32 --seconds 5`

use clap::Parser;
use pier_domain::{CardNumber, Expiry};
use pier_pg::toss::sim::{self, Sim, SimConfig};
use pier_pg::toss::{idempotency_key, Config, Connector};
use pier_pg::{CardData, Mid, Order, Pg};
use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    about = "Keyed payments/s and latency: the Toss connector vs a bare client, same simulator"
)]
struct Args {
    /// Concurrent tasks; a comma-separated list runs each level in turn.
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 32])]
    concurrency: Vec<u32>,
    /// Measured seconds per client and level.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Unmeasured seconds before each measurement (connection pool, allocator, caches).
    #[arg(long, default_value_t = 1)]
    warmup_seconds: u64,
}

const MAX_CONCURRENCY: u32 = 1_024;
const MAX_SECONDS: u64 = 120;
const SECRET: &str = "test_sk_bench_toss";

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

/// The two ways of making the same keyed payment.
#[derive(Clone)]
enum Client {
    Bare {
        http: reqwest::Client,
        url: String,
        auth: String,
    },
    Connector(Arc<Connector>),
}

fn order(n: u64) -> Order {
    Order {
        order_id: format!("imp_{n:012}"),
        merchant_uid: format!("bench-{n}"),
        amount_krw: 10_000,
        tax_free_krw: 0,
        name: Some("bench".into()),
        buyer_name: None,
        card_quota: 0,
    }
}

impl Client {
    async fn pay(&self, n: u64) -> bool {
        let mid = Mid::new("bench_mid");
        let o = order(n);
        match self {
            Client::Bare { http, url, auth } => {
                let body = serde_json::json!({
                    "amount": o.amount_krw, "orderId": o.order_id, "orderName": "bench",
                    "cardNumber": "4242424242424242", "cardExpirationYear": "99",
                    "cardExpirationMonth": "12",
                });
                let r = http
                    .post(url)
                    .header("authorization", auth)
                    .header("content-type", "application/json")
                    .header(
                        "idempotency-key",
                        idempotency_key("approve_keyed", &mid, &o.order_id),
                    )
                    .body(body.to_string())
                    .send()
                    .await;
                match r {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
            Client::Connector(c) => {
                let card = CardData {
                    number: CardNumber::parse("4242-4242-4242-4242").expect("valid test card"),
                    expiry: Expiry::parse("2099-12").expect("valid expiry"),
                    birth: None,
                    pwd_2digit: None,
                };
                c.approve_keyed(&mid, &o, card).await.is_ok()
            }
        }
    }
}

async fn drive(client: Client, concurrency: u32, duration: Duration, ids: Arc<AtomicU64>) -> Stats {
    let started = Instant::now();
    let stop_at = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, ids) = (client.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut errors = 0usize;
            while Instant::now() < stop_at {
                let n = ids.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let ok = client.pay(n).await;
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

async fn measure(client: Client, concurrency: u32, args: &Args, ids: Arc<AtomicU64>) -> Stats {
    if args.warmup_seconds > 0 {
        let warm = Duration::from_secs(args.warmup_seconds);
        drive(client.clone(), concurrency, warm, ids.clone()).await;
    }
    drive(client, concurrency, Duration::from_secs(args.seconds), ids).await
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
    let mut cfg = SimConfig::new(SECRET);
    cfg.base_url = base.clone();
    cfg.require_identity = false;
    let sim = Sim::new(cfg).map_err(|e| e.0)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sim::serve(sim, listener, async move {
        let _ = stopped.await;
    }));
    let connector = Client::Connector(Arc::new(Connector::new(&Config {
        api_base: base.clone(),
        secret_key: SECRET.into(),
        deadline: Duration::from_secs(5),
    })?));
    use base64::Engine as _;
    let bare = Client::Bare {
        http: reqwest::Client::builder()
            .tcp_nodelay(true)
            .no_proxy()
            .build()?,
        url: format!("{base}/v1/payments/key-in"),
        auth: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{SECRET}:"))
        ),
    };
    let ids = Arc::new(AtomicU64::new(1));
    println!(
        "POST /v1/payments/key-in on the Toss simulator, {} s per run after {} s warm-up, latencies in µs",
        args.seconds, args.warmup_seconds
    );
    println!(
        "{:<11} {:>5} {:>9} {:>10} {:>8} {:>8} {:>9} {:>8} {:>6}",
        "client", "tasks", "requests", "req/s", "p50", "p99", "p99.9", "max", "errors"
    );
    let mut summary = Vec::new();
    for &c in &args.concurrency {
        let ceiling = measure(bare.clone(), c, &args, ids.clone()).await;
        row("bare", c, &ceiling);
        let conn = measure(connector.clone(), c, &args, ids.clone()).await;
        row("connector", c, &conn);
        summary.push((c, ceiling, conn));
    }
    println!();
    for (c, ceiling, conn) in &summary {
        let added_p50 = i64::from(conn.pct(0.50)) - i64::from(ceiling.pct(0.50));
        let added_p99 = i64::from(conn.pct(0.99)) - i64::from(ceiling.pct(0.99));
        println!(
            "{c:>4} tasks: the connector adds {added_p50} µs at p50 (target < 1000), {added_p99} µs at p99; \
             p50 ratio {:.2}; throughput {:.1}% of the bare client",
            f64::from(conn.pct(0.50)) / f64::from(ceiling.pct(0.50).max(1)),
            100.0 * conn.per_sec() / ceiling.per_sec().max(1.0),
        );
    }
    let _ = stop.send(());
    server.await??;
    Ok(())
}
