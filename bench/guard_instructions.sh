#!/usr/bin/env bash
# Figure 1 of guard.sh counted in instructions instead of seconds, so that it does not move with
# the machine's load: instructions per 4 KiB presigned GET, the guard, JSON access log and metrics
# on versus all off, each server run under callgrind (user-space instructions of every thread,
# counted from after a warm-up). Prints off/on, the throughput ratio these instructions predict
# (target of guard.sh's figure 1: at least 0.9). Under valgrind SHA-256 runs in software, as on a
# CPU without SHA instructions, so the SigV4 share is that of such a machine. Takes ~2 minutes.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
source "$REPO/bench/lib/common.sh"
SECONDS_MEASURED=${SECONDS_MEASURED:-20}

need_debian_packages valgrind wrk curl
build_latchkey
describe_machine

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
head -c 4096 /dev/urandom >"$work/4k"

# per_request NAME PORT CONFIG_TEXT -> the instructions per GET of that configuration in $NAME_ir
# (run in this shell, not in a command substitution, so that set -e and the trap see it)
per_request() {
  printf '%s\n' "$3" >"$work/$1.toml"
  LATCHKEY_ROOT_ACCESS_KEY=$BENCH_ACCESS_KEY LATCHKEY_ROOT_SECRET_KEY=$BENCH_SECRET_KEY \
    valgrind --tool=callgrind --callgrind-out-file="$work/$1.out" \
    "$LATCHKEY_BIN" serve --data-dir "$work/$1" --listen "127.0.0.1:$2" --config "$work/$1.toml" \
    >/dev/null 2>"$work/$1.stderr" &
  local pid=$!
  pids+=("$pid")
  wait_for_port "$2" || wait_for_port "$2" || wait_for_port "$2"  # valgrind starts slowly
  local base="http://127.0.0.1:$2" url
  s3_call PUT "$base/bench" >/dev/null
  s3_call PUT "$base/bench/4k" -T "$work/4k" >/dev/null
  url=$(presign_get "bench/4k" "$base")
  cmp -s <(curl -sf "$url") "$work/4k" || { echo "$1 served wrong bytes" >&2; exit 1; }
  wrk -t1 -c8 -d5s "$url" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  wrk -t1 -c8 -d"${SECONDS_MEASURED}s" "$url" >"$work/$1.wrk"
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"
  wait "$pid" || true
  local requests instructions
  requests=$(awk '/requests in/ { print $1 }' "$work/$1.wrk")
  # The dump asked for above is the first numbered part; the unnumbered file is the exit's rest.
  [ -s "$work/$1.out.1" ] || { echo "$1: callgrind wrote no dump" >&2; exit 1; }
  instructions=$(callgrind_annotate "$work/$1.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  [[ "$instructions" =~ ^[0-9]+$ && "$requests" =~ ^[0-9]+$ && "$requests" -gt 0 ]] ||
    { echo "$1: no count (instructions '$instructions', requests '$requests')" >&2; exit 1; }
  printf -v "${1}_ir" '%s' "$(awk -v i="$instructions" -v r="$requests" 'BEGIN { printf "%.0f", i / r }')"
}

per_request on 9495 "$GUARD_ON"
per_request off 9496 "$GUARD_OFF"
on=$on_ir off=$off_ir
echo "instructions per 4 KiB presigned GET: guard, access log and metrics on $on, off $off"
echo "off/on (the throughput ratio they predict; target at least 0.9): $(ratio "$off" "$on")"
