#!/usr/bin/env bash
# Before/after: bench/run.sh on two binaries in turn, round after round (one
# measured run per scenario per round; rounds alternate which binary goes
# first: A B, B A, A B …), so that other work on the machine weighs on both
# alike. Each round is a fresh run.sh (fresh database, seeding, warm-up).
#
#   bench/compare.sh --base OLD_BIN --new NEW_BIN [--rounds 3] [--out DIR] -- RUN_SH_OPTIONS...
#   bench/compare.sh --base /tmp/kw-base --new target/release/keywarden \
#     -- --size 1000 --scenarios health,unauth,name,put --max-wait 30
#
# Output: DIR/<round>-<base|new>/ (run.sh's files) and DIR/summary.md: the
# medians per binary over all rounds, and each scenario's ratio to GET /health
# measured in the same run.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BASE="" NEW="" ROUNDS=3 OUT=""
while (($#)); do
  case "$1" in
    --base) BASE="$2"; shift 2 ;;
    --new) NEW="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 0 ;;
    *) echo "compare.sh: unknown option $1 (run.sh's options go after --)" >&2; exit 2 ;;
  esac
done
[[ -x "$BASE" && -x "$NEW" ]] || { echo "compare.sh: --base and --new must be executables" >&2; exit 2; }
OUT="${OUT:-$ROOT/bench/results/$(date -u +%Y%m%d-%H%M%S)-compare}"
mkdir -p "$OUT"

for round in $(seq 1 "$ROUNDS"); do
  order=(base new)
  ((round % 2 == 0)) && order=(new base)
  for label in "${order[@]}"; do
    bin="$BASE"
    [[ "$label" == new ]] && bin="$NEW"
    printf '[compare.sh %s] round %s of %s: %s\n' "$(date +%H:%M:%S)" "$round" "$ROUNDS" "$label" >&2
    "$ROOT/bench/run.sh" --bin "$bin" --label "$label" --runs 1 --out "$OUT/$round-$label" "$@" >/dev/null
  done
done

{
  echo "# keywarden before/after: $ROUNDS rounds"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); base $BASE (sha256 $(sha256sum "$BASE" | cut -c1-16)), new $NEW (sha256 $(sha256sum "$NEW" | cut -c1-16))"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "- command: bench/compare.sh --base <base> --new <new> --rounds $ROUNDS -- $*"
  echo
  python3 "$ROOT/bench/lib/kwbench.py" summarize "$OUT"/*/results.jsonl
} >"$OUT/summary.md"
cat "$OUT/summary.md"
