#!/usr/bin/env bash
# Builds pier, installs the pinned test dependencies, and runs the browser tests in headless
# Chromium (Debian package: apt-get install -y chromium). Prints node's test runner summary.
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
node --test --test-concurrency=1 --test-reporter=spec tests/
if [ "${SCREENSHOTS:-0}" = "1" ]; then
  node screenshots.js
fi
