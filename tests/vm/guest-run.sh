#!/bin/bash
# guest-run.sh: run a bash script in a throw-away QEMU guest that has device-mapper (the host
# kernel may not). The guest boots the host's Debian kernel; its root is the HOST's / (read-only
# over virtio-9p, tmpfs overlay on top), so every host tool and every binary built on the host
# runs there unchanged. The script's stdout/stderr stream to ours; we exit with its exit code,
# or 255 (and the console's tail) if it gave none: timeout, crash, failed boot.
#
#   guest-run.sh [opts] SCRIPT [ARGS...]
#   -m MiB        guest memory (VM_MEM, default 2048)      -c N  vCPUs (VM_CPUS, default 2)
#   -t SECONDS    hard timeout of the whole guest (VM_TIMEOUT, default 600)
#   -d FILE[:SIZE]  attach FILE as a raw virtio disk (/dev/vda, /dev/vdb, ... in order); created
#                 sparse with SIZE (e.g. 32G) if missing
#   -o DIR        make host DIR visible in the guest at the same path, read-only with a tmpfs
#                 overlay (writes are discarded). Only needed for dirs under /tmp /run /dev,
#                 which the guest mounts over; a no-op for other dirs (already visible).
#   -s HOSTDIR[:GUESTDIR]  share HOSTDIR read-WRITE at GUESTDIR (default: same path)
#   -e VAR=VALUE  set an environment variable for the script (repeatable)
#   -v            stream the guest console live (VM_VERBOSE=1); stdout+stderr are merged
#   -k            keep the run dir (console.log, timing, stdout) and print its path (VM_KEEP=1)
# The script runs as root with bash, cwd = our cwd if the guest can see it (else the run dir).
# env: VM_CACHE (default <repo>/target/vm-cache), VM_ACCEL=tcg|kvm, VM_QEMU_CPU (TCG model,
#      default qemu64), VM_TB_SIZE (TCG cache MiB, 256), VM_QEMU_EXTRA (extra qemu args),
#      VM_APPEND (kernel args: guest_udev=block|full, guest_lvm_monitor), VM_KERNEL_VERSION.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
HERE=$VM_DIR

MEM=${VM_MEM:-2048} CPUS=${VM_CPUS:-2} TIMEOUT=${VM_TIMEOUT:-600}
VERBOSE=${VM_VERBOSE:-0} KEEP=${VM_KEEP:-0}
DISKS=() SHARES=() OVLS=() ENVS=()
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while getopts "m:c:t:d:o:s:e:vkh" o; do case $o in
  m) MEM=$OPTARG;; c) CPUS=$OPTARG;; t) TIMEOUT=$OPTARG;; d) DISKS+=("$OPTARG");;
  o) OVLS+=("$OPTARG");; s) SHARES+=("$OPTARG");; e) ENVS+=("$OPTARG");;
  v) VERBOSE=1;; k) KEEP=1;; *) usage;; esac; done
shift $((OPTIND-1))
[ $# -ge 1 ] || usage
[ -f "$1" ] || vm_die "no such script: $1"
SCRIPT=$(realpath "$1"); shift
vm_require_prereqs || exit 1

KVER=$(vm_kernel_version)
VMLINUZ=/boot/vmlinuz-$KVER
# Cache entries are keyed by the kernel image (a same-version package update changes it) and
# by the initramfs script itself, so editing either rebuilds them.
KSTAMP=$KVER-$(stat -c %s-%Y "$VMLINUZ")
mkdir -p "$VM_CACHE_DIR"
INITRD=$VM_CACHE_DIR/initrd-hostroot-$KSTAMP-$(sha256sum "$HERE/mkinitrd-hostroot.sh" | cut -c1-12).cpio.gz
if [ ! -f "$INITRD" ]; then
  echo "guest-run: building the guest initramfs (once) for kernel $KVER" >&2
  "$HERE/mkinitrd-hostroot.sh" "$INITRD" >/dev/null
fi
# Boot the uncompressed vmlinux (PVH ELF entry): saves ~6 s of XZ decompression under TCG.
# Falls back to the bzImage if it cannot be cut out (e.g. a non-XZ kernel).
KERNEL=$VM_CACHE_DIR/vmlinux-$KSTAMP
if [ ! -f "$KERNEL" ] && [ ! -f "$KERNEL.unusable" ]; then
  off=$(grep -abo -m1 $'\xfd7zXZ' "$VMLINUZ" | head -1 | cut -d: -f1) || true
  # no pipefail: tail gets SIGPIPE when xz stops after the first stream; xz's status counts
  if [ -n "$off" ] && (set +o pipefail; tail -c +$((off + 1)) "$VMLINUZ" | xz -dc --single-stream > "$KERNEL.tmp.$$" 2>/dev/null) \
     && [ "$(head -c 4 "$KERNEL.tmp.$$" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
    mv -f "$KERNEL.tmp.$$" "$KERNEL"
  else
    rm -f "$KERNEL.tmp.$$"; touch "$KERNEL.unusable"
  fi
fi
[ -f "$KERNEL" ] || KERNEL=$VMLINUZ

RUN=$(mktemp -d "${TMPDIR:-/tmp}/guest-run.XXXXXX")
QPID='' TPIDS=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  if [ -n "$QPID" ]; then kill "$QPID" 2>/dev/null || true; wait "$QPID" 2>/dev/null || true; fi
  for p in "${TPIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then echo "guest-run: run dir kept: $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
# Interrupted (Ctrl-C, the calling test killed, CI cancel): take the guest down with us.
trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 129' HUP

for d in "${OVLS[@]}"; do [ -d "$d" ] || vm_die "-o: no such dir: $d"; done
# Overlay shares: only masked dirs, outermost first, nested ones dropped.
GUEST_VISIBLE=()
: > "$RUN/shares"
qargs=()
j=0
while IFS= read -r d; do
  [ -n "$d" ] || continue
  vm_masked "$d" || continue
  for v in "${GUEST_VISIBLE[@]}"; do case $d/ in "$v"/*) continue 2;; esac; done
  GUEST_VISIBLE+=("$d")
  qargs+=(-virtfs "local,path=${d//,/,,},mount_tag=ovl$j,security_model=none,readonly=on,multidevs=remap")
  printf 'ovl ovl%s %s\n' "$j" "$d" >> "$RUN/shares"; j=$((j + 1))
done < <(for d in "${OVLS[@]}"; do realpath "$d"; done | sort -u)
for s in "${SHARES[@]}"; do
  h=${s%%:*}; g=$h; [[ $s == *:* ]] && g=${s#*:}
  [ -d "$h" ] || vm_die "-s: no such dir: $h"
  h=$(realpath "$h")
  GUEST_VISIBLE+=("$g")
  qargs+=(-virtfs "local,path=${h//,/,,},mount_tag=rw$j,security_model=none,multidevs=remap")
  printf 'rw rw%s %s\n' "$j" "$g" >> "$RUN/shares"; j=$((j + 1))
done
visible() {
  local v
  vm_masked "$1" || return 0
  for v in "${GUEST_VISIBLE[@]}"; do case $1/ in "$v"/*) return 0;; esac; done
  return 1
}
# Run the script in place when the guest can see it (its dirname stays useful), else a copy.
GSCRIPT=$SCRIPT
if ! visible "$SCRIPT"; then cp "$SCRIPT" "$RUN/script.sh"; GSCRIPT=/run/guest-out/script.sh; fi
GCWD=$(pwd -P); visible "$GCWD" || GCWD=/run/guest-out
{
  echo "# written by guest-run.sh"
  for e in "${ENVS[@]}"; do [[ $e == [A-Za-z_]*=* ]] || vm_die "-e wants VAR=VALUE: $e"; printf 'export %q\n' "$e"; done
  printf 'cd -- %q || exit 1\n' "$GCWD"
  printf 'exec bash --'; printf ' %q' "$GSCRIPT" "$@"; echo
} > "$RUN/run.sh"
cp "$HERE/guest-init.sh" "$RUN/init2.sh"
: > "$RUN/stdout"; : > "$RUN/stderr"

i=0
for d in "${DISKS[@]}"; do
  f=${d%%:*}; sz=; [[ $d == *:* ]] && sz=${d#*:}
  if [ ! -e "$f" ]; then
    [ -n "$sz" ] || vm_die "-d $f: no such file; give a size (FILE:SIZE) to create it"
    truncate -s "$sz" "$f"
  fi
  qargs+=(-drive "file=${f//,/,,},if=none,id=d$i,format=raw,cache=unsafe,discard=unmap"
          -device "virtio-blk-pci,drive=d$i,serial=disk$i"); i=$((i + 1))
done

# /dev/kvm on some hosts is PVM (kvm_pvm): it only runs PVM-enlightened guest kernels, a stock
# Debian kernel hangs right after decompression. So use KVM only when it is real VMX/SVM.
ACCEL=${VM_ACCEL:-}
if [ -z "$ACCEL" ]; then
  if [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then ACCEL=kvm; else ACCEL=tcg; fi
fi
case $ACCEL in
  kvm) accel=(-enable-kvm -cpu host);;
  # qemu64: `-cpu max` is ~3x slower under TCG for some code
  tcg) accel=(-accel "tcg,thread=multi,tb-size=${VM_TB_SIZE:-256}" -cpu "${VM_QEMU_CPU:-qemu64}");;
  *) vm_die "VM_ACCEL must be tcg or kvm, not $ACCEL";;
esac
append="console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off rdinit=/init ${VM_APPEND:-}"
[ "$VERBOSE" = 1 ] && append="$append guest_verbose"
# shellcheck disable=SC2206 # VM_QEMU_EXTRA is a list of words on purpose
[ -n "${VM_QEMU_EXTRA:-}" ] && qargs+=(${VM_QEMU_EXTRA})

t0=$(date +%s%N)
# pdeathsig on both: if this script dies even by SIGKILL, timeout and then qemu get SIGKILL.
# timeout: TERM at the limit, KILL 10 s later if qemu ignores it.
setpriv --pdeathsig KILL -- timeout -k 10 "$TIMEOUT" setpriv --pdeathsig KILL -- \
  qemu-system-x86_64 "${accel[@]}" -smp "$CPUS" -m "$MEM" -M pc -nographic -no-reboot -nic none \
  -bios /usr/share/qemu/qboot.rom -kernel "$KERNEL" -initrd "$INITRD" -append "$append" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$RUN,mount_tag=guestout,security_model=none" \
  "${qargs[@]}" </dev/null >"$RUN/console.log" 2>&1 &
QPID=$!
# Stream while the guest runs (-s 0.2: poll interval, also after qemu exits).
if [ "$VERBOSE" = 1 ]; then
  tail -s 0.2 -n +1 -f --pid="$QPID" "$RUN/console.log" & TPIDS+=($!)
else
  tail -s 0.2 -n +1 -f --pid="$QPID" "$RUN/stdout" & TPIDS+=($!)
  tail -s 0.2 -n +1 -f --pid="$QPID" "$RUN/stderr" >&2 & TPIDS+=($!)
fi
qrc=0; wait "$QPID" || qrc=$?
QPID=
for p in "${TPIDS[@]}"; do wait "$p" || true; done
TPIDS=()
t1=$(date +%s%N)

wall_ms=$(( (t1 - t0) / 1000000 ))
# No timing file when the guest died before stage 1 finished: report '?', never fail here.
up() { awk -v k="$1" '$2 == k { print $1; exit }' "$RUN/timing" 2>/dev/null || true; }
ss=$(up script-start); se=$(up script-end); sdur='?'
[ -n "$ss" ] && [ -n "$se" ] && sdur=$(awk -v a="$ss" -v b="$se" 'BEGIN { printf "%.1f", b - a }')
printf 'guest-run: %s, boot %ss (kernel start to script), script %ss, wall %d.%ds\n' "$ACCEL" \
  "${ss:-?}" "$sdur" $((wall_ms / 1000)) $((wall_ms % 1000 / 100)) >&2
if [ -f "$RUN/rc" ]; then
  rc=$(cat "$RUN/rc")
else
  rc=255
  case $qrc in
    124|137) echo "guest-run: TIMEOUT: the guest was killed after ${TIMEOUT}s (-t / VM_TIMEOUT)" >&2;;
    *) echo "guest-run: the script gave no exit code (qemu exit $qrc: crash or failed boot)" >&2;;
  esac
  echo "guest-run: last lines of the guest console:" >&2
  tail -40 "$RUN/console.log" | sed 's/^/  | /' >&2
  [ "$KEEP" = 1 ] || echo "guest-run: rerun with -k (VM_KEEP=1) to keep the run dir, -v (VM_VERBOSE=1) to watch the console" >&2
fi
exit "$rc"
