//! The database side of the benchmark: the PostgreSQL ceiling, the database the run uses, and
//! the prefill of payments.

use crate::generator::{summarize, CpuMeter, Result};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Clients of the PostgreSQL ceiling (the pgbench figure is at 32).
const PG_CEILING_CLIENTS: usize = 32;
const PG_CEILING_ACCOUNTS: i64 = 100_000;

/// The database ceiling: pgbench's `-N` transaction from `PG_CEILING_CLIENTS` connections for
/// `seconds`, in the benchmark's own schema (tables shaped like pgbench's, scale 1).
pub async fn pg_ceiling(url: &str, seconds: u64) -> Result {
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
pub async fn simple_query(conn: &mut sqlx::PgConnection, q: &str) {
    use sqlx::Executor;
    conn.execute(q).await.unwrap();
}

/// The database the benchmark runs on: a fresh schema of PostgreSQL (returned, to drop at the
/// end) or a SQLite file in `dir`.
pub async fn database_url(db: &str, dir: &std::path::Path) -> (String, Option<String>) {
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
pub async fn prefill(http: &reqwest::Client, base: &str, token: &str, n: usize) -> Vec<String> {
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

pub async fn drop_schema(schema: &str) {
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
