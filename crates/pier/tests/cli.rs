//! The binary as a newcomer uses it: `pier serve` on a fresh data dir prints the demo credentials
//! and answers getToken within a second; `merchant create`, `channel add/list` work against the
//! same database while the server runs; SIGTERM shuts it down gracefully.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::free_port;

#[test]
fn serve_prints_demo_credentials_and_answers_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pier"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("PIER_DATA_DIR", dir.path())
        .env_remove("PIER_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut key, mut secret, mut code) = (String::new(), String::new(), String::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        let mut f = line.split_whitespace();
        match (f.next(), f.next()) {
            (Some("imp_key:"), Some(v)) => key = v.into(),
            (Some("imp_secret:"), Some(v)) => secret = v.into(),
            (Some("imp_code:"), Some(v)) => code = v.into(),
            _ => {}
        }
        if line.starts_with("Pier listening") {
            break;
        }
    }
    assert!(
        !key.is_empty() && !secret.is_empty() && code.starts_with("imp"),
        "credentials printed"
    );
    let body = format!("{{\"imp_key\":\"{key}\",\"imp_secret\":\"{secret}\"}}");
    let out = Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            &format!("http://127.0.0.1:{port}/users/getToken"),
            "-H",
            "content-type: application/json",
            "-d",
            &body,
        ])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"access_token\""), "{text}");
    assert!(
        elapsed < Duration::from_secs(1),
        "getToken answered {elapsed:?} after start"
    );

    // CLI commands against the same database while the server runs.
    let created = Command::new(env!("CARGO_BIN_EXE_pier"))
        .args(["merchant", "create", "--name", "Second Shop", "--json"])
        .env("PIER_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let code2 = m["imp_code"].as_str().unwrap();
    assert!(m["imp_secret"].as_str().unwrap().len() >= 32);
    let added = Command::new(env!("CARGO_BIN_EXE_pier"))
        .args([
            "channel",
            "add",
            "--merchant",
            code2,
            "--pg",
            "jtnet",
            "--mid",
            "mid_two",
            "--default",
        ])
        .env("PIER_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let list = Command::new(env!("CARGO_BIN_EXE_pier"))
        .args(["channel", "list"])
        .env("PIER_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("jtnet.mid_two") && list.contains("jtnet.jtnet_demo"),
        "{list}"
    );
    // The new merchant can get a token from the running server right away.
    let body = format!(
        "{{\"imp_key\":\"{}\",\"imp_secret\":\"{}\"}}",
        m["imp_key"].as_str().unwrap(),
        m["imp_secret"].as_str().unwrap()
    );
    let out = Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            &format!("http://127.0.0.1:{port}/users/getToken"),
            "-H",
            "content-type: application/json",
            "-d",
            &body,
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"access_token\""));
    // Unknown pg is refused clearly.
    let bad = Command::new(env!("CARGO_BIN_EXE_pier"))
        .args(["channel", "add", "--merchant", code2, "--pg", "kcp"])
        .env("PIER_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unsupported pg"));

    // Graceful shutdown on SIGTERM.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A second start on the same data dir does not create another demo merchant.
    let out = Command::new(env!("CARGO_BIN_EXE_pier"))
        .args(["merchant", "list"])
        .env("PIER_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let merchants = String::from_utf8_lossy(&out.stdout);
    assert_eq!(merchants.lines().count(), 2, "{merchants}");
}
