#!/bin/bash
# LVM thin-provisioning smoke check, to diagnose a machine: run it in a guest with a disk:
#   tests/vm/run-in-guest.sh tests/vm/lvm-smoke.sh      (or guest-run.sh -d /tmp/d.img:4G ...)
# Uses $IMGBASE_SCRATCH_DISK (default /dev/vda) and WIPES it.
set -euo pipefail
# It wipes a disk: refuse to run anywhere but in a guest-run.sh guest (on the host, /dev/vda
# may well be the root disk).
if [ ! -d /run/guest-out ] || [ "$(hostname)" != guest ]; then
  echo "lvm-smoke.sh: run me in a guest (tests/vm/run-in-guest.sh tests/vm/lvm-smoke.sh)" >&2; exit 2
fi
ts() { echo "[$(cut -d' ' -f1 /proc/uptime)] $*"; }
ts "kernel $(uname -r)"; ls -l /dev/mapper/control || true
D=${IMGBASE_SCRATCH_DISK:-/dev/vda}; [ -b "$D" ] || { echo "no block device $D" >&2; exit 1; }
ts "pvcreate/vgcreate"
pvcreate -ff -y "$D"
vgcreate HostVG "$D"
ts "thin pool"
lvcreate -y --type thin-pool -L 1G -n pool HostVG
lvcreate -y -V 4G -T HostVG/pool -n base
ts "mkfs + mount"
mkfs.ext4 -q -F /dev/HostVG/base
mkdir -p /mnt/base /mnt/layer1
mount /dev/HostVG/base /mnt/base
echo "base content" > /mnt/base/hello.txt
umount /mnt/base
ts "read-only base + thin snapshot"
lvchange -p r HostVG/base
lvcreate -s -n layer1 HostVG/base
lvchange -ay -K HostVG/layer1
mount /dev/HostVG/layer1 /mnt/layer1
cat /mnt/layer1/hello.txt
echo "layer1 content" > /mnt/layer1/layer.txt
sync; umount /mnt/layer1
ts "tags"
lvchange --addtag hostos.layer=1 --addtag hostos.parent:base HostVG/layer1
lvchange --addtag hostos.base HostVG/base
lvs --reportformat json -o +lv_tags,lv_permissions,origin,pool_lv,data_percent HostVG
ts "negative check: writes to ro base must fail"
if mkfs.ext4 -q -F /dev/HostVG/base 2>/dev/null; then echo "ERROR: base writable"; exit 1; else echo "ok: base is read-only"; fi
ts "rw share (optional arg 1: a dir shared with -s)"
if [ -n "${1:-}" ] && [ -d "$1" ]; then lvs --reportformat json -o +lv_tags HostVG > "$1/lvs.json"; echo "wrote lvs.json to the rw share"; fi
ts "deactivate"
vgchange -an HostVG
ts "done"
