//! The processes of a run: `pier serve` instances (started, killed, restarted), the PG
//! simulator, the fresh PostgreSQL database of a run with several instances, and their ports
//! and health.

use crate::{Args, MID, TOSS_SECRET};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Pier {
    /// `pier`, or `pier-a`, `pier-b`... with several instances: the prefix of its logs.
    pub name: String,
    pub bin: PathBuf,
    pub data: PathBuf,
    /// The shared database's URL and server key (several instances), else SQLite in `data`.
    pub shared: Option<(String, String)>,
    pub listen: String,
    pub deadline_ms: u64,
    pub child: Option<Child>,
    pub starts: u64,
    pub logs: PathBuf,
}

impl Pier {
    pub fn common(&self, cmd: &mut Command) {
        cmd.env("PIER_DATA_DIR", &self.data)
            .env("RUST_LOG", "info,sqlx=warn");
        if let Some((url, key)) = &self.shared {
            cmd.env("PIER_DATABASE_URL", url)
                .env("PIER_SERVER_KEY", key);
        }
    }

    pub fn log_path(&self, start: u64) -> PathBuf {
        self.logs.join(format!("{}-{start}.log", self.name))
    }

    pub fn start(&mut self) -> std::io::Result<()> {
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
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
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

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn wait_healthy(
    http: &reqwest::Client,
    url: &str,
    within: Duration,
) -> anyhow::Result<()> {
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

/// Starts the PG (`pier pgsim`, or `pier tosssim` with `--pg toss`) with the run's faults on a
/// free port and waits until it is healthy; returns its URL and the guard that kills it.
pub async fn start_pg(
    a: &Args,
    pier_bin: &Path,
    logs: &Path,
    http: &reqwest::Client,
) -> anyhow::Result<(String, KillOnDrop)> {
    // The PG, with faults.
    let pg_port = free_port();
    let pg_url = format!("http://127.0.0.1:{pg_port}");
    let pg_log = std::fs::File::create(logs.join("pgsim.log"))?;
    let toss = a.pg == "toss";
    let pgsim = Command::new(pier_bin)
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
    let guard = KillOnDrop(pgsim);
    wait_healthy(http, &pg_url, Duration::from_secs(20)).await?;
    Ok((pg_url, guard))
}

/// Creates the merchant whose default channel is the run's PG (and whose webhooks go to
/// `hook_url`) and returns its credentials (`pier merchant create --json`).
pub fn create_merchant(
    p: &Pier,
    toss: bool,
    pg_url: &str,
    hook_url: &str,
) -> anyhow::Result<Value> {
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
            pg_url,
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
            pg_url,
        ])?;
    }
    p.run(&[
        "merchant",
        "set-webhook",
        "--merchant",
        &code,
        "--url",
        hook_url,
    ])?;
    Ok(v)
}

/// The fresh PostgreSQL database of a run with several instances: created empty (the first
/// `pier` command migrates it), dropped after a passing run.
pub struct FreshDb {
    pub admin: String,
    pub name: String,
    pub url: String,
}

impl FreshDb {
    pub async fn create(admin: &str, seed: u64) -> anyhow::Result<Self> {
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

    pub async fn drop_it(self) {
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
pub struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
