#!/usr/bin/env bash
# Fuzz Pier's REST API with schemathesis against its own OpenAPI document (/openapi.json).
#
# Starts a Pier (SQLite, in a temp dir) with a known demo merchant, gets a token, and runs
# schemathesis with the checks `not_a_server_error`, `response_schema_conformance` and
# `envelope` (.ci/schemathesis_hooks.py: every answer is {code, message, response} with
# Cache-Control: no-store). Bounded: MAX_EXAMPLES per operation, MAX_TIME seconds overall.
#
#   .ci/schemathesis.sh                 # builds target/debug/pier if PIER_BIN is not set
#   PIER_BIN=target/release/pier MAX_EXAMPLES=50 .ci/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_EXAMPLES=${MAX_EXAMPLES:-15}
MAX_TIME=${MAX_TIME:-120}
VENV=${SCHEMATHESIS_VENV:-${TMPDIR:-/tmp}/pier-schemathesis-venv}
if [[ -z "${PIER_BIN:-}" ]]; then
  cargo build -q --workspace --bin pier
  PIER_BIN=target/debug/pier
fi
if [[ ! -x "$VENV/bin/schemathesis" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q schemathesis
fi
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
KEY=schemathesis0001
SECRET=schemathesis-secret-0123456789abcdef0123456789
"$PIER_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK" \
  --demo-imp-key "$KEY" --demo-imp-secret "$SECRET" >"$WORK/pier.log" 2>&1 &
PIER_PID=$!
trap 'kill $PIER_PID 2>/dev/null || true; wait $PIER_PID 2>/dev/null || true; echo "pier log: $WORK/pier.log"' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
TOKEN=$(curl -fsS -X POST "http://127.0.0.1:$PORT/users/getToken" -H 'content-type: application/json' \
  -d "{\"imp_key\":\"$KEY\",\"imp_secret\":\"$SECRET\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["response"]["access_token"])')
# Something to find: a paid payment and a billing key of the demo merchant.
curl -fsS -X POST "http://127.0.0.1:$PORT/subscribe/payments/onetime" -H "Authorization: $TOKEN" \
  -H 'content-type: application/json' \
  -d '{"merchant_uid":"st-1","amount":1000,"card_number":"4518-4200-0000-0000","expiry":"2030-12"}' >/dev/null
curl -fsS -X POST "http://127.0.0.1:$PORT/subscribe/customers/st-cust" -H "Authorization: $TOKEN" \
  -H 'content-type: application/json' -d '{"card_number":"4518-4200-0000-0000","expiry":"2030-12"}' >/dev/null
# A certified identity verification (the test provider's code is 123456).
CERT=$(curl -fsS -X POST "http://127.0.0.1:$PORT/certifications/otp/request" -H "Authorization: $TOKEN" \
  -H 'content-type: application/json' \
  -d '{"name":"홍길동","phone":"01012345678","birth":"880101","gender_digit":"1","carrier":"SKT"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["response"]["imp_uid"])')
curl -fsS -X POST "http://127.0.0.1:$PORT/certifications/otp/confirm/$CERT" -H "Authorization: $TOKEN" \
  -H 'content-type: application/json' -d '{"otp":"123456"}' >/dev/null
SCHEMATHESIS_HOOKS=.ci/schemathesis_hooks.py \
PYTHONPATH=. \
timeout $((MAX_TIME + 60)) "$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/openapi.json" \
  --url "http://127.0.0.1:$PORT" \
  -H "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,response_schema_conformance,envelope \
  --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" \
  --request-timeout 10 --workers 2 \
  --phases examples,fuzzing \
  --suppress-health-check all \
  "$@"
