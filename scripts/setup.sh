#!/usr/bin/env bash
# Installs what galley's tests and demo need on a Debian machine: podman, buildah, runc and the
# OCI tools, a registry for loopback tests, busybox-static for test base images, and the Python
# validators (pytest-lsp, kubernetes-validate). Idempotent; as a normal user it only says what is
# missing. It needs nothing beyond an empty Debian root (`mmdebstrap --variant=minbase`) and runs
# without systemd (in a chroot): tests/fresh_machine.rs proves both.
set -euo pipefail

# netavark and aardvark-dns: galley's instance networks need DNS on internal networks, which
# podman's older CNI backend does not give. catatonit: the pause process of `podman kube play`.
# ca-certificates: pip reaches PyPI over TLS. gcc and libc6-dev: cargo links with cc, and ring,
# aws-lc-sys and zstd-sys compile C. file: examples/base/setup.sh checks busybox is static.
# mmdebstrap: tests/fresh_machine.rs builds the empty Debian root it runs this script in.
# dpkg-dev, apt-utils, gpg, gpgv, xz-utils, zstd: tests/support/apt-repo.sh indexes, compresses and
# signs the loopback APT repository of the Debian package tests, whose .debs may be xz or zstd.
packages=(podman buildah runc skopeo umoci uidmap netavark aardvark-dns catatonit iptables docker-registry
          oci-image-tool busybox-static python3-pip python3-venv iproute2 git
          ca-certificates python3 gcc libc6-dev file mmdebstrap
          dpkg-dev apt-utils gpg gpgv xz-utils zstd)
python_packages=(pytest pytest-lsp kubernetes-validate)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "  help: run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

py_missing=()
for p in "${python_packages[@]}"; do
  python3 -m pip show -q "$p" >/dev/null 2>&1 || py_missing+=("$p")
done
if ((${#py_missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "setup: installing Python packages ${py_missing[*]}" >&2
    # Debian marks its python3 externally managed (PEP 668) and packages neither pytest-lsp nor
    # kubernetes-validate: as root pip puts them under /usr/local, apart from dpkg's files. An
    # older pip ignores the variable.
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check "${py_missing[@]}"
  else
    echo "setup: missing Python packages: ${py_missing[*]}" >&2
    echo "  help: run as root, or: python3 -m pip install --user --break-system-packages ${py_missing[*]}" >&2
    exit 1
  fi
fi

# podman keeps the network backend it first ran with. Move a CNI host to netavark when that hides
# no network of the user's (only podman's own defaults exist); otherwise say how.
backend=$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null || echo unknown)
if [[ $backend == cni ]]; then
  user_networks=$(podman network ls --format '{{.Name}}' | grep -cvxE 'podman|podman-default-kube-network' || true)
  if [[ $(id -u) -eq 0 && $user_networks -eq 0 ]]; then
    echo "setup: switching podman's network backend from cni to netavark (/etc/containers/containers.conf.d/50-netavark.conf)" >&2
    mkdir -p /etc/containers/containers.conf.d
    printf '[network]\nnetwork_backend = "netavark"\n' > /etc/containers/containers.conf.d/50-netavark.conf.tmp
    mv /etc/containers/containers.conf.d/50-netavark.conf.tmp /etc/containers/containers.conf.d/50-netavark.conf
  else
    echo "setup: podman uses the cni network backend; galley needs netavark" >&2
    echo "  help: set network_backend = \"netavark\" under [network] in containers.conf; podman then no longer lists the $user_networks CNI network(s) it has now" >&2
    exit 1
  fi
fi

# The Debian package tests serve real .debs from a loopback APT repository (tests talk only to
# loopback), so they are fetched here, once: the closure of python3-minimal as APT computes it, and
# a few small packages that exercise what the closure lacks: a virtual package through Provides
# (base-files pre-depends on awk, which mawk provides), alternatives (readline-common depends on
# "dpkg | install-info") and Architecture: all (readline-common, netbase). GALLEY_TEST_DEBS moves
# the cache (src/env_vars.rs). A valid cached .deb is kept; delete the folder to fetch anew.
if [[ -n ${GALLEY_TEST_DEBS:-} ]]; then
  test_debs=$GALLEY_TEST_DEBS
elif [[ $(id -u) -eq 0 ]]; then
  test_debs=/var/cache/galley/test-debs
else
  test_debs=${XDG_CACHE_HOME:-$HOME/.cache}/galley/test-debs
fi
test_deb_extras=(mawk base-files readline-common install-info netbase)
if ! apt-cache show python3-minimal >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq
  else
    echo "setup: APT knows no python3-minimal, so the test packages cannot be fetched" >&2
    echo "  help: run as root, or: sudo apt-get update" >&2
    exit 1
  fi
fi
# Real package names only: `apt-cache depends` also prints virtual ones as <name>.
mapfile -t test_deb_closure < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances python3-minimal | grep -v -e '^ ' -e '^<' | sort -u)
mkdir -p "$test_debs"
test_debs_missing=()
for p in "${test_deb_closure[@]}" "${test_deb_extras[@]}"; do
  found=0
  for f in "$test_debs"/"${p}"_*.deb; do
    [[ -f $f ]] && [[ $(dpkg-deb --field "$f" Package 2>/dev/null) == "$p" ]] && found=1
  done
  ((found)) || test_debs_missing+=("$p")
done
if ((${#test_debs_missing[@]})); then
  echo "setup: downloading test packages ${test_debs_missing[*]} into $test_debs" >&2
  staging=$(mktemp -d "$test_debs/.download.XXXXXX")
  # As root, apt-get downloads as its sandbox user _apt, which must be able to write here.
  if [[ $(id -u) -eq 0 ]] && id _apt >/dev/null 2>&1; then chown _apt "$staging"; fi
  (cd "$staging" && apt-get download -qq "${test_debs_missing[@]}")
  for f in "$staging"/*.deb; do
    if ! dpkg-deb --info "$f" >/dev/null; then
      echo "setup: $f is not a valid .deb" >&2
      rm -rf "$staging"
      exit 1
    fi
    mv "$f" "$test_debs/"
  done
  rmdir "$staging"
fi
printf '%s\n' "${test_deb_closure[@]}" > "$test_debs/.python3-minimal.closure.tmp"
mv "$test_debs/.python3-minimal.closure.tmp" "$test_debs/python3-minimal.closure"

# Debian's Rust is older than galley's rust-version (Cargo.toml), so rustup provides it.
if ! command -v cargo >/dev/null 2>&1 || ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: note: cargo or cargo-nextest is not installed; scripts/test.sh and scripts/demo.sh build galley with them" >&2
  echo "  help: install Rust with rustup (https://rustup.rs), then: cargo install --locked cargo-nextest" >&2
fi

# Debian starts the packaged registry on :5000 where it can; tests and the demo run their own.
# /run/systemd/system exists only while systemd runs (not in a chroot or a plain container).
if [[ -d /run/systemd/system ]] && systemctl is-active -q docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi

# Every sandbox runs in a user namespace of its own (podman's --userns=auto): rootful podman cuts
# each one's 65,536 ids from the subordinate ranges of its `containers` user, here the upper half
# of the id space, far above every account and every user's own range (32,768 sandboxes at once).
subids_range="containers:2147483647:2147483648"
for f in /etc/subuid /etc/subgid; do
  if ! grep -qE '^containers:[0-9]+:[0-9]+$' "$f" 2>/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
      echo "setup: giving podman's containers user the ids ${subids_range#containers:} in $f" >&2
      echo "$subids_range" >> "$f"
    else
      echo "setup: $f has no range for podman's containers user, which sandboxes' user namespaces need" >&2
      echo "  help: run as root, or: echo $subids_range | sudo tee -a $f" >&2
      exit 1
    fi
  fi
done
