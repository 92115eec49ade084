#!/usr/bin/env bash
# IAM policy evaluation latency, in process: 10 attached policies x 5 statements (conditions and
# policy variables), ~200k requests mixing allows, explicit denies and no-matches, each timed
# alone. Targets: p50 < 2 us, p99 < 10 us on this machine; the script prints p50_ns, p99_ns,
# mean_ns and their ratio to the targets (below 1 is inside them).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
cargo bench --locked -p latchkey-policy --bench evaluate
