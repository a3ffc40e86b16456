#!/usr/bin/env bash
# Benchmark galley's port forwarder against podman's direct publish.
#
# Applies one project with two identical busybox httpd sandboxes serving a 256 MiB file and a
# small one from a tmpfs: `direct` ('egress, its port published by podman/netavark) and `fwd`
# ('isolated, its port carried by `galley __forward` into its network namespace). Prints the
# download throughput of the big file and the mean and median time of one request for the small
# one (a new connection each: httpd closes after every answer), side by side. All traffic is on
# 127.0.0.1. Needs root, podman, buildah, busybox-static and curl.
#
#   bench/forward.sh [RUNS] [REQUESTS]   GALLEY=path/to/galley (default target/release, else debug)
set -euo pipefail

runs=${1:-3}
requests=${2:-300}
here=$(cd "$(dirname "$0")/.." && pwd)
galley=${GALLEY:-}
if [[ -z $galley ]]; then
  galley=$here/target/release/galley
  [[ -x $galley ]] || galley=$here/target/debug/galley
fi
[[ -x $galley ]] || { echo "error: no galley binary; run cargo build first" >&2; exit 2; }
export GALLEY_OCI_RUNTIME=${GALLEY_OCI_RUNTIME:-runc}

work=$(mktemp -d)
project=fwdbench$$
export GALLEY_HOME=$work/home
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p_direct=$(free_port)
p_fwd=$(free_port)

cleanup() {
  (cd "$work" && "$galley" destroy --auto-approve --volumes >/dev/null 2>&1) || true
  podman images --format '{{.Repository}}:{{.Tag}}' | grep "^localhost/galley/$project/" | xargs -r podman rmi >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cp /bin/busybox "$work/busybox"
serve='["/bin/busybox", "sh", "-c", "/bin/busybox dd if=/dev/zero of=/tmp/big bs=1M count=256 2>/dev/null; echo ok > /tmp/small; exec /bin/busybox httpd -f -p 8080 -h /tmp"]'
cat > "$work/galley.ncl" <<NCL
let galley = import "galley/std.ncl" in
let web = fun net port => galley.presets.service_on 8080 port & {
  image = "box",
  user = "1000:1000",
  network = net,
  command = $serve,
  tmpfs = [{ path = "/tmp", size = "300m" }],
  resources.memory = "1g",
} in
{
  name = "$project",
  images.box = { files = [{ src = "busybox", dst = "/bin/busybox", mode = "0755" }] },
  sandboxes.direct = web 'egress $p_direct,
  sandboxes.fwd = web 'isolated $p_fwd,
}
NCL
cd "$work"
echo "applying (galley: $galley)" >&2
"$galley" lock >/dev/null
"$galley" apply --auto-approve --locked >/dev/null || { echo "error: apply failed" >&2; exit 1; }
for p in $p_direct $p_fwd; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$p/small" && break; sleep 0.1; done
done

throughput() { # MB/s of the big file, best of $runs
  local best=0 s
  for _ in $(seq "$runs"); do
    s=$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$1/big")
    best=$(python3 -c "print(max($best, $s / 1e6))")
  done
  printf '%.0f' "$best"
}
latency() { # mean and median ms of one request of the small file, each on a new connection
  local urls=()
  for _ in $(seq "$requests"); do urls+=(-o /dev/null "http://127.0.0.1:$1/small"); done
  curl -s -w '%{time_total}\n' "${urls[@]}" |
    python3 -c 'import sys, statistics as st; t=[float(l)*1000 for l in sys.stdin]; print(f"{st.mean(t):.3f} {st.median(t):.3f}")'
}

printf '%-26s %14s %14s\n' "" "direct publish" "forwarder"
printf '%-26s %14s %14s\n' "throughput, 256 MiB (MB/s)" "$(throughput "$p_direct")" "$(throughput "$p_fwd")"
read -r dm dmed < <(latency "$p_direct")
read -r fm fmed < <(latency "$p_fwd")
printf '%-26s %14s %14s\n' "request, mean (ms)" "$dm" "$fm"
printf '%-26s %14s %14s\n' "request, median (ms)" "$dmed" "$fmed"
echo "($requests requests, new connection each; throughput best of $runs)"
