#!/bin/bash
# Build the tiny initramfs (static busybox + a few modules) of the "hostroot" guest.
#   mkinitrd-hostroot.sh OUT.cpio.gz        (guest-run.sh calls it on first use; cached)
# Its /init (stage 1) loads virtio/9p/overlay/dm/loop, mounts the HOST's / (exported read-only
# by qemu over virtio-9p) as the lower layer of an overlayfs with a tmpfs upper, mounts /proc
# /sys /dev /run /tmp, the run dir (9p tag guestout) and the shares listed in it, then
# switch_root's into that and runs /run/guest-out/init2.sh (guest-init.sh, stage 2).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
[ $# -eq 1 ] || { echo "usage: $0 OUT.cpio.gz" >&2; exit 2; }
OUT=$1
vm_require_prereqs || exit 1
KVER=$(vm_kernel_version)
# Requested modules; stage 1 checks each one really loaded (their deps are pulled in too).
MODS="virtio_pci virtio_blk 9pnet_virtio 9p overlay dm_mod dm_thin_pool dm_snapshot loop"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
mkdir -p "$W"/{bin,dev,proc,sys,mods,lower,rw,newroot,ovl}
cp /bin/busybox "$W/bin/busybox"
: > "$W/mods/order"
: > "$W/mods/required"
for m in $MODS; do
  deps=$(modprobe -S "$KVER" --show-depends "$m") || vm_die "module $m not found for kernel $KVER"
  # stage 1 checks that each requested module loaded (built-in ones need no check)
  case $deps in "builtin "*) ;; *) echo "$m" >> "$W/mods/required";; esac
  echo "$deps"
done | awk '$1=="insmod"{print $2}' | awk '!seen[$0]++' | while read -r ko; do
  cp "$ko" "$W/mods/"; basename "$ko" >> "$W/mods/order"
done

# Drop the appended module signatures: verifying them (RSA+SHA) costs ~0.1 s per module under
# TCG, and Debian's kernel does not enforce them (it only taints). Layout at the end of a .ko:
# signature, signer, key id, struct module_signature (12 bytes), magic (28 bytes).
strip_sig() {
  local f=$1 magic='~Module signature appended~' signer keyid s0 s1 s2 s3 size siglen
  [ "$(tail -c 28 "$f" | head -c 27)" = "$magic" ] || return 0
  # struct module_signature: algo hash id_type signer_len key_id_len pad[3] sig_len(be32)
  read -r _ _ _ signer keyid _ _ _ s0 s1 s2 s3 < <(tail -c 40 "$f" | head -c 12 | od -An -tu1 -v)
  siglen=$(( (s0 << 24) | (s1 << 16) | (s2 << 8) | s3 ))
  size=$(stat -c %s "$f")
  truncate -s $(( size - 28 - 12 - siglen - signer - keyid )) "$f"
}
for ko in "$W"/mods/*.ko; do strip_sig "$ko"; done

cat > "$W/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
T() { read -r up _ < /proc/uptime; echo "$up $*" >> /timing; }
die() { echo "guest stage 1: FATAL: $*"; poweroff -f; sleep 10; }
T stage1-start
# Failures of optional deps are fine (crc32c-intel needs SSE4.2, absent with -cpu qemu64);
# the requested modules are checked below.
for m in $(cat /mods/order); do insmod "/mods/$m" 2>/dev/null; done
for m in $(cat /mods/required); do [ -d "/sys/module/$m" ] || die "module $m did not load"; done
[ -e /dev/loop-control ] || die "/dev/loop-control missing (loop)"
[ -e /dev/mapper/control ] || die "/dev/mapper/control missing (dm_mod)"
T modules-loaded
P9="trans=virtio,version=9p2000.L,msize=512000"
mount -t 9p -o $P9,ro,cache=loose hostroot /lower || die "9p mount of the host root failed"
mount -t tmpfs -o size=80% tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || die "overlay root failed"
N=/newroot
mount -t tmpfs -o mode=755 tmpfs $N/run; mount -t tmpfs -o mode=1777 tmpfs $N/tmp
mount --move /dev $N/dev; mkdir -p $N/dev/pts $N/dev/shm
mount -t devpts devpts $N/dev/pts; mount -t tmpfs tmpfs $N/dev/shm
ln -sf /proc/self/fd $N/dev/fd; ln -sf /proc/self/fd/0 $N/dev/stdin
ln -sf /proc/self/fd/1 $N/dev/stdout; ln -sf /proc/self/fd/2 $N/dev/stderr
mkdir -p $N/run/guest-out $N/run/lock
O=$N/run/guest-out
mount -t 9p -o $P9 guestout $O || die "9p mount of the run dir failed"
# Shares, one per line "KIND TAG PATH" (PATH may contain spaces): rw = the host dir itself,
# ovl = read-only host dir + tmpfs overlay (guest writes are discarded).
if [ -f $O/shares ]; then
  while read -r kind tag path; do
    mkdir -p "$N$path"
    case $kind in
      rw) mount -t 9p -o $P9 "$tag" "$N$path" || die "share $path failed";;
      ovl) mkdir -p "/ovl/$tag" "/rw/ovl-$tag/u" "/rw/ovl-$tag/w"
           mount -t 9p -o $P9,ro,cache=loose "$tag" "/ovl/$tag" || die "share $path failed"
           mount -t overlay overlay -o "lowerdir=/ovl/$tag,upperdir=/rw/ovl-$tag/u,workdir=/rw/ovl-$tag/w" "$N$path" || die "overlay share $path failed";;
    esac
  done < $O/shares
fi
CMD=$(cat /proc/cmdline)
# Guest-only LVM settings (written to the tmpfs overlay, the host is untouched):
#  - dmeventd monitoring off unless guest_lvm_monitor (spawning dmeventd is slow under TCG)
#  - without udev (default guest_udev=none) LVM must create /dev/mapper + /dev/VG/LV nodes itself,
#    else "device not cleared. Aborting. Failed to wipe start of new LV."
LVMCONF=""
case " $CMD " in *" guest_lvm_monitor "*) ;; *) LVMCONF="$LVMCONF\tmonitoring = 0\n";; esac
case " $CMD " in *" guest_udev=full "*|*" guest_udev=block "*) ;; *) LVMCONF="$LVMCONF\tudev_sync = 0\n\tudev_rules = 0\n";; esac
[ -n "$LVMCONF" ] && printf "activation {\n$LVMCONF}\n" >> $N/etc/lvm/lvmlocal.conf
echo guest > /proc/sys/kernel/hostname
T switch-root
cat /timing > $O/timing
mount --move /proc $N/proc; mount --move /sys $N/sys
exec switch_root $N /bin/busybox sh /run/guest-out/init2.sh
INIT
chmod +x "$W/init"
mkdir -p "$(dirname "$OUT")"
# Build beside OUT and rename: concurrent runs never see a half-written image.
(cd "$W" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT.tmp.$$"
mv -f "$OUT.tmp.$$" "$OUT"
echo "$OUT"
