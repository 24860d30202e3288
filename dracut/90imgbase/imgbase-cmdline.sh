#!/bin/sh
# cmdline hook. When imgbase.layer= asks for another layer than the entry's
# own (root=), hold the initqueue until imgbase-layer.sh has swapped it in:
# otherwise dracut would go on with root= as soon as it appears. The
# everyday entry (imgbase.layer= naming root='s LV) holds nothing: the
# initqueue waits for root= anyway, and imgbase-layer.sh steps in only if
# it does not come.
type getarg > /dev/null 2>&1 || . /lib/dracut-lib.sh
. /lib/imgbase-lib.sh

if imgbase_must_hold "$(getarg imgbase.layer=)" "$(getarg root=)"; then
    echo "[ -e $IMGBASE_RUN/resolved ]" > "$hookdir/initqueue/finished/90-imgbase.sh"
fi
