#!/usr/bin/env bash
# The CI-sized chaos run (1,000 payments, 5 kill -9s, faults at the PG), on the debug build that
# the test step already compiled. The full run is `bench/chaos.sh full` (release build).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bin pier --bin chaos
target/debug/chaos --pier target/debug/pier --payments 1000 --kills 5
# The same with the Toss connector and `pier tosssim` (same faults; 300 payments to keep the whole CI
# run under 30 minutes: it took 27.5 with 500).
target/debug/chaos --pier target/debug/pier --payments 300 --kills 3 --pg toss
