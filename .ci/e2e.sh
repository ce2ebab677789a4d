#!/usr/bin/env bash
# Browser end-to-end tests: Debian's Chromium, playwright-core from npm (no browser download).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
# Every browser test through a round-robin of two `pier serve` on one fresh PostgreSQL database,
# each in its own empty directory with the default test PG (issue #20; e2e/lib.js): a page, its
# SDK, the window's pages and form posts, the console's pages and the tests' REST checks may each
# land on either instance.
export PIER_TEST_DATABASE_URL="${PIER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
PIER_E2E_INSTANCES=2 bash e2e/run.sh
# And on one instance on SQLite (the README's default).
bash e2e/run.sh
