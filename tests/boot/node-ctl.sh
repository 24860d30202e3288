#!/bin/bash
# Boot tier, in a guest: run one imgbase command against the node disk /dev/vda (its /boot
# mounted at /mnt/boot), then print the boot entries. Between boots, this is how the test
# switches layers: with imgbase itself, never by editing grubenv.
#   node-ctl.sh IMGBASE_BIN ARGS...
set -euo pipefail
IMGBASE=${1:?usage: node-ctl.sh IMGBASE_BIN ARGS...}; shift
export IMGBASE_BOOT_DIR=/mnt/boot
mkdir -p /mnt/boot && mount /dev/vda2 /mnt/boot
"$IMGBASE" "$@"
"$IMGBASE" boot --list
grub-editenv /mnt/boot/grub/grubenv list
umount /mnt/boot
vgchange -q -an HostVG >/dev/null
