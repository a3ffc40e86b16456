#!/usr/bin/env bash
# Benchmark a Containerfile build: `galley build` against `buildah bud --timestamp 0` of the
# same file, and galley's no-op rebuild.
#
# The context is 20,000 files of 4 KiB in 100 directories (half random, half text) plus
# Debian's static busybox; the Containerfile copies busybox and the tree and runs one step:
#   FROM scratch
#   COPY busybox /bin/busybox
#   COPY tree /data
#   RUN ["/bin/busybox", "sh", "-c", "/bin/busybox find /data -type f -name 'f*' | /bin/busybox wc -l > /data/count"]
# Times (seconds, wall clock, page cache warm for everyone):
#   galley      `galley build` (release binary) into a fresh GALLEY_HOME: the context snapshot,
#               buildah, and galley's re-pack of the layer, giving a reproducible digest
#   buildah     buildah bud --timestamp 0 --layers=false + buildah push to an OCI layout (its
#               digest is not reproducible across machines: it keeps the files' modes and owners)
#   noop        a second `galley build` with nothing changed (no buildah at all)
# and the ratio galley/buildah, then each target with its measured value.
#
# Each figure is the best of N rounds (--runs, default 3), the contenders taking turns within a
# round: the machine may be shared.
#
# Usage: bench/containerfile.sh [--scale F] [--runs N] [--bin PATH]
#   --scale F   multiply the file count by F (e.g. 0.25 for a quick run)
#   --bin PATH  the galley binary to time (default: the release build, built when stale)
set -euo pipefail

scale=1
runs=3
bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
out="$root/bench/out/containerfile"
mkdir -p "$out"
galley="${bin:-$(release_galley "$root")}"
for tool in buildah /bin/busybox; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 2; }
done

n=$(awk -v s="$scale" 'BEGIN { v = int(20000 * s); if (v < 1) v = 1; print v }')
dir="$out/project"
if [ ! -f "$dir/.done-$n" ]; then
  rm -rf "$dir"; mkdir -p "$dir/tree"
  python3 - "$dir/tree" "$n" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 100:03d}")
    os.makedirs(d, exist_ok=True)
    data = os.urandom(4096) if i % 2 else (f"line {i}\n" * 512).encode()[:4096]
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(data)
PY
  cp /bin/busybox "$dir/busybox"
  cat > "$dir/Containerfile" <<'CF'
FROM scratch
COPY busybox /bin/busybox
COPY tree /data
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox find /data -type f -name 'f*' | /bin/busybox wc -l > /data/count"]
CF
  cat > "$dir/galley.ncl" <<'NCL'
{
  name = "bench-containerfile",
  images.tree.containerfile = { path = "Containerfile" },
}
NCL
  touch "$dir/.done-$n"
  # Let the files settle (mtime and ctime two seconds old), as a checkout would be.
  sleep 3
fi


galley_cold() {
  local home rc
  home=$(mktemp -d "$out/home-XXXXXX")
  GALLEY_HOME="$home" "$galley" -C "$dir" build
  rc=$?
  rm -rf "$home"
  return $rc
}

buildah_cold() {
  local layout rc tag="localhost/galley-bench/containerfile:latest"
  layout=$(mktemp -d "$out/layout-XXXXXX")
  buildah bud --quiet --timestamp 0 --layers=false --format oci -t "$tag" -f "$dir/Containerfile" "$dir" &&
    buildah push --quiet "$tag" "oci:$layout:bench"
  rc=$?
  buildah rmi "$tag" >/dev/null 2>&1 || true
  rm -rf "$layout"
  return $rc
}

galley_build() {
  GALLEY_HOME="$1" "$galley" -C "$dir" build
}

tar -C "$dir" -cf - tree | cat >/dev/null
g="" b=""
for _ in $(seq "$runs"); do
  g=$(min "$g" "$(seconds galley_cold)")
  b=$(min "$b" "$(seconds buildah_cold)")
done
home=$(mktemp -d "$out/home-XXXXXX")
galley_build "$home" >/dev/null 2>&1
noop=""
for _ in $(seq "$runs"); do noop=$(min "$noop" "$(seconds galley_build "$home")"); done
# The digest must be the same from a second home.
d1=$(galley_build "$home" 2>/dev/null | awk '{ print $2 }')
home2=$(mktemp -d "$out/home-XXXXXX")
d2=$(galley_build "$home2" 2>/dev/null | awk '{ print $2 }')
rm -rf "$home" "$home2"

printf '\n%s files, best of %s rounds, %s cores, load %s, %s\n\n' "$n" "$runs" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$("$galley" --version)"
printf '%9s %9s %9s %12s %s\n' galley buildah noop galley/bah reproducible
ratio=$(awk -v g="$g" -v b="$b" 'BEGIN { printf "%.2f", g / b }')
printf '%9s %9s %9s %11sx %s\n' "$g" "$b" "$noop" "$ratio" "$([ "$d1" = "$d2" ] && [ -n "$d1" ] && echo "yes ($d1)" || echo "NO ($d1 vs $d2)")"

printf '\ntargets%s\n' "$([ "$scale" = 1 ] || echo " (set for --scale 1; this run is scaled)")"
target "galley/buildah" "$ratio" "<=" 1.20
target "no-op rebuild, seconds" "$noop" "<" 0.100
