//! Several `pier serve` processes on one PostgreSQL database share the scheduler: 1,000 due
//! schedules, one process killed with SIGKILL mid-run, and every schedule is charged exactly once
//! at one shared `pier pgsim` (checked against the PG's own ledger) and recorded `executed` /
//! `paid` in Pier — attempts the killed instance left before they reached the PG are voided by
//! the reconciler and charged again under a new imp_uid, not failed. Needs PostgreSQL
//! (`PIER_TEST_DATABASE_URL`); skipped without it.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const N: usize = 1000;
const CODE: &str = "imp10000001";
const KEY: &str = "mp_key";
const SECRET: &str = "mp_secret_0123456789abcdef";

mod common;
use common::free_port;

/// A child process killed (SIGKILL) when dropped, so a failing test leaves nothing running.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pier() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pier"));
    c.env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < end, "{base} did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends a request and reads its JSON answer.
async fn json_of(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

/// Approved orders per merchant_uid in the pgsim's ledger.
async fn approvals(http: &reqwest::Client, pg: &str) -> HashMap<String, usize> {
    let ledger = json_of(http.get(format!("{pg}/admin/ledger"))).await;
    let mut seen = HashMap::new();
    for o in ledger["orders"].as_array().unwrap() {
        let uid = o["merchant_uid"].as_str().unwrap_or_default();
        if uid.starts_with("mp-") && o["status"] == "approved" {
            *seen.entry(uid.to_owned()).or_default() += 1;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_1000_schedules_exactly_once_with_one_killed() {
    let Ok(base) = std::env::var("PIER_TEST_DATABASE_URL") else {
        eprintln!("note: PIER_TEST_DATABASE_URL not set: the multi-process scheduler test needs PostgreSQL; skipped");
        return;
    };
    let schema = format!("mp_{:016x}", rand::random::<u64>());
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();

    // One PG for every instance.
    let pg_port = free_port();
    let pg = format!("http://127.0.0.1:{pg_port}");
    let _pgsim = Proc(
        pier()
            .args(["pgsim", "--listen", &format!("127.0.0.1:{pg_port}")])
            .spawn()
            .unwrap(),
    );
    wait_healthy(&http, &pg).await;

    // Instances share the database and the data dir (so the server key); a short lease so the
    // killed instance's claims are taken over within the test.
    let serve = |port: u16, demo: bool| {
        let mut c = pier();
        c.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--schedule-lease-secs",
            "3",
            "--jobs-poll-ms",
            "100",
            "--pg-deadline-ms",
            "1000",
        ])
        .env("PIER_DATABASE_URL", &url)
        .env("PIER_DATA_DIR", dir.path())
        .env("PIER_DEMO_IMP_CODE", CODE)
        .env("PIER_DEMO_IMP_KEY", KEY)
        .env("PIER_DEMO_IMP_SECRET", SECRET);
        if !demo {
            c.arg("--no-demo");
        }
        Proc(c.spawn().unwrap())
    };
    let ports = [free_port(), free_port(), free_port()];
    let first = serve(ports[0], true);
    let api = format!("http://127.0.0.1:{}", ports[0]);
    wait_healthy(&http, &api).await;
    let added = pier()
        .args([
            "channel",
            "add",
            "--merchant",
            CODE,
            "--pg",
            "jtnet",
            "--mid",
            "jtnet_mp",
            "--default",
            "--target",
            &pg,
        ])
        .env("PIER_DATABASE_URL", &url)
        .env("PIER_DATA_DIR", dir.path())
        .status()
        .unwrap();
    assert!(added.success(), "pier channel add");
    let mut others = vec![serve(ports[1], false), serve(ports[2], false)];
    for p in &ports[1..] {
        wait_healthy(&http, &format!("http://127.0.0.1:{p}")).await;
    }

    let token = json_of(
        http.post(format!("{api}/users/getToken"))
            .json(&json!({"imp_key": KEY, "imp_secret": SECRET})),
    )
    .await;
    let token = token["response"]["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let authed = |r: reqwest::RequestBuilder| r.header("Authorization", format!("Bearer {token}"));
    let post =
        |path: &str, body: Value| json_of(authed(http.post(format!("{api}{path}"))).json(&body));
    let key: Value = post(
        "/subscribe/customers/mp",
        json!({"card_number": "1111-2222-3333-4444", "expiry": "2030-12", "birth": "900101"}),
    )
    .await;
    assert_eq!(key["code"], 0, "{key}");

    // 1,000 schedules, all due a few seconds from now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let at = now + 3;
    for chunk in (0..N).collect::<Vec<_>>().chunks(200) {
        let items: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"merchant_uid": format!("mp-{i:04}"), "schedule_at": at, "amount": 1000}))
            .collect();
        let r: Value = post(
            "/subscribe/payments/schedule",
            json!({"customer_uid": "mp", "schedules": items}),
        )
        .await;
        assert_eq!(r["code"], 0, "{r}");
    }

    // Kill one instance once the run is under way.
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let n = approvals(&http, &pg).await.len();
        if n >= N / 5 {
            break;
        }
        assert!(
            Instant::now() < end,
            "the schedules did not start ({n} charged)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(others.remove(0));

    // Every schedule executed and paid in Pier...
    let list_url = format!(
        "{api}/subscribe/payments/schedule?schedule_from={}&schedule_to={}&schedule_status=executed&limit=1000",
        at - 1,
        at + 1
    );
    let list = loop {
        let r = json_of(authed(http.get(&list_url))).await;
        if r["response"]["total"].as_u64() == Some(N as u64) {
            break r;
        }
        assert!(
            Instant::now() < end,
            "not all executed in time: {}",
            r["response"]["total"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let items = list["response"]["list"].as_array().unwrap();
    assert_eq!(items.len(), N);
    let unpaid: Vec<&Value> = items
        .iter()
        .filter(|s| s["payment_status"] != "paid")
        .collect();
    assert!(
        unpaid.is_empty(),
        "{} executions not paid, e.g. {:?}",
        unpaid.len(),
        unpaid.iter().take(3).collect::<Vec<_>>()
    );
    // ...and charged exactly once at the PG.
    let seen = approvals(&http, &pg).await;
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "charged twice: {twice:?}");
    assert_eq!(seen.len(), N, "every schedule charged");
    for s in items {
        assert!(
            seen.contains_key(s["merchant_uid"].as_str().unwrap()),
            "{s}"
        );
    }

    let failed = json_of(authed(
        http.get(format!("{api}/payments/status/failed?limit=1000")),
    ))
    .await;
    let stranded = failed["response"]["list"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|p| {
                    p["merchant_uid"]
                        .as_str()
                        .is_some_and(|u| u.starts_with("mp-"))
                })
                .count()
        })
        .unwrap_or(0);
    eprintln!("the killed instance left {stranded} attempts that never reached the PG (failed by the reconciler; their schedules were charged again)");

    drop(others);
    drop(first);
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}
