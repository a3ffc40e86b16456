#!/usr/bin/env bash
# Times `galley check` and `galley lock --check` on each example, and `galley check` on 1,000,
# 2,000 and 4,000 generated sandboxes, with a release build, side by side with the process floor
# (`galley --version`: exec of the same binary) and the targets. For each: median wall time and
# median CPU time (user + system, the process and its children) over the runs, and the peak RSS
# of the process tree (the CLI and its `galley __load` child; see bench/measure.py).
#
# Targets: every example under 50 ms for check and for lock --check; 4,000 sandboxes under 2 s
# and 300 MiB. On a loaded machine the wall time exceeds the CPU time; compare the two.
#
# The generated configs are the ones bench/runner.sh starts: an image and N sandboxes written
# `sandboxes.sN = { ... }`, one field definition each ("piecewise"). The same sandboxes written
# as one record, `sandboxes = { sN = { ... } }` ("nested"), are timed too: on its own, Nickel
# rebuilds a piecewise group once per definition when it typechecks and when it evaluates, and
# galley's lang/piecewise.rs is what keeps the first shape as cheap as the second.
#
# Env: RUNS (default 20) for the examples, BIG_RUNS (default 3) for the generated configs,
# GALLEY=path to use a built binary instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${GALLEY:-} ]]; then
  cargo build --release --quiet
fi
galley=${GALLEY:-$PWD/target/release/galley}
work=$(mktemp -d)
export GALLEY_HOME=$work/home
# Measure the large configs rather than stop at the default 10 s limit on a busy machine.
export GALLEY_EVAL_TIMEOUT_MS=120000
trap 'rm -rf "$work"' EXIT
runs=${RUNS:-20}
big_runs=${BIG_RUNS:-3}
measure() { python3 bench/measure.py "$@"; }

generate() { # $1 = number of sandboxes, $2 = piecewise|nested, $3 = directory
  mkdir -p "$3"
  cp /bin/busybox "$3/busybox" 2>/dev/null || printf 'x' >"$3/busybox"
  {
    echo "{ name = \"many\", images.box = { files = [{ src = \"busybox\", dst = \"/bin/busybox\", mode = \"0755\" }] },"
    [[ $2 == nested ]] && echo "  sandboxes = {"
    local prefix=sandboxes.
    [[ $2 == nested ]] && prefix=
    for i in $(seq 1 "$1"); do
      echo "  ${prefix}s$i = { image = \"box\", command = [\"/bin/busybox\", \"sleep\", \"1000000\"] },"
    done
    [[ $2 == nested ]] && echo "  }"
    echo "}"
  } >"$3/galley.ncl"
}

row() { # label, target, then measure's three columns
  printf '%-34s %10s %10s %10s   %s\n' "$1" "$3" "$4" "$5" "$2"
}

# Write the embedded library and each named seccomp profile once, as any earlier command would.
for e in examples/*/; do "$galley" -C "$e" lock --check >/dev/null 2>&1 || true; done

printf '%-34s %10s %10s %10s   %s\n' "" "wall (ms)" "cpu (ms)" "rss (MiB)" "target"
IFS=$'\t' read -r w c r < <(measure "$runs" "$galley" --version)
row "floor: galley --version" "" "$w" "$c" "$r"
for e in examples/*/; do
  name=$(basename "$e")
  IFS=$'\t' read -r w c r < <(measure "$runs" "$galley" -C "$e" check)
  row "$name: check" "< 50 ms" "$w" "$c" "$r"
  if [[ -f $e/galley.lock ]]; then
    IFS=$'\t' read -r w c r < <(measure "$runs" "$galley" -C "$e" lock --check)
    row "$name: lock --check" "< 50 ms" "$w" "$c" "$r"
  fi
done
for shape in piecewise nested; do
  for n in 1000 2000 4000; do
    generate "$n" "$shape" "$work/$shape-$n"
    target=""
    [[ $n == 4000 ]] && target="< 2000 ms, < 300 MiB"
    IFS=$'\t' read -r w c r < <(measure "$big_runs" "$galley" -C "$work/$shape-$n" check)
    row "check, $n sandboxes ($shape)" "$target" "$w" "$c" "$r"
  done
done
