#!/usr/bin/env bash
# Benchmark `galley verify` on 10 running sandboxes of one project.
#
# Starts 10 busybox sandboxes with `galley apply` (every flag of the manifest), checks that
# verify passes them, then times verify several times and prints figures, including how many
# podman calls one verify makes (one `podman ps` to find the containers and one batched
# `podman container inspect` for all of them). Needs root, podman, buildah and busybox-static.
#
# Verify and its own calls are timed in alternation; BASELINE=path/to/another/galley is timed in
# the same rounds (an earlier build, to compare before and after in one run).
#
#   bench/verify.sh [RUNS]        GALLEY=path/to/galley (default target/release, else debug)
set -euo pipefail

runs=${1:-5}
n=10
here=$(cd "$(dirname "$0")/.." && pwd)
galley=${GALLEY:-}
if [[ -z $galley ]]; then
  galley=$here/target/release/galley
  [[ -x $galley ]] || galley=$here/target/debug/galley
fi
[[ -x $galley ]] || { echo "error: no galley binary; run cargo build first" >&2; exit 2; }
export GALLEY_OCI_RUNTIME=${GALLEY_OCI_RUNTIME:-runc}

work=$(mktemp -d)
project=bench$$
export GALLEY_HOME=$work/home
export BENCH_TOKEN=bench-token-$project-9c1d

cleanup() {
  "$galley" -C "$work/project" destroy --auto-approve --volumes >/dev/null 2>&1 || true
  podman ps -aq --filter "label=io.galley.project=$project" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
  podman images --format '{{.Repository}}:{{.Tag}}' | grep "^localhost/galley/$project/" | xargs -r podman rmi >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/project"
cp /bin/busybox "$work/project/busybox"
{
  echo "{ name = \"$project\","
  echo "  images.app = { files = [{ src = \"busybox\", dst = \"/bin/busybox\", mode = \"0755\" }], entrypoint = [\"/bin/busybox\", \"sleep\", \"1000000\"] },"
  for i in $(seq 0 $((n - 1))); do
    cat <<EOF
  sandboxes.s$i = {
    image = "app", network = 'isolated, user = "65534:65534",
    seccomp = { defaultAction = "SCMP_ACT_ALLOW", syscalls = [{ action = "SCMP_ACT_ERRNO", names = ["ptrace"] }] },
    secrets.TOKEN = { env = "BENCH_TOKEN" },
    resources = { memory = "64m", cpus = 0.5, pids = 32, nofile = 1024, nproc = 512 },
  },
EOF
  done
  echo "}"
} >"$work/project/galley.ncl"

# The sandboxes are started by galley itself, as a user's would be (user namespaces, host-side
# rules, secret files and all), so verify has everything to check.
echo "starting $n sandboxes" >&2
"$galley" -C "$work/project" lock >/dev/null
"$galley" -C "$work/project" apply --auto-approve --locked >/dev/null

if ! "$galley" -C "$work/project" verify --format json >"$work/pass.json"; then
  jq '.sandboxes[].findings[]' "$work/pass.json" >&2
  echo "error: the bench sandboxes do not pass verify" >&2
  exit 1
fi
checks=$(jq '[.sandboxes[].checks[]] | length' "$work/pass.json")

# Count podman calls of one verify through a logging shim on PATH.
mkdir -p "$work/shim"
real=$(command -v podman)
printf '#!/bin/sh\necho "$*" >>%s\nexec %s "$@"\n' "$work/calls.log" "$real" >"$work/shim/podman"
chmod +x "$work/shim/podman"
PATH="$work/shim:$PATH" "$galley" -C "$work/project" verify --format json >/dev/null
calls=$(wc -l <"$work/calls.log")
inspects=$(grep -c 'container inspect' "$work/calls.log" || true)
sed 's/^/  podman /' "$work/calls.log" | cut -c1-100 >&2

ms() { echo $(($(date +%s%N) / 1000000)); }
ids=$(podman ps -q --filter "label=io.galley.project=$project" | tr '\n' ' ')
t0=$(ms)
# shellcheck disable=SC2086
podman container inspect $ids >/dev/null
inspect_ms=$(($(ms) - t0))

# The calls one verify makes, run side by side as verify runs them, and verify itself, timed in
# alternation round after round, so that both see the same state of the machine (podman's
# latency drifts between rounds far more than within one).
own_calls() {
  while read -r call; do
    # shellcheck disable=SC2086
    podman $call >/dev/null 2>&1 &
  done <"$work/calls.log"
  if [[ $(id -u) == 0 ]]; then
    iptables -w 10 -S >/dev/null 2>&1 &
    ip6tables -w 10 -S >/dev/null 2>&1 &
  fi
  wait
}

t0=$(ms)
"$galley" -C "$work/project" show >/dev/null
show_ms=$(($(ms) - t0))

baseline=${BASELINE:-}
times=()
owns=()
before=()
for _ in $(seq "$runs"); do
  t0=$(ms)
  own_calls
  owns+=($(($(ms) - t0)))
  t0=$(ms)
  "$galley" -C "$work/project" verify --format json >/dev/null
  times+=($(($(ms) - t0)))
  if [[ -n $baseline ]]; then
    t0=$(ms)
    "$baseline" -C "$work/project" verify --format json >/dev/null || true
    before+=($(($(ms) - t0)))
  fi
done
median_of() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
best_of() { printf '%s\n' "$@" | sort -n | head -1; }
best=$(best_of "${times[@]}")
median=$(median_of "${times[@]}")
own_ms=$(best_of "${owns[@]}")
own_median=$(median_of "${owns[@]}")

echo "galley verify, $n running sandboxes ($galley)"
echo "  checks per run:            $checks (all passed)"
echo "  podman calls per run:      $calls ($inspects batched container inspect)"
echo "  podman inspect alone:      ${inspect_ms} ms"
echo "  config evaluation alone:   ${show_ms} ms (galley show)"
echo "  verify wall time:          best ${best} ms, median ${median} ms over $runs runs"
echo "  per sandbox (median):      $((median / n)) ms"
echo "  its own calls side by side: best ${own_ms} ms, median ${own_median} ms (podman calls above, and iptables -S per family as root)"
echo "  verify / its own calls:    $(awk -v a="$median" -v b="$own_median" 'BEGIN { printf "%.2f", a / b }')x, median against median (target: at most 2x)"
echo "                             $(awk -v a="$median" -v b="$own_ms" 'BEGIN { printf "%.2f", a / b }')x, verify's median against the calls' best"
echo "  verify / one inspect:      $(awk -v a="$median" -v b="$inspect_ms" 'BEGIN { printf "%.2f", a / b }')x median"
if [[ -n $baseline ]]; then
  b=$(median_of "${before[@]}")
  echo "  baseline ($baseline): best $(best_of "${before[@]}") ms, median ${b} ms; $(awk -v a="$b" -v c="$own_median" 'BEGIN { printf "%.2f", a / c }')x its own calls, median against median"
  echo "  verify / baseline:         $(awk -v a="$median" -v b="$b" 'BEGIN { printf "%.2f", a / b }')x median"
fi
