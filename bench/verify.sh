#!/usr/bin/env bash
# Benchmark `galley verify` on 10 running sandboxes of one project.
#
# Starts 10 busybox sandboxes the way the runner does (every flag of the manifest), checks that
# verify passes them, then times verify several times and prints figures, including how many
# podman calls one verify makes (one `podman ps` to find the containers and one batched
# `podman container inspect` for all of them). Needs root, podman, buildah and busybox-static.
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
secrets=$(mktemp -d -p /dev/shm) # secret files live on a tmpfs, as the runner keeps them
project=bench$$
image=localhost/galley-verify-bench:$project
net=galley-$project-default
export GALLEY_HOME=$work/home
export BENCH_TOKEN=bench-token-$project-9c1d

cleanup() {
  podman ps -aq --filter "label=io.galley.project=$project" | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
  podman network rm -f "$net" >/dev/null 2>&1 || true
  podman rmi -f "$image" >/dev/null 2>&1 || true
  rm -rf "$work" "$secrets"
}
trap cleanup EXIT

echo "building the busybox image" >&2
c=$(buildah from scratch)
buildah copy --chmod 0755 "$c" /bin/busybox /bin/busybox >/dev/null
buildah config --user 65534:65534 --cmd '["/bin/busybox","sleep","1000000"]' "$c"
buildah commit -q "$c" "$image" >/dev/null
buildah rm "$c" >/dev/null
podman network create --internal "$net" >/dev/null

mkdir -p "$work/project"
# Delivered as apply delivers them: one file per sandbox and secret under the instance's run dir,
# which verify reads back (here a link to the tmpfs directory).
mkdir -p "$GALLEY_HOME/run/$project"
ln -s "$secrets" "$GALLEY_HOME/run/$project/default"
for i in $(seq 0 $((n - 1))); do
  mkdir -p "$secrets/s$i"
  printf %s "$BENCH_TOKEN" >"$secrets/s$i/TOKEN"
done
profile='{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ERRNO","names":["ptrace"]}]}'
printf %s "$profile" >"$work/seccomp.json"
{
  echo "{ name = \"$project\", images.app = {},"
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

start() { # sandbox, manifest digest
  podman run -d --name "galley-$project-default-$1" \
    --label "io.galley.project=$project" --label io.galley.instance=default \
    --label "io.galley.sandbox=$1" --label "io.galley.manifest=$2" \
    --network "$net" --cap-drop ALL --security-opt no-new-privileges \
    --security-opt "seccomp=$work/seccomp.json" --read-only --tmpfs /tmp:size=64m,mode=1777 \
    --user 65534:65534 --pids-limit 32 --memory 64m --cpus 0.5 \
    --ulimit nofile=1024:1024 --ulimit nproc=512:512 \
    -v "$secrets/$1/TOKEN:/run/secrets/TOKEN:ro" "$image" >/dev/null
}

echo "starting $n sandboxes" >&2
for i in $(seq 0 $((n - 1))); do start "s$i" unknown; done
# The first audit names the manifest digest each sandbox must carry; recreate them with it, as
# the runner would have.
"$galley" -C "$work/project" verify --format json >"$work/first.json" || true
for i in $(seq 0 $((n - 1))); do
  digest=$(jq -r --arg s "s$i" '.sandboxes[] | select(.sandbox == $s) | .findings[] | select(.check == "galley manifest") | .expected' "$work/first.json")
  podman rm -f -t 0 "galley-$project-default-s$i" >/dev/null
  start "s$i" "$digest"
done

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

t0=$(ms)
"$galley" -C "$work/project" show >/dev/null
show_ms=$(($(ms) - t0))

times=()
for _ in $(seq "$runs"); do
  t0=$(ms)
  "$galley" -C "$work/project" verify --format json >/dev/null
  times+=($(($(ms) - t0)))
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
best=$(echo "$sorted" | head -1)
median=$(echo "$sorted" | sed -n "$(((runs + 1) / 2))p")

echo "galley verify, $n running sandboxes ($galley)"
echo "  checks per run:            $checks (all passed)"
echo "  podman calls per run:      $calls ($inspects batched container inspect)"
echo "  podman inspect alone:      ${inspect_ms} ms"
echo "  config evaluation alone:   ${show_ms} ms (galley show)"
echo "  verify wall time:          best ${best} ms, median ${median} ms over $runs runs"
echo "  per sandbox (median):      $((median / n)) ms"
