#!/usr/bin/env bash
# What versioning costs, on one server (data dir on tmpfs, scanning on upload off):
#
# - PUT: 64 KiB objects over 8 keep-alive connections (bench/loadgen's putload) into a versioned
#   and an unversioned bucket, alternating, ROUNDS each, always the same keys, so that every round
#   after the first overwrites (a versioned overwrite keeps the old version in the history; an
#   unversioned one releases its blob). Median objects/s and the ratio; target >= 0.9.
# - GET: wrk -t1 -c32 on a presigned GET of a 4 KiB object in each bucket (the versioned key has
#   10 versions). Requests/s and the ratio; target >= 0.9.
# - ListObjectVersions over 1,000,000 versions of 100,000 keys (10 each; written straight into a
#   stopped server's SQLite store, as no test would wait for a million PUTs), then the first page
#   (1000 entries) over HTTP: the median of 21 calls; target < 50 ms.
#
# (Query parameters are written with `=` and in sorted order: curl's --aws-sigv4 signs them as
# written.)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
source "$REPO/bench/lib/common.sh"
ROUNDS=${ROUNDS:-3}
COUNT=${COUNT:-5000}
DURATION=${DURATION:-10s}

need_debian_packages curl wrk sqlite3
build_latchkey
(cd "$REPO" && cargo build --release --locked -p latchkey-loadgen >&2)
PUTLOAD="$REPO/target/release/putload"

work=$(mktemp -d -p /dev/shm)
trap 'kill $LATCHKEY_PID 2>/dev/null || true; rm -rf "$work"' EXIT
printf '[discovery]\non_upload = false\n' >"$work/config.toml"
URL=http://127.0.0.1:9483
start_latchkey "$work/data" 9483 "$work/config.toml"
for bucket in plain versioned; do s3_call PUT "$URL/$bucket" >/dev/null; done
s3_call PUT "$URL/versioned?versioning=" \
  -d '<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>' >/dev/null

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
put_rate() {
  "$PUTLOAD" --endpoint "$URL" --access-key "$BENCH_ACCESS_KEY" --secret-key "$BENCH_SECRET_KEY" \
    --bucket "$1" --concurrency 8 --size 65536 --count "$COUNT" | sed -n 's/.*objects_per_sec=\([0-9.]*\).*/\1/p'
}

echo "== PUT, $ROUNDS rounds of $COUNT 64 KiB objects per bucket (rounds after the first overwrite)" >&2
plain=() versioned=()
for round in $(seq 1 "$ROUNDS"); do
  plain+=("$(put_rate plain)")
  versioned+=("$(put_rate versioned)")
  echo "  round $round: unversioned ${plain[-1]} obj/s, versioned ${versioned[-1]} obj/s" >&2
done
p=$(printf '%s\n' "${plain[@]}" | median)
v=$(printf '%s\n' "${versioned[@]}" | median)
printf '%-40s unversioned %8s   versioned %8s   ratio %s (target >= 0.9)\n' "PUT 64 KiB (obj/s)" "$p" "$v" "$(ratio "$v" "$p")"

head -c 4096 /dev/urandom >"$work/4k"
s3_call PUT "$URL/plain/get4k" -T "$work/4k" >/dev/null
for _ in $(seq 1 10); do s3_call PUT "$URL/versioned/get4k" -T "$work/4k" >/dev/null; done
rps() { wrk -t1 -c32 -d"$DURATION" "$1" | awk '/Requests\/sec/ { print $2 }'; }
plain_url=$(presign_get plain/get4k "$URL")
versioned_url=$(presign_get versioned/get4k "$URL")
for url in "$plain_url" "$versioned_url"; do
  cmp -s <(curl -sf "$url") "$work/4k" || { echo "wrong bytes served" >&2; exit 1; }
done
p=$(rps "$plain_url")
v=$(rps "$versioned_url")
printf '%-40s unversioned %8s   versioned %8s   ratio %s (target >= 0.9)\n' "presigned GET 4 KiB (req/s)" "$p" "$v" "$(ratio "$v" "$p")"

# A million versions: the bucket is made over S3, the rows written while the server is stopped.
s3_call PUT "$URL/many" >/dev/null
s3_call PUT "$URL/many?versioning=" \
  -d '<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>' >/dev/null
kill "$LATCHKEY_PID"
wait "$LATCHKEY_PID" 2>/dev/null || true
echo "== writing 1,000,000 versions of 100,000 keys into the SQLite store" >&2
sqlite3 "$work/data/meta.db" >&2 <<'SQL'
PRAGMA journal_mode = WAL;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 899999)
INSERT INTO object_versions (bucket, key, version_id, blob_id, size, etag, modified_ms, headers, user_meta, tags,
    versioned, delete_marker)
SELECT 'many', printf('key/%06d', i / 9), lower(hex(randomblob(16))), lower(hex(randomblob(16))), 100,
    'd41d8cd98f00b204e9800998ecf8427e', 1700000000000 + i, '{}', '{}', '[]', 1, 0 FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999)
INSERT INTO objects (bucket, key, version_id, blob_id, size, etag, modified_ms, headers, user_meta, tags, versioned)
SELECT 'many', printf('key/%06d', i), lower(hex(randomblob(16))), lower(hex(randomblob(16))), 100,
    'd41d8cd98f00b204e9800998ecf8427e', 1800000000000 + i, '{}', '{}', '[]', 1 FROM n;
COMMIT;
SELECT (SELECT COUNT(*) FROM objects WHERE bucket = 'many') + (SELECT COUNT(*) FROM object_versions WHERE bucket = 'many');
SQL
start_latchkey "$work/data" 9483 "$work/config.toml"
page() { s3_call GET "$URL/many?max-keys=1000&versions=" -o /dev/null -w '%{time_total}\n'; }
[ "$(s3_call GET "$URL/many?max-keys=1000&versions=" | grep -o '<Version>' | wc -l)" = 1000 ] || { echo "wrong first page" >&2; exit 1; }
ms=$(for _ in $(seq 1 21); do page; done | median | awk '{ printf "%.1f", $1 * 1000 }')
printf '%-40s %s ms (target < 50)\n' "ListObjectVersions first page, 1M versions" "$ms"
