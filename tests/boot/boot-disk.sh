#!/bin/bash
# Boot tier: boot a disk image the way real hardware does (no -kernel: SeaBIOS -> grub from the
# disk -> kernel + initramfs from /boot -> dracut -> root on a thin LV -> systemd), capture the
# serial console, print the BOOT-REPORT block. Exit 0 if the report was seen.
#   boot-disk.sh DISK LOG [timeout_s]
set -uo pipefail
DISK=$1 LOG=$2 TO=${3:-600}
ACCEL=(-accel tcg,thread=multi,tb-size=512 -cpu "${VM_QEMU_CPU:-qemu64}")
# KVM only where it is real VMX/SVM: PVM (/sys/module/kvm_pvm) cannot run a stock kernel.
if [ "${VM_ACCEL:-}" = kvm ] || { [ -z "${VM_ACCEL:-}" ] && [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; }; then
  ACCEL=(-accel kvm -cpu host)
fi
t0=$SECONDS
# shellcheck disable=SC2086 # VM_QEMU_EXTRA is a word list
timeout --kill-after=10 "$TO" qemu-system-x86_64 "${ACCEL[@]}" -smp 2 -m 1024 -M pc \
  -nographic -no-reboot -drive "file=$DISK,if=none,id=d0,format=raw,cache=unsafe" \
  -device virtio-blk-pci,drive=d0,bootindex=0 -device virtio-rng-pci ${VM_QEMU_EXTRA:-} \
  </dev/null > "$LOG" 2>&1
rc=$?
tr -d '\r' < "$LOG" | sed -n '/^BOOT-REPORT-BEGIN/,/^BOOT-REPORT-END/p'
echo "boot-disk: qemu exit $rc after $((SECONDS - t0)) s (console log: $LOG)"
[ "$rc" = 124 ] && echo "boot-disk: TIMEOUT after ${TO}s; console tail:" && tail -c 3000 "$LOG" | tr -d '\r'
grep -q '^BOOT-REPORT-END' <(tr -d '\r' < "$LOG")
