//! `pier channel add --pg tosspayments`: the secret key read from stdin is sealed in the
//! database (its text appears nowhere in the SQLite file) and `pier channel list` shows only
//! `secret: set`, with the API base and the public client key; bad input is refused clearly.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const SECRET: &str = "test_sk_cli_never_printed_0123456789";

fn pier(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pier"))
        .args(args)
        .env("PIER_DATA_DIR", dir)
        .env_remove("PIER_DATABASE_URL")
        .env_remove("PIER_TOSS_SECRET_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn toss_channel_secret_is_sealed_and_never_listed() {
    let dir = tempfile::tempdir().unwrap();
    let out = pier(
        dir.path(),
        &["merchant", "create", "--name", "Toss Shop", "--json"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let code = m["imp_code"].as_str().unwrap().to_owned();

    let add = pier(
        dir.path(),
        &[
            "channel",
            "add",
            "--merchant",
            &code,
            "--pg",
            "tosspayments",
            "--secret-key-stdin",
            "--client-key",
            "test_ck_cli_public",
            "--api-base",
            "http://127.0.0.1:9",
            "--mid",
            "toss_one",
            "--default",
        ],
        Some(&format!("{SECRET}\n")),
    );
    assert!(add.status.success(), "{}", text(&add));
    assert!(!text(&add).contains(SECRET), "{}", text(&add));
    assert!(text(&add).contains("tosspayments"), "{}", text(&add));

    let list = pier(dir.path(), &["channel", "list"], None);
    assert!(list.status.success(), "{}", text(&list));
    let listed = text(&list);
    assert!(!listed.contains(SECRET), "{listed}");
    assert!(
        listed.contains("tosspayments.toss_one")
            && listed.contains("secret: set")
            && listed.contains("client_key: test_ck_cli_public")
            && listed.contains("api_base: http://127.0.0.1:9"),
        "{listed}"
    );

    // The secret's text is nowhere in the database files (sealed with AES-256-GCM).
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "secret key in plain text in {}",
                path.display()
            );
        }
    }

    // No secret key at all, a key with ':' and a non-http base are refused without a channel.
    let none = pier(
        dir.path(),
        &[
            "channel",
            "add",
            "--merchant",
            &code,
            "--pg",
            "tosspayments",
            "--client-key",
            "ck",
        ],
        None,
    );
    assert!(!none.status.success());
    assert!(
        text(&none).contains("--secret-key-stdin"),
        "{}",
        text(&none)
    );
    let colon = pier(
        dir.path(),
        &[
            "channel",
            "add",
            "--merchant",
            &code,
            "--pg",
            "tosspayments",
            "--client-key",
            "ck",
            "--secret-key-stdin",
            "--mid",
            "toss_two",
        ],
        Some("test_sk:bad\n"),
    );
    assert!(!colon.status.success());
    assert!(text(&colon).contains("secret key"), "{}", text(&colon));
    assert!(!text(&colon).contains("test_sk:bad"), "{}", text(&colon));
    let ftp = pier(
        dir.path(),
        &[
            "channel",
            "add",
            "--merchant",
            &code,
            "--pg",
            "tosspayments",
            "--client-key",
            "ck",
            "--secret-key-stdin",
            "--api-base",
            "ftp://127.0.0.1",
            "--mid",
            "toss_three",
        ],
        Some("test_sk_ok\n"),
    );
    assert!(!ftp.status.success());
    assert!(text(&ftp).contains("http(s)"), "{}", text(&ftp));
    let list = text(&pier(dir.path(), &["channel", "list"], None));
    assert!(
        !list.contains("toss_two") && !list.contains("toss_three"),
        "{list}"
    );
}
