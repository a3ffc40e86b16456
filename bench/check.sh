#!/usr/bin/env bash
# Times `galley check` (target: well under 100 ms) and `galley lock --check` (target: well under
# 300 ms) on each example with a release build, against `true` as the process start-up floor.
# Prints the figures side by side (median of RUNS runs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
galley=$PWD/target/release/galley
export GALLEY_HOME=$(mktemp -d)
trap 'rm -rf "$GALLEY_HOME"' EXIT
runs=${RUNS:-20}

ms() { # command... -> median wall time in ms over $runs runs
  local t=()
  for _ in $(seq "$runs"); do
    local s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; local e=$(date +%s%N)
    t+=($(( (e - s) / 1000 )))
  done
  printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'
}

"$galley" -C examples/hello check >/dev/null  # writes the embedded library once
floor=$(ms true)
printf '%-10s %12s %18s %12s\n' example "check (ms)" "lock --check (ms)" "floor (ms)"
for e in examples/*/; do
  name=$(basename "$e")
  lock=-
  [[ -f $e/galley.lock ]] && lock=$(ms "$galley" -C "$e" lock --check)
  printf '%-10s %12s %18s %12s\n' "$name" "$(ms "$galley" -C "$e" check)" "$lock" "$floor"
done
