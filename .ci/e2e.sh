#!/usr/bin/env bash
# Browser end-to-end tests: Debian's Chromium, playwright-core from npm (no browser download).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
bash e2e/run.sh
