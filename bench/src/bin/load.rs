//! `load`: Pier's throughput benchmark. Measures, in one run on this machine:
//! a hello-world HTTP ceiling (axum, same stack as Pier), then Pier's `getToken`,
//! `GET /payments/{imp_uid}`, `again` and `onetime` — each as requests/s with p50/p99 and as a
//! ratio of the ceiling, and with the machine's busy CPU per request (everything on the box:
//! Pier, the generator and the database). Pier runs in this process on its own runtime; the
//! load generator uses raw HTTP/1.1 keep-alive connections (hyper) so that it costs as little
//! CPU as possible.
//!
//! With `--db postgres` it also measures a database ceiling in the same run: the plain payment
//! transaction the issue compares against (pgbench's `-N` script as pgbench sends it: BEGIN,
//! UPDATE an account, SELECT it, INSERT a history row, END, each a simple-protocol query) from
//! 32 clients, and reports `again`/`onetime` as a ratio of it, so runs on a slower or faster day
//! of this VM stay comparable.
//!
//! cargo run --release -p pier-bench --bin load -- --db sqlite --seconds 10 --concurrency 64

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The same allocator as the `pier` binary, so the in-process server is measured as shipped.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Clone)]
struct Args {
    /// sqlite or postgres (PostgreSQL from PIER_TEST_DATABASE_URL, in a fresh schema).
    #[arg(long, default_value = "sqlite")]
    db: String,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Worker threads of the server runtime (the load generator gets the same number).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Comma-separated subset of: hello,pgtx,token,get,again,onetime (pgtx: PostgreSQL only)
    #[arg(long, default_value = "hello,pgtx,token,get,again,onetime")]
    only: String,
    /// Payments charged (`again`, 64 at a time) before the measurements, so that lookups and
    /// `again` run on a grown database (issue #20: within 20 % of a fresh one after 100k);
    /// `get` then also looks up a sample of them, as a row of its own.
    #[arg(long, default_value_t = 0)]
    prefill: usize,
}

const KEY: &str = "9999888877776666";
const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

struct Result {
    name: String,
    requests: u64,
    errors: u64,
    secs: f64,
    p50_us: u64,
    p99_us: u64,
    /// Busy CPU of the whole machine (Pier, the load generator and the database) per request,
    /// from `/proc/stat`; `None` where there is no `/proc/stat`.
    cpu_us_per_req: Option<f64>,
}

/// Busy CPU time of the machine since `start`, from the first line of `/proc/stat` (user, nice,
/// system, irq and softirq ticks; idle, iowait and steal are not busy).
struct CpuMeter(Option<u64>);

impl CpuMeter {
    fn ticks() -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let f: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        Some(f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)?)
    }

    fn start() -> Self {
        Self(Self::ticks())
    }

    /// Seconds of busy CPU since `start` (`/proc/stat` counts in 1/100 s).
    fn busy_secs(&self) -> Option<f64> {
        Some((Self::ticks()? - self.0?) as f64 / 100.0)
    }
}

impl Result {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

type MakeReq = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// Drives `concurrency` keep-alive connections for `seconds`, each sending `make(seq)`.
async fn drive(
    name: &str,
    addr: std::net::SocketAddr,
    concurrency: usize,
    seconds: u64,
    make: MakeReq,
    check: fn(&[u8]) -> bool,
) -> Result {
    let seq = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let cpu = CpuMeter::start();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let make = make.clone();
        let seq = seq.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).ok();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(conn);
            while Instant::now() < deadline {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let ok = match sender.send_request(make(n)).await {
                    Ok(res) => {
                        let status = res.status();
                        let body = res
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        status.is_success() && check(&body)
                    }
                    Err(_) => false,
                };
                lat.push(t.elapsed().as_micros() as u64);
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    summarize(
        name,
        all,
        errors.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
        &cpu,
    )
}

fn summarize(name: &str, mut all: Vec<u64>, errors: u64, secs: f64, cpu: &CpuMeter) -> Result {
    let busy = cpu.busy_secs();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Result {
        name: name.into(),
        requests: all.len() as u64,
        errors,
        secs,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        cpu_us_per_req: busy
            .filter(|_| !all.is_empty())
            .map(|b| b * 1e6 / all.len() as f64),
    }
}

fn req(
    method: &str,
    host: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    if let Some(t) = token {
        b = b.header("authorization", t);
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Bytes::from(serde_json::to_vec(&v).unwrap())
        }
        None => Bytes::new(),
    };
    b.body(Full::new(body)).unwrap()
}

fn code_zero(body: &[u8]) -> bool {
    // `{"code":0,...` — cheap check without parsing the whole body.
    body.windows(8).take(64).any(|w| w == b"\"code\":0")
}

fn paid(body: &[u8]) -> bool {
    code_zero(body) && body.windows(15).any(|w| w == b"\"status\":\"paid\"")
}

/// Clients of the PostgreSQL ceiling (the pgbench figure is at 32).
const PG_CEILING_CLIENTS: usize = 32;
const PG_CEILING_ACCOUNTS: i64 = 100_000;

/// The database ceiling: pgbench's `-N` transaction from `PG_CEILING_CLIENTS` connections for
/// `seconds`, in the benchmark's own schema (tables shaped like pgbench's, scale 1).
async fn pg_ceiling(url: &str, seconds: u64) -> Result {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(PG_CEILING_CLIENTS as u32)
        .connect(url)
        .await
        .expect("PostgreSQL reachable");
    for ddl in [
        "CREATE TABLE ceiling_accounts (aid INT PRIMARY KEY, bid INT NOT NULL, abalance INT NOT NULL, \
         filler CHAR(84)) WITH (fillfactor = 100)",
        "CREATE TABLE ceiling_history (tid INT, bid INT, aid INT, delta INT, mtime TIMESTAMP, filler CHAR(22))",
    ] {
        sqlx::query(ddl).execute(&pool).await.unwrap();
    }
    sqlx::query("INSERT INTO ceiling_accounts SELECT g, 1, 0, '' FROM generate_series(1, $1) g")
        .bind(PG_CEILING_ACCOUNTS)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("VACUUM ANALYZE ceiling_accounts")
        .execute(&pool)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let cpu = CpuMeter::start();
    let mut tasks = Vec::new();
    for client in 0..PG_CEILING_CLIENTS as u64 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut conn = pool.acquire().await.unwrap();
            // xorshift: a spread of accounts without a shared RNG.
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (client + 1);
            while Instant::now() < deadline {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let aid = (x % PG_CEILING_ACCOUNTS as u64) as i64 + 1;
                let delta = (x >> 40) as i64 % 10_000 - 5_000;
                let tid = (x >> 20) as i64 % 10 + 1;
                let t = Instant::now();
                for q in [
                    "BEGIN".to_owned(),
                    format!("UPDATE ceiling_accounts SET abalance = abalance + {delta} WHERE aid = {aid}"),
                    format!("SELECT abalance FROM ceiling_accounts WHERE aid = {aid}"),
                    format!("INSERT INTO ceiling_history (tid, bid, aid, delta, mtime) \
                             VALUES ({tid}, 1, {aid}, {delta}, CURRENT_TIMESTAMP)"),
                    "END".to_owned(),
                ] {
                    simple_query(&mut conn, &q).await;
                }
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    pool.close().await;
    summarize(
        "PostgreSQL ceiling: plain payment transaction (pgbench -N, 32 clients)",
        all,
        0,
        start.elapsed().as_secs_f64(),
        &cpu,
    )
}

/// One query over the simple protocol (no arguments), as pgbench sends it by default.
async fn simple_query(conn: &mut sqlx::PgConnection, q: &str) {
    use sqlx::Executor;
    conn.execute(q).await.unwrap();
}

/// The database the benchmark runs on: a fresh schema of PostgreSQL (returned, to drop at the
/// end) or a SQLite file in `dir`.
async fn database_url(db: &str, dir: &std::path::Path) -> (String, Option<String>) {
    if db == "postgres" {
        let base = std::env::var("PIER_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("bench_{}", pier_domain::ids::random_hex(4));
        let pool = sqlx::PgPool::connect(&base)
            .await
            .expect("PostgreSQL reachable");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&pool)
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        (
            format!("{base}{sep}options=-c%20search_path%3D{schema}"),
            Some(schema),
        )
    } else {
        (format!("sqlite:{}", dir.join("bench.db").display()), None)
    }
}

/// Charges `n` payments through `again` (64 concurrent callers) and returns the imp_uids of a
/// sample of them (every 10th, at most 10,000) for the lookups.
async fn prefill(http: &reqwest::Client, base: &str, token: &str, n: usize) -> Vec<String> {
    let r: Value = http
        .post(format!("{base}/subscribe/customers/fill-customer"))
        .header("authorization", token)
        .json(&json!({"card_number": "4518-4200-0000-0000", "expiry": "2030-12"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["code"], 0, "{r}");
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (http, base, token, next) = (
            http.clone(),
            base.to_owned(),
            token.to_owned(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut sample = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return sample;
                }
                let r: Value = http
                    .post(format!("{base}/subscribe/payments/again"))
                    .header("authorization", &token)
                    .json(&json!({"customer_uid": "fill-customer", "merchant_uid": format!("fill-{i}"), "amount": 1000, "name": "fill"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(r["response"]["status"], "paid", "{r}");
                if i.is_multiple_of(10) && sample.len() < 10_000 / 64 + 1 {
                    sample.push(r["response"]["imp_uid"].as_str().unwrap().to_owned());
                }
            }
        }));
    }
    let mut sample = Vec::new();
    for t in tasks {
        sample.extend(t.await.unwrap());
    }
    eprintln!(
        "prefilled {n} payments in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    sample
}

async fn drop_schema(schema: &str) {
    let base = std::env::var("PIER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let pool = sqlx::PgPool::connect(&base)
        .await
        .expect("PostgreSQL reachable");
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await
        .expect("drop the benchmark schema");
}

fn main() {
    let args = Args::parse();
    let only: Vec<&str> = args.only.split(',').collect();
    // Named threads, so that a profile (`perf report --sort comm`) splits server from client.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .thread_name("server")
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .thread_name("client")
        .enable_all()
        .build()
        .unwrap();
    let mut results = Vec::new();

    // 1. The ceiling: a hello-world axum server answering a small JSON envelope.
    let hello_addr = server_rt.block_on(async {
        let app = axum::Router::new().route(
            "/hello",
            axum::routing::get(|| async {
                axum::Json(json!({"code": 0, "message": null, "response": {"hello": "world"}}))
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        addr
    });
    let host = hello_addr.to_string();
    if only.contains(&"hello") {
        let h = host.clone();
        results.push(client_rt.block_on(drive(
            "hello-world ceiling",
            hello_addr,
            args.concurrency,
            args.seconds,
            Arc::new(move |_| req("GET", &h, "/hello", None, None)),
            code_zero,
        )));
    }

    // 2. Pier.
    let dir = tempfile::tempdir().unwrap();
    let (url, schema) = server_rt.block_on(database_url(&args.db, dir.path()));
    if only.contains(&"pgtx") && args.db == "postgres" {
        results.push(client_rt.block_on(pg_ceiling(&url, args.seconds)));
    }
    let pier = server_rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut cfg = pier_server::Config::new(l.local_addr().unwrap(), url, [3u8; 32]);
        cfg.demo.imp_key = Some(KEY.into());
        cfg.demo.imp_secret = Some(SECRET.into());
        pier_server::Pier::start(cfg, Arc::new(pier_domain::SystemClock), l)
            .await
            .expect("pier starts")
    });
    let addr = pier.addr;
    let host = addr.to_string();
    let http = reqwest::Client::new();
    let base = pier.base_url();
    let token: String = client_rt.block_on(async {
        let r: Value = http
            .post(format!("{base}/users/getToken"))
            .json(&json!({"imp_key": KEY, "imp_secret": SECRET}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["response"]["access_token"].as_str().unwrap().to_owned()
    });

    let filled: Vec<String> = if args.prefill > 0 {
        client_rt.block_on(prefill(&http, &base, &token, args.prefill))
    } else {
        Vec::new()
    };

    if only.contains(&"token") {
        let h = host.clone();
        results.push(client_rt.block_on(drive(
            "POST /users/getToken",
            addr,
            args.concurrency,
            args.seconds,
            Arc::new(move |_| {
                req(
                    "POST",
                    &h,
                    "/users/getToken",
                    None,
                    Some(json!({"imp_key": KEY, "imp_secret": SECRET})),
                )
            }),
            code_zero,
        )));
    }

    if only.contains(&"get") {
        let imp_uids: Vec<String> = client_rt.block_on(async {
            let mut v = Vec::new();
            for i in 0..200 {
                let r: Value = http
                    .post(format!("{base}/subscribe/payments/onetime"))
                    .header("authorization", &token)
                    .json(&json!({"merchant_uid": format!("seed-{i}"), "amount": 1000, "card_number": "4518-4200-0000-0000", "expiry": "2030-12"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                v.push(r["response"]["imp_uid"].as_str().unwrap().to_owned());
            }
            v
        });
        // Two sets of lookups. The 200 payments just made are the same set on a fresh and on a
        // grown database: what differs is only the tables' size, so this row shows whether the
        // plans stay fast as the tables grow (issue #20). After a prefill, a second row looks up
        // ~10,000 payments spread over the whole table: it also pays a working set that no
        // longer fits in a small shared_buffers (docs/PERFORMANCE.md).
        let mut sets = vec![("GET /payments/{imp_uid}", imp_uids)];
        if !filled.is_empty() {
            sets.push(("GET /payments/{imp_uid} (spread)", filled.clone()));
        }
        for (name, set) in sets {
            let h = host.clone();
            let t = token.clone();
            let ids = Arc::new(set);
            results.push(client_rt.block_on(drive(
                name,
                addr,
                args.concurrency,
                args.seconds,
                Arc::new(move |n| {
                    req(
                        "GET",
                        &h,
                        &format!("/payments/{}", ids[n as usize % ids.len()]),
                        Some(&t),
                        None,
                    )
                }),
                code_zero,
            )));
        }
    }

    if only.contains(&"again") {
        client_rt.block_on(async {
            let r: Value = http
                .post(format!("{base}/subscribe/customers/bench-customer"))
                .header("authorization", &token)
                .json(&json!({"card_number": "4518-4200-0000-0000", "expiry": "2030-12"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(r["code"], 0, "{r}");
        });
        let h = host.clone();
        let t = token.clone();
        results.push(client_rt.block_on(drive(
            "POST /subscribe/payments/again",
            addr,
            args.concurrency,
            args.seconds,
            Arc::new(move |n| {
                req("POST", &h, "/subscribe/payments/again", Some(&t), Some(json!({"customer_uid": "bench-customer", "merchant_uid": format!("again-{n}"), "amount": 1000, "name": "bench"})))
            }),
            paid,
        )));
    }

    if only.contains(&"onetime") {
        let h = host.clone();
        let t = token.clone();
        results.push(client_rt.block_on(drive(
            "POST /subscribe/payments/onetime",
            addr,
            args.concurrency,
            args.seconds,
            Arc::new(move |n| {
                req(
                    "POST",
                    &h,
                    "/subscribe/payments/onetime",
                    Some(&t),
                    Some(json!({"merchant_uid": format!("onetime-{n}"), "amount": 1000, "card_number": "4518-4200-0000-0000", "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12"})),
                )
            }),
            paid,
        )));
    }

    // Any other entry `GET:/path` loads that path with the token (for finding where time goes).
    for o in only.iter().filter(|o| o.starts_with("GET:")) {
        let path = o.trim_start_matches("GET:").to_owned();
        let h = host.clone();
        let t = token.clone();
        results.push(client_rt.block_on(drive(
            &format!("GET {path}"),
            addr,
            args.concurrency,
            args.seconds,
            Arc::new(move |_| req("GET", &h, &path, Some(&t), None)),
            code_zero,
        )));
    }

    let ceiling = results
        .iter()
        .find(|r| r.name.starts_with("hello"))
        .map(|r| r.rps());
    let db_ceiling = results
        .iter()
        .find(|r| r.name.starts_with("PostgreSQL ceiling"))
        .map(|r| r.rps());
    println!(
        "\ndb={} concurrency={} seconds={} threads={}+{}",
        args.db, args.concurrency, args.seconds, args.threads, args.threads
    );
    println!("| scenario | requests | errors | req/s | p50 ms | p99 ms | ratio to ceiling | ratio to PostgreSQL ceiling | busy CPU µs/req |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &results {
        let is_db = r.name.starts_with("PostgreSQL ceiling");
        let ratio = ceiling
            .filter(|_| !is_db)
            .map(|c| format!("{:.2}", r.rps() / c))
            .unwrap_or_else(|| "-".into());
        // Only the durable charges are bound by the database.
        let db_ratio = db_ceiling
            .filter(|_| is_db || r.name.contains("/subscribe/payments/"))
            .map(|c| format!("{:.2}", r.rps() / c))
            .unwrap_or_else(|| "-".into());
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
            r.name,
            r.requests,
            r.errors,
            r.rps(),
            r.p50_us as f64 / 1000.0,
            r.p99_us as f64 / 1000.0,
            ratio,
            db_ratio,
            r.cpu_us_per_req
                .map(|c| format!("{c:.0}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    server_rt.block_on(pier.shutdown());
    if let Some(schema) = schema {
        server_rt.block_on(drop_schema(&schema));
    }
}
