//! Scheduler throughput on PostgreSQL: inserts N due schedules, then lets 1..K engines (Pier
//! instances sharing one database, in one process) execute them against one shared PG (a pgsim
//! served in this process), and reports executions per second and the duplicate/miss count
//! from the PG's ledger.
//!
//! ```text
//! cargo run --release -p pier-bench --bin schedules_bench -- \
//!     --database-url postgres://postgres@127.0.0.1:5432/test --schedules 10000 --instances 1,2 [--batch 100] [--concurrency 100] [--ticks 2] [--rounds 3]
//! ```

use clap::Parser;
use pier_domain::{Clock, SystemClock};
use pier_server::app::build_engine;
use pier_server::config::Config;
use pier_store::Schedule;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

// The allocator of the `pier` binary, so the instances here run as they do in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// PostgreSQL URL; each run uses a fresh schema in it.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    database_url: String,
    #[arg(long, default_value_t = 10_000)]
    schedules: usize,
    /// Instance counts to measure, comma separated.
    #[arg(long, default_value = "1,2")]
    instances: String,
    /// Schedules claimed per tick and executed concurrently per instance.
    #[arg(long, default_value_t = 100)]
    batch: i64,
    /// Charges in flight at once per tick.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Ticks in flight at once per instance (the scheduler job's `schedule_ticks`).
    #[arg(long, default_value_t = 2)]
    ticks: usize,
    /// Measured rounds of every instance count, interleaved; the summary gives medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let counts: Vec<usize> = a
        .instances
        .split(',')
        .map(|k| k.trim().parse())
        .collect::<Result<_, _>>()?;
    // Rounds interleave the instance counts (1,2,1,2,…) so a slow spell of the machine does not
    // land on one count only; the summary is each count's median.
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); counts.len()];
    for _ in 0..a.rounds.max(1) {
        for (i, k) in counts.iter().enumerate() {
            rates[i].push(run(&a, *k).await?);
        }
    }
    for (k, mut r) in counts.iter().zip(rates) {
        r.sort_by(f64::total_cmp);
        println!(
            "median instances={k} rate={:.0}/s over {} rounds ({})",
            r[r.len() / 2],
            r.len(),
            r.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// A fresh schema for one run: its name and the URL that selects it.
async fn fresh_schema(base: &str) -> anyhow::Result<(String, String)> {
    let schema = format!("bench_{}", pier_domain::ids::random_hex(6));
    admin(base, &format!("CREATE SCHEMA {schema}")).await?;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Ok((schema, url))
}

async fn admin(base: &str, sql: &str) -> anyhow::Result<()> {
    let pool = sqlx::PgPool::connect(base).await?;
    sqlx::query(sql).execute(&pool).await?;
    pool.close().await;
    Ok(())
}

/// One measured run; returns executions per second.
async fn run(a: &Args, instances: usize) -> anyhow::Result<f64> {
    let (schema, url) = fresh_schema(&a.database_url).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // One PG shared by every instance.
    let pg_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let pg_url = format!("http://{}", pg_listener.local_addr()?);
    let pg = pier_pg::testpg::Engine::new(
        pier_pg::testpg::EngineConfig::new([9u8; 32], pg_url.clone()),
        clock.clone(),
    )?;
    let faults = pier_pg::pgsim::FaultControl::new(Default::default(), 0)?;
    let (stop_pg, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(pier_pg::pgsim::serve_engine(
        pg.clone(),
        faults,
        pg_listener,
        async move {
            let _ = stop_rx.await;
        },
    ));
    let mut engines = Vec::new();
    for _ in 0..instances {
        let mut cfg = Config::new("127.0.0.1:0".parse()?, url.clone(), [7u8; 32]);
        cfg.run_jobs = false;
        cfg.schedule_batch = a.batch;
        cfg.schedule_concurrency = a.concurrency;
        cfg.schedule_ticks = a.ticks;
        cfg.demo.imp_code = Some("imp00000001".into());
        let (e, _) = build_engine(cfg, clock.clone()).await?;
        engines.push(e);
    }
    let e = engines[0].clone();
    e.ensure_demo().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    e.add_channel(
        "imp00000001",
        "jtnet",
        Some("jtnet_bench".into()),
        true,
        Some(pg_url),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let card = pier_pg::CardData {
        number: pier_domain::CardNumber::parse("4518-4200-0000-0000")?,
        expiry: pier_domain::Expiry::parse("2030-12")?,
        birth: None,
        pwd_2digit: None,
    };
    let cust = e
        .issue_customer(
            "imp00000001",
            pier_domain::CustomerUid::parse("bench")?,
            card,
            None,
            Default::default(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = clock.now_unix();
    let rows: Vec<Schedule> = (0..a.schedules)
        .map(|i| Schedule {
            name: Some("bench".into()),
            pg_provider: Some("jtnet".into()),
            pg_id: Some("jtnet_bench".into()),
            ..Schedule::new(
                "imp00000001",
                &format!("bench-{i:06}"),
                &cust.customer_uid,
                now - 1,
                1000,
                now,
            )
        })
        .collect();
    // The rows go in through a store of their own: the engine keeps its store to itself.
    let (store, _) = pier_store::connect(&url, false)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for chunk in rows.chunks(1000) {
        store.insert_schedules(chunk).await?;
    }
    store.close_writes();
    // Start from a clean WAL state so a checkpoint's full-page writes do not land in one run
    // and not the other (needs a superuser; skipped otherwise).
    if let Err(e) = admin(&a.database_url, "CHECKPOINT").await {
        eprintln!("note: no CHECKPOINT before the run ({e})");
    }
    let cpu_before = cpu_ticks();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for e in engines
        .iter()
        .flat_map(|e| std::iter::repeat_n(e, a.ticks.max(1)))
    {
        let e = e.clone();
        let batch = a.batch;
        tasks.push(tokio::spawn(async move {
            let mut idle = 0;
            let mut n = 0usize;
            while idle < 3 {
                match e.run_due_schedules(batch).await {
                    Ok(0) => {
                        idle += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Ok(k) => {
                        idle = 0;
                        n += k;
                    }
                    Err(err) => {
                        eprintln!("tick failed: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            n
        }));
    }
    let mut per_instance = vec![0usize; instances];
    for (i, t) in tasks.into_iter().enumerate() {
        per_instance[i / a.ticks.max(1)] += t.await?;
    }
    let took = started.elapsed();
    let cpu = cpu_share(cpu_before, cpu_ticks());
    let _ = stop_pg.send(());
    drop(engines);
    admin(&a.database_url, &format!("DROP SCHEMA {schema} CASCADE")).await?;
    let ledger = pg.ledger_snapshot();
    let mut seen: HashMap<&str, u32> = HashMap::new();
    for o in &ledger.orders {
        *seen.entry(o.merchant_uid.as_str()).or_default() += 1;
    }
    let duplicates = seen.values().filter(|n| **n > 1).count();
    let misses = a.schedules - seen.len();
    println!(
        "instances={instances} schedules={} took={:.2}s rate={:.0}/s per_instance={per_instance:?} duplicates={duplicates} misses={misses} {cpu}",
        a.schedules,
        took.as_secs_f64(),
        a.schedules as f64 / took.as_secs_f64()
    );
    anyhow::ensure!(
        duplicates == 0 && misses == 0,
        "exactly-once violated: {duplicates} duplicates, {misses} misses"
    );
    Ok(a.schedules as f64 / took.as_secs_f64())
}

/// The machine's CPU counters (user+system, idle+iowait, steal) from `/proc/stat`; zeros where
/// there is none.
fn cpu_ticks() -> [u64; 3] {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    [at(0) + at(1) + at(2) + at(5) + at(6), at(3) + at(4), at(7)]
}

/// How the machine's CPU time went during the run: busy, idle, and stolen by the host (a
/// virtual machine's neighbours; a run with much steal is not comparable).
fn cpu_share(a: [u64; 3], b: [u64; 3]) -> String {
    let d: Vec<u64> = (0..3).map(|i| b[i].saturating_sub(a[i])).collect();
    let total = d.iter().sum::<u64>().max(1) as f64;
    format!(
        "cpu busy={:.0}% idle={:.0}% steal={:.0}%",
        100.0 * d[0] as f64 / total,
        100.0 * d[1] as f64 / total,
        100.0 * d[2] as f64 / total
    )
}
