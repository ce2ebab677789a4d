//! `pier operator create`: the password comes from one line of stdin (fewer than 12 characters
//! refused), the role must be admin|operator|viewer, the merchant must exist, an email is taken
//! once; success prints the operator id.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn pier(dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pier"))
        .args(args)
        .env("PIER_DATA_DIR", dir)
        .env_remove("PIER_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn create(dir: &std::path::Path, merchant: &str, email: &str, role: &str, pw: &str) -> Output {
    pier(
        dir,
        &[
            "operator",
            "create",
            "--merchant",
            merchant,
            "--email",
            email,
            "--role",
            role,
            "--password-stdin",
        ],
        pw,
    )
}

#[test]
fn operator_create_reads_the_password_from_stdin_and_prints_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let out = pier(
        dir.path(),
        &["merchant", "create", "--name", "Shop", "--json"],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let code = m["imp_code"].as_str().unwrap();

    let short = create(dir.path(), code, "a@shop.example", "admin", "elevenchars\n");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));

    let bad_role = create(
        dir.path(),
        code,
        "a@shop.example",
        "root",
        "twelve chars!\n",
    );
    assert!(!bad_role.status.success());

    let no_merchant = create(
        dir.path(),
        "imp99999999",
        "a@shop.example",
        "admin",
        "twelve chars!\n",
    );
    assert!(!no_merchant.status.success());
    assert!(String::from_utf8_lossy(&no_merchant.stderr).contains("no merchant"));

    let ok = create(
        dir.path(),
        code,
        "A@Shop.example",
        "admin",
        "twelve chars!\nignored\n",
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let id = String::from_utf8(ok.stdout).unwrap();
    let id = id.trim();
    assert!(id.starts_with("op_") && id.len() == 27, "{id}");

    // The same address (any case) is taken.
    let again = create(
        dir.path(),
        code,
        "a@shop.EXAMPLE",
        "viewer",
        "twelve chars!\n",
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
}
