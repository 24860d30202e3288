#!/bin/bash
# Benchmark of image import, run inside one QEMU guest on real LVM:
#   cargo build --release && tests/vm/run-in-guest.sh -t 2400 benches/images.sh
# (a) a 2 GiB raw ext4 image holding ~300 MiB of files: pool data allocated
#     by `base --add --from` vs the filesystem's used bytes, and the import
#     time vs `dd conv=sparse bs=4M` of the same image onto a same-size thin LV;
# (b) a second image differing in ~5% of its used blocks, imported as a
#     delta: pool growth vs the bytes that changed between the two images.
# Prints figures and ratios; asserts nothing about time.
set -euo pipefail
IMGBASE=${IMGBASE:-$PWD/target/release/imgbase}
[ -x "$IMGBASE" ] || IMGBASE=$PWD/target/debug/imgbase
DISK=${IMGBASE_SCRATCH_DISK:?run me in the guest: tests/vm/run-in-guest.sh benches/images.sh}
VG=ImgBench
export IMGBASE_LOCK_FILE=/run/imgbase-bench.lock LC_ALL=C
q() { lvm "$@" >/dev/null 2>&1; }
now() { date +%s%N; }
ratio() { echo "scale=3; $1 / $2" | bc; }
# Pool data in bytes, read fresh.
pool_used() {
  lvm lvs --noheadings --units b --nosuffix -o lv_size,data_percent "$VG/pool" |
    awk '{ printf "%d\n", $1 * $2 / 100 }'
}

q pvcreate -qq "$DISK"
q vgcreate -qq "$VG" "$DISK"
q lvcreate -qq --type thin-pool -L 10G --poolmetadatasize 64M -n pool "$VG"
# A plain LV for the image files (the guest's /tmp is RAM).
q lvcreate -qq -L 8G -n work "$VG"
mkfs.ext4 -q "/dev/$VG/work"
W=/mnt/work && mkdir -p $W && mount "/dev/$VG/work" $W
# Bytes read from the disk holding the images (sectors read, from sysfs):
# with caches dropped, reads of the image show up here.
WORK_DEV=$(lvm lvs --noheadings -o lv_kernel_major,lv_kernel_minor "$VG/work" | awk '{ print $1 ":" $2 }')
disk_read() { awk '{ print $3 * 512 }' "/sys/dev/block/$WORK_DEV/stat"; }

echo "== making images"
mkdir -p $W/tree/usr/share/imgbase/build/meta $W/tree/etc
echo Bench-1.0-0 > $W/tree/usr/share/imgbase/build/meta/nvr
for i in $(seq 1 300); do head -c $((1 << 20)) /dev/urandom > "$W/tree/f$i"; done
export E2FSPROGS_FAKE_TIME=1700000000
uuid=2f1e6a55-1111-4222-8333-444455556666
mkfs.ext4 -q -U $uuid -E hash_seed=$uuid -d $W/tree $W/one.img 2G
used=$(dumpe2fs -h $W/one.img 2>/dev/null | awk -F: '/^Block count/ { bc = $2 } /^Free blocks/ { fb = $2 } /^Block size/ { bs = $2 } END { printf "%d\n", (bc - fb) * bs }')
echo "image one: 2 GiB ext4, $((used >> 20)) MiB used"
# The second version: 15 of 300 files (5%) rewritten, same sizes.
for i in $(seq 1 15); do head -c $((1 << 20)) /dev/urandom > "$W/tree/f$((i * 20))"; done
echo Bench-2.0-0 > $W/tree/usr/share/imgbase/build/meta/nvr
mkfs.ext4 -q -U $uuid -E hash_seed=$uuid -d $W/tree $W/two.img 2G
changed=$(python3 - $W/one.img $W/two.img <<'PY'
import sys
a, b = (open(p, "rb") for p in sys.argv[1:3])
n4 = n64 = 0
while True:
    x, y = a.read(65536), b.read(65536)
    if not x and not y:
        break
    if x != y:
        n64 += 1
        n4 += sum(x[i:i + 4096] != y[i:i + 4096] for i in range(0, max(len(x), len(y)), 4096))
print(n4 * 4096, n64 * 65536)
PY
)
read -r changed4k changed64k <<< "$changed"
echo "changed between one and two: $((changed4k >> 10)) KiB in 4 KiB blocks, $((changed64k >> 10)) KiB in 64 KiB chunks"

echo "== (a) full import vs dd conv=sparse"
q vgchange --addtag imgbased:vg "$VG"
q lvchange --addtag imgbased:pool "$VG/pool"
sync; echo 3 > /proc/sys/vm/drop_caches
q lvcreate -qq -y --type thin -V 2G -n dd "$VG/pool"
p0=$(pool_used); t0=$(now)
dd if=$W/one.img of="/dev/$VG/dd" bs=4M conv=sparse,fsync status=none
t_dd=$(( ($(now) - t0) / 1000000 )); p_dd=$(( $(pool_used) - p0 ))
q lvremove -y "$VG/dd"
# The verification alone: --dry-run reads and hashes the image, mounts it
# for its NVR, plans, and writes nothing.
sync; echo 3 > /proc/sys/vm/drop_caches
t0=$(now)
"$IMGBASE" --progress none --dry-run base --add --from $W/one.img --size 2G --no-delta >/dev/null
t_verify=$(( ($(now) - t0) / 1000000 ))
sync; echo 3 > /proc/sys/vm/drop_caches
p0=$(pool_used); r0=$(disk_read); t0=$(now)
"$IMGBASE" --progress none base --add --from $W/one.img --size 2G --no-delta >/dev/null
t_ib=$(( ($(now) - t0) / 1000000 )); p_ib=$(( $(pool_used) - p0 )); r_ib=$(( $(disk_read) - r0 ))
img_alloc=$(( $(stat -c %b $W/one.img) * 512 ))
sync; echo 3 > /proc/sys/vm/drop_caches
t0=$(now); sha256sum $W/one.img >/dev/null; t_sum=$(( ($(now) - t0) / 1000000 ))
echo "dd conv=sparse bs=4M:        ${t_dd} ms, pool +$((p_dd >> 20)) MiB"
echo "imgbase base --add --from:   ${t_ib} ms, pool +$((p_ib >> 20)) MiB"
echo "  of which verification:     ${t_verify} ms (--dry-run: sha256 of all 2 GiB, NVR read); sha256sum alone: ${t_sum} ms"
echo "  of which the write:        $((t_ib - t_verify)) ms (sparse copy, fs grow, LVM steps)"
echo "RATIO pool allocated / fs used bytes: $(ratio $p_ib "$used")  (target <= 1.05)"
echo "RATIO import time / dd time: $(ratio $t_ib $t_dd)  (target <= 1.0)"
echo "RATIO import time without verification / dd time: $(ratio $((t_ib - t_verify)) $t_dd)"
echo "READS of the image per import: $(ratio $r_ib $img_alloc)  (disk bytes read / image bytes allocated; target 1)"

echo "== (b) delta import of the second image"
p0=$(pool_used); t0=$(now)
"$IMGBASE" --progress none base --add --from $W/two.img --size 2G >/dev/null
t_delta=$(( ($(now) - t0) / 1000000 )); p_delta=$(( $(pool_used) - p0 ))
echo "delta import: ${t_delta} ms, pool +$((p_delta >> 10)) KiB"
echo "RATIO pool growth / changed bytes (4 KiB blocks): $(ratio $p_delta "$changed4k")  (target <= 1.2)"
echo "RATIO pool growth / changed bytes (64 KiB chunks, the pool's unit): $(ratio $p_delta "$changed64k")"
"$IMGBASE" layout
umount $W
