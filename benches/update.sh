#!/bin/bash
# Benchmark of `imgbase update`, run inside one QEMU guest on real LVM:
#   cargo build --release && tests/vm/run-in-guest.sh -t 2400 benches/update.sh
# A ~700 MiB root image with ~2,000 files in /etc. The floor is the time to
# copy the same image into a new thin LV (dd conv=sparse). Then:
# (a) `update --no-delta` to 2.0 (a full base): total time and time per step,
#     ratio to the floor (target <= 1.5);
# (b) `update` to 3.0, ~5% of the blocks changed (a delta base): ratio to
#     the floor (target <= 0.3);
# and the /etc merge step alone (target < 2 s for 2,000 files).
# Prints figures and ratios; asserts nothing about time.
set -euo pipefail
IMGBASE=${IMGBASE:-$PWD/target/release/imgbase}
[ -x "$IMGBASE" ] || IMGBASE=$PWD/target/debug/imgbase
DISK=${IMGBASE_SCRATCH_DISK:?run me in the guest: tests/vm/run-in-guest.sh benches/update.sh}
VG=UpdBench
export IMGBASE_LOCK_FILE=/run/imgbase-bench.lock IMGBASE_LOADER=none LC_ALL=C
export IMGBASE_STATE_DIR=/run/imgbase-bench-state IMGBASE_CONFIG=/dev/null
q() { lvm "$@" >/dev/null 2>&1; }
now() { date +%s%N; }
ratio() { echo "scale=3; $1 / $2" | bc; }

q pvcreate -qq "$DISK"
q vgcreate -qq "$VG" "$DISK"
q lvcreate -qq --type thin-pool -L 12G --poolmetadatasize 64M -n pool "$VG"
q lvcreate -qq -L 6G -n work "$VG"
mkfs.ext4 -q "/dev/$VG/work"
W=/mnt/work && mkdir -p $W && mount "/dev/$VG/work" $W

echo "== making images"
T=$W/tree
mkdir -p $T/usr/share/imgbase/build/meta $T/usr/share/payload $T/var/lib
for i in $(seq 1 680); do head -c $((1 << 20)) /dev/urandom > "$T/usr/share/payload/f$i"; done
for d in $(seq 1 40); do
  mkdir -p "$T/etc/conf.d$d"
  for f in $(seq 1 50); do echo "setting$f = value$d.$f" > "$T/etc/conf.d$d/file$f.conf"; done
done
printf 'root:x:0:0:root:/root:/bin/bash\n' > $T/etc/passwd
printf 'root:x:0:\n' > $T/etc/group
printf 'root:!::0:99999:7:::\n' > $T/etc/shadow
echo "files in /etc: $(find $T/etc | wc -l)"
export E2FSPROGS_FAKE_TIME=1700000000
uuid=2f1e6a55-1111-4222-8333-444455556666
mkimg() { # NVR OUT
  echo "$1" > $T/usr/share/imgbase/build/meta/nvr
  mkfs.ext4 -q -U $uuid -E hash_seed=$uuid -d $T "$2" 2G
}
mkimg Bench-1.0-0 $W/one.img
# 2.0 and 3.0: ~5% of the payload rewritten each, and 100 vendor /etc changes.
vendor() { # NVR OUT SEED
  for i in $(seq 1 34); do head -c $((1 << 20)) /dev/urandom > "$T/usr/share/payload/f$((i * 20 - $3))"; done
  for f in $(seq 1 100); do echo "vendor $1" >> "$T/etc/conf.d$(( (f % 40) + 1 ))/file$(( (f % 50) + 1 )).conf"; done
  mkimg "$1" "$2"
}
vendor Bench-2.0-0 $W/two.img 1
vendor Bench-3.0-0 $W/three.img 2

echo "== the floor: the image copied into a new thin LV"
sync; echo 3 > /proc/sys/vm/drop_caches
q lvcreate -qq -y --type thin -V 2G -n dd "$VG/pool"
t0=$(now)
dd if=$W/one.img of="/dev/$VG/dd" bs=4M conv=sparse,fsync status=none
floor=$(( ($(now) - t0) / 1000000 ))
q lvremove -y "$VG/dd"
echo "dd conv=sparse bs=4M: ${floor} ms"
# What reading and hashing every byte costs here (sha256 is what
# SHA256SUMS and the base's tag speak of); under TCG this is emulated CPU.
sync; echo 3 > /proc/sys/vm/drop_caches
t0=$(now)
sha256sum $W/one.img >/dev/null
hashfloor=$(( ($(now) - t0) / 1000000 ))
echo "sha256sum of the image: ${hashfloor} ms"

echo "== node on 1.0, 50 files of /etc changed by the admin"
q vgchange --addtag imgbased:vg "$VG"
q lvchange --addtag imgbased:pool "$VG/pool"
"$IMGBASE" --progress none base --add --from $W/one.img >/dev/null
"$IMGBASE" layer --add Bench-1.0-0 >/dev/null
mkdir -p /mnt/layer && mount "/dev/$VG/Bench-1.0-0+1" /mnt/layer
for f in $(seq 1 50); do echo "admin" >> "/mnt/layer/etc/conf.d$(( (f % 40) + 1 ))/file$(( (f * 7 % 50) + 1 )).conf"; done
umount /mnt/layer

# One update with step timestamps (--debug: uptime in seconds per line).
# First its --dry-run: reading and hashing the image, planning, the /etc
# preview; what the update does before its first step.
timed_update() { # LABEL IMAGE [ARGS]
  local label=$1 image=$2 log; shift 2
  log=$(mktemp)
  sync; echo 3 > /proc/sys/vm/drop_caches
  t0=$(now)
  "$IMGBASE" --progress none --dry-run update "$@" "$image" >/dev/null
  verify=$(( ($(now) - t0) / 1000000 ))
  sync; echo 3 > /proc/sys/vm/drop_caches
  t0=$(now)
  IMGBASE_LOG=info "$IMGBASE" --debug --progress none update "$@" "$image" >/dev/null 2>"$log"
  total=$(( ($(now) - t0) / 1000000 ))
  echo "-- $label: ${total} ms in all (its --dry-run alone: ${verify} ms); per step:"
  awk '/ INFO / { t = $1; sub(/s$/, "", t); if (prev != "") printf "  %7.0f ms  %s\n", (t - pt) * 1000, prev; pt = t; $1 = ""; $2 = ""; prev = $0 }
       END { if (prev != "") printf "  (last)      %s\n", prev }' "$log"
  merge_ms=$(awk '/ INFO / { t = $1; sub(/s$/, "", t); if (c) { printf "%.0f\n", (t - pt) * 1000; exit } if (/carry the configuration/) { c = 1; pt = t } }' "$log")
  grep -o '/etc merged in .*' "$log" | sed 's/^/  /' || true
  rm -f "$log"
}
timed_update "(a) update to 2.0, full base" $W/two.img --no-delta
full=$total merge_full=$merge_ms verify_full=$verify
timed_update "(b) update to 3.0, delta base" $W/three.img
delta=$total merge_delta=$merge_ms verify_delta=$verify
echo "RATIO full update / floor: $(ratio "$full" "$floor")  (target <= 1.5)"
echo "RATIO delta update / floor: $(ratio "$delta" "$floor")  (target <= 0.3)"
# The floor copies bytes and hashes none; the update first reads and
# hashes the whole image (sha256 of every byte, holes included: what
# SHA256SUMS lists). Under TCG hashing is emulated CPU work, so this
# part weighs far more than on hardware with SHA extensions.
echo "RATIO full update less its --dry-run (hash, plan, /etc preview) / floor: $(ratio $((full - verify_full)) "$floor")"
echo "RATIO delta update less its --dry-run (hash, plan, /etc preview) / floor: $(ratio $((delta - verify_delta)) "$floor")"
echo "RATIO full update / (floor + sha256sum): $(ratio "$full" $((floor + hashfloor)))"
echo "RATIO delta update / (floor + sha256sum): $(ratio "$delta" $((floor + hashfloor)))"
echo "carry step (3 mounts, /etc merge, accounts, /var): ${merge_full} ms and ${merge_delta} ms  (the merge itself: the '/etc merged in' lines above; target < 2000 ms)"
"$IMGBASE" layout
umount $W
