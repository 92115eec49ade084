#!/usr/bin/env bash
# Share-link redemptions per second: each request redeems a fresh 1-use link to a 1 KiB object
# over loopback, 64 concurrent clients (bench/loadgen's redeemload; links are minted before the
# clock starts). Embedded SQLite with its data dir on disk, then PostgreSQL (the local server),
# both with durable commits. Anchor, measured in the same run: one fsync per redemption on this
# disk (4 KiB O_DSYNC writes). Targets: >= 5,000/s embedded, >= 3,000/s on PostgreSQL, p99 under
# 20 ms at 64 clients.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
source "$REPO/bench/lib/common.sh"
COUNT=${COUNT:-10000}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}

need_debian_packages curl
build_latchkey
(cd "$REPO" && cargo build --release --locked -p latchkey-loadgen >&2)
work=$(mktemp -d -p "$REPO/target")
trap 'kill $LATCHKEY_PID 2>/dev/null || true; rm -rf "$work"' EXIT

fsyncs=$(dd if=/dev/zero of="$work/probe" bs=4k count=2000 oflag=dsync 2>&1 |
  awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") print int(2000 / $(i - 1)) }')
echo "anchor: one fsync per redemption on this disk = ${fsyncs}/s"

redeem() {
  AWS_ACCESS_KEY_ID=$BENCH_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$BENCH_SECRET_KEY AWS_REGION=us-east-1 \
    "$REPO/target/release/redeemload" --endpoint http://127.0.0.1:9484 --count "$COUNT" --concurrency 64
}

report() {
  local label=$1 line=$2 target=$3 rate p99
  rate=$(sed -n 's/.*redemptions_per_sec=\([0-9.]*\).*/\1/p' <<<"$line")
  p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  printf '%-22s %9s redemptions/s  %5s x the fsync anchor  p99 %6s ms   (target >= %s/s, p99 < 20 ms)\n' \
    "$label" "$rate" "$(ratio "$rate" "$fsyncs")" "$p99" "$target"
}

start_latchkey "$work/sqlite" 9484
report "embedded (SQLite)" "$(redeem)" 5000
kill "$LATCHKEY_PID"; wait "$LATCHKEY_PID" 2>/dev/null || true

if psql "$PG_URL" -tAc 'SELECT 1' >/dev/null 2>&1; then
  schema="lk_bench_$$"
  psql "$PG_URL" -qc "CREATE SCHEMA $schema"
  LATCHKEY_ROOT_ACCESS_KEY=$BENCH_ACCESS_KEY LATCHKEY_ROOT_SECRET_KEY=$BENCH_SECRET_KEY \
    "$LATCHKEY_BIN" serve --data-dir "$work/pg" --listen 127.0.0.1:9484 \
    --meta-url "$PG_URL?options=-c%20search_path%3D$schema" >/dev/null 2>"$work/pg.stderr" &
  LATCHKEY_PID=$!
  wait_for_port 9484
  report "PostgreSQL" "$(redeem)" 3000
  kill "$LATCHKEY_PID"; wait "$LATCHKEY_PID" 2>/dev/null || true
  psql "$PG_URL" -qc "DROP SCHEMA $schema CASCADE" 2>/dev/null
else
  echo "!!! no PostgreSQL at $PG_URL: the PostgreSQL figure was NOT measured !!!"
fi
