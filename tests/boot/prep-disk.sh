#!/bin/bash
# Boot tier, in a guest (tests/vm/guest-run.sh): turn the blank disk /dev/vda into a node with
# imgbase doing the imgbase parts: GPT [BIOS boot | ext4 /boot | LVM PV], VG HostVG with a
# thin pool, the root image copied into a thin LV (as an installer would), then
#   imgbase layout --init    -> base Node-1.0-0 and layer Node-1.0-0+1, with its boot entry
#   imgbase layer --add      -> layer Node-1.0-0+2, with its boot entry
#   imgbase boot --setup     -> /etc/grub.d/09_imgbase (here: the guest's own /etc)
#   imgbase boot --set-default Node-1.0-0+1
# then grub-install and a grub.cfg made the way grub-mkconfig makes it: Debian's own
# /etc/grub.d/00_header followed by imgbase's 09_imgbase script.
#   prep-disk.sh IMGBASE_BIN ROOT_IMAGE
set -euo pipefail
IMGBASE=${1:?usage: prep-disk.sh IMGBASE_BIN ROOT_IMAGE}
IMG=${2:?usage: prep-disk.sh IMGBASE_BIN ROOT_IMAGE}
D=/dev/vda
ts() { echo "[$(cut -d' ' -f1 /proc/uptime)] $*"; }
imgbase() { "$IMGBASE" "$@"; }
export IMGBASE_BOOT_DIR=/mnt/boot   # and the loader is detected: /mnt/boot/grub exists

ts "partition $D"
sfdisk -q $D <<PT
label: gpt
start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, name=bios
size=300MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=boot
type=E6D6D379-F507-44C2-A23C-238F2A3DF928, name=hostvg
PT
for _ in 1 2 3 4 5; do [ -b ${D}3 ] && break; sleep 1; done
mkfs.ext4 -q -F -L boot ${D}2
mkdir -p /mnt/boot && mount ${D}2 /mnt/boot && mkdir -p /mnt/boot/grub

ts "LVM: VG, thin pool, the installed root"
pvcreate -q -y ${D}3
vgcreate -q HostVG ${D}3
lvcreate -q -y --type thin-pool -l 90%FREE -n pool HostVG
lvcreate -q -y -V "$(stat -c %s "$IMG")b" -T HostVG/pool -n root
e2image -ra "$IMG" /dev/HostVG/root

ts "imgbase layout --init"
imgbase layout --init --from HostVG/root --nvr Node-1.0-0
ts "imgbase layer --add"
imgbase layer --add Node-1.0-0
ts "markers"
mkdir -p /mnt/layer
for L in Node-1.0-0+1 Node-1.0-0+2; do
  mount /dev/HostVG/$L /mnt/layer
  echo "$L" > /mnt/layer/etc/imgbase-test-layer
  umount /mnt/layer
done
ts "imgbase boot --setup, --set-default"
imgbase boot --setup
imgbase boot --set-default Node-1.0-0+1

ts "grub"
grub-install --target=i386-pc --boot-directory=/mnt/boot --modules="part_gpt ext2" $D 2>&1 | grep -v '^Installing for' || true
{
  GRUB_DEFAULT=0 GRUB_TIMEOUT=0 GRUB_TERMINAL=serial GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200" \
    pkgdatadir=/usr/share/grub sh /etc/grub.d/00_header
  /etc/grub.d/09_imgbase
  # What Debian's 41_custom adds: entries the test edits by hand (node-ctl.sh entry_as).
  echo 'if [ -f "${config_directory}/custom.cfg" ]; then source "${config_directory}/custom.cfg"; fi'
} > /mnt/boot/grub/grub.cfg
grub-script-check /mnt/boot/grub/grub.cfg
grub-script-check /mnt/boot/grub/imgbase.cfg

ts "state"
imgbase layout
imgbase boot --list
imgbase check
find /mnt/boot/imgbase -type f -printf '%p %n links\n' | sort
umount /mnt/boot
vgchange -q -an HostVG
ts "prepared"
