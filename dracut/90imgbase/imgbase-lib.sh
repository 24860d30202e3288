#!/bin/sh
# Functions of the imgbase dracut module (POSIX sh: dracut may run dash).
# Layers are LVs tagged imgbased:layer; imgbase:incomplete marks one still
# being built, imgbase:failed one whose trial boot failed. "Newest" is by
# name in version order (Node-1.0-0+2 < Node-1.0-0+10 < Node-2.0-0+1).
# The three paths below are variables only so tests can run these
# functions without root; dracut never sets them.
: "${IMGBASE_RUN:=/run/imgbase}" "${IMGBASE_DEV:=/dev}" "${IMGBASE_RULES:=/etc/udev/rules.d}"

# A name as LVM allows it, and nothing a udev rule or a shell would read.
imgbase_valid_name() {
    case "$1" in
        '' | -* | *[!A-Za-z0-9+_.-]*) return 1 ;;
    esac
    return 0
}

# lvs lines "name|tags" on stdin -> names of the layers that may be booted
# (complete, not failed), oldest first.
imgbase_bootable() {
    while read -r _line; do
        _line=${_line#"${_line%%[! ]*}"}
        _name=${_line%%|*}
        _tags=",${_line#*|},"
        case "$_name" in imgbase-tmp-*) continue ;; esac
        case "$_tags" in *,imgbased:layer,*) ;; *) continue ;; esac
        case "$_tags" in *,imgbase:incomplete,* | *,imgbase:failed,*) continue ;; esac
        echo "$_name"
    done | sort -V
}

# imgbase_has NAME < lvs lines: whether an LV of that name is listed.
imgbase_has() {
    while read -r _line; do
        [ "${_line%%|*}" = "$1" ] && return 0
    done
    return 1
}

# imgbase_previous ROOTLV: the bootable layer (stdin, oldest first) just
# before ROOTLV in version order, whether ROOTLV exists or not.
imgbase_previous() {
    _prev=
    { cat; echo "$1"; } | sort -V -u | while read -r _n; do
        [ "$_n" = "$1" ] && { [ -n "$_prev" ] && echo "$_prev"; break; }
        _prev=$_n
    done
}

# imgbase_pick WANTED ROOTLV < lvs lines: the layer WANTED names
# (a name, default, latest, previous), whether or not it exists.
imgbase_pick() {
    case "$1" in
        default) echo "$2" ;;
        latest) imgbase_bootable | tail -n 1 ;;
        previous) imgbase_bootable | imgbase_previous "$2" ;;
        *) echo "$1" ;;
    esac
}

# imgbase_must_hold WANTED ROOT: whether WANTED (imgbase.layer=) asks for
# another layer than ROOT (root=/dev/VG/LV) names.
imgbase_must_hold() {
    [ -n "$1" ] || return 1
    case "$1" in default | "${2##*/}") return 1 ;; esac
    return 0
}

# Record the outcome for the booted system (/run survives switch-root) and
# stop holding the initqueue. A non-empty REASON is said once, on the
# console and in the journal.
imgbase_done() { # BOOTED WANTED REASON
    mkdir -p "$IMGBASE_RUN"
    printf 'booted=%s\nwanted=%s\nreason=%s\n' "$1" "$2" "$3" > "$IMGBASE_RUN/layer"
    [ -n "$3" ] && warn "imgbase: $3"
    : > "$IMGBASE_RUN/resolved"
}

imgbase_activate() { # VG LV
    lvm lvchange --yes -ay -K "$1/$2" 2>&1 | vinfo
    [ -e "$IMGBASE_DEV/$1/$2" ] || { udevadm settle; [ -e "$IMGBASE_DEV/$1/$2" ]; }
}

# Make /dev/VG/ROOTLV (what root= waits for) the device of LV TARGET.
imgbase_stand_in() { # VG ROOTLV TARGET
    if [ -e "$IMGBASE_DEV/$1/$2" ]; then
        lvm lvchange --yes -an "$1/$2" 2>&1 | vinfo
        udevadm settle
    fi
    printf 'ENV{DM_VG_NAME}=="%s", ENV{DM_LV_NAME}=="%s", SYMLINK+="%s/%s"\n' \
        "$1" "$3" "$1" "$2" > "$IMGBASE_RULES/99-imgbase-root.rules"
    udevadm control --reload
    imgbase_activate "$1" "$3" || return 1
    udevadm trigger --action=change --subsystem-match=block --sysname-match='dm-*'
    udevadm settle
}

imgbase_resolve() {
    # The lvm module's first scan activates rd.lvm.lv= (the entry's own
    # layer): decide after it, so that nothing activates behind us.
    [ -e "$hookdir/initqueue/settled/lvm_scan.sh" ] && return 0
    _wanted=$(getarg imgbase.layer=)
    _root=$(getarg root=)
    _root=${_root#block:}
    case "$_root" in
        /dev/*/*) ;;
        *) imgbase_done "" "$_wanted" "root=$_root does not name /dev/VG/LV: imgbase.layer= ignored"; return 0 ;;
    esac
    _vg=${_root#/dev/}
    _rootlv=${_vg#*/}
    _vg=${_vg%%/*}
    if ! imgbase_valid_name "$_vg" || ! imgbase_valid_name "$_rootlv" || ! imgbase_valid_name "$_wanted"; then
        imgbase_done "" "$_wanted" "imgbase.layer=$_wanted or root=$_root is not a valid layer name: ignored"
        return 0
    fi
    # Nothing to resolve (every entry imgbase writes): its own layer is up.
    if { [ "$_wanted" = "$_rootlv" ] || [ "$_wanted" = default ]; } && [ -e "$IMGBASE_DEV/$_vg/$_rootlv" ]; then
        imgbase_done "$_rootlv" "$_wanted" ""
        return 0
    fi
    # Not there yet, or its VG not seen yet: the next pass tries again.
    _lvs=$(lvm lvs --noheadings --separator '|' -o lv_name,lv_tags "$_vg" 2> /dev/null) || return 0
    _target=$(echo "$_lvs" | imgbase_pick "$_wanted" "$_rootlv")
    _why=
    if [ -z "$_target" ]; then
        _why="no layer before $_rootlv for imgbase.layer=$_wanted"
    elif ! echo "$_lvs" | imgbase_has "$_target"; then
        _why="layer $_target (imgbase.layer=$_wanted) does not exist"
    elif [ "$_target" = "$_rootlv" ] && imgbase_activate "$_vg" "$_target"; then
        imgbase_done "$_target" "$_wanted" ""
        return 0
    elif [ "$_target" != "$_rootlv" ] && imgbase_stand_in "$_vg" "$_rootlv" "$_target"; then
        imgbase_done "$_target" "$_wanted" "booting layer $_target (imgbase.layer=$_wanted)"
        return 0
    else
        _why="layer $_target (imgbase.layer=$_wanted) cannot be activated"
    fi
    # Fall back: the newest bootable layer that activates.
    for _f in $(echo "$_lvs" | imgbase_bootable | sort -V -r); do
        [ "$_f" = "$_target" ] && continue
        if { [ "$_f" = "$_rootlv" ] && imgbase_activate "$_vg" "$_f"; } ||
            { [ "$_f" != "$_rootlv" ] && imgbase_stand_in "$_vg" "$_rootlv" "$_f"; }; then
            imgbase_done "$_f" "$_wanted" "$_why: falling back to $_f, the newest complete layer"
            return 0
        fi
    done
    imgbase_done "" "$_wanted" "$_why, and no other layer of $_vg can be activated"
}
