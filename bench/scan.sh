#!/usr/bin/env bash
# The scanner's throughput (issue 13), on one core, in one run:
#  1. a 1 GiB text corpus (bench/lib/scan_corpus.py: log and prose lines full of numbers, dates,
#     UUIDs and hashes; 0.1 % of lines sensitive) scanned by the engine with every managed
#     identifier and its checks, beside ripgrep (Debian package) searching the same file for the
#     same everywhere-patterns: in multi-line mode (-U, which patterns spanning lines need) and,
#     stricter, in line mode with only the single-line patterns (target: at least 0.5 x);
#  2. a 50 MiB slice of it beside detect-secrets (pip) (target: at least 50 x).
# Both tools and the engine run pinned to one core (taskset -c 0).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
source "$REPO/bench/lib/common.sh"
SIZE_MIB=${SIZE_MIB:-1024}
SLICE_MIB=${SLICE_MIB:-50}

need_debian_packages ripgrep python3-venv
(cd "$REPO" && cargo build --release --locked -p latchkey-loadgen --bin scanload >&2)
SCANLOAD="$REPO/target/release/scanload"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$REPO/bench/lib/scan_corpus.py" "$work/corpus.txt" "$SIZE_MIB"
head -c $((SLICE_MIB << 20)) "$work/corpus.txt" >"$work/slice.txt"
"$SCANLOAD" patterns >"$work/patterns.txt"
"$SCANLOAD" patterns --single-line >"$work/single-line.txt"
python3 -m venv "$work/venv" >/dev/null
"$work/venv/bin/pip" install -q detect-secrets==1.5.0 >&2

# seconds COMMAND...: wall-clock seconds of one run, pinned to core 0, output discarded.
seconds() {
  local start end
  start=$(date +%s.%N)
  taskset -c 0 "$@" >/dev/null
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }'
}
mbps() { awk -v mib="$1" -v s="$2" 'BEGIN { printf "%.1f", mib * 1.048576 / s }'; }

cat "$work/corpus.txt" >/dev/null  # in the page cache for every contender
engine=$(seconds "$SCANLOAD" scan "$work/corpus.txt")
rg_multi=$(seconds rg -U --count-matches -f "$work/patterns.txt" "$work/corpus.txt")
rg_line=$(seconds rg --count-matches -f "$work/single-line.txt" "$work/corpus.txt")
echo "1. $SIZE_MIB MiB corpus on one core (target: engine at least 0.5 x ripgrep)"
printf '%-44s %8s %8s\n' contender seconds MB/s
printf '%-44s %8s %8s\n' "engine, all identifiers, checks on" "$engine" "$(mbps "$SIZE_MIB" "$engine")"
printf '%-44s %8s %8s\n' "ripgrep -U, same patterns" "$rg_multi" "$(mbps "$SIZE_MIB" "$rg_multi")"
printf '%-44s %8s %8s\n' "ripgrep, line mode, single-line patterns" "$rg_line" "$(mbps "$SIZE_MIB" "$rg_line")"
echo "engine / ripgrep -U: $(ratio "$rg_multi" "$engine")   engine / ripgrep line mode: $(ratio "$rg_line" "$engine")"
"$SCANLOAD" scan "$work/corpus.txt"

slice_engine=$(seconds "$SCANLOAD" scan "$work/slice.txt")
# Run outside any git repository: inside one, detect-secrets scans only the files git tracks.
start=$(date +%s.%N)
(cd "$work" && taskset -c 0 "$work/venv/bin/detect-secrets" scan slice.txt >"$work/detect-secrets.json")
slice_ds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
found=$(python3 -c 'import json, sys; print(sum(map(len, json.load(open(sys.argv[1]))["results"].values())))' "$work/detect-secrets.json")
[ "$found" -gt 0 ] || { echo "detect-secrets found nothing: it did not scan the slice" >&2; exit 1; }
echo
echo "2. $SLICE_MIB MiB slice on one core (target: engine at least 50 x detect-secrets)"
printf '%-44s %8s %8s\n' "engine" "$slice_engine" "$(mbps "$SLICE_MIB" "$slice_engine")"
printf '%-44s %8s %8s\n' "detect-secrets 1.5.0 ($found secrets)" "$slice_ds" "$(mbps "$SLICE_MIB" "$slice_ds")"
echo "engine / detect-secrets: $(ratio "$slice_ds" "$slice_engine")"
