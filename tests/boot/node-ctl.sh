#!/bin/bash
# Boot tier, in a guest: run one imgbase command against the node disk /dev/vda (its /boot
# mounted at /mnt/boot), then print the boot entries. Between boots, this is how the test
# switches layers: with imgbase itself, never by editing grubenv.
# With --sh, a shell snippet instead: what an operator or a fault does behind imgbase's back.
#   node-ctl.sh IMGBASE_BIN ARGS...
#   node-ctl.sh IMGBASE_BIN --sh SNIPPET
set -euo pipefail
IMGBASE=${1:?usage: node-ctl.sh IMGBASE_BIN ARGS...}; shift
export IMGBASE_BOOT_DIR=/mnt/boot
mkdir -p /mnt/boot && mount /dev/vda2 /mnt/boot
# entry_as LAYER ARG: a copy of LAYER's entry in grub/custom.cfg with its imgbase.layer=
# replaced by ARG, booted once (what an operator does by editing the entry at the console).
entry_as() {
  awk -v id="'$1'" -v arg="$2" '
    $1 == "menuentry" && $(NF-1) == id { on = 1; $(NF-1) = "test-entry" }
    on { sub(/imgbase[.]layer=[^ ]*/, arg); print }
    on && $1 == "}" { on = 0 }' /mnt/boot/grub/imgbase.cfg > /mnt/boot/grub/custom.cfg
  cat /mnt/boot/grub/custom.cfg
  grep -qF "$2" /mnt/boot/grub/custom.cfg || { echo "node-ctl: no entry for $1" >&2; exit 1; }
  grub-editenv /mnt/boot/grub/grubenv set next_entry=test-entry
}
if [ "$1" = --sh ]; then eval "$2"; else "$IMGBASE" "$@"; fi
"$IMGBASE" boot --list
grub-editenv /mnt/boot/grub/grubenv list
umount /mnt/boot
vgchange -q -an HostVG >/dev/null
