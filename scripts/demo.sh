#!/usr/bin/env bash
# Sets up the machine and runs galley's main job on the examples.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet
galley=target/release/galley
export GALLEY_HOME=${GALLEY_HOME:-$PWD/target/demo-home}
for example in examples/*/; do
  [[ -f $example/galley.ncl ]] || continue
  echo "== $example" >&2
  "$galley" -C "$example" check --deny warnings
  "$galley" -C "$example" show > /dev/null
done
echo "demo: all examples check clean" >&2
