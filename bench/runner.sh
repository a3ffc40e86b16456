#!/usr/bin/env bash
# Runner benchmark: galley's plan/apply against the raw podman calls they need.
#
#   bench/runner.sh [ROUNDS]        (GALLEY_BIN overrides the galley binary; root, podman, buildah)
#
# Measures (median of ROUNDS wall-clock runs, milliseconds):
#   1. apply of one new sandbox        vs  podman ps + podman run with the same flags
#   2. no-op plan of 10 sandboxes      vs  podman ps + network ls + volume ls
#   3. no-op apply of 10 sandboxes     vs  the same three listings
# Everything it creates is labelled with a unique project name and removed on exit.
set -euo pipefail

ROUNDS=${1:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
GALLEY=${GALLEY_BIN:-$HERE/target/release/galley}
PROJECT="bench-$$"
WORK=$(mktemp -d)
export GALLEY_HOME="$WORK/home" NO_COLOR=1
RUNTIME=(--runtime "${GALLEY_OCI_RUNTIME:-runc}")
IMAGE="raw-$PROJECT:latest"

cleanup() {
  podman ps -aq --filter "label=io.galley.project=$PROJECT" | xargs -r podman rm -f -t 0 >/dev/null
  podman ps -aq --filter "label=bench=$PROJECT" | xargs -r podman rm -f -t 0 >/dev/null
  podman network ls -q --filter "label=io.galley.project=$PROJECT" | xargs -r podman network rm -f >/dev/null
  podman volume ls -q --filter "label=io.galley.project=$PROJECT" | xargs -r podman volume rm -f >/dev/null
  podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
  podman images --format '{{.Repository}}:{{.Tag}}' | grep "^localhost/galley/$PROJECT/" | xargs -r podman rmi >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$GALLEY" ] || { echo "error: $GALLEY not found; build it with cargo build --release" >&2; exit 2; }
ctr=$(buildah from scratch)
buildah copy -q "$ctr" /bin/busybox /bin/busybox >/dev/null
buildah commit -q "$ctr" "$IMAGE" >/dev/null
buildah rm "$ctr" >/dev/null

cp /bin/busybox "$WORK/busybox"
config() { # $1 = number of sandboxes
  {
    echo "{ name = \"$PROJECT\", images.box = { files = [{ src = \"busybox\", dst = \"/bin/busybox\", mode = \"0755\" }] },"
    for i in $(seq 1 "$1"); do
      echo "  sandboxes.s$i = { image = \"box\", command = [\"/bin/busybox\", \"sleep\", \"1000000\"] },"
    done
    echo "}"
  } >"$WORK/galley.ncl"
}

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# time_ms CMD...: wall-clock milliseconds of one run
time_ms() { local t0; t0=$(now); "$@" >/dev/null 2>&1; echo $((($(now) - t0) / 1000000)); }

g() { "$GALLEY" -C "$WORK" "$@"; }
raw_list() {
  podman ps --all --format json --filter "label=io.galley.project=$PROJECT" --filter "label=io.galley.instance=default"
  podman network ls --format json --filter "label=io.galley.project=$PROJECT"
  podman volume ls --format json --filter "label=io.galley.project=$PROJECT"
}
raw_run() {
  podman ps --all --format json --filter "label=bench=$PROJECT" >/dev/null
  podman "${RUNTIME[@]}" run --detach --pull never --name "raw-$PROJECT" --hostname s1 --label "bench=$PROJECT" \
    --cap-drop ALL --security-opt no-new-privileges --security-opt "seccomp=$(ls "$GALLEY_HOME"/seccomp/*.json | head -1)" \
    --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,nosuid,nodev,size=64m,mode=1777 --user 65534:65534 \
    --network none --pids-limit 256 --memory 512m --cpus 1 \
    --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=1024:1024 \
    "$IMAGE" /bin/busybox sleep 1000000
}

# 1. one new sandbox
config 1
g apply --auto-approve >/dev/null 2>&1 # warm: library, seccomp profile file
apply_new=() raw_new=()
for _ in $(seq "$ROUNDS"); do
  g destroy --auto-approve >/dev/null 2>&1
  apply_new+=("$(time_ms g apply --auto-approve)")
  raw_new+=("$(time_ms raw_run)")
  podman rm -f -t 0 "raw-$PROJECT" >/dev/null
done
g destroy --auto-approve >/dev/null 2>&1

# 2 and 3. ten sandboxes, nothing to do
config 10
g apply --auto-approve >/dev/null 2>&1
plan=() apply=() raw=()
for _ in $(seq "$ROUNDS"); do
  plan+=("$(time_ms g plan)")
  apply+=("$(time_ms g apply --auto-approve)")
  raw+=("$(time_ms raw_list)")
done
g destroy --auto-approve --volumes >/dev/null 2>&1

printf '%-34s %10s %12s\n' "operation (median of $ROUNDS, ms)" "galley" "raw podman"
printf '%-34s %10s %12s\n' "apply, 1 new sandbox" "$(printf '%s\n' "${apply_new[@]}" | median)" "$(printf '%s\n' "${raw_new[@]}" | median)"
printf '%-34s %10s %12s\n' "plan, 10 sandboxes, no changes" "$(printf '%s\n' "${plan[@]}" | median)" "$(printf '%s\n' "${raw[@]}" | median)"
printf '%-34s %10s %12s\n' "apply, 10 sandboxes, no changes" "$(printf '%s\n' "${apply[@]}" | median)" "$(printf '%s\n' "${raw[@]}" | median)"
