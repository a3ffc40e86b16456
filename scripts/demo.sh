#!/usr/bin/env bash
# Sets up the machine and runs galley's main job on the examples: start a loopback registry, build
# galley's busybox base from scratch and push it, then for every example check, lock, build with
# --locked (proving the digests), apply, verify from the host, show status, and destroy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet
galley=$PWD/target/release/galley
work=$PWD/target/demo
mkdir -p "$work"
export GALLEY_HOME=${GALLEY_HOME:-$work/home}

# A registry on 127.0.0.1:5000 for the examples' base image, unless one is already there.
registry_pid=
cleanup() {
  for e in web agent; do "$galley" -q -C "examples/$e" destroy --auto-approve --instance demo >/dev/null 2>&1 || true; done
  [[ -n $registry_pid ]] && kill "$registry_pid" 2>/dev/null || true
}
trap cleanup EXIT
if ! (exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null; then
  cat > "$work/registry.yml" <<YAML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $work/registry } }
http: { addr: "127.0.0.1:5000" }
YAML
  docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null && break; sleep 0.1; done
fi

step() { printf '\n== %s\n' "$*" >&2; }

step "doctor: is this host ready for galley?"
"$galley" doctor

step "base image: busybox from scratch, pushed to 127.0.0.1:5000"
sh examples/base/setup.sh
"$galley" -C examples/base build
"$galley" -C examples/base push busybox 127.0.0.1:5000/galley/busybox:1.36

# Secrets for the examples: an env source for web, the encrypted store for agent.
export WEB_API_TOKEN=demo-token-$RANDOM$RANDOM
# The demo's store key is made once and kept beside the demo's state (owner-only).
if [[ -z ${GALLEY_MASTER_KEY:-} ]]; then
  if [[ ! -s $work/master.key ]]; then
    (umask 077; od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$work/master.key")
  fi
  GALLEY_MASTER_KEY=$(cat "$work/master.key")
fi
export GALLEY_MASTER_KEY
printf 'demo-model-key-%s' "$RANDOM$RANDOM" | "$galley" -C examples/agent secret set MODEL_API_KEY

for example in hello web agent; do
  dir=examples/$example
  step "$example: check, lock --check, build --locked"
  "$galley" -C "$dir" check --deny warnings
  "$galley" -C "$dir" lock --check
  "$galley" -C "$dir" build --locked
  if [[ $example == hello ]]; then continue; fi
  step "$example: apply, verify, status"
  "$galley" -C "$dir" apply --locked --auto-approve --instance demo
  "$galley" -C "$dir" verify --instance demo
  "$galley" -C "$dir" status --instance demo
  "$galley" -C "$dir" plan --detailed-exitcode --instance demo
done

step "web answers on 127.0.0.1:18080"
exec 3<>/dev/tcp/127.0.0.1/18080
printf 'GET / HTTP/1.0\r\n\r\n' >&3
grep -q 'served from a galley sandbox' <&3
echo "demo: every example checked, locked, built reproducibly, applied and verified" >&2
