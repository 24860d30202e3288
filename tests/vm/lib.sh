# shellcheck shell=bash
# Helpers shared by the tests/vm scripts (sourced, not run). Bash only.

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
VM_REPO=$(cd "$VM_DIR/../.." && pwd -P)
# target/ is gitignored, so the cache never reaches git; VM_CACHE moves it (e.g. shared CI cache).
# shellcheck disable=SC2034 # used by the scripts that source this
VM_CACHE_DIR=${VM_CACHE:-$VM_REPO/target/vm-cache}

# One apt line for everything the tiers need on a Debian 12 host. qemu-utils/bookworm +
# --allow-downgrades: some images ship a newer qemu-utils (backports) that conflicts with
# bookworm's qemu-system-x86; naming plain qemu-utils then fails with "held broken packages".
# dracut-core/grub*/mmdebstrap/squashfs-tools/zstd/bc are for the boot tier (tier 3); systemd
# (systemd-analyze verify) and dash (the dracut module) for tier-1 tests.
VM_APT_PACKAGES="qemu-system-x86 qemu-utils/bookworm linux-image-amd64 lvm2 thin-provisioning-tools
busybox-static e2fsprogs xfsprogs fdisk dracut-core grub-pc-bin grub2-common mmdebstrap
squashfs-tools zstd bc python3 cpio kmod xz-utils systemd dash"
VM_APT_LINE="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --allow-downgrades --no-install-recommends ${VM_APT_PACKAGES//$'\n'/ }"

vm_die() { echo "tests/vm: ERROR: $*" >&2; exit 1; }

# Guest kernel version: VM_KERNEL_VERSION, else the newest one that has both a /boot/vmlinuz
# and a module tree (the guest loads its modules from the host's /lib/modules over 9p).
vm_kernel_version() {
  if [ -n "${VM_KERNEL_VERSION:-}" ]; then echo "$VM_KERNEL_VERSION"; return; fi
  local k best=
  for k in $(cd /lib/modules 2>/dev/null && printf '%s\n' * | sort -V); do
    [ -r "/boot/vmlinuz-$k" ] && [ -f "/lib/modules/$k/modules.dep" ] && best=$k
  done
  echo "$best"
}

# Paths the guest mounts over (tmpfs/devtmpfs/proc/sysfs): host files there are invisible
# in the guest unless shared explicitly (guest-run.sh -o).
vm_masked() {
  case "$1" in /tmp|/tmp/*|/run|/run/*|/dev|/dev/*|/proc|/proc/*|/sys|/sys/*) return 0;; esac
  return 1
}

# Print one line per missing host prerequisite ("what: apt-package"); empty = all there.
vm_missing_prereqs() {
  local p=$PATH:/usr/local/sbin:/usr/sbin:/sbin k
  # -x: bash's command -v also reports a non-executable file when nothing better is in PATH
  have() { local f; f=$(PATH=$p command -v "$1" 2>/dev/null) && [ -x "$f" ]; }
  [ "$(uname -m)" = x86_64 ] || echo "an x86_64 host (this is $(uname -m)): n/a"
  have qemu-system-x86_64 || echo "qemu-system-x86_64: qemu-system-x86"
  [ -r /usr/share/qemu/qboot.rom ] || echo "/usr/share/qemu/qboot.rom: qemu-system-data"
  k=$(vm_kernel_version)
  if [ -z "$k" ]; then
    echo "a Debian kernel (/boot/vmlinuz-* readable + /lib/modules/*/modules.dep): linux-image-amd64"
  else
    [ -r "/boot/vmlinuz-$k" ] || echo "/boot/vmlinuz-$k (readable): linux-image-amd64"
    [ -f "/lib/modules/$k/modules.dep" ] || echo "/lib/modules/$k: linux-image-amd64"
  fi
  # The initramfs has no libc: busybox must be the static build (the 'busybox' package is not).
  if [ ! -x /bin/busybox ]; then echo "/bin/busybox: busybox-static"
  elif ldd /bin/busybox >/dev/null 2>&1; then echo "a STATIC /bin/busybox (this one is dynamic): busybox-static"; fi
  have modprobe || echo "modprobe: kmod"
  have cpio || echo "cpio: cpio"
  have xz || echo "xz: xz-utils"
  have python3 || echo "python3: python3"
  have setpriv || echo "setpriv: util-linux"
  # Run inside the guest (its userland is the host's):
  have lvm || echo "lvm: lvm2"
  have thin_check || echo "thin_check: thin-provisioning-tools"
  have mkfs.ext4 || echo "mkfs.ext4: e2fsprogs"
  have mkfs.xfs || echo "mkfs.xfs: xfsprogs"
  have losetup || echo "losetup: mount"
}

# Exit loudly, naming apt packages, if the guest tier cannot run here.
vm_require_prereqs() {
  local miss m
  miss=$(vm_missing_prereqs)
  [ -z "$miss" ] && return 0
  {
    echo "tests/vm: ERROR: the guest tier (QEMU + real LVM) cannot run on this machine. Missing:"
    while IFS= read -r m; do echo "  - ${m%: *}   (apt package: ${m##*: })"; done <<< "$miss"
    echo "Install (Debian 12, as root):"
    echo "  $VM_APT_LINE"
  } >&2
  return 1
}
