#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh) and runs every test, with real podman, buildah, a
# loopback registry and real LSP and Kubernetes validators required (a missing tool fails).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export GALLEY_TEST_REQUIRE_RUNTIME=1
cargo nextest run --no-fail-fast "$@"
