#!/bin/busybox sh
# shellcheck shell=sh
# Stage 2 of the hostroot guest: PID 1 after switch_root (busybox sh from the host root).
# guest-run.sh copies this file into the run dir as /run/guest-out/init2.sh. Stage 1 already
# mounted /proc /sys /dev /run /tmp, the run dir and the shares.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
O=/run/guest-out
t() { read -r up _ < /proc/uptime; echo "$up $*" >> $O/timing; }
t stage2-start
# udev: guest_udev=none (default: LVM then creates /dev/VG/LV nodes itself, no udev sync),
#       guest_udev=block (udevd + coldplug of block devices only), guest_udev=full (all devices)
UDEV=none
# shellcheck disable=SC2013 # the cmdline is one line of words
for w in $(cat /proc/cmdline); do case $w in guest_udev=*) UDEV=${w#guest_udev=};; esac; done
if [ "$UDEV" != none ]; then
  /lib/systemd/systemd-udevd --daemon --resolve-names=never 2>/dev/null
  if [ "$UDEV" = full ]; then
    udevadm trigger --type=subsystems --action=add; udevadm trigger --type=devices --action=add
  else
    udevadm trigger --subsystem-match=block --action=add
  fi
  udevadm settle --timeout=60; t udev-settled
fi
t script-start
cd $O || exit 1
# run.sh (written by guest-run.sh) sets the env and cwd and execs the user's script.
if grep -qw guest_verbose /proc/cmdline; then
  # stdout+stderr merged, streamed to the console (the host shows it live) and kept in stdout
  { bash $O/run.sh </dev/null; echo $? > $O/rc; } 2>&1 | tee $O/stdout > /dev/console
else
  # the host streams these files while they grow (9p writes are not cached)
  bash $O/run.sh > $O/stdout 2> $O/stderr </dev/null; echo $? > $O/rc
fi
t script-end
sync
busybox poweroff -f
