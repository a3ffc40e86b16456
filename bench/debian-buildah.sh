#!/usr/bin/env bash
# The buildah side of the Debian packages benchmark: an image with the python3-minimal closure
# installed by `apt-get install` inside a buildah build, from the same loopback APT repository the
# tests use (the .debs scripts/setup.sh fetched, indexed and signed by tests/support/apt-repo.sh,
# served by `python3 -m http.server` on 127.0.0.1).
#
# The base is an empty Debian root with apt (`mmdebstrap --variant=apt`, from the host's Debian
# mirror, made once and kept in bench/out/debian), added to a scratch image. In the build, apt
# trusts only the repository's key and knows only its loopback source. Times (seconds, wall clock):
#   cold        buildah bud --no-cache, then buildah push to an OCI layout
#   warm        the same build again with --layers and every layer cached, then push
#   warm-bud    the same, without the push (the image stays in buildah's storage)
#   apt-warm    --no-cache, but apt's package folder is a volume kept from the first build, so
#               no .deb is downloaded (only the signed index)
# Each is the best of N rounds (--runs, default 3), the four taking turns within a round: the
# machine may be shared. Everything buildah stores goes to a storage root of its own under
# bench/out/debian, removed at the end; no other image or container is touched.
#
# Usage: bench/debian-buildah.sh [--runs N]   (as root; needs buildah, mmdebstrap, python3)
set -euo pipefail

runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
out="$root/bench/out/debian"
mkdir -p "$out"
if [ "$(id -u)" -ne 0 ]; then echo "debian-buildah.sh: run as root (rootful buildah, mmdebstrap)" >&2; exit 1; fi
for tool in buildah mmdebstrap python3 dpkg-scanpackages apt-ftparchive gpg; do
  command -v "$tool" >/dev/null || { echo "debian-buildah.sh: $tool is not installed (scripts/setup.sh)" >&2; exit 1; }
done
debs="${GALLEY_TEST_DEBS:-/var/cache/galley/test-debs}"
if [ ! -f "$debs/python3-minimal.closure" ]; then
  echo "debian-buildah.sh: no test packages in $debs: run scripts/setup.sh as root" >&2
  exit 1
fi
mapfile -t closure < "$debs/python3-minimal.closure"

work=$(mktemp -d "$out/run-XXXXXX")
storage="$work/storage"
bah=(buildah --root "$storage" --runroot "$work/runroot")
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  "${bah[@]}" rm --all >/dev/null 2>&1 || true
  "${bah[@]}" rmi --all --force >/dev/null 2>&1 || true
  # The overlay driver may leave its own mounts under the storage root.
  awk -v w="$work" '$5 ~ "^" w { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do umount "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The repository: the closure only, as the galley side declares it.
args=()
for p in "${closure[@]}"; do args+=(--package "$p"); done
bash "$root/tests/support/apt-repo.sh" --key-dir "$work/gnupg" --keyring "$work/ctx/archive-keyring.gpg" \
  "${args[@]}" "$work/repo" "$debs" >/dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$work/repo" "$port" >/dev/null 2>"$work/http.log" &
server_pid=$!
for _ in $(seq 100); do
  python3 -c "import http.client as h; c = h.HTTPConnection('127.0.0.1', $port, timeout=1); c.request('HEAD', '/'); c.getresponse()" 2>/dev/null && break
  sleep 0.1
done

# The base, made once: mmdebstrap from the host's own Debian sources (deb822 or one-line).
. /etc/os-release
suite="${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}"
base_tar="$out/base-$suite-apt.tar"
if [ ! -f "$base_tar" ]; then
  mirrors=()
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$f" ] && grep -qv '^\s*\(#\|$\)' "$f" && mirrors+=("$f")
  done
  echo "making the base with mmdebstrap --variant=apt $suite (once)..." >&2
  mmdebstrap --quiet --variant=apt --format=tar "$suite" "$base_tar.tmp" "${mirrors[@]}"
  mv "$base_tar.tmp" "$base_tar"
fi
mkdir -p "$work/base"
ln "$base_tar" "$work/base/base.tar" 2>/dev/null || cp "$base_tar" "$work/base/base.tar"
printf 'FROM scratch\nADD base.tar /\n' > "$work/base/Containerfile"
if ! "${bah[@]}" bud --quiet --timestamp 0 -t localhost/galley-bench/debian-base -f "$work/base/Containerfile" "$work/base" >"$work/base.log" 2>&1; then
  cat "$work/base.log" >&2
  exit 1
fi

# The build: the loopback source alone, trusted by the repository's key alone.
source_line="deb [signed-by=/etc/apt/keyrings/galley-test.gpg] http://127.0.0.1:$port/ stable main"
apt_run="rm -f /etc/apt/sources.list /etc/apt/sources.list.d/* && echo '$source_line' > /etc/apt/sources.list \
 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
 -o APT::Keep-Downloaded-Packages=true python3-minimal"
cat > "$work/ctx/Containerfile" <<EOF
FROM localhost/galley-bench/debian-base
COPY archive-keyring.gpg /etc/apt/keyrings/galley-test.gpg
RUN $apt_run && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
EOF
mkdir -p "$work/apt-archives/partial"


# bud (with extra flags) then push to a fresh OCI layout, as a galley build leaves one.
bud() {
  local file="$1" tag="$2"
  shift 2
  "${bah[@]}" bud --quiet --timestamp 0 --format oci --network host "$@" -t "$tag" -f "$work/ctx/$file" "$work/ctx"
}
build() {
  local layout
  layout=$(mktemp -d "$work/layout-XXXXXX")
  bud "$@" && "${bah[@]}" push --quiet "$2" "oci:$layout:bench"
  local rc=$?
  rm -rf "$layout"
  return $rc
}
cold() { build Containerfile localhost/galley-bench/debian-cold --no-cache --layers=false; }
warm() { build Containerfile localhost/galley-bench/debian-warm --layers; }
warm_bud() { bud Containerfile localhost/galley-bench/debian-warm --layers; }
apt_warm() {
  build Containerfile localhost/galley-bench/debian-aptcache --no-cache --layers=false --volume "$work/apt-archives:/var/cache/apt/archives"
}

# One build that must work, outside the timing: python3 runs in the image, and apt installed from
# the loopback repository what the closure lists.
if ! build Containerfile localhost/galley-bench/debian-warm --layers >"$work/first.log" 2>&1; then
  cat "$work/first.log" >&2
  exit 1
fi
ctr=$("${bah[@]}" from --quiet localhost/galley-bench/debian-warm)
answer=$("${bah[@]}" run --network none "$ctr" -- python3 -c 'print(6*7)')
[ "$answer" = 42 ] || { echo "debian-buildah.sh: python3 in the built image printed '$answer'" >&2; exit 1; }
installed=$("${bah[@]}" run --network none "$ctr" -- dpkg-query -W -f '${Package}\n' "${closure[@]}" | wc -l)
"${bah[@]}" rm "$ctr" >/dev/null
fetched=$(grep -c '\.deb HTTP' "$work/http.log" || true)
# Fills the volume of apt's package folder for the apt-warm rounds.
seconds_checked apt_warm >/dev/null || { echo "debian-buildah.sh: the build with apt's package folder as a volume failed" >&2; exit 1; }

deb_bytes=$(find "$work/repo/pool" -name '*.deb' -printf '%s\n' | awk '{ s += $1 } END { printf "%.1f MB", s / 1e6 }')
printf '\ndebian: python3-minimal closure, %s packages (%s of .debs); apt fetched %s .debs from the loopback repository (the base has the others)\n' \
  "${#closure[@]}" "$deb_bytes" "$fetched"
printf 'all %s closure packages installed in the image: %s; python3 -c "print(6*7)" -> %s\n' "${#closure[@]}" "$installed" "$answer"
printf 'best of %s rounds, %s cores, load %s (shared machine), %s\n\n' "$runs" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(buildah --version)"
c="" w="" b="" a=""
for _ in $(seq "$runs"); do
  t=$(seconds_checked cold) || exit 1
  c=$(min "$c" "$t")
  t=$(seconds_checked warm) || exit 1
  w=$(min "$w" "$t")
  t=$(seconds_checked warm_bud) || exit 1
  b=$(min "$b" "$t")
  t=$(seconds_checked apt_warm) || exit 1
  a=$(min "$a" "$t")
done
printf '%-10s %9s %9s %9s %9s\n' route cold warm warm-bud apt-warm
printf '%-10s %9s %9s %9s %9s\n' buildah "$c" "$w" "$b" "$a"
printf '\ntargets for galley (issue: cold at least 3x, warm at least 10x faster than this route)\n'
printf '  galley cold must be <= %.3f s, galley warm <= %.3f s\n' "$(awk -v c="$c" 'BEGIN { print c / 3 }')" "$(awk -v w="$w" 'BEGIN { print w / 10 }')"
