#!/bin/bash
# Guest tier: build the crate's test binaries on the host, then run every integration test
# whose source is tests/guest_*.rs (or tests/guest_*/main.rs) in ONE guest with real
# device-mapper/LVM, as `BIN --ignored --test-threads=1 [ARGS]`. libtest's output passes
# through; exits non-zero if any binary fails, if the guest dies or times out, or if there
# is no guest test at all (a tier that runs nothing must not pass).
#   tests/vm/run-guest-tests.sh [libtest args, e.g. a test name filter, --nocapture]
# env: IMGBASE_CRATE_DIR (default: this repo), VM_TIMEOUT (whole guest, default 3600 s),
#      VM_SCRATCH_SIZE (sparse scratch disk, default 32G), VM_MEM, VM_CPUS, VM_VERBOSE=1,
#      VM_KEEP=1 and the other guest-run.sh knobs (see tests/vm/README.md).
# In the guest the tests see IMGBASE_GUEST=1, RUST_BACKTRACE=1, IMGBASE_SCRATCH_DISK=/dev/vda
# and run as root from the package dir, with /tmp a private tmpfs (use it for loop files).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
CRATE=${IMGBASE_CRATE_DIR:-$VM_REPO}
[ -f "$CRATE/Cargo.toml" ] || vm_die "no Cargo.toml in $CRATE (IMGBASE_CRATE_DIR)"
CRATE=$(cd "$CRATE" && pwd -P)
command -v cargo >/dev/null || vm_die "cargo not found in PATH"
vm_require_prereqs || exit 1

W=$(mktemp -d "${TMPDIR:-/tmp}/guest-tests.XXXXXX")
trap 'rm -rf "$W"' EXIT

echo "guest tier: building test binaries (cargo test --no-run) in $CRATE" >&2
# json-render-diagnostics: compiler errors/warnings still reach the terminal, rendered.
(cd "$CRATE" && cargo test --no-run --message-format=json-render-diagnostics) > "$W/build.json" \
  || vm_die "building the test binaries failed"
TARGET_DIR=$(cd "$CRATE" && cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

# Select by target.src_path, relative to the package dir: tests/guest_*.rs, tests/guest_*/main.rs.
python3 - "$W/build.json" > "$W/bins" <<'PY'
import json, os, sys
seen = set()
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m["target"]
    if "test" not in t.get("kind", []) or not m.get("profile", {}).get("test"):
        continue
    pkg = os.path.dirname(m["manifest_path"])
    rel = os.path.relpath(t["src_path"], pkg).split(os.sep)
    ok = (len(rel) == 2 and rel[0] == "tests" and rel[1].startswith("guest_") and rel[1].endswith(".rs")) \
        or (len(rel) == 3 and rel[0] == "tests" and rel[1].startswith("guest_") and rel[2] == "main.rs")
    if ok and m["executable"] not in seen:
        seen.add(m["executable"])
        print("\t".join([t["name"], pkg, m["executable"]]))
PY
if [ ! -s "$W/bins" ]; then
  vm_die "no guest test binary: no integration test in $CRATE/tests/ named guest_*.rs (the guest tier must run something)"
fi
names=$(cut -f1 "$W/bins" | tr '\n' ' ')
echo "guest tier: test binaries: $names" >&2

# The script the guest runs: every binary, even after a failure, then a summary.
{
  cat <<'HEAD'
set -u
export IMGBASE_GUEST=1 RUST_BACKTRACE=1 IMGBASE_SCRATCH_DISK=/dev/vda
# Fail early and clearly if the guest lacks what every guest test needs.
for f in /dev/mapper/control /dev/loop-control "$IMGBASE_SCRATCH_DISK"; do
  [ -e "$f" ] || { echo "guest tier: $f missing in the guest" >&2; exit 1; }
done
mem=$(awk '/^MemTotal/ { print int($2 / 1024) }' /proc/meminfo)
disk=$(( $(blockdev --getsize64 "$IMGBASE_SCRATCH_DISK") >> 30 ))
echo "guest tier: kernel $(uname -r), $(nproc) vCPU, $mem MiB, scratch disk $IMGBASE_SCRATCH_DISK ($disk GiB)"
rc=0 failed=""
HEAD
  while IFS=$'\t' read -r name pkg exe; do
    printf 'echo; echo "=== guest test binary: %s ==="\n' "$name"
    printf '(cd %q && CARGO_MANIFEST_DIR=%q exec %q --ignored --test-threads=1' "$pkg" "$pkg" "$exe"
    [ $# -gt 0 ] && printf ' %q' "$@"
    printf ') || { rc=1; failed+=" %s"; }\n' "$name"
  done < "$W/bins"
  cat <<'TAIL'
echo
if [ $rc = 0 ]; then echo "guest tier: all test binaries passed"; else echo "guest tier: FAILED:$failed"; fi
exit $rc
TAIL
} > "$W/guest-tests.sh"

# One fresh sparse scratch disk per run (/dev/vda), deleted with $W.
rc=0
"$VM_DIR/guest-run.sh" -t "${VM_TIMEOUT:-3600}" -d "$W/scratch.img:${VM_SCRATCH_SIZE:-32G}" \
  -o "$CRATE" -o "$TARGET_DIR" "$W/guest-tests.sh" || rc=$?
[ $rc = 0 ] || echo "guest tier: FAILED (exit $rc)" >&2
exit $rc
