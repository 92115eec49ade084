#!/usr/bin/env bash
# Presigned GET throughput: wrk -t1 -c32 -d10s on one presigned URL, for 4 KiB, 1 MiB and 64 MiB
# objects, beside nginx serving the same bytes as static files, in the same run. Prints
# requests/s and the ratio to nginx (targets: 0.35, 0.6, 0.9). wrk and both servers share the
# machine's cores, as in the issue's reference figures.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
source "$REPO/bench/lib/common.sh"
DURATION=${DURATION:-10s}

need_debian_packages nginx wrk curl
build_latchkey

describe_machine
work=$(mktemp -d)
trap 'kill $LATCHKEY_PID $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/www/bench"
head -c 4096 /dev/urandom >"$work/www/bench/4k"
head -c $((1024 * 1024)) /dev/urandom >"$work/www/bench/1m"
head -c $((64 * 1024 * 1024)) /dev/urandom >"$work/www/bench/64m"

start_nginx "$work" "listen 127.0.0.1:9481; root $work/www;"

start_latchkey "$work/latchkey" 9480
s3_call PUT "http://127.0.0.1:9480/bench" >/dev/null
for size in 4k 1m 64m; do
  s3_call PUT "http://127.0.0.1:9480/bench/$size" -T "$work/www/bench/$size" >/dev/null
done

rps() { wrk -t1 -c32 -d"$DURATION" "$1" | awk '/Requests\/sec/ { print $2 }'; }

printf '%-6s %14s %14s %8s %8s\n' size nginx_req/s latchkey_req/s ratio target
for entry in 4k:0.35 1m:0.6 64m:0.9; do
  size=${entry%%:*} target=${entry##*:}
  url=$(presign_get "bench/$size" "http://127.0.0.1:9480")
  cmp -s <(curl -sf "$url") "$work/www/bench/$size" || { echo "latchkey served wrong bytes for $size" >&2; exit 1; }
  cmp -s <(curl -sf "http://127.0.0.1:9481/bench/$size") "$work/www/bench/$size" || { echo "nginx served wrong bytes for $size" >&2; exit 1; }
  nginx_rps=$(rps "http://127.0.0.1:9481/bench/$size")
  latchkey_rps=$(rps "$url")
  printf '%-6s %14s %14s %8s %8s\n' "$size" "$nginx_rps" "$latchkey_rps" "$(ratio "$latchkey_rps" "$nginx_rps")" "$target"
done
