#!/usr/bin/env bash
# Presigned GET throughput while uploads are scanned, against the same uploads with scanning off.
#
# One Latchkey per round (default settings, access log included); a 4 KiB object is read with
# `wrk -t1 -c32 -d10s` on its presigned URL while bench/loadgen's putload writes 1 MiB text
# objects (bench/lib/scan_corpus.py: logs and prose, 0.1 % sensitive lines) over 2 connections
# without pause. Rounds alternate between `[discovery] on_upload = false` and `true` (ROUNDS
# each); each prints GET req/s, the MB/s uploaded, and with scanning on the MB/s scanned and the
# queue left at the end. Target: GETs with uploads scanned >= 0.75 x GETs with the same uploads
# unscanned.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
source "$REPO/bench/lib/common.sh"
ROUNDS=${ROUNDS:-3}
PORT=9483

need_debian_packages curl wrk python3
build_latchkey
(cd "$REPO" && cargo build --release --locked -p latchkey-loadgen >&2)
PUTLOAD="$REPO/target/release/putload"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 "$REPO/bench/lib/scan_corpus.py" "$work/corpus.txt" 1
head -c 4096 /dev/urandom >"$work/small.bin"

metric() { curl -s "http://127.0.0.1:$PORT/-/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# round SCAN -> "get_rps upload_mbps scanned_mbps queue_left"
round() {
  local scan=$1 dir="$work/round" loader
  rm -rf "$dir" && mkdir -p "$dir"
  printf 'surfaces = ["s3", "shares", "health", "metrics"]\n[discovery]\non_upload = %s\n' "$scan" >"$dir/config.toml"
  start_latchkey "$dir/data" "$PORT" "$dir/config.toml"
  s3_call PUT "http://127.0.0.1:$PORT/small" >/dev/null
  s3_call PUT "http://127.0.0.1:$PORT/small/4k" --data-binary @"$work/small.bin" >/dev/null
  local url
  url=$(presign_get "small/4k" "http://127.0.0.1:$PORT")
  (
    n=0
    while true; do
      "$PUTLOAD" --endpoint "http://127.0.0.1:$PORT" --access-key "$BENCH_ACCESS_KEY" \
        --secret-key "$BENCH_SECRET_KEY" --concurrency 2 --size 1048576 --count 100 \
        --body-file "$work/corpus.txt" --key-prefix "r$n-" >/dev/null 2>>"$dir/putload.log" || exit 0
      n=$((n + 1))
    done
  ) &
  loader=$!
  sleep 1
  local before_bytes before_scanned start end rps
  before_bytes=$(du -sb "$dir/data" | cut -f1)
  before_scanned=$(metric latchkey_scanned_bytes_total)
  start=$(date +%s.%N)
  rps=$(wrk -t1 -c32 -d10s "$url" | awk '/Requests\/sec/ { print $2 }')
  end=$(date +%s.%N)
  local after_bytes after_scanned queue
  after_bytes=$(du -sb "$dir/data" | cut -f1)
  after_scanned=$(metric latchkey_scanned_bytes_total)
  # The generator first (its child, then the loop), so no upload outlives the server.
  pkill -P "$loader" 2>/dev/null || true
  kill "$loader" 2>/dev/null || true
  wait "$loader" 2>/dev/null || true
  queue=$(s3_call GET "http://127.0.0.1:$PORT/-/findings/queue" | python3 -c 'import json,sys; print(json.load(sys.stdin)["queued"])')
  kill "$LATCHKEY_PID"; wait "$LATCHKEY_PID" 2>/dev/null || true
  awk -v r="$rps" -v b0="$before_bytes" -v b1="$after_bytes" -v s0="${before_scanned:-0}" -v s1="${after_scanned:-0}" \
    -v t0="$start" -v t1="$end" -v q="$queue" \
    'BEGIN { t = t1 - t0; printf "%s %.1f %.1f %s\n", r, (b1 - b0) / t / 1e6, (s1 - s0) / t / 1e6, q }'
}

off=() on=()
for i in $(seq 1 "$ROUNDS"); do
  read -r rps up _ _ <<<"$(round false)"
  echo "round $i  scan off: GET ${rps} req/s  uploads ${up} MB/s" >&2
  off+=("$rps")
  read -r rps up scanned queue <<<"$(round true)"
  echo "round $i  scan on:  GET ${rps} req/s  uploads ${up} MB/s  scanned ${scanned} MB/s  queued at the end ${queue}" >&2
  on+=("$rps")
done
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
off_med=$(printf '%s\n' "${off[@]}" | median)
on_med=$(printf '%s\n' "${on[@]}" | median)
echo "presigned 4 KiB GET while 1 MiB text uploads run: scanned ${on_med} req/s, unscanned ${off_med} req/s"
echo "scanned / unscanned: $(ratio "$on_med" "$off_med") (target >= 0.75)"
