#!/usr/bin/env bash
# Benchmark `galley audit verify` on an untouched audit log of 10,000 entries (the issue's
# budget: under a second), and `galley audit show` on the same log. The chain is written the
# way galley writes it (one JSON object per line, each naming the SHA-256 of the line before,
# and the head beside it); verify must pass it. Exits 1 when verify takes a second or more.
#
#   bench/audit.sh [RUNS] [ENTRIES]   GALLEY=path/to/galley (default target/release, else debug)
set -euo pipefail

runs=${1:-5}
n=${2:-10000}
here=$(cd "$(dirname "$0")/.." && pwd)
galley=${GALLEY:-}
if [[ -z $galley ]]; then
  galley=$here/target/release/galley
  [[ -x $galley ]] || galley=$here/target/debug/galley
fi
[[ -x $galley ]] || { echo "error: no galley binary; run cargo build first" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GALLEY_HOME=$work

python3 - "$work" "$n" <<'PY'
import hashlib, json, sys
home, n = sys.argv[1], int(sys.argv[2])
prev = "0" * 64
with open(f"{home}/audit.log", "w") as log:
    for seq in range(1, n + 1):
        line = json.dumps({"time": "2026-01-01T00:00:00Z", "seq": seq, "actor": f"token:{seq % 7:012x}",
                           "action": "admin.preview.redeploy", "target": f"pr-{seq % 50}", "source": "127.0.0.1",
                           "outcome": "ok", "reason": None, "prev": prev}, separators=(",", ":"))
        prev = hashlib.sha256(line.encode()).hexdigest()
        log.write(line + "\n")
with open(f"{home}/audit.head", "w") as head:
    json.dump({"seq": n, "hash": prev}, head)
PY

ms() { date +%s%3N; }
"$galley" audit verify >/dev/null || { echo "error: verify refused an untouched log" >&2; exit 1; }
time_it() {
  local times=() t0
  for _ in $(seq "$runs"); do
    t0=$(ms)
    "$galley" "$@" >/dev/null
    times+=($(($(ms) - t0)))
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p"
}
verify_ms=$(time_it audit verify)
show_ms=$(time_it audit show)
baseline_ms=$(time_it audit verify --help)
size=$(stat -c %s "$work/audit.log")

echo "galley audit, $n entries ($((size / 1024)) KiB) ($galley)"
echo "  process start alone:      ${baseline_ms} ms (galley audit verify --help)"
echo "  audit verify, median:     ${verify_ms} ms over $runs runs (budget 1000 ms)"
echo "  audit show, median:       ${show_ms} ms over $runs runs"
if ((verify_ms >= 1000)); then
  echo "error: audit verify took ${verify_ms} ms, over its 1000 ms budget" >&2
  exit 1
fi
