#!/bin/bash
# Boot tier, step 2 (host, root): make the cached root tree a test node and pack it into an
# ext4 image (mkfs.ext4 -d: no loop device, no mount):
#   - a lean dracut initramfs (lvm + dm + virtio), built chrooted into the tree;
#   - /etc/kernel/cmdline: the node's own kernel arguments, which imgbase puts in every entry;
#   - the NVR file imgbase reads; a one-shot service that prints a report to the serial
#     console at boot (cmdline, findmnt /, the layer marker) and powers off.
#   mkrootimg.sh ROOTFS_DIR IMAGE [NVR]   (NVR default Node-1.0-0; its version goes into
#   /etc/imgbase-test-version, the vendor's file the report prints)
set -euo pipefail
R=${1:?usage: mkrootimg.sh ROOTFS_DIR IMAGE [NVR]}
IMG=${2:?usage: mkrootimg.sh ROOTFS_DIR IMAGE [NVR]}
NVR=${3:-Node-1.0-0}
KVER=$(ls "$R/lib/modules" | sort -V | tail -1)
# Written only when it changes: its mtime decides whether the initramfs is rebuilt.
CONF=$(cat <<'C'
hostonly="no"
add_dracutmodules+=" lvm "
omit_dracutmodules+=" crypt nvdimm overlay-root lunmask resume virtiofs kernel-modules-extra terminfo qemu "
drivers+=" virtio_pci virtio_blk virtio_scsi sd_mod ahci ext4 dm_mod dm_thin_pool dm_snapshot "
compress="zstd"
C
)
[ "$(cat "$R/etc/dracut.conf.d/10-node.conf" 2>/dev/null)" = "$CONF" ] || echo "$CONF" > "$R/etc/dracut.conf.d/10-node.conf"
if [ ! -s "$R/boot/initrd.img-$KVER" ] || [ "$R/etc/dracut.conf.d/10-node.conf" -nt "$R/boot/initrd.img-$KVER" ]; then
  unbind() { for m in dev sys proc; do umount "$R/$m" 2>/dev/null || true; done; }
  trap unbind EXIT
  for m in proc sys dev; do mountpoint -q "$R/$m" || mount --bind "/$m" "$R/$m"; done
  chroot "$R" dracut -q --force "/boot/initrd.img-$KVER" "$KVER"
  unbind   # before mkfs.ext4 -d packs the tree
fi
for m in proc sys dev; do ! mountpoint -q "$R/$m" || { echo "mkrootimg: $R/$m is still mounted" >&2; exit 1; }; done
echo node > "$R/etc/hostname"
: > "$R/etc/fstab"
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
echo "BOOT-REPORT-END"
} > /dev/ttyS0 2>&1
sync
systemctl poweroff --force --force
S
chmod +x "$R/usr/local/sbin/node-boot-report"
cat > "$R/etc/systemd/system/node-boot-report.service" <<'S'
[Unit]
Description=imgbase boot tier report
After=local-fs.target
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
