#!/usr/bin/env bash
# Installs what galley's tests and demo need on a Debian machine: podman, buildah, runc and the
# OCI tools, a registry for loopback tests, busybox-static for test base images, and the Python
# validators (pytest-lsp, kubernetes-validate). Idempotent; as a normal user it only says what is
# missing.
set -euo pipefail

packages=(podman buildah runc skopeo umoci uidmap docker-registry oci-image-tool busybox-static
          python3-pip python3-venv iproute2 git)
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

# Debian starts the packaged registry on :5000 where it can; tests and the demo run their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
