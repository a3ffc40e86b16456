#!/usr/bin/env bash
# Benchmark declarative Debian packages: `galley lock` (resolve, fetch, build) of an image with
# the python3-minimal closure from the loopback APT repository the tests use (the .debs
# scripts/setup.sh fetched, indexed and signed by tests/support/apt-repo.sh, served by
# `python3 -m http.server` on 127.0.0.1), side by side with bench/debian-buildah.sh, which
# installs the same packages with `apt-get install` in a buildah build from a repository made
# the same way. Times (seconds, wall clock, best of N rounds):
#   cold      a fresh GALLEY_HOME and no lock: galley lock (signed Release, index, resolution,
#             every .deb fetched and verified, one layer per package, image written)
#   warm      the same home again: galley lock (the lock is kept) then galley build (every layer
#             cached)
#   no-op     galley build alone in the warm home (the issue's budget: under 100 ms)
#
#   bench/debian.sh [--runs N] [--no-buildah]   GALLEY=path/to/galley (default target/release,
#                                               else debug); as root for the buildah side
set -euo pipefail

runs=3
buildah=1
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --no-buildah) buildah=0; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
galley=${GALLEY:-}
if [[ -z $galley ]]; then
  galley=$root/target/release/galley
  [[ -x $galley ]] || galley=$root/target/debug/galley
fi
[[ -x $galley ]] || { echo "debian.sh: no galley binary; run cargo build first" >&2; exit 2; }
debs="${GALLEY_TEST_DEBS:-/var/cache/galley/test-debs}"
[ -f "$debs/python3-minimal.closure" ] || { echo "debian.sh: no test packages in $debs: run scripts/setup.sh as root" >&2; exit 1; }
mapfile -t closure < "$debs/python3-minimal.closure"

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

args=()
for p in "${closure[@]}"; do args+=(--package "$p"); done
mkdir -p "$work/project"
bash "$root/tests/support/apt-repo.sh" --key-dir "$work/gnupg" --keyring "$work/project/archive-keyring.gpg" \
  "${args[@]}" "$work/repo" "$debs" >/dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$work/repo" "$port" >/dev/null 2>"$work/http.log" &
server_pid=$!
for _ in $(seq 100); do
  python3 -c "import http.client as h; c = h.HTTPConnection('127.0.0.1', $port, timeout=1); c.request('HEAD', '/'); c.getresponse()" 2>/dev/null && break
  sleep 0.1
done
cat > "$work/project/galley.ncl" <<EOF
{
  name = "bench-debian",
  registries."127.0.0.1:$port" = { insecure = true, allow_private = true },
  images.py = {
    debian = { mirror = "http://127.0.0.1:$port", suite = "stable", keyring = "archive-keyring.gpg" },
    packages = ["python3-minimal"],
  },
}
EOF

g() { GALLEY_HOME="$work/home" "$galley" -C "$work/project" "$@"; }
cold() { rm -rf "$work/home" "$work/project/galley.lock" && g lock; }
warm() { g lock && g build; }
noop() { g build; }

c="" w="" n=""
for _ in $(seq "$runs"); do
  t=$(seconds_checked cold) || exit 1
  c=$(min "$c" "$t")
  t=$(seconds_checked warm) || exit 1
  w=$(min "$w" "$t")
  t=$(seconds_checked noop) || exit 1
  n=$(min "$n" "$t")
done
packages=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['images']['py']['debian']['packages']))" "$work/project/galley.lock")

if [ "$buildah" = 1 ]; then
  bash "$root/bench/debian-buildah.sh" --runs "$runs" | tee "$work/buildah.txt" >&2
  read -r _ bc bw _ _ < <(grep '^buildah ' "$work/buildah.txt")
else
  bc="" bw=""
fi

printf '\ndebian: python3-minimal closure, %s packages locked, %s\n' "$packages" "$galley"
printf 'best of %s rounds, %s cores, load %s (shared machine: other builds and tests run at the same time)\n\n' "$runs" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %9s %9s %9s\n' route cold warm no-op
printf '%-10s %9s %9s %9s\n' galley "$c" "$w" "$n"
if [ -n "$bc" ]; then
  printf '%-10s %9s %9s %9s\n' buildah "$bc" "$bw" "-"
  printf '%-10s %8.1fx %8.1fx %9s\n' ratio "$(awk -v a="$bc" -v b="$c" 'BEGIN { print a / b }')" "$(awk -v a="$bw" -v b="$w" 'BEGIN { print a / b }')" "-"
  printf '\ntargets: cold >= 3x, warm >= 10x faster than buildah; no-op < 0.100 s\n'
fi
