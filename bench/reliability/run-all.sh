#!/usr/bin/env bash
# Runs every reliability script in turn against the release binary and exits
# non-zero if any failed. --short: the CI mode (each script well under ~2 min).
#
#   bench/reliability/run-all.sh [--short] [--postgres URL] [--bin PATH]
#
# Other options are passed to every script. Without --bin the release binary is
# built once first (cargo build --release --locked).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

args=("$@")
have_bin=0
for a in "$@"; do [[ "$a" == --bin || "$a" == --bin=* ]] && have_bin=1; done
if ((!have_bin)); then
  (cd "$ROOT" && cargo build --release --locked --bin keywarden) || exit 1
  args+=(--bin "$ROOT/target/release/keywarden")
fi

failed=()
for script in crash.py races.py webhooks.py hostile.py fuzz_api.py; do
  echo "=== $script ${args[*]}"
  start=$SECONDS
  if python3 "$HERE/$script" "${args[@]}"; then
    echo "=== $script: ok ($((SECONDS - start))s)"
  else
    echo "=== $script: FAILED ($((SECONDS - start))s)"
    failed+=("$script")
  fi
done
if ((${#failed[@]})); then
  echo "reliability: FAILED: ${failed[*]}"
  exit 1
fi
echo "reliability: all passed"
