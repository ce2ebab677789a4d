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

use clap::Parser;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

/// A tiny deterministic RNG (xorshift64*), enough for choosing cards, amounts and moments.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

const CARD_APPROVE: &str = "4518-4200-0000-0000";
const CARD_APPROVE_2: &str = "4242-4242-4242-4242";
const CARD_DECLINE: &str = "5570-4200-0000-2112";
const MSG_ALREADY_PAID: &str = "이미 결제가 이루어진";
const CUSTOMERS: u64 = 16;
/// The secret key of the Toss simulator in a `--pg toss` run (a throwaway test key).
const TOSS_SECRET: &str = "test_sk_chaos_tosssim";
const MID: &str = "chaos_mid";

#[derive(Clone, Debug)]
enum Outcome {
    /// The client was told paid (imp_uid) or "already paid".
    Paid { imp_uid: Option<String> },
    /// The client was told the payment failed (declined, refused).
    Failed { message: String },
    /// No final answer within the payment timeout.
    GaveUp,
}

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    requests: AtomicU64,
    conn_errors: AtomicU64,
    unknown_answers: AtomicU64,
    in_progress_answers: AtomicU64,
    server_errors: AtomicU64,
    idem_conflicts: AtomicU64,
    replays: AtomicU64,
}

struct Pier {
    /// `pier`, or `pier-a`, `pier-b`... with several instances: the prefix of its logs.
    name: String,
    bin: PathBuf,
    data: PathBuf,
    /// The shared database's URL and server key (several instances), else SQLite in `data`.
    shared: Option<(String, String)>,
    listen: String,
    deadline_ms: u64,
    child: Option<Child>,
    starts: u64,
    logs: PathBuf,
}

impl Pier {
    fn common(&self, cmd: &mut Command) {
        cmd.env("PIER_DATA_DIR", &self.data)
            .env("RUST_LOG", "info,sqlx=warn");
        if let Some((url, key)) = &self.shared {
            cmd.env("PIER_DATABASE_URL", url)
                .env("PIER_SERVER_KEY", key);
        }
    }

    fn log_path(&self, start: u64) -> PathBuf {
        self.logs.join(format!("{}-{start}.log", self.name))
    }

    fn start(&mut self) -> std::io::Result<()> {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts))?;
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "serve",
            "--listen",
            &self.listen,
            "--no-demo",
            "--pg-deadline-ms",
            &self.deadline_ms.to_string(),
        ]);
        self.common(&mut cmd);
        // The chaos harness's webhook receiver is on loopback.
        cmd.env("PIER_WEBHOOK_ALLOW_PRIVATE", "true");
        // `pier tosssim` never acts on a request after leaving it unanswered (a "timeout" fault
        // neither processes nor answers it), so Toss's "not found" may be trusted after a few
        // seconds here; the default (two minutes) would make the run wait that long per attempt.
        cmd.env("PIER_TOSS_UNSEEN_ORDER_GRACE_SECS", "5");
        cmd.stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        self.child = Some(cmd.spawn()?);
        Ok(())
    }

    /// SIGKILL: no graceful shutdown, no flush, in-flight requests cut.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args);
        self.common(&mut cmd);
        let out = cmd.output()?;
        if !out.status.success() {
            anyhow::bail!(
                "pier {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Pier {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_healthy(http: &reqwest::Client, url: &str, within: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + within;
    loop {
        if let Ok(r) = http.get(format!("{url}/healthz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > end {
            anyhow::bail!("{url} did not become healthy");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Client {
    http: reqwest::Client,
    /// The instances' base URLs: each request goes to the next one.
    bases: Vec<String>,
    turn: AtomicUsize,
    key: String,
    secret: String,
    token: Mutex<String>,
    sem: Semaphore,
    c: Counters,
}

impl Client {
    /// The instance for the next request (round-robin).
    fn base(&self) -> &str {
        let n = self.turn.fetch_add(1, Ordering::Relaxed);
        &self.bases[n % self.bases.len()]
    }

    async fn refresh_token(&self) -> bool {
        let r = self
            .http
            .post(format!("{}/users/getToken", self.base()))
            .json(&json!({"imp_key": self.key, "imp_secret": self.secret}))
            .send()
            .await;
        if let Ok(r) = r {
            if let Ok(v) = r.json::<Value>().await {
                if let Some(t) = v["response"]["access_token"].as_str() {
                    *self.token.lock().unwrap() = t.to_owned();
                    return true;
                }
            }
        }
        false
    }

    /// One request; `None` on a transport error (Pier down or killed mid-request).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idem: Option<&str>,
    ) -> Option<(u16, bool, bool, Value)> {
        let _permit = self.sem.acquire().await.ok()?;
        self.c.requests.fetch_add(1, Ordering::Relaxed);
        let token = self.token.lock().unwrap().clone();
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base()))
            .header("Authorization", format!("Bearer {token}"))
            .timeout(Duration::from_secs(15));
        if let Some(b) = body {
            rb = rb.json(b);
        }
        if let Some(k) = idem {
            rb = rb.header("Idempotency-Key", k);
        }
        let r = match rb.send().await {
            Ok(r) => r,
            Err(_) => {
                self.c.conn_errors.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let status = r.status().as_u16();
        let retryable = r.headers().contains_key("x-pier-retryable");
        let replayed = r.headers().contains_key("idempotent-replayed");
        match r.json::<Value>().await {
            Ok(v) => Some((status, retryable, replayed, v)),
            Err(_) => {
                self.c.conn_errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Drives one payment to a final answer, retrying with the same key like a careful merchant.
    async fn pay(&self, path: &str, body: Value, idem: String, give_up: Duration) -> Outcome {
        let end = Instant::now() + give_up;
        let mut backoff = Duration::from_millis(100);
        loop {
            if Instant::now() > end {
                return Outcome::GaveUp;
            }
            let res = self
                .send(reqwest::Method::POST, path, Some(&body), Some(&idem))
                .await;
            let retry = match res {
                None => true,
                Some((401, _, _, _)) => {
                    self.refresh_token().await;
                    true
                }
                Some((status, retryable, replayed, v)) => {
                    if replayed {
                        self.c.replays.fetch_add(1, Ordering::Relaxed);
                    }
                    let code = v["code"].as_i64().unwrap_or(-99);
                    let msg = v["message"].as_str().unwrap_or("").to_owned();
                    if status == 409 {
                        self.c.idem_conflicts.fetch_add(1, Ordering::Relaxed);
                        true
                    } else if status >= 500 {
                        self.c.server_errors.fetch_add(1, Ordering::Relaxed);
                        true
                    } else if retryable {
                        if msg.contains("imp_uid:") {
                            self.c.unknown_answers.fetch_add(1, Ordering::Relaxed);
                        } else {
                            self.c.in_progress_answers.fetch_add(1, Ordering::Relaxed);
                        }
                        true
                    } else if code == 0 && v["response"]["status"] == "paid" {
                        return Outcome::Paid {
                            imp_uid: v["response"]["imp_uid"].as_str().map(str::to_owned),
                        };
                    } else if code == 1 && msg.contains(MSG_ALREADY_PAID) {
                        return Outcome::Paid { imp_uid: None };
                    } else {
                        return Outcome::Failed { message: msg };
                    }
                }
            };
            if retry {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

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

    // The PG, with faults.
    let pg_port = free_port();
    let pg_url = format!("http://127.0.0.1:{pg_port}");
    let pg_log = std::fs::File::create(logs.join("pgsim.log"))?;
    let toss = a.pg == "toss";
    let pgsim = Command::new(&pier_bin)
        .args(if toss {
            vec!["tosssim", "--mid", MID, "--secret-key", TOSS_SECRET]
        } else {
            vec!["pgsim"]
        })
        .args([
            "--listen",
            &format!("127.0.0.1:{pg_port}"),
            "--seed",
            &a.seed.to_string(),
            "--timeout-rate",
            &a.timeout_rate.to_string(),
            "--error-rate",
            &a.error_rate.to_string(),
            "--drop-response-rate",
            &a.drop_response_rate.to_string(),
            "--latency-ms",
            &a.latency_ms.to_string(),
            "--latency-jitter-ms",
            &a.latency_jitter_ms.to_string(),
            "--hang-ms",
            &(a.pg_deadline_ms * 3).to_string(),
        ])
        .stdout(Stdio::from(pg_log.try_clone()?))
        .stderr(Stdio::from(pg_log))
        .spawn()?;
    let _pgsim = KillOnDrop(pgsim);
    wait_healthy(&http, &pg_url, Duration::from_secs(20)).await?;

    // A webhook receiver: every `paid` announcement is remembered (duplicates allowed).
    let announced_paid: Arc<Mutex<HashSet<String>>> = Arc::default();
    let hook_url = {
        let seen = announced_paid.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        if v["status"] == "paid" {
                            if let Some(id) = v["imp_uid"].as_str() {
                                seen.lock().unwrap().insert(id.to_owned());
                            }
                        }
                    }
                    "ok"
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}/hook")
    };

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
    let creds: Value = {
        let p = pier.lock().unwrap();
        let out = p.run(&["merchant", "create", "--name", "chaos", "--json"])?;
        let v: Value = serde_json::from_str(&out)?;
        let code = v["imp_code"].as_str().unwrap_or_default().to_owned();
        if toss {
            p.run(&[
                "channel",
                "add",
                "--merchant",
                &code,
                "--pg",
                "tosspayments",
                "--mid",
                MID,
                "--default",
                "--secret-key",
                TOSS_SECRET,
                "--client-key",
                "test_ck_chaos",
                "--api-base",
                &pg_url,
            ])?;
        } else {
            p.run(&[
                "channel",
                "add",
                "--merchant",
                &code,
                "--pg",
                "jtnet",
                "--mid",
                MID,
                "--default",
                "--target",
                &pg_url,
            ])?;
        }
        p.run(&[
            "merchant",
            "set-webhook",
            "--merchant",
            &code,
            "--url",
            &hook_url,
        ])?;
        v
    };
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

    // Billing keys for `again` (issued before the kills; a fault just means another try).
    for i in 0..CUSTOMERS {
        let mut ok = false;
        for _ in 0..20 {
            let r = client
                .send(
                    reqwest::Method::POST,
                    &format!("/subscribe/customers/chaos-cust-{i}"),
                    Some(&json!({"card_number": CARD_APPROVE, "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12"})),
                    None,
                )
                .await;
            if let Some((200, _, _, v)) = r {
                if v["code"] == 0 {
                    ok = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::ensure!(ok, "could not issue billing key {i}");
    }

    // The plan: which payment is what. EXTENSION POINT (cancels): add partial/full cancels of
    // some paid payments here (with their own Idempotency-Keys), and check them below.
    let mut rng = Rng::new(a.seed);
    struct Plan {
        merchant_uid: String,
        path: &'static str,
        body: Value,
    }
    let mut plans = Vec::with_capacity(a.payments as usize);
    for i in 0..a.payments {
        let merchant_uid = format!("chaos-{}-{i}", a.seed);
        let amount = 1000 + 100 * rng.below(990) as i64;
        if rng.chance(a.again_share) {
            plans.push(Plan {
                body: json!({"merchant_uid": merchant_uid, "amount": amount, "customer_uid": format!("chaos-cust-{}", rng.below(CUSTOMERS)), "name": "chaos again"}),
                merchant_uid,
                path: "/subscribe/payments/again",
            });
        } else {
            let card = match rng.below(100) {
                0..=4 => CARD_DECLINE,
                5..=14 => CARD_APPROVE_2,
                _ => CARD_APPROVE,
            };
            plans.push(Plan {
                body: json!({"merchant_uid": merchant_uid, "amount": amount, "card_number": card, "expiry": "2030-12", "birth": "880101", "pwd_2digit": "12", "name": "chaos onetime"}),
                merchant_uid,
                path: "/subscribe/payments/onetime",
            });
        }
    }

    // The killer: SIGKILL at random moments spread over the run, restart right after. With
    // several instances kill j hits instance j mod N while the others keep serving.
    let kills_done = Arc::new(AtomicU64::new(0));
    let killer = {
        let (piers, client, http, bases, kills_done) = (
            piers.clone(),
            client.clone(),
            http.clone(),
            bases.clone(),
            kills_done.clone(),
        );
        let (n, k) = (a.payments, a.kills);
        let mut krng = Rng::new(a.seed ^ 0xDEAD);
        tokio::spawn(async move {
            for j in 1..=k {
                let at = j * n / (k + 1);
                while client.c.done.load(Ordering::Relaxed) < at {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                tokio::time::sleep(Duration::from_millis(krng.below(400))).await;
                let victim = (j as usize - 1) % piers.len();
                let (pier, base) = (&piers[victim], &bases[victim]);
                pier.lock().unwrap().kill();
                kills_done.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(krng.below(1000))).await;
                if let Err(e) = pier.lock().unwrap().start() {
                    eprintln!("restart failed: {e}");
                }
                if let Err(e) = wait_healthy(&http, base, Duration::from_secs(60)).await {
                    eprintln!("{e}");
                }
                eprintln!(
                    "[chaos] kill {j}/{k} ({}) done at {} payments",
                    pier.lock().unwrap().name,
                    client.c.done.load(Ordering::Relaxed)
                );
            }
        })
    };

    // The clients.
    let outcomes: Arc<Mutex<HashMap<String, Outcome>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut tasks = Vec::with_capacity(plans.len());
    for (i, plan) in plans.into_iter().enumerate() {
        let (client, outcomes) = (client.clone(), outcomes.clone());
        let give_up = Duration::from_secs(a.payment_timeout_secs);
        let idem = format!("chaos-idem-{}-{i}", a.seed);
        tasks.push(tokio::spawn(async move {
            let o = client.pay(plan.path, plan.body, idem, give_up).await;
            outcomes.lock().unwrap().insert(plan.merchant_uid, o);
            let d = client.c.done.fetch_add(1, Ordering::Relaxed) + 1;
            if d % 1000 == 0 {
                eprintln!("[chaos] {d} payments answered");
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let drive_secs = started.elapsed().as_secs_f64();
    killer.await?;

    // Let Pier finish reconciling, then one explicit pass (`pier reconcile`) for good measure.
    let settle_started = Instant::now();
    loop {
        let r = client
            .send(reqwest::Method::GET, "/admin/unsettled", None, None)
            .await;
        let open = r.map(|(_, _, _, v)| v["response"]["total"].as_i64().unwrap_or(-1));
        if open == Some(0) || settle_started.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let reconcile_out = pier.lock().unwrap().run(&["reconcile", "--json"])?;

    // Cancels under the same PG faults: a 500 KRW partial refund of every fifth paid payment,
    // retried with its own Idempotency-Key until Pier answers finally; then wait until no refund
    // is pending at Pier (an unknown PG answer is retried by Pier with the same cancellation_id).
    let paid_uids: Vec<String> = {
        let o = outcomes.lock().unwrap();
        let mut v: Vec<String> = o
            .iter()
            .filter(|(_, x)| matches!(x, Outcome::Paid { .. }))
            .map(|(u, _)| u.clone())
            .collect();
        v.sort();
        v.into_iter().step_by(5).collect()
    };
    let cancels_ok = Arc::new(AtomicU64::new(0));
    let cancels_refused = Arc::new(AtomicU64::new(0));
    let cancels_gave_up = Arc::new(AtomicU64::new(0));
    let mut cancel_tasks = Vec::new();
    for uid in paid_uids.clone() {
        let client = client.clone();
        let (ok, refused, gave_up) = (
            cancels_ok.clone(),
            cancels_refused.clone(),
            cancels_gave_up.clone(),
        );
        cancel_tasks.push(tokio::spawn(async move {
            let body = json!({"merchant_uid": uid, "amount": 500, "reason": "chaos refund"});
            let idem = format!("chaos-cancel-{uid}");
            // Pier retries an unknown cancel with backoff (5 s, 10 s, 20 s …): keep asking ~3 min.
            for _ in 0..600 {
                match client
                    .send(
                        reqwest::Method::POST,
                        "/payments/cancel",
                        Some(&body),
                        Some(&idem),
                    )
                    .await
                {
                    Some((200, false, _, v)) if v["code"] == 0 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Some((200, false, _, _)) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(300)).await,
                }
            }
            gave_up.fetch_add(1, Ordering::Relaxed);
        }));
    }
    for t in cancel_tasks {
        t.await?;
    }
    let refunds_wait = Instant::now();
    let mut refunds_pending = 0u64;
    for uid in &paid_uids {
        let imp_uid = match client
            .send(
                reqwest::Method::GET,
                &format!("/payments/find/{uid}"),
                None,
                None,
            )
            .await
        {
            Some((200, _, _, v)) => v["response"]["imp_uid"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            _ => continue,
        };
        loop {
            let pending = match client
                .send(
                    reqwest::Method::GET,
                    &format!("/payments/{imp_uid}/balance"),
                    None,
                    None,
                )
                .await
            {
                Some((200, _, _, v)) => {
                    v["response"]["cancel_pending_amount"].as_i64().unwrap_or(0)
                }
                _ => 1,
            };
            if pending == 0 {
                break;
            }
            if refunds_wait.elapsed() > Duration::from_secs(180) {
                refunds_pending += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // ---- Verification ------------------------------------------------------------------------
    let outcomes = outcomes.lock().unwrap().clone();
    // Pier's view: every attempt of every merchant_uid.
    let mut pier_paid: HashMap<String, (String, i64)> = HashMap::new(); // imp_uid -> (uid, amount)
    let mut pier_paid_per_uid: HashMap<String, u32> = HashMap::new();
    let mut pier_unsettled = 0u64;
    let mut attempts_total = 0u64;
    let mut pier_refunded: HashMap<String, i64> = HashMap::new(); // imp_uid -> cancel_amount
    let uids: Vec<String> = outcomes.keys().cloned().collect();
    let views = Arc::new(Mutex::new(Vec::new()));
    let mut lookups = Vec::new();
    for chunk in uids.chunks(uids.len().div_ceil(16).max(1)) {
        let (client, chunk, views) = (client.clone(), chunk.to_vec(), views.clone());
        lookups.push(tokio::spawn(async move {
            for uid in chunk {
                for _ in 0..20 {
                    let r = client
                        .send(
                            reqwest::Method::GET,
                            &format!("/payments/findAll/{uid}?limit=100"),
                            None,
                            None,
                        )
                        .await;
                    match r {
                        Some((200, _, _, v)) => {
                            views
                                .lock()
                                .unwrap()
                                .push((uid.clone(), v["response"]["list"].clone()));
                            break;
                        }
                        Some((404, _, _, _)) => {
                            views.lock().unwrap().push((uid.clone(), json!([])));
                            break;
                        }
                        _ => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            }
        }));
    }
    for l in lookups {
        l.await?;
    }
    let views = views.lock().unwrap().clone();
    let looked_up = views.len();
    // Every attempt's order id (imp_uid) -> merchant_uid: Toss's books know only the order id.
    let uid_of: HashMap<String, String> = views
        .iter()
        .flat_map(|(uid, list)| {
            list.as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["imp_uid"].as_str())
                .map(|id| (id.to_owned(), uid.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    for (uid, list) in &views {
        for p in list.as_array().into_iter().flatten() {
            attempts_total += 1;
            let imp_uid = p["imp_uid"].as_str().unwrap_or_default().to_owned();
            let net = p["amount"].as_i64().unwrap_or(0) - p["cancel_amount"].as_i64().unwrap_or(0);
            pier_refunded.insert(imp_uid.clone(), p["cancel_amount"].as_i64().unwrap_or(0));
            match p["status"].as_str() {
                Some("paid") | Some("cancelled")
                    if p["paid_at"].as_i64().unwrap_or(0) > 0 && net > 0 =>
                {
                    pier_paid.insert(imp_uid, (uid.clone(), net));
                    *pier_paid_per_uid.entry(uid.clone()).or_default() += 1;
                }
                Some("ready") => pier_unsettled += 1,
                _ => {}
            }
        }
    }
    let pier_total: i64 = pier_paid.values().map(|(_, a)| *a).sum();

    // The PG's view.
    let ledger: Value = http
        .get(format!("{pg_url}/admin/ledger"))
        .send()
        .await?
        .json()
        .await?;
    let orders = ledger["orders"].as_array().cloned().unwrap_or_default();
    let mine = |o: &&Value| o["mid"] == MID;
    let mut live_per_uid: HashMap<String, u32> = HashMap::new();
    let mut live_orders: HashSet<String> = HashSet::new();
    let mut pg_net: i64 = 0;
    let mut pg_refunded: i64 = 0;
    let mut refund_mismatches = 0u64;
    let (mut pg_voided, mut pg_declined, mut pg_approved_ever) = (0u64, 0u64, 0u64);
    for o in orders.iter().filter(mine) {
        let net = o["net_krw"].as_i64().unwrap_or(0);
        pg_net += net;
        match o["status"].as_str() {
            Some("voided") => pg_voided += 1,
            Some("declined") => pg_declined += 1,
            _ => {}
        }
        if o["pg_tid"].is_string() && o["status"] != "declined" {
            pg_approved_ever += 1;
        }
        let refunded_at_pg = o["cancelled_krw"].as_i64().unwrap_or(0);
        pg_refunded += refunded_at_pg;
        let order_id = o["order_id"].as_str().unwrap_or_default();
        if refunded_at_pg != pier_refunded.get(order_id).copied().unwrap_or(0) {
            refund_mismatches += 1;
        }
        if net > 0 {
            let uid = match o["merchant_uid"].as_str() {
                Some(u) => u.to_owned(),
                None => uid_of
                    .get(o["order_id"].as_str().unwrap_or_default())
                    .cloned()
                    .unwrap_or_else(|| o["order_id"].as_str().unwrap_or_default().to_owned()),
            };
            *live_per_uid.entry(uid).or_default() += 1;
            live_orders.insert(o["order_id"].as_str().unwrap_or_default().to_owned());
        }
    }
    let duplicates = live_per_uid.values().filter(|n| **n > 1).count()
        + pier_paid_per_uid.values().filter(|n| **n > 1).count();
    let orphans = live_orders
        .iter()
        .filter(|id| !pier_paid.contains_key(*id))
        .count();
    let ghosts = pier_paid
        .keys()
        .filter(|id| !live_orders.contains(*id))
        .count();
    // What clients were told, against the books.
    let mut told_paid_not_paid = 0u64;
    let mut told_failed_but_charged = 0u64;
    let (mut n_paid, mut n_failed, mut gave_up) = (0u64, 0u64, 0u64);
    let mut fail_reasons: HashMap<String, u64> = HashMap::new();
    for (uid, o) in &outcomes {
        match o {
            Outcome::Paid { imp_uid } => {
                n_paid += 1;
                let ok = match imp_uid {
                    Some(id) => pier_paid.contains_key(id),
                    None => pier_paid_per_uid.get(uid).copied().unwrap_or(0) == 1,
                };
                if !ok {
                    told_paid_not_paid += 1;
                }
            }
            Outcome::Failed { message } => {
                n_failed += 1;
                let short: String = message.chars().take(40).collect();
                *fail_reasons.entry(short).or_default() += 1;
                if live_per_uid.get(uid).copied().unwrap_or(0) > 0 {
                    told_failed_but_charged += 1;
                }
            }
            Outcome::GaveUp => gave_up += 1,
        }
    }
    // EXTENSION POINT (cancels): compare Pier's cancel_amount per payment with the ledger's
    // cancels (`ledger.cancels`, `orders[].cancelled_krw`); the totals check above already uses
    // net amounts once Pier's paid total subtracts cancel_amount.
    // Webhooks: every paid payment announced at least once (duplicates allowed). Deliveries cut
    // by a kill come back when their lease runs out, so allow a while.
    let webhook_wait = Instant::now();
    let webhooks_missing = loop {
        let missing = {
            let seen = announced_paid.lock().unwrap();
            pier_paid.keys().filter(|id| !seen.contains(*id)).count()
        };
        if missing == 0 || webhook_wait.elapsed() > Duration::from_secs(180) {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let webhooks_announced = announced_paid.lock().unwrap().len();

    let c = &client.c;
    let ok = duplicates == 0
        && orphans == 0
        && ghosts == 0
        && pier_total == pg_net
        && told_paid_not_paid == 0
        && told_failed_but_charged == 0
        && gave_up == 0
        && pier_unsettled == 0
        && webhooks_missing == 0
        && refund_mismatches == 0
        && pier_refunded.values().sum::<i64>() == 500 * cancels_ok.load(Ordering::Relaxed) as i64
        && refunds_pending == 0
        && cancels_gave_up.load(Ordering::Relaxed) == 0
        && looked_up == outcomes.len();
    let log_count = |needle: &str| -> u64 {
        let mut n = 0;
        for p in &piers {
            let p = p.lock().unwrap();
            for s in 1..=p.starts {
                if let Ok(t) = std::fs::read_to_string(p.log_path(s)) {
                    n += t.matches(needle).count() as u64;
                }
            }
        }
        n
    };
    let summary = json!({
        "ok": ok,
        "payments": a.payments,
        "kills": kills_done.load(Ordering::Relaxed),
        "instances": n,
        "pier_starts": piers.iter().map(|p| p.lock().unwrap().starts).sum::<u64>(),
        "seconds": {"drive": drive_secs, "total": started.elapsed().as_secs_f64()},
        "faults": {
            "pg": a.pg,
            "pgsim": {"timeout_rate": a.timeout_rate, "error_rate": a.error_rate, "drop_response_rate": a.drop_response_rate,
                      "latency_ms": a.latency_ms, "latency_jitter_ms": a.latency_jitter_ms},
            "pier_log_unknown_outcomes": log_count("PG outcome unknown"),
            "pier_log_net_cancels": log_count("net-cancelled at the PG"),
            "pier_log_reconciled_paid": log_count("reconciled: paid"),
            "pier_log_reconciled_failed": log_count("reconciled: failed"),
        },
        "client": {
            "requests": c.requests.load(Ordering::Relaxed),
            "transport_errors": c.conn_errors.load(Ordering::Relaxed),
            "unknown_answers": c.unknown_answers.load(Ordering::Relaxed),
            "in_progress_answers": c.in_progress_answers.load(Ordering::Relaxed),
            "server_errors": c.server_errors.load(Ordering::Relaxed),
            "idempotency_409": c.idem_conflicts.load(Ordering::Relaxed),
            "idempotent_replays": c.replays.load(Ordering::Relaxed),
            "told_paid": n_paid, "told_failed": n_failed, "gave_up": gave_up,
            "fail_reasons": fail_reasons,
        },
        "pier": {"attempts": attempts_total, "paid": pier_paid.len(), "paid_total_krw": pier_total, "unsettled": pier_unsettled},
        "pg": {"orders": orders.iter().filter(mine).count(), "approved_ever": pg_approved_ever, "voided": pg_voided,
               "declined": pg_declined, "live_approvals": live_orders.len(), "net_total_krw": pg_net},
        "violations": {
            "duplicates": duplicates, "orphans": orphans, "ghosts": ghosts,
            "totals_equal": pier_total == pg_net,
            "told_paid_not_paid": told_paid_not_paid, "told_failed_but_charged": told_failed_but_charged,
            "paid_without_webhook": webhooks_missing,
            "refund_mismatches": refund_mismatches, "refunds_pending": refunds_pending,
            "refunded_as_asked": pier_refunded.values().sum::<i64>() == 500 * cancels_ok.load(Ordering::Relaxed) as i64,
        },
        "refunds": {"asked": paid_uids.len(), "ok": cancels_ok.load(Ordering::Relaxed),
                    "refused": cancels_refused.load(Ordering::Relaxed), "gave_up": cancels_gave_up.load(Ordering::Relaxed),
                    "pier_total_krw": pier_refunded.values().sum::<i64>(), "pg_total_krw": pg_refunded,
                    "wait_secs": refunds_wait.elapsed().as_secs_f64()},
        "webhooks": {"paid_announced": webhooks_announced, "wait_secs": webhook_wait.elapsed().as_secs_f64()},
        "final_reconcile": serde_json::from_str::<Value>(reconcile_out.trim()).unwrap_or(Value::Null),
        "workdir": work.display().to_string(),
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
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

/// The fresh PostgreSQL database of a run with several instances: created empty (the first
/// `pier` command migrates it), dropped after a passing run.
struct FreshDb {
    admin: String,
    name: String,
    url: String,
}

impl FreshDb {
    async fn create(admin: &str, seed: u64) -> anyhow::Result<Self> {
        use sqlx::Connection;
        let name = format!("pier_chaos_{}_{seed}", std::process::id());
        let mut c = sqlx::PgConnection::connect(admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await?;
        c.close().await?;
        // The admin URL with the database name replaced (its query string kept).
        let (head, query) = match admin.split_once('?') {
            Some((h, q)) => (h, format!("?{q}")),
            None => (admin, String::new()),
        };
        let server = match head.rfind('/') {
            Some(i) if i > head.find("//").map_or(0, |j| j + 1) => &head[..i],
            _ => head,
        };
        let url = format!("{server}/{name}{query}");
        Ok(Self {
            admin: admin.to_owned(),
            name,
            url,
        })
    }

    async fn drop_it(self) {
        use sqlx::Connection;
        if let Ok(mut c) = sqlx::PgConnection::connect(&self.admin).await {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            if let Err(e) = sqlx::query(&sql).execute(&mut c).await {
                eprintln!("[chaos] dropping {}: {e}", self.name);
            }
            let _ = c.close().await;
        }
    }
}

/// Kills pgsim when main returns (including on errors).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
