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

mod db;
mod generator;

use clap::Parser;
use db::{database_url, drop_schema, pg_ceiling, prefill};
use generator::{code_zero, drive, paid, req};
use serde_json::{json, Value};
use std::sync::Arc;

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
