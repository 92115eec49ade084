#!/usr/bin/env bash
# The guard's cost and its protection, in one run (issue 12):
#  1. 4 KiB presigned GETs/s with the guard on (every request through the rate limiter, the JSON
#     access log written, metrics served) versus all of it off, rounds alternating: >= 0.9 x;
#  2. the same GET over TLS versus nginx over TLS serving the same bytes, rounds alternating: >= 0.5 x;
#  3. one client's p99 latency at a steady 200 requests/s alone, then while another address
#     floods at full speed (wrk, 64 connections) and is rate-limited: <= 2 x.
# wrk, the servers and the load generator share the machine's cores.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
source "$REPO/bench/lib/common.sh"
DURATION=${DURATION:-8s}
ROUNDS=${ROUNDS:-5}

need_debian_packages nginx wrk curl openssl
build_latchkey
(cd "$REPO" && cargo build --release --locked -p latchkey-loadgen >&2)
PACELOAD="$REPO/target/release/paceload"

describe_machine
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/www/bench"
head -c 4096 /dev/urandom >"$work/www/bench/4k"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

rps() { wrk -t1 -c32 -d"$DURATION" "$1" | awk '/Requests\/sec/ { print $2 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# serve NAME PORT CONFIG_TEXT -> a Latchkey with the 4 KiB object, its presigned URL in $NAME_url
serve() {
  printf '%s\n' "$3" >"$work/$1.toml"
  start_latchkey "$work/$1" "$2" "$work/$1.toml"
  pids+=("$LATCHKEY_PID")
  local base="http://127.0.0.1:$2"
  grep -q tls_cert "$work/$1.toml" && base="https://127.0.0.1:$2"
  s3_call PUT "$base/bench" -k >/dev/null
  s3_call PUT "$base/bench/4k" -k -T "$work/www/bench/4k" >/dev/null
  local url
  url=$(presign_get "bench/4k" "$base")
  cmp -s <(curl -skf "$url") "$work/www/bench/4k" || { echo "$1 served wrong bytes" >&2; exit 1; }
  printf -v "${1}_url" '%s' "$url"
}

# 1. Guard on versus off.
serve on 9490 "$GUARD_ON"
serve off 9491 "$GUARD_OFF"
echo "1. 4 KiB presigned GET, guard, access log and metrics on versus off (target: at least 0.9)"
printf '%-6s %12s %12s %8s\n' round on_req/s off_req/s ratio
ratios=()
for round in $(seq 1 "$ROUNDS"); do
  # Which goes first alternates, so neither always runs on a machine the other just warmed.
  if [ $((round % 2)) = 1 ]; then on=$(rps "$on_url") off=$(rps "$off_url"); else off=$(rps "$off_url") on=$(rps "$on_url"); fi
  ratios+=("$(ratio "$on" "$off")")
  printf '%-6s %12s %12s %8s\n' "$round" "$on" "$off" "${ratios[-1]}"
done
echo "median ratio on/off: $(printf '%s\n' "${ratios[@]}" | median)"
# Into a file first: `grep -q` stops reading at its match, and curl's broken pipe would fail the run.
curl -sf http://127.0.0.1:9490/-/metrics -o "$work/metrics.txt"
grep -q latchkey_requests_total "$work/metrics.txt" || { echo "metrics were not kept" >&2; exit 1; }
kill "${pids[@]}"; pids=()

# 2. TLS: Latchkey versus nginx, same bytes.
chmod a+r "$work/cert.pem" "$work/key.pem"
start_nginx "$work" "listen 127.0.0.1:9483 ssl; ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem; root $work/www;"
serve tls 9492 "tls_cert = \"$work/cert.pem\"
tls_key = \"$work/key.pem\""
cmp -s <(curl -skf https://127.0.0.1:9483/bench/4k) "$work/www/bench/4k" || { echo "nginx served wrong bytes" >&2; exit 1; }
echo
echo "2. 4 KiB GET over TLS, Latchkey presigned versus nginx static (target: at least 0.5)"
printf '%-6s %12s %14s %8s\n' round nginx_req/s latchkey_req/s ratio
ratios=()
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    nginx_rps=$(rps https://127.0.0.1:9483/bench/4k) latchkey_rps=$(rps "$tls_url")
  else
    latchkey_rps=$(rps "$tls_url") nginx_rps=$(rps https://127.0.0.1:9483/bench/4k)
  fi
  ratios+=("$(ratio "$latchkey_rps" "$nginx_rps")")
  printf '%-6s %12s %14s %8s\n' "$round" "$nginx_rps" "$latchkey_rps" "${ratios[-1]}"
done
echo "median ratio latchkey/nginx: $(printf '%s\n' "${ratios[@]}" | median)"
kill "${pids[@]}" "$(cat "$work/nginx.pid")"; pids=()

# 3. A flood from one address (this machine's 192.0.2.2, on a listener of its own) while a polite
# client (loopback, not exempt) keeps a steady rate.
FLOOD_IP=192.0.2.2
ip -o addr | grep -q " $FLOOD_IP/" || { echo "3. skipped: this machine has no $FLOOD_IP to flood from" >&2; exit 0; }
serve flood 9493 "[[listeners]]
address = \"$FLOOD_IP:9494\"
surfaces = [\"s3\"]
[rate_limits]
per_ip = 1000
exempt = []"
flooder_url=$(presign_get "bench/4k" "http://$FLOOD_IP:9494")
cmp -s <(curl -sf "$flooder_url") "$work/www/bench/4k" || { echo "the flood listener served wrong bytes" >&2; exit 1; }
seconds=${DURATION%s}
polite() { "$PACELOAD" "$flood_url" --rate 200 --connections 4 --seconds "$seconds"; }
p99() { sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p'; }
alone=$(polite)
wrk -t1 -c64 -d"$((seconds + 2))s" "$flooder_url" >"$work/flood.txt" &
sleep 1
flooded=$(polite)
wait $!
echo
echo "3. one client at 200 req/s while another address floods (target: p99 at most 2 x)"
echo "alone:   $alone"
echo "flooded: $flooded"
echo "flood:   $(awk '/Requests\/sec/ { print $2 " req/s" } /Non-2xx/ { print $4 " answers were 503 SlowDown" }' "$work/flood.txt" | paste -sd' ')"
echo "p99 ratio flooded/alone: $(ratio "$(p99 <<<"$flooded")" "$(p99 <<<"$alone")")"
