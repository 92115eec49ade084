#!/usr/bin/env bash
# PUT throughput of 64 KiB objects over 8 keep-alive connections, driven by bench/loadgen's putload (a
# Rust load generator, so the client is not the bottleneck), for Latchkey beside s3s-fs 0.14.1
# with the same generator in the same run. Runs alternate between the servers (ROUNDS each) and
# the median is reported, because run-to-run noise on a 2-core machine is large.
#
# Three settings: both data dirs on tmpfs (pure server efficiency; target >= 1.5x s3s-fs), and both
# on disk, where Latchkey makes every object durable (file fsync, directory fsync, SQLite WAL
# commit) before its 200 and s3s-fs does not fsync at all; in both, Latchkey's scanning on upload
# is off, since s3s-fs scans nothing. Then tmpfs with Latchkey's defaults (every upload scanned
# for sensitive data by workers on the same two cores), reported.
#
# (Do not redirect stdout and stderr to one file: each round tees into /dev/stderr.)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
source "$REPO/bench/lib/common.sh"
ROUNDS=${ROUNDS:-3}
COUNT=${COUNT:-5000}
DISK_DIR=${DISK_DIR:-$REPO/target/bench-disk}

need_debian_packages curl
build_latchkey
(cd "$REPO" && cargo build --release --locked -p latchkey-loadgen >&2)
PUTLOAD="$REPO/target/release/putload"
if ! command -v s3s-fs >/dev/null || ! s3s-fs --version | grep -q '0.14.1'; then
  echo "installing s3s-fs 0.14.1 (cargo install; a few minutes)" >&2
  cargo install s3s-fs --version 0.14.1 --features binary --locked >&2
fi

# run_one SERVER BASE_DIR -> prints objects/s
run_one() {
  local server=$1 dir
  dir=$(mktemp -d -p "$2")
  if [ "$server" = latchkey ]; then
    start_latchkey "$dir/data" 9482 "$LATCHKEY_CONFIG"
    pid=$LATCHKEY_PID
  else
    mkdir "$dir/data"
    s3s-fs --host 127.0.0.1 --port 9482 --access-key "$BENCH_ACCESS_KEY" --secret-key "$BENCH_SECRET_KEY" \
      "$dir/data" >/dev/null 2>&1 &
    pid=$!
    wait_for_port 9482
  fi
  "$PUTLOAD" --endpoint http://127.0.0.1:9482 --access-key "$BENCH_ACCESS_KEY" --secret-key "$BENCH_SECRET_KEY" \
    --concurrency 8 --size 65536 --count "$COUNT" | sed 's/^/  /' >&2
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

measure() {
  local base=$1 label=$2 lk=() fs=()
  echo "== $label ($base), $ROUNDS rounds of $COUNT PUTs each" >&2
  for _ in $(seq 1 "$ROUNDS"); do
    lk+=("$(run_one latchkey "$base" 2>&1 | tee /dev/stderr | sed -n 's/.*objects_per_sec=\([0-9.]*\).*/\1/p')")
    fs+=("$(run_one s3s-fs "$base" 2>&1 | tee /dev/stderr | sed -n 's/.*objects_per_sec=\([0-9.]*\).*/\1/p')")
  done
  local lk_med fs_med paired=()
  lk_med=$(printf '%s\n' "${lk[@]}" | median)
  fs_med=$(printf '%s\n' "${fs[@]}" | median)
  for i in "${!lk[@]}"; do paired+=("$(ratio "${lk[$i]}" "${fs[$i]}")"); done
  printf '%-28s latchkey %8s obj/s   s3s-fs %8s obj/s   ratio %s   (round by round: %s)\n' \
    "$label" "$lk_med" "$fs_med" "$(ratio "$lk_med" "$fs_med")" "${paired[*]}"
}

mkdir -p "$DISK_DIR"
NO_SCAN=$(mktemp)
printf '[discovery]\non_upload = false\n' >"$NO_SCAN"
LATCHKEY_CONFIG=$NO_SCAN
measure /dev/shm "tmpfs (target >= 1.5)"
measure "$DISK_DIR" "disk (latchkey durable)"
LATCHKEY_CONFIG=
measure /dev/shm "tmpfs, uploads scanned"
rm -f "$NO_SCAN"
