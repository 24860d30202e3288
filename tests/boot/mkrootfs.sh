#!/bin/bash
# Boot tier, step 1 (host, root): a minimal Debian bookworm root tree for the test node, built
# once with mmdebstrap from the host's own apt sources and cached: systemd, udev, the kernel,
# lvm2, thin-provisioning-tools and dracut (which replaces initramfs-tools).
#   mkrootfs.sh OUTDIR        (does nothing if OUTDIR is already built)
set -euo pipefail
OUT=${1:?usage: mkrootfs.sh OUTDIR}
[ -d "$OUT/usr" ] && { echo "boot tier: cached rootfs: $OUT"; exit 0; }
SOURCES=/etc/apt/sources.list.d/debian.sources
[ -r "$SOURCES" ] || SOURCES=/etc/apt/sources.list
[ -r "$SOURCES" ] || { echo "mkrootfs: no apt sources on this host ($SOURCES)" >&2; exit 1; }
rm -rf "$OUT.tmp"; mkdir -p "$OUT.tmp"
mmdebstrap --variant=minbase --mode=root --quiet \
  --include=systemd-sysv,udev,linux-image-amd64,lvm2,thin-provisioning-tools,dracut,e2fsprogs,util-linux,kmod,procps,zstd \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --essential-hook='mkdir -p "$1/etc/dracut.conf.d"; printf "hostonly=\"no\"\nadd_dracutmodules+=\" lvm \"\n" > "$1/etc/dracut.conf.d/10-node.conf"' \
  bookworm "$OUT.tmp" "$SOURCES"
mv "$OUT.tmp" "$OUT"
echo "boot tier: built rootfs: $OUT"
