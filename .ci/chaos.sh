#!/usr/bin/env bash
# The CI-sized chaos run (1,000 payments, 5 kill -9s, faults at the PG), on the debug build that
# the test step already compiled. The full run is `bench/chaos.sh full` (release build).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bin pier --bin chaos
target/debug/chaos --pier target/debug/pier --payments 1000 --kills 5
# The Toss run (`--pg toss`) is not in CI yet: in one run of three a payment whose every inquiry
# met a simulator fault stayed unknown past the harness's 600 s give-up (the reconciler's backoff
# had grown to ~5 min). Run it by hand until that is fixed (docs/RELIABILITY.md):
#   target/debug/chaos --pier target/debug/pier --payments 300 --kills 3 --pg toss
