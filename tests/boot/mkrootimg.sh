#!/bin/bash
# Boot tier, step 2 (host, root): make the cached root tree a test node and pack it into an
# ext4 image (mkfs.ext4 -d: no loop device, no mount):
#   - a lean dracut initramfs (lvm + dm + virtio), built chrooted into the tree;
#   - /etc/kernel/cmdline: the node's own kernel arguments, which imgbase puts in every entry;
#   - the NVR file imgbase reads; a one-shot service that prints a report to the serial
#     console at boot (cmdline, findmnt /, the layer marker) and powers off.
#   - imgbase itself as the node runs it: the binary (/usr/sbin/imgbase), the dracut module
#     (dracut/90imgbase) in the initramfs, the systemd units (systemd/) enabled, /boot mounted.
#   mkrootimg.sh ROOTFS_DIR IMAGE [NVR]   (NVR default Node-1.0-0; its version goes into
#   /etc/imgbase-test-version, the vendor's file the report prints)
#   env: IMGBASE_BIN, the imgbase binary to install.
set -euo pipefail
R=${1:?usage: mkrootimg.sh ROOTFS_DIR IMAGE [NVR]}
IMG=${2:?usage: mkrootimg.sh ROOTFS_DIR IMAGE [NVR]}
NVR=${3:-Node-1.0-0}
BIN=${IMGBASE_BIN:?mkrootimg.sh: set IMGBASE_BIN}
REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
KVER=$(ls "$R/lib/modules" | sort -V | tail -1)
# imgbase's dracut module; the initramfs is rebuilt when it changes.
M=$R/usr/lib/dracut/modules.d/90imgbase
if ! diff -qr "$REPO/dracut/90imgbase" "$M" >/dev/null 2>&1; then
  rm -rf "$M" && cp -r "$REPO/dracut/90imgbase" "$M"
  touch "$R/etc/dracut.conf.d/10-node.conf"
fi
# Written only when it changes: its mtime decides whether the initramfs is rebuilt.
CONF=$(cat <<'C'
hostonly="no"
add_dracutmodules+=" lvm imgbase "
omit_dracutmodules+=" crypt nvdimm overlay-root lunmask resume virtiofs kernel-modules-extra terminfo qemu "
drivers+=" virtio_pci virtio_blk virtio_scsi sd_mod ahci ext4 dm_mod dm_thin_pool dm_snapshot "
compress="zstd"
C
)
[ "$(cat "$R/etc/dracut.conf.d/10-node.conf" 2>/dev/null)" = "$CONF" ] || echo "$CONF" > "$R/etc/dracut.conf.d/10-node.conf"
if [ ! -s "$R/boot/initrd.img-$KVER" ] || [ "$R/etc/dracut.conf.d/10-node.conf" -nt "$R/boot/initrd.img-$KVER" ]; then
  echo "boot tier: building the initramfs (dracut, in the root tree)"
  unbind() { for m in dev sys proc; do umount "$R/$m" 2>/dev/null || true; done; }
  trap unbind EXIT
  for m in proc sys dev; do mountpoint -q "$R/$m" || mount --bind "/$m" "$R/$m"; done
  chroot "$R" dracut -q --force "/boot/initrd.img-$KVER" "$KVER"
  unbind   # before mkfs.ext4 -d packs the tree
fi
for m in proc sys dev; do ! mountpoint -q "$R/$m" || { echo "mkrootimg: $R/$m is still mounted" >&2; exit 1; }; done
lsinitrd "$R/boot/initrd.img-$KVER" 2>/dev/null | grep 'lib/imgbase-lib.sh' >/dev/null \
  || { echo "mkrootimg: the initramfs lacks the imgbase module" >&2; exit 1; }
echo node > "$R/etc/hostname"
# /boot (prep-disk.sh labels it): imgbase in the node needs its entries and grubenv.
echo "LABEL=boot /boot ext4 defaults 0 2" > "$R/etc/fstab"
strip -o "$R/usr/sbin/imgbase" "$BIN" 2>/dev/null || cp "$BIN" "$R/usr/sbin/imgbase"
for u in "$REPO"/systemd/*; do cp "$u" "$R/usr/lib/systemd/system/"; done
mkdir -p "$R/etc/systemd/system/multi-user.target.wants" "$R/etc/systemd/system/timers.target.wants"
ln -sf /usr/lib/systemd/system/imgbase-bless.service "$R/etc/systemd/system/multi-user.target.wants/"
ln -sf /usr/lib/systemd/system/imgbase-check.timer "$R/etc/systemd/system/timers.target.wants/"
mkdir -p "$R/etc/kernel"
echo "console=ttyS0 mitigations=off rw rd.udev.log_level=3 systemd.show_status=0" > "$R/etc/kernel/cmdline"
mkdir -p "$R/usr/share/imgbase/build/meta"
echo "$NVR" > "$R/usr/share/imgbase/build/meta/nvr"
echo "$NVR" | cut -d- -f2 > "$R/etc/imgbase-test-version"
cat > "$R/usr/local/sbin/node-boot-report" <<'S'
#!/bin/sh
# Printed on the serial console for tests/boot/run, then a forced power-off (a clean
# shutdown costs ~20 s under TCG and the test does not need it).
{
echo "BOOT-REPORT-BEGIN"
echo "cmdline: $(cat /proc/cmdline)"
echo "findmnt: $(findmnt -n -o SOURCE,FSTYPE,OPTIONS /)"
echo "marker: $(cat /etc/imgbase-test-layer 2>/dev/null)"
echo "version: $(cat /etc/imgbase-test-version 2>/dev/null)"
echo "default: $(imgbase boot --get-default 2>&1)"
echo "dracut: $(tr '\n' ' ' < /run/imgbase/layer 2>/dev/null)"
# The initramfs's share of the boot (what systemd-analyze calls initrd), in microseconds.
echo "initrd-us: $(( $(systemctl show -P UserspaceTimestampMonotonic) - $(systemctl show -P InitRDTimestampMonotonic) ))"
echo "bless: $(systemctl show -P Result imgbase-bless.service) $(systemctl show -P ExecMainStatus imgbase-bless.service)"
imgbase check 2>&1 | sed 's/^/check: /'
echo "BOOT-REPORT-END"
} > /dev/ttyS0 2>&1
sync
systemctl poweroff --force --force
S
chmod +x "$R/usr/local/sbin/node-boot-report"
cat > "$R/etc/systemd/system/node-boot-report.service" <<'S'
[Unit]
Description=imgbase boot tier report
After=local-fs.target imgbase-bless.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/node-boot-report
[Install]
WantedBy=multi-user.target
S
ln -sf /etc/systemd/system/node-boot-report.service "$R/etc/systemd/system/multi-user.target.wants/node-boot-report.service"
rm -f "$IMG"
mkfs.ext4 -q -F -L noderoot -d "$R" "$IMG" 2G
echo "boot tier: root image $IMG ($(du -h "$IMG" | cut -f1) used, kernel $KVER)"
