#!/bin/sh
# initqueue/settled hook (sourced by dracut-initqueue on every pass once
# udev has settled): decide which layer is the root, once.
type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh
. /lib/imgbase-lib.sh

if [ ! -e "$IMGBASE_RUN/resolved" ] && getarg imgbase.layer= > /dev/null; then
    imgbase_resolve
fi
