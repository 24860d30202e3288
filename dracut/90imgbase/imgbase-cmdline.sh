#!/bin/sh
# cmdline hook: with imgbase.layer= on the command line, hold the initqueue
# until imgbase-layer.sh has settled which layer becomes the root. Without
# it the module does nothing at all.
type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh
. /lib/imgbase-lib.sh

if imgbase_wanted=$(getarg imgbase.layer=) && [ -n "$imgbase_wanted" ]; then
    mkdir -p /run/imgbase
    echo '[ -e /run/imgbase/resolved ]' > "$hookdir/initqueue/finished/90-imgbase.sh"
fi
unset imgbase_wanted
