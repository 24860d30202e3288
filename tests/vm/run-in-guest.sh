#!/bin/bash
# Run a shell script (e.g. a benchmark) in one guest with real LVM and a fresh sparse scratch
# disk, the same setup the guest tests get:
#   tests/vm/run-in-guest.sh [guest-run.sh opts: -t S -m MiB -v -k ...] SCRIPT [ARGS...]
# The script sees IMGBASE_GUEST=1 and IMGBASE_SCRATCH_DISK=/dev/vda (VM_SCRATCH_SIZE, default
# 32G, sparse, deleted afterwards) and runs from our cwd. Exit code passes through (255: the
# guest died or timed out; default timeout 600 s, -t or VM_TIMEOUT to change).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
W=$(mktemp -d "${TMPDIR:-/tmp}/run-in-guest.XXXXXX")
trap 'rm -rf "$W"' EXIT
rc=0
"$VM_DIR/guest-run.sh" -d "$W/scratch.img:${VM_SCRATCH_SIZE:-32G}" \
  -e IMGBASE_GUEST=1 -e IMGBASE_SCRATCH_DISK=/dev/vda -o "$VM_REPO" "$@" || rc=$?
exit $rc
