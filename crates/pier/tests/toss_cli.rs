//! `pier channel add --pg tosspayments`: the secret key read from stdin is sealed in the
//! database (its text appears nowhere in the SQLite file) and `pier channel list` shows only
//! `secret: set`, with the API base and the public client key; bad input is refused clearly.
//! `pier channel rotate-secret` reads the new key from stdin only and re-seals it; `pier channel
//! remove` refuses the default channel and removes an unused one.

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

/// The merchant's imp_code and the ids of its channels, by `pg_provider.mid`, from `channel list`.
fn setup_two_toss_channels(dir: &std::path::Path) -> (String, String, String) {
    let out = pier(
        dir,
        &["merchant", "create", "--name", "Rotate", "--json"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let code = m["imp_code"].as_str().unwrap().to_owned();
    for (mid, default) in [("toss_main", true), ("toss_side", false)] {
        let mut args = vec![
            "channel",
            "add",
            "--merchant",
            &code,
            "--pg",
            "tosspayments",
            "--secret-key-stdin",
            "--client-key",
            "test_ck_rotate",
            "--api-base",
            "http://127.0.0.1:9",
            "--mid",
            mid,
        ];
        if default {
            args.push("--default");
        }
        let add = pier(dir, &args, Some(&format!("{SECRET}\n")));
        assert!(add.status.success(), "{}", text(&add));
    }
    let list = text(&pier(dir, &["channel", "list"], None));
    let id_of = |mid: &str| {
        list.lines()
            .find(|l| l.contains(&format!("tosspayments.{mid}")))
            .and_then(|l| l.split('\t').next())
            .unwrap_or_else(|| panic!("{mid} not listed: {list}"))
            .to_owned()
    };
    (code, id_of("toss_main"), id_of("toss_side"))
}

fn no_file_holds(dir: &std::path::Path, needle: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in plain text in {}",
                path.display()
            );
        }
    }
}

#[test]
fn toss_channel_secret_rotates_from_stdin_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_, main_id, _) = setup_two_toss_channels(dir.path());
    const NEW: &str = "test_sk_rotated_never_printed_9876";

    // The key is never an argument: there is no flag for it.
    let argv = pier(
        dir.path(),
        &[
            "channel",
            "rotate-secret",
            "--channel",
            &main_id,
            "--secret-key",
            NEW,
        ],
        None,
    );
    assert!(!argv.status.success(), "{}", text(&argv));
    // Nothing on stdin: refused, nothing changed.
    let empty = pier(
        dir.path(),
        &["channel", "rotate-secret", "--channel", &main_id],
        Some(""),
    );
    assert!(!empty.status.success());
    assert!(text(&empty).contains("standard input"), "{}", text(&empty));
    // No such channel; a live key for a test channel; a malformed key.
    let nobody = pier(
        dir.path(),
        &["channel", "rotate-secret", "--channel", "ch_nobody"],
        Some(&format!("{NEW}\n")),
    );
    assert!(!nobody.status.success());
    assert!(
        text(&nobody).contains("no channel ch_nobody"),
        "{}",
        text(&nobody)
    );
    let live = pier(
        dir.path(),
        &["channel", "rotate-secret", "--channel", &main_id],
        Some("live_sk_wrong_world_1234\n"),
    );
    assert!(!live.status.success());
    assert!(text(&live).contains("add a new channel"), "{}", text(&live));
    assert!(!text(&live).contains("live_sk_wrong_world_1234"));
    let colon = pier(
        dir.path(),
        &["channel", "rotate-secret", "--channel", &main_id],
        Some("test_sk:bad\n"),
    );
    assert!(!colon.status.success());
    assert!(!text(&colon).contains("test_sk:bad"), "{}", text(&colon));

    let ok = pier(
        dir.path(),
        &["channel", "rotate-secret", "--channel", &main_id],
        Some(&format!("{NEW}\n")),
    );
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("replaced"), "{}", text(&ok));
    assert!(!text(&ok).contains(NEW), "{}", text(&ok));
    let list = text(&pier(dir.path(), &["channel", "list"], None));
    assert!(
        list.contains("secret: set") && !list.contains(NEW),
        "{list}"
    );
    // Sealed like the first key: neither key's text is in any database file.
    no_file_holds(dir.path(), NEW);
    no_file_holds(dir.path(), SECRET);
}

#[test]
fn toss_channel_remove_refuses_the_default_and_removes_an_unused_one() {
    let dir = tempfile::tempdir().unwrap();
    let (code, main_id, side_id) = setup_two_toss_channels(dir.path());

    let default = pier(
        dir.path(),
        &["channel", "remove", "--channel", &main_id],
        None,
    );
    assert!(!default.status.success());
    assert!(
        text(&default).contains(&format!("default channel of merchant {code}")),
        "{}",
        text(&default)
    );

    let side = pier(
        dir.path(),
        &["channel", "remove", "--channel", &side_id],
        None,
    );
    assert!(side.status.success(), "{}", text(&side));
    assert!(text(&side).contains("removed"), "{}", text(&side));
    let list = text(&pier(dir.path(), &["channel", "list"], None));
    assert!(
        list.contains("tosspayments.toss_main") && !list.contains("toss_side"),
        "{list}"
    );
    let again = pier(
        dir.path(),
        &["channel", "remove", "--channel", &side_id],
        None,
    );
    assert!(!again.status.success());
    assert!(text(&again).contains("no channel"), "{}", text(&again));
}
