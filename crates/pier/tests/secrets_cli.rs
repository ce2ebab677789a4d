//! The binary's secrets at rest (docs/security/secrets.md): the data dir and every file in it
//! owner-only from creation; `pier serve` with a PostgreSQL URL starts from an empty directory;
//! `merchant rotate-secret` / `revoke-tokens` work against a running server's database.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::free_port;

/// A child process killed when dropped, so a failing test leaves nothing running.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `pier serve` on `port` with `envs`, in `cwd`; waits for "Pier listening" and returns
/// the process and what it printed before (the demo credentials).
fn serve(cwd: &std::path::Path, port: u16, envs: &[(&str, String)]) -> (Proc, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pier"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(cwd)
        .env_remove("PIER_DATABASE_URL")
        .env_remove("PIER_DATA_DIR")
        .env_remove("PIER_SERVER_KEY")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let proc = Proc(child);
    let mut printed = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with("Pier listening") {
            return (proc, printed);
        }
        printed.push(line);
    }
    let err: Vec<String> = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .collect();
    panic!("pier serve exited before listening: {printed:?} {err:?}");
}

fn value_of(printed: &[String], label: &str) -> String {
    printed
        .iter()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(label)).then(|| f.next().unwrap_or_default().to_owned())
        })
        .unwrap_or_else(|| panic!("{label} not printed: {printed:?}"))
}

/// `POST /users/getToken` with curl: (HTTP status, body).
fn get_token(port: u16, key: &str, secret: &str) -> (u16, String) {
    let body = format!("{{\"imp_key\":\"{key}\",\"imp_secret\":\"{secret}\"}}");
    call(port, "POST", "/users/getToken", None, Some(&body))
}

fn call(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut args = vec![
        "-s".to_owned(),
        "-w".into(),
        "\n%{http_code}".into(),
        "-X".into(),
        method.into(),
        format!("http://127.0.0.1:{port}{path}"),
        "-H".into(),
        "content-type: application/json".into(),
    ];
    if let Some(t) = token {
        args.extend(["-H".into(), format!("Authorization: {t}")]);
    }
    if let Some(b) = body {
        args.extend(["-d".into(), b.into()]);
    }
    let out = Command::new("curl").args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn token_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["response"]["access_token"].as_str().unwrap().to_owned()
}

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[test]
fn the_data_dir_is_0700_and_every_file_in_it_0600() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("nested").join("data");
    let port = free_port();
    let (_p, printed) = serve(
        root.path(),
        port,
        &[("PIER_DATA_DIR", data.display().to_string())],
    );
    // A write, so SQLite's -wal and -shm exist.
    let (s, _) = get_token(
        port,
        &value_of(&printed, "imp_key:"),
        &value_of(&printed, "imp_secret:"),
    );
    assert_eq!(s, 200);
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&root.path().join("nested")), 0o700, "created parent");
    let mut seen = Vec::new();
    for e in std::fs::read_dir(&data).unwrap() {
        let p = e.unwrap().path();
        seen.push(p.file_name().unwrap().to_string_lossy().into_owned());
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    for f in ["server.key", "pier.db", "pier.db-wal", "pier.db-shm"] {
        assert!(seen.iter().any(|s| s == f), "{f} missing: {seen:?}");
    }
}

#[cfg(unix)]
#[test]
fn files_left_readable_by_an_older_version_are_made_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("server.key");
    std::fs::write(&key, "cd".repeat(32)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port();
    let (_p, _) = serve(
        dir.path(),
        port,
        &[("PIER_DATA_DIR", dir.path().display().to_string())],
    );
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&dir.path().join("pier.db")), 0o600);
}

/// The test PostgreSQL from `PIER_TEST_DATABASE_URL`, in a fresh schema.
fn pg_url() -> Option<String> {
    let base = std::env::var("PIER_TEST_DATABASE_URL").ok()?;
    let schema = format!("cli_{}", pier_domain::ids::random_hex(6));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(&base).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

#[test]
fn serve_with_a_postgres_url_starts_from_an_empty_directory() {
    let Some(url) = pg_url() else {
        eprintln!("PIER_TEST_DATABASE_URL not set: skipped");
        return;
    };
    let key = "ab".repeat(32);
    for (envs, needs_dir) in [
        // The server key from the environment: nothing needs the data dir (the test PG
        // journals to the database on PostgreSQL), so none is created.
        (
            vec![
                ("PIER_DATABASE_URL", url.clone()),
                ("PIER_SERVER_KEY", key.clone()),
            ],
            false,
        ),
        // The server key created in the (default) data dir.
        (vec![("PIER_DATABASE_URL", url.clone())], true),
    ] {
        let empty = tempfile::tempdir().unwrap();
        let port = free_port();
        let (_p, _) = serve(empty.path(), port, &envs);
        assert_eq!(call(port, "GET", "/healthz", None, None).0, 200);
        let dir = empty.path().join("pier-data");
        assert_eq!(dir.exists(), needs_dir, "{envs:?}");
        #[cfg(unix)]
        if needs_dir {
            assert_eq!(mode(&dir), 0o700);
        }
    }
}

#[test]
fn rotate_secret_and_revoke_tokens_reach_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = ("PIER_DATA_DIR", dir.path().display().to_string());
    let (_p, printed) = serve(dir.path(), port, std::slice::from_ref(&data));
    let (code, key, secret) = (
        value_of(&printed, "imp_code:"),
        value_of(&printed, "imp_key:"),
        value_of(&printed, "imp_secret:"),
    );
    let (s, b) = get_token(port, &key, &secret);
    assert_eq!(s, 200, "{b}");
    let token = token_of(&b);
    let authed = |t: &str| call(port, "GET", "/payments/status/all", Some(t), None).0;
    assert_eq!(authed(&token), 200);

    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pier"))
            .args(args)
            .env(data.0, &data.1)
            .env_remove("PIER_DATABASE_URL")
            .env_remove("PIER_SERVER_KEY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Revocation: the running server refuses the token within its 5 s cache bound.
    let out = cli(&["merchant", "revoke-tokens", "--merchant", &code]);
    assert!(out.contains("revoked 1"), "{out}");
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let end = Instant::now() + Duration::from_secs(15);
        while !done() {
            assert!(Instant::now() < end, "{what} not refused after 15 s");
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    until("revoked token", &|| authed(&token) == 401);

    // Rotation: a new secret once; the old one and its tokens stop working (merchant cache
    // bound 10 s), the new one works.
    let (_, b) = get_token(port, &key, &secret);
    let token2 = token_of(&b);
    let out = cli(&["merchant", "rotate-secret", "--merchant", &code]);
    let new_secret = value_of(
        &out.lines().map(str::to_owned).collect::<Vec<_>>(),
        "imp_secret:",
    );
    assert_ne!(new_secret, secret);
    until("old secret", &|| get_token(port, &key, &secret).0 == 401);
    until("token of the old secret", &|| authed(&token2) == 401);
    let (s, b) = get_token(port, &key, &new_secret);
    assert_eq!(s, 200, "{b}");
    assert_eq!(authed(&token_of(&b)), 200);

    // An unknown merchant is an error, not a silent success.
    let out = Command::new(env!("CARGO_BIN_EXE_pier"))
        .args(["merchant", "revoke-tokens", "--merchant", "imp_nobody"])
        .env(data.0, &data.1)
        .output()
        .unwrap();
    assert!(!out.status.success());
}
