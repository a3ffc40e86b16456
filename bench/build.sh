#!/usr/bin/env bash
# Benchmark `galley build` against buildah and against a plain deterministic tar pipeline.
#
# Three trees:
#   big    one 200 MB random file
#   small  20,000 files of 4 KiB
#   real   a copy of /usr/lib/python3* (~100 MB of real files)
# For each tree, times (seconds, wall clock, page cache warm for everyone):
#   galley      `galley build` (release binary) into a fresh GALLEY_HOME
#   noop        a second `galley build` with nothing changed
#   pipeline    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner | gzip -n | sha256sum
#   buildah     buildah bud --timestamp 0 (FROM scratch + COPY) + buildah push to an OCI layout
# and prints the ratios galley/pipeline and galley/buildah, then each target of the image issue
# with its measured value and whether it was met.
#
# Each figure is the best of N rounds (--runs, default 3), the contenders taking turns within a
# round: the machine may be shared.
#
# Usage: bench/build.sh [--scale F] [--runs N] [--skip-buildah]
#   --scale F   multiply sizes and file counts by F (e.g. 0.25 for a quick run)
set -euo pipefail

scale=1
runs=3
skip_buildah=0
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --skip-buildah) skip_buildah=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
out="$root/bench/out"
mkdir -p "$out"
galley=$(release_galley "$root")
if ! command -v buildah >/dev/null; then
  echo "buildah not found: skipping the buildah column" >&2
  skip_buildah=1
fi

scaled() { awk -v n="$1" -v s="$scale" 'BEGIN { v = int(n * s); if (v < 1) v = 1; print v }'; }

make_trees() {
  local big_mb small_n
  big_mb=$(scaled 200)
  small_n=$(scaled 20000)
  if [ ! -f "$out/big/.done-$big_mb" ]; then
    rm -rf "$out/big"; mkdir -p "$out/big/tree"
    head -c "$((big_mb * 1024 * 1024))" /dev/urandom > "$out/big/tree/random.bin"
    touch "$out/big/.done-$big_mb"
  fi
  if [ ! -f "$out/small/.done-$small_n" ]; then
    rm -rf "$out/small"; mkdir -p "$out/small/tree"
    # 4 KiB files in 100 directories; half random, half text, so compression has work to do.
    python3 - "$out/small/tree" "$small_n" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 100:03d}")
    os.makedirs(d, exist_ok=True)
    data = os.urandom(4096) if i % 2 else (f"line {i}\n" * 512).encode()[:4096]
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(data)
EOF
    touch "$out/small/.done-$small_n"
  fi
  if [ ! -f "$out/real/.done" ]; then
    rm -rf "$out/real"; mkdir -p "$out/real/tree"
    for d in /usr/lib/python3*; do cp -a "$d" "$out/real/tree/"; done
    find "$out/real/tree" -name __pycache__ -prune -o -type f -print >/dev/null
    touch "$out/real/.done"
  fi
  for t in big small real; do
    cat > "$out/$t/galley.ncl" <<EOF
{
  name = "bench-$t",
  images.tree = { files = [{ src = "tree", dst = "/data" }] },
}
EOF
    printf 'FROM scratch\nCOPY tree /data\n' > "$out/$t/Containerfile"
  done
}


pipeline() {
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf - tree | gzip -n | sha256sum
}

buildah_run() {
  local dir="$1" tag="localhost/galley-bench/$2:latest" layout="$3"
  buildah bud --quiet --timestamp 0 --format oci -t "$tag" -f "$dir/Containerfile" "$dir" &&
    buildah push --quiet "$tag" "oci:$layout:bench"
  local rc=$?
  buildah rmi "$tag" >/dev/null 2>&1 || true
  return $rc
}

galley_build() {
  GALLEY_HOME="$2" "$galley" -C "$1" build
}

# A build into a fresh, empty GALLEY_HOME.
galley_cold() {
  local home
  home=$(mktemp -d "$out/home-XXXXXX")
  GALLEY_HOME="$home" "$galley" -C "$1" build
  local rc=$?
  rm -rf "$home"
  return $rc
}

buildah_cold() {
  local layout rc
  layout=$(mktemp -d "$out/layout-XXXXXX")
  buildah_run "$1" "$2" "$layout"
  rc=$?
  rm -rf "$layout"
  return $rc
}

make_trees
printf '\nscale %s, best of %s rounds, %s cores, load %s, %s\n\n' "$scale" "$runs" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$("$galley" --version)"
printf '%-6s %8s %9s %8s %9s %8s %10s %10s\n' tree size galley noop pipeline buildah galley/pipe galley/bah
for t in big small real; do
  dir="$out/$t"
  size=$(du -sh "$dir/tree" | cut -f1)
  # Warm the page cache for everyone.
  tar -C "$dir" -cf - tree | cat >/dev/null
  # The contenders take turns within each round, so a slow spell of a shared machine falls on
  # all of them rather than on one column.
  g="" p="" b=""
  for _ in $(seq "$runs"); do
    g=$(min "$g" "$(seconds galley_cold "$dir")")
    p=$(min "$p" "$(seconds pipeline "$dir")")
    if [ "$skip_buildah" = 1 ]; then b="-"; else b=$(min "$b" "$(seconds buildah_cold "$dir" "$t")"); fi
  done
  home=$(mktemp -d "$out/home-XXXXXX")
  galley_build "$dir" "$home" >/dev/null
  n=""
  for _ in $(seq "$runs"); do n=$(min "$n" "$(seconds galley_build "$dir" "$home")"); done
  rm -rf "$home"
  rp=$(awk -v g="$g" -v p="$p" 'BEGIN { printf "%.2fx", g / p }')
  rb=$([ "$b" = "-" ] && echo "-" || awk -v g="$g" -v b="$b" 'BEGIN { printf "%.2fx", g / b }')
  printf '%-6s %8s %9s %8s %9s %8s %10s %10s\n' "$t" "$size" "$g" "$n" "$p" "$b" "$rp" "$rb"
  eval "g_$t=$g n_$t=$n p_$t=$p b_$t=$b"
done

# The targets, each with its measured value.
ratio() { [ "$2" = "-" ] && echo "-" || awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '\ntargets%s\n' "$([ "$scale" = 1 ] || echo " (set for --scale 1; this run is scaled)")"
target "small: galley/pipeline" "$(ratio "$g_small" "$p_small")" "<=" 0.60
target "real: galley/pipeline" "$(ratio "$g_real" "$p_real")" "<=" 0.60
target "small: galley/buildah (3x faster)" "$(ratio "$g_small" "$b_small")" "<=" 0.33
target "real: galley/buildah (2x faster)" "$(ratio "$g_real" "$b_real")" "<=" 0.50
target "big: galley/buildah (no slower)" "$(ratio "$g_big" "$b_big")" "<=" 1.00
target "small: no-op rebuild, seconds" "$n_small" "<" 0.100
