#!/usr/bin/env bash
# Peak resident memory of the server while 32 clients each download a 64 MiB object at once
# (target: under 150 MiB). Run twice: clients at full speed, and clients throttled to 20 MiB/s,
# which only stays flat if the server streams with back-pressure instead of buffering.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
source "$REPO/bench/lib/common.sh"
CLIENTS=${CLIENTS:-32}

need_debian_packages curl
build_latchkey
work=$(mktemp -d)
trap 'kill $LATCHKEY_PID 2>/dev/null || true; rm -rf "$work"' EXIT
start_latchkey "$work/data" 9483
s3_call PUT "http://127.0.0.1:9483/rss" >/dev/null
head -c $((64 * 1024 * 1024)) /dev/urandom >"$work/64m"
s3_call PUT "http://127.0.0.1:9483/rss/64m" -T "$work/64m" >/dev/null
rm "$work/64m"
url=$(presign_get rss/64m "http://127.0.0.1:9483")

kib() { awk -v f="$1" '$1 == f":" { print $2 }' "/proc/$LATCHKEY_PID/status"; }
echo "idle RSS: $(( $(kib VmRSS) / 1024 )) MiB"
for rate in full 20M; do
  limit=()
  [ "$rate" = full ] || limit=(--limit-rate "$rate")
  pids=()
  for _ in $(seq 1 "$CLIENTS"); do
    curl -sf "${limit[@]}" -o /dev/null -w '%{size_download}\n' "$url" >>"$work/sizes" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  complete=$(grep -c "^$((64 * 1024 * 1024))$" "$work/sizes")
  rm "$work/sizes"
  echo "$CLIENTS clients at $rate speed: $complete complete downloads; peak RSS so far $(( $(kib VmHWM) / 1024 )) MiB (target < 150 MiB)"
done
