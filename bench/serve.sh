#!/usr/bin/env bash
# Benchmark `galley serve`.
#
# 1. Webhook acknowledgement: 1,000 signed deliveries sent 50 at a time on loopback, mixed:
#    60% valid `ping`s, 20% bad signatures, 10% replays, 10% unknown repository. Prints the
#    latency p50 and p99 (ms) and deliveries per second, per kind and overall.
# 2. Time from an `opened` delivery to a serving preview of a web project (busybox httpd from a
#    bare git repository), side by side with a plain `galley apply` of the same project
#    (fresh GALLEY_HOME each, so both build the image).
#
# Needs podman, git, python3. Sends traffic only to 127.0.0.1.
# Usage: bench/serve.sh [--galley PATH] [--deliveries N] [--concurrency C] [--skip-previews]
set -euo pipefail

galley="${GALLEY_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/debug/galley}"
deliveries=1000
concurrency=50
skip_previews=0
while [ $# -gt 0 ]; do
  case "$1" in
    --galley) galley="$2"; shift 2 ;;
    --deliveries) deliveries="$2"; shift 2 ;;
    --concurrency) concurrency="$2"; shift 2 ;;
    --skip-previews) skip_previews=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$galley" ] || { echo "no galley binary at $galley (cargo build, or pass --galley)" >&2; exit 2; }

work="$(mktemp -d)"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"
printf 'bench-secret' >"$work/secret"
cat >"$work/serve.ncl" <<NCL
{
  listen = "127.0.0.1:$port",
  repositories."bench/site" = { clone_url = "$work/bare.git", webhook_secret = { file = "secret" } },
  policy.networks = ['none, 'isolated, 'egress],
  host_ports = [23000, 23099],
  reconcile_seconds = 3600,
}
NCL
mkdir -p "$work/home"
start_server() {
  GALLEY_HOME="$work/home" "$galley" serve --config "$work/serve.ncl" 2>"$work/serve.log" &
  server=$!
  for _ in $(seq 200); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "galley serve did not start:" >&2; cat "$work/serve.log" >&2; exit 1
}
start_server

echo "== webhook acknowledgement: $deliveries deliveries, $concurrency at a time =="
python3 - "$port" "$deliveries" "$concurrency" <<'PY'
import hashlib, hmac, http.client, json, sys, threading, time
port, total, conc = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
secret = b"bench-secret"
body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
good = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
plan = []
for i in range(total):
    r = i % 10
    if r < 6:   plan.append(("valid", "bench/site", good, f"d-{i}"))
    elif r < 8: plan.append(("bad signature", "bench/site", "sha256=" + "0" * 64, f"d-{i}"))
    elif r < 9: plan.append(("replay", "bench/site", good, "d-0"))
    else:       plan.append(("unknown repository", "other/repo", good, f"d-{i}"))
# The replayed id must have been seen first.
plan.sort(key=lambda p: p[0] == "replay")
results, lock, idx = [], threading.Lock(), [0]
def worker():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while True:
        with lock:
            if idx[0] >= len(plan): return
            kind, repo, sig, d = plan[idx[0]]; idx[0] += 1
        t = time.perf_counter()
        try:
            conn.request("POST", f"/hooks/github/{repo}", body, {"X-GitHub-Event": "ping", "X-GitHub-Delivery": d, "X-Hub-Signature-256": sig, "Content-Type": "application/json"})
            r = conn.getresponse(); r.read(); status = r.status
        except Exception:
            conn.close(); conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30); status = 0
        with lock: results.append((kind, status, (time.perf_counter() - t) * 1000))
start = time.perf_counter()
threads = [threading.Thread(target=worker) for _ in range(conc)]
[t.start() for t in threads]; [t.join() for t in threads]
wall = time.perf_counter() - start
def pct(v, p): v = sorted(v); return v[min(len(v) - 1, int(len(v) * p))]
print(f"{'kind':<20} {'n':>5} {'status':>8} {'p50 ms':>8} {'p99 ms':>8}")
for kind in ["valid", "bad signature", "replay", "unknown repository", "all"]:
    rows = [r for r in results if kind == "all" or r[0] == kind]
    statuses = ",".join(sorted({str(r[1]) for r in rows}))
    print(f"{kind:<20} {len(rows):>5} {statuses:>8} {pct([r[2] for r in rows], .5):>8.2f} {pct([r[2] for r in rows], .99):>8.2f}")
print(f"deliveries/s: {len(results) / wall:.0f} ({len(results)} in {wall:.2f} s)")
PY

[ "$skip_previews" = 1 ] && exit 0
echo
echo "== opened -> serving, against plain galley apply =="
name="bench$$"
mkdir -p "$work/src/site"
cp /bin/busybox "$work/src/busybox"
echo '<p>bench</p>' >"$work/src/site/index.html"
cat >"$work/src/galley.ncl" <<NCL
let galley = import "galley/std.ncl" in
{
  name = "$name",
  images.web = {
    files = [{ src = "busybox", dst = "/bin/busybox", mode = "0755" }, { src = "site", dst = "/srv/www", uid = 1000, gid = 1000 }],
    entrypoint = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/srv/www"],
  },
  sandboxes.web = galley.presets.service_on 8080 23500 & { image = "web", user = "1000:1000", resources = { memory = "128m", cpus = 0.5, pids = 64 } },
}
NCL
git -C "$work/src" init -q -b main
git -C "$work/src" -c user.name=b -c user.email=b@example.invalid add -A
git -C "$work/src" -c user.name=b -c user.email=b@example.invalid commit -qm bench
git init -q --bare "$work/bare.git"
git -C "$work/src" push -q "$work/bare.git" HEAD:refs/pull/1/head
sha="$(git -C "$work/src" rev-parse HEAD)"

serve_seconds="$(python3 - "$port" "$sha" "$work/home" <<'PY'
import hashlib, hmac, http.client, json, sys, time, os
port, sha, home = int(sys.argv[1]), sys.argv[2], sys.argv[3]
body = json.dumps({"action": "opened", "number": 1, "pull_request": {"head": {"sha": sha, "repo": {"full_name": "bench/site"}}}, "repository": {"full_name": "bench/site"}}).encode()
sig = "sha256=" + hmac.new(b"bench-secret", body, hashlib.sha256).hexdigest()
t = time.perf_counter()
c = http.client.HTTPConnection("127.0.0.1", port); c.request("POST", "/hooks/github/bench/site", body, {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "open-1", "X-Hub-Signature-256": sig}); c.getresponse().read()
rec = os.path.join(home, "serve/previews/bench+site/pr-1.json")
while True:
    try:
        r = json.load(open(rec))
        if r.get("failure"): sys.exit("preview failed: " + r["failure"])
        if r.get("url"):
            p = int(r["url"].rstrip("/").rsplit(":", 1)[1])
            try:
                h = http.client.HTTPConnection("127.0.0.1", p, timeout=2); h.request("GET", "/"); 
                if b"bench" in h.getresponse().read(): break
            except OSError: pass
    except (OSError, ValueError): pass
    if time.perf_counter() - t > 300: sys.exit("timed out")
    time.sleep(0.05)
print(f"{time.perf_counter() - t:.2f}")
PY
)"
mkdir -p "$work/home2"
t0="$(date +%s.%N)"
GALLEY_HOME="$work/home2" "$galley" -C "$work/src" apply --auto-approve -q >/dev/null
until curl -fs "http://127.0.0.1:23500/" | grep -q bench; do sleep 0.05; done
t1="$(date +%s.%N)"
apply_seconds="$(python3 -c "print(f'{$t1 - $t0:.2f}')")"
GALLEY_HOME="$work/home2" "$galley" -C "$work/src" destroy --auto-approve -q >/dev/null
python3 - "$port" "$sha" <<'PY' >/dev/null
import hashlib, hmac, http.client, json, sys
port, sha = int(sys.argv[1]), sys.argv[2]
body = json.dumps({"action": "closed", "number": 1, "pull_request": {"head": {"sha": sha, "repo": {"full_name": "bench/site"}}}, "repository": {"full_name": "bench/site"}}).encode()
sig = "sha256=" + hmac.new(b"bench-secret", body, hashlib.sha256).hexdigest()
c = http.client.HTTPConnection("127.0.0.1", port); c.request("POST", "/hooks/github/bench/site", body, {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "close-1", "X-Hub-Signature-256": sig}); c.getresponse().read()
PY
for _ in $(seq 300); do
  [ -z "$(podman ps -a -q --filter "label=io.galley.project=$name")" ] && break
  sleep 0.2
done
printf '%-34s %8s\n' "path" "seconds"
printf '%-34s %8s\n' "opened -> serving (galley serve)" "$serve_seconds"
printf '%-34s %8s\n' "galley apply -> serving" "$apply_seconds"
podman rmi $(podman images -q --filter "reference=localhost/galley/$name/*") >/dev/null 2>&1 || true
