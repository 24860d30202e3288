#!/bin/bash
# Benchmark: what the imgbase dracut module adds to the initramfs's time. On the host, as
# root (like tests/boot/run, whose scripts it uses):
#   sudo benches/initramfs.sh [BOOTS]      (default 5 boots of each initramfs)
# One node disk; its layer boots BOOTS times with the initramfs the boot tier builds (module
# included; imgbase.layer= names the entry's own layer, the everyday case) and BOOTS times
# with the same initramfs built without the module. Each boot reports the initrd phase
# (systemd's UserspaceTimestamp - InitRDTimestamp). Prints the medians and their ratio
# (target: at most 1.02). Asserts nothing about time.
set -euo pipefail
BOOTS=${1:-5}
HERE=$(cd "$(dirname "$0")/../tests/boot" && pwd -P)
. "$HERE/../vm/lib.sh"
[ "$(id -u)" = 0 ] || { echo "benches/initramfs.sh: run as root" >&2; exit 1; }
C=$VM_CACHE_DIR/boot; mkdir -p "$C"
W=$(mktemp -d "$C/bench.XXXXXX"); trap 'rm -rf "$W"' EXIT
BIN=$(cd "$VM_REPO" && cargo build -q --message-format=json-render-diagnostics 2>/dev/null | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]=="imgbase": print(m["executable"])' | tail -1)
export IMGBASE_BIN=$BIN
"$HERE/mkrootfs.sh" "$C/rootfs"
"$HERE/mkrootimg.sh" "$C/rootfs" "$W/root.img"
R=$C/rootfs KVER=$(ls "$C/rootfs/lib/modules" | sort -V | tail -1)
unbind() { for m in dev sys proc; do umount "$R/$m" 2>/dev/null || true; done; }
for m in proc sys dev; do mountpoint -q "$R/$m" || mount --bind "/$m" "$R/$m"; done
chroot "$R" dracut -q --force --omit imgbase /tmp/initrd-without-module "$KVER"
unbind
mv "$R/tmp/initrd-without-module" "$W/"
! lsinitrd "$W/initrd-without-module" 2>/dev/null | grep imgbase-lib.sh >/dev/null || { echo "the module is still in" >&2; exit 1; }
DISK=$W/disk.img
"$VM_DIR/guest-run.sh" -t 900 -d "$DISK:8G" "$HERE/prep-disk.sh" "$BIN" "$W/root.img" >/dev/null

boots() { # LABEL: BOOTS boots, the initrd time of each in ms on one line
  local i out
  for i in $(seq "$BOOTS"); do
    out=$("$HERE/boot-disk.sh" "$DISK" "$W/boot.log" 600) || { echo "$out" >&2; exit 1; }
    sed -n 's/^initrd-us: \([0-9]*\)$/\1/p' <<<"$out" | awk '{ printf "%d ", $1 / 1000 }'
  done
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
with=$(boots)
"$VM_DIR/guest-run.sh" -t 900 -d "$DISK:8G" "$HERE/node-ctl.sh" "$BIN" --sh \
  "cp $W/initrd-without-module /mnt/boot/imgbase/Node-1.0-0+1/initrd.img-$KVER" >/dev/null
without=$(boots)
echo "initrd phase with the module (ms):    $with"
echo "initrd phase without the module (ms): $without"
mw=$(median <<<"$with") mo=$(median <<<"$without")
echo "medians: with ${mw} ms, without ${mo} ms"
echo "RATIO with / without: $(echo "scale=3; $mw / $mo" | bc)  (target <= 1.02)"
