#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh) and runs every test, with real podman, buildah, a
# loopback registry and real LSP and Kubernetes validators required (a missing tool fails).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# A one-off build gains nothing from incremental state, which roughly doubles the target folder.
if [[ ${CI:-} == true ]]; then export CARGO_INCREMENTAL=0; fi
echo "test: $(df -h --output=avail . | tail -1 | tr -d ' ') free on the build disk" >&2
export GALLEY_TEST_REQUIRE_RUNTIME=1
cargo nextest run --no-fail-fast "$@"
