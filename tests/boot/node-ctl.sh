#!/bin/bash
# Boot tier, in a guest: run one imgbase command against the node disk /dev/vda (its /boot
# mounted at /mnt/boot), then print the boot entries. Between boots, this is how the test
# switches layers: with imgbase itself, never by editing grubenv.
# With --sh, a shell snippet instead: what an operator or a fault does behind imgbase's back.
#   node-ctl.sh IMGBASE_BIN ARGS...
#   node-ctl.sh IMGBASE_BIN --sh SNIPPET
#   node-ctl.sh IMGBASE_BIN --cut STEP ARGS...   (the power cut before a step of imgbase ARGS)
set -euo pipefail
IMGBASE=${1:?usage: node-ctl.sh IMGBASE_BIN ARGS...}; shift
export IMGBASE_BOOT_DIR=/mnt/boot
# The journal must outlive the guest (on a node it is in the layer's /var/lib/imgbase).
export IMGBASE_STATE_DIR=/mnt/boot/imgbase-test-state
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
in_layer() { # LV: mount it at /mnt/layer
  lvchange -q -ay -K "HostVG/$1" && mkdir -p /mnt/layer && mount "/dev/HostVG/$1" /mnt/layer
}
# break_init LV: its init exits at once, so the kernel panics. Both /sbin/init and what the
# initramfs's systemd runs after switch-root (/usr/lib/systemd/systemd) are replaced.
break_init() {
  in_layer "$1"
  for f in /mnt/layer/usr/sbin/init /mnt/layer/usr/lib/systemd/systemd; do
    rm -f "$f"
    printf '#!/bin/sh\necho "broken init: exiting"\nexit 1\n' > "$f"
    chmod 755 "$f"
  done
  umount /mnt/layer
}
# failing_unit LV: a health check, required by boot-complete.target, that fails.
failing_unit() {
  in_layer "$1"
  printf '%s\n' '[Unit]' 'Description=A health check that fails' 'Before=boot-complete.target' \
    '[Service]' 'Type=oneshot' 'ExecStart=/bin/false' '[Install]' 'RequiredBy=boot-complete.target' \
    > /mnt/layer/etc/systemd/system/node-health.service
  mkdir -p /mnt/layer/etc/systemd/system/boot-complete.target.requires
  ln -sf ../node-health.service /mnt/layer/etc/systemd/system/boot-complete.target.requires/
  umount /mnt/layer
}
# cut STEP ARGS...: run imgbase ARGS and cut the power (no sync, no shutdown) before the plan
# step whose text starts with STEP (debug builds pause there: IMGBASE_FAULT).
cut() {
  local what=$1 n; shift
  n=$("$IMGBASE" --dry-run "$@" | sed -n "s/^ *\([0-9]*\)\. $what.*/\1/p" | head -1)
  [ -n "$n" ] || { echo "node-ctl: no step '$what' in the plan" >&2; exit 1; }
  echo 1 > /proc/sys/kernel/sysrq
  IMGBASE_FAULT=pause-before:$((n - 1)) "$IMGBASE" "$@" 2> /tmp/imgbase.err &
  until grep -q "paused before step" /tmp/imgbase.err; do
    kill -0 $! 2>/dev/null || { cat /tmp/imgbase.err; echo "node-ctl: imgbase ended" >&2; exit 1; }
    sleep 0.2
  done
  echo "node-ctl: cutting the power before step $n ($what)"
  echo b > /proc/sysrq-trigger
  sleep 60
}
case "$1" in
  --sh) eval "$2" ;;
  --cut) shift; cut "$@" ;;
  *) "$IMGBASE" "$@" ;;
esac
"$IMGBASE" boot --list
grub-editenv /mnt/boot/grub/grubenv list
umount /mnt/boot
vgchange -q -an HostVG >/dev/null
