#!/bin/sh
# Fill rootfs/ from the host's static busybox (Debian: apt-get install busybox-static).
set -eu
cd "$(dirname "$0")"
src=${BUSYBOX:-/bin/busybox}
file "$src" 2>/dev/null | grep -q 'statically linked' || echo "warning: $src may not be static" >&2
mkdir -p rootfs/bin
cp "$src" rootfs/bin/busybox
chmod 0755 rootfs/bin/busybox
ln -sf busybox rootfs/bin/sh
