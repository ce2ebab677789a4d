#!/usr/bin/env bash
# Chaos test: kill -9 Pier under load while the PG injects faults, then check the money against
# the PG's ledger (see bench/src/bin/chaos/ and docs/RELIABILITY.md).
#
#   bench/chaos.sh           # CI size: 1,000 payments, 5 kills (< 3 minutes on 2 cores)
#   bench/chaos.sh full      # 10,000 payments, 20 kills
#   bench/chaos.sh -- --seed 7 --timeout-rate 0.1   # extra flags go to the chaos binary
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-small}
[[ $# -gt 0 ]] && shift
[[ "${1:-}" == "--" ]] && shift
cargo build -q --release -p pier -p pier-bench --bin pier --bin chaos
case "$size" in
  small) exec target/release/chaos --pier target/release/pier --payments 1000 --kills 5 "$@" ;;
  full)  exec target/release/chaos --pier target/release/pier --payments 10000 --kills 20 "$@" ;;
  *) echo "usage: bench/chaos.sh [small|full] [-- chaos flags]" >&2; exit 2 ;;
esac
