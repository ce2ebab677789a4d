#!/usr/bin/env bash
# Builds pier, installs the pinned test dependencies, and runs the browser tests in headless
# Chromium (Debian package: apt-get install -y chromium). Prints node's test runner summary.
# PIER_E2E_INSTANCES=2 (or 3) runs every test through a round-robin of that many instances on one
# fresh PostgreSQL database made on PIER_TEST_DATABASE_URL (needs psql; see e2e/lib.js).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
cargo build --workspace --bin pier
cd "$here"
npm ci --no-audit --no-fund
if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  echo "Chromium not found at ${CHROMIUM_PATH:-/usr/bin/chromium} (apt-get install -y chromium)" >&2
  exit 1
fi
# The Toss Payments simulator for tests/toss.test.js (which adds a tosspayments channel on it
# to the Pier it starts). Stopped when this script exits.
tosssim_port="$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
export PIER_E2E_TOSSSIM="http://127.0.0.1:${tosssim_port}"
export PIER_E2E_TOSS_SECRET_KEY="test_sk_e2e_tosssim_$RANDOM$RANDOM"
export PIER_E2E_TOSS_CLIENT_KEY="test_ck_e2e_tosssim"
TOSSSIM_SECRET_KEY="$PIER_E2E_TOSS_SECRET_KEY" "${PIER_BIN:-../target/debug/pier}" tosssim \
  --listen "127.0.0.1:${tosssim_port}" --client-key "$PIER_E2E_TOSS_CLIENT_KEY" >/dev/null &
tosssim_pid=$!
trap 'kill "$tosssim_pid" 2>/dev/null || true' EXIT
node --test --test-concurrency=1 --test-reporter=spec tests/
if [ "${SCREENSHOTS:-0}" = "1" ]; then
  node screenshots.js
fi
