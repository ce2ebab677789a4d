//! Sets `PIER_VERSION` ("0.1.0 (commit 1a2b3c4d5e6f)") for `pier --version`: the commit comes
//! from git when building in a checkout, "unknown" otherwise (a source tarball, a container
//! build without `.git`). A checkout with uncommitted changes gets "-dirty".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    let dirty =
        commit.is_some() && git(&["status", "--porcelain", "--untracked-files=no"]).is_some();
    let commit = match (std::env::var("PIER_BUILD_COMMIT").ok(), commit) {
        // A build outside a checkout (a container) may name its commit explicitly.
        (Some(c), _) if !c.trim().is_empty() => c.trim().to_owned(),
        (_, Some(c)) if dirty => format!("{c}-dirty"),
        (_, Some(c)) => c,
        _ => "unknown".to_owned(),
    };
    println!(
        "cargo:rustc-env=PIER_VERSION={} (commit {commit})",
        env!("CARGO_PKG_VERSION")
    );
    // Rebuild when HEAD moves (a commit, a checkout). In a worktree HEAD lives in the
    // worktree's git dir and the branch refs in the common dir.
    for dir in [
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ]
    .into_iter()
    .flatten()
    {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/refs/heads");
        println!("cargo:rerun-if-changed={dir}/packed-refs");
        println!("cargo:rerun-if-changed={dir}/index");
    }
    println!("cargo:rerun-if-env-changed=PIER_BUILD_COMMIT");
}
