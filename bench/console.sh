#!/usr/bin/env bash
# The console's latency at 100,000 payments and its CSV export's memory (docs/PERFORMANCE.md,
# "Merchant console"). Needs a built pier (PIER_BIN, default target/debug/pier), curl, and
# sqlite3 (SQLite) or psql (PostgreSQL: pass a database URL whose search_path is an empty schema).
#   bench/console.sh [N=200] [DATABASE_URL]
set -euo pipefail
N=${1:-200}
URL=${2:-}
PIER_BIN=${PIER_BIN:-target/debug/pier}
PORT=${PORT:-18998}
BASE=http://127.0.0.1:$PORT
DIR=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
DB_ARGS=(--data-dir "$DIR")
[ -n "$URL" ] && DB_ARGS+=(--database-url "$URL")
PIER_DEMO_IMP_CODE=imp00000001 PIER_DEMO_IMP_KEY=1234567890123456 \
  PIER_DEMO_IMP_SECRET=demo-secret-0123456789abcdef0123456789abcdef RUST_LOG=warn \
  "$PIER_BIN" serve --listen 127.0.0.1:$PORT "${DB_ARGS[@]}" >"$DIR/serve.log" 2>&1 &
PID=$!
for _ in $(seq 1 120); do curl -sf $BASE/healthz >/dev/null && break; sleep 0.5; done
NOW=$(date +%s)
# 100,000 payments over 30 days (one every 26 s): 1 in 14 failed, 1 in 33 partially refunded,
# 1 in 10 by virtual account, 5,000 distinct buyers.
COLS="imp_uid, merchant_id, merchant_uid, pay_method, channel, pg_provider, name, amount, cancel_amount, buyer_name, status, started_at, paid_at, failed_at, cancelled_at, updated_at, fail_reason"
VALS="'imp00000001', 'bench-'||i, CASE WHEN i%10=0 THEN 'vbank' ELSE 'card' END, 'api', 'jtnet', 'item', 1000 + (i%50)*100, CASE WHEN i%33=0 THEN 500 ELSE 0 END, 'buyer'||(i%5000), CASE WHEN i%14=0 THEN 'failed' WHEN i%33=0 THEN 'cancelled' ELSE 'paid' END, $NOW - i*26, CASE WHEN i%14=0 THEN 0 ELSE $NOW - i*26 END, CASE WHEN i%14=0 THEN $NOW - i*26 ELSE 0 END, CASE WHEN i%33=0 THEN $NOW - i*26 ELSE 0 END, $NOW - i*26, CASE WHEN i%14=0 THEN CASE WHEN i%28=0 THEN '[2112] insufficient' ELSE '[3011] suspended' END END"
if [ -z "$URL" ]; then
  sqlite3 "$DIR/pier.db" "PRAGMA busy_timeout=5000; WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<100000) INSERT INTO payments ($COLS) SELECT printf('imp_b%07d', i), $VALS FROM c; ANALYZE;" >/dev/null
else
  psql -q "$URL" -c "INSERT INTO payments ($COLS) SELECT format('imp_b%s', lpad(i::text,7,'0')), $VALS FROM generate_series(1,100000) i; ANALYZE payments;"
fi
echo "benchmark password!" | "$PIER_BIN" operator create "${DB_ARGS[@]}" --merchant imp00000001 \
  --email bench@shop.example --role viewer --password-stdin >/dev/null
CJ="$DIR/cookies"
CS=$(curl -s -c "$CJ" -b "$CJ" $BASE/console/login | grep -o 'name="csrf" value="[^"]*"' | sed 's/.*value="//;s/"//')
curl -s -c "$CJ" -b "$CJ" -o /dev/null -H "Origin: $BASE" $BASE/console/login --data-urlencode "csrf=$CS" \
  --data-urlencode "email=bench@shop.example" --data-urlencode "password=benchmark password!"
CUR=$(curl -s -b "$CJ" "$BASE/console/payments" | grep -o 'before=[^"]*' | head -1 | sed 's/&#38;/\&/g')
for path in "/console/payments" "/console/payments?status=failed" "/console/payments?pay_method=vbank" \
  "/console/payments?q=buyer42" "/console/payments?q=bench-77777" "/console/payments?q=imp_b0054321" \
  "/console/payments?from=$(date -d '-20 days' +%F)&to=$(date -d '-10 days' +%F)" "/console/payments?$CUR" \
  "/console/payments/imp_b0012345" "/console/dashboard"; do
  for _ in $(seq 1 "$N"); do curl -s -b "$CJ" -o /dev/null -w '%{http_code} %{time_total}\n' "$BASE$path"; done >"$DIR/t.txt"
  cut -d' ' -f2 "$DIR/t.txt" | sort -n | awk -v p="$path" -v c="$(cut -d' ' -f1 "$DIR/t.txt" | sort -u | tr '\n' ' ')" \
    '{a[NR]=$1} END {printf "%-58s %s p50 %.1f ms  p99 %.1f ms\n", p, c, a[int(NR*0.5)]*1000, a[int(NR*0.99)]*1000}'
done
hwm() { grep VmHWM /proc/$PID/status | awk '{print $2 " kB"}'; }
echo "peak RSS before CSV: $(hwm)"
# A short range first: the peak (VmHWM only grows) after 3 days vs after 31 days tells a fixed
# overhead (caches filling to their bound) from memory that grows with the rows.
curl -s -b "$CJ" -o "$DIR/short.csv" -w 'CSV of 3 days: %{http_code}, %{size_download} bytes in %{time_total} s\n' \
  "$BASE/console/payments.csv?from=$(date -d '-2 days' +%F)&to=$(date +%F)"
echo "rows: $(($(wc -l <"$DIR/short.csv") - 1)); peak RSS after the 3 days: $(hwm)"
curl -s -b "$CJ" -o "$DIR/out.csv" -w 'CSV of 31 days: %{http_code}, %{size_download} bytes in %{time_total} s\n' \
  "$BASE/console/payments.csv?from=$(date -d '-31 days' +%F)&to=$(date +%F)"
echo "rows: $(($(wc -l <"$DIR/out.csv") - 1)); peak RSS after CSV: $(hwm)"
# Again: memory that grows with the rows exported would raise the peak a second time.
curl -s -b "$CJ" -o "$DIR/out2.csv" -w 'the same CSV again: %{http_code}, %{size_download} bytes in %{time_total} s\n' \
  "$BASE/console/payments.csv?from=$(date -d '-31 days' +%F)&to=$(date +%F)"
echo "peak RSS after the second export: $(hwm)"
