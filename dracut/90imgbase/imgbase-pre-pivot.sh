#!/bin/sh
# pre-pivot hook: when the entry's own layer came up with nothing to
# resolve, say so for the booted system (imgbase check reads it).
type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh
. /lib/imgbase-lib.sh

if [ ! -e "$IMGBASE_RUN/resolved" ] && imgbase_wanted=$(getarg imgbase.layer=); then
    imgbase_root=$(getarg root=)
    imgbase_done "${imgbase_root##*/}" "$imgbase_wanted" ""
    unset imgbase_root
fi
unset imgbase_wanted
