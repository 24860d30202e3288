#!/bin/bash
# dracut module: boot the imgbase layer that imgbase.layer= names (a layer
# name, or default|latest|previous), activating it even when it carries
# LVM's activation-skip flag, and fall back to the newest complete layer
# with one clear message instead of an emergency shell when that layer is
# missing or will not activate.

# called by dracut
check() {
    # Never fail the initramfs build: without lvm there is nothing to do.
    require_binaries lvm sort || return 1
    # A host-only initramfs on a host that imgbase does not manage skips
    # the module; a generic one (an image being built) carries it.
    if [[ $hostonly ]]; then
        lvm vgs --noheadings -o vg_tags 2> /dev/null | grep -q 'imgbased:vg' || return 1
    fi
    return 0
}

# called by dracut
depends() {
    echo lvm
    return 0
}

# called by dracut
install() {
    inst_multiple lvm sort tail udevadm
    inst_simple "$moddir/imgbase-lib.sh" /lib/imgbase-lib.sh
    inst_hook cmdline 91 "$moddir/imgbase-cmdline.sh"
    inst_hook initqueue/settled 90 "$moddir/imgbase-layer.sh"
    inst_hook pre-pivot 90 "$moddir/imgbase-pre-pivot.sh"
}
