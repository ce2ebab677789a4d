//! `pier merchant set-origins`: validates and normalizes, clears with "", refuses unknown
//! merchants; `pier serve` warns about each non-demo merchant without allowed origins, and a
//! running server gates the window by the origins the CLI wrote.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::free_port;

fn pier(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pier"))
        .args(args)
        .env("PIER_DATA_DIR", dir)
        .env_remove("PIER_DATABASE_URL")
        .output()
        .unwrap()
}

fn created(dir: &std::path::Path, name: &str) -> String {
    let out = pier(dir, &["merchant", "create", "--name", name, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let code = m["imp_code"].as_str().unwrap().to_owned();
    let out = pier(
        dir,
        &[
            "channel",
            "add",
            "--merchant",
            &code,
            "--pg",
            "jtnet",
            "--default",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    code
}

#[test]
fn set_origins_validates_and_the_server_enforces_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let gated = created(dir.path(), "Gated Shop");
    let open = created(dir.path(), "Open Shop");

    for bad in [
        "ftp://shop.example",
        "https://shop.example/checkout",
        "shop.example",
    ] {
        let out = pier(
            dir.path(),
            &[
                "merchant",
                "set-origins",
                "--merchant",
                &gated,
                "--origins",
                bad,
            ],
        );
        assert!(!out.status.success(), "{bad} accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("origin"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = pier(
        dir.path(),
        &[
            "merchant",
            "set-origins",
            "--merchant",
            "imp_nobody",
            "--origins",
            "https://a.example",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no merchant"));
    // Cleared and set again: the last one holds.
    let out = pier(
        dir.path(),
        &[
            "merchant",
            "set-origins",
            "--merchant",
            &gated,
            "--origins",
            "",
        ],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("cleared"));
    let out = pier(
        dir.path(),
        &[
            "merchant",
            "set-origins",
            "--merchant",
            &gated,
            "--origins",
            "HTTPS://Shop.Example:443, http://127.0.0.1:3000",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("https://shop.example http://127.0.0.1:3000"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The server warns about the open merchant only, then gates the other by its origins.
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pier"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("PIER_DATA_DIR", dir.path())
        .env_remove("PIER_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut before_listening = Vec::new();
    // Kept open until the end: the server keeps writing its log there.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("Pier listening") {
            break;
        }
        before_listening.push(line);
    }
    let warned = |code: &str| {
        before_listening
            .iter()
            .any(|l| l.contains(code) && l.contains("no allowed origins"))
    };
    assert!(warned(&open), "{before_listening:#?}");
    assert!(!warned(&gated), "{before_listening:#?}");

    let prepare = |origin: &str| {
        let body = format!(
            "{{\"user_code\":\"{gated}\",\"params\":{{\"merchant_uid\":\"cli_o\",\"amount\":1000}}}}"
        );
        let out = Command::new("curl")
            .args([
                "-s",
                "-X",
                "POST",
                &format!("http://127.0.0.1:{port}/checkout/prepare"),
                "-H",
                "content-type: text/plain",
                "-H",
                &format!("origin: {origin}"),
                "-d",
                &body,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let foreign = prepare("https://evil.example");
    assert!(foreign.contains("\"F1005\""), "{foreign}");
    let allowed = prepare("http://127.0.0.1:3000");
    assert!(allowed.contains("\"success\":true"), "{allowed}");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(10), "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}
