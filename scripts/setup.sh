#!/usr/bin/env bash
# Installs what galley's tests and demo need on a Debian machine: podman, buildah, runc and the
# OCI tools, a registry for loopback tests, busybox-static for test base images, and the Python
# validators (pytest-lsp, kubernetes-validate). Idempotent; as a normal user it only says what is
# missing.
set -euo pipefail

# netavark and aardvark-dns: galley's instance networks need DNS on internal networks, which
# podman's older CNI backend does not give. catatonit: the pause process of `podman kube play`.
packages=(podman buildah runc skopeo umoci uidmap netavark aardvark-dns catatonit iptables docker-registry
          oci-image-tool busybox-static python3-pip python3-venv iproute2 git)
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
  echo "setup: installing Python packages ${py_missing[*]}" >&2
  python3 -m pip install -q --disable-pip-version-check "${py_missing[@]}"
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

# Debian starts the packaged registry on :5000 where it can; tests and the demo run their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
