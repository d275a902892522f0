#!/usr/bin/env bash
# The `make demo` walk-through: discovery, identification and tape control
# against the tgt rig, with sanmover's own CLI. Run through with-rig.sh
# (it sets SANMOVER_RIG_ENV); stops at the first failing command.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${SANMOVER_RIG_ENV:?run through test-rig/with-rig.sh (SANMOVER_RIG_ENV unset)}"
SANMOVER=${SANMOVER_BIN:-$here/../target/debug/sanmover}
[[ -x $SANMOVER ]] || {
    echo "demo: $SANMOVER not built (run 'make build')" >&2
    exit 1
}
# shellcheck source=/dev/null
source "$SANMOVER_RIG_ENV"

# Start from a blank tape so the walk-through is the same every time.
bash "$here/tgt/reset-tape.sh"

run() {
    printf '\n$ sanmover %s\n' "$*"
    "$SANMOVER" "$@"
}

run luns "iscsi://$SANMOVER_RIG_PORTAL"
run inquiry "$SANMOVER_RIG_DISK"
run inquiry "$SANMOVER_RIG_DISK" --vpd 0x83
run readcap "$SANMOVER_RIG_DISK"
run inquiry "$SANMOVER_RIG_TAPE"
run tape "$SANMOVER_RIG_TAPE" status
run tape "$SANMOVER_RIG_TAPE" weof 1
run tape "$SANMOVER_RIG_TAPE" rewind
run tape "$SANMOVER_RIG_TAPE" fsf 1
run tape "$SANMOVER_RIG_TAPE" eod
run tape "$SANMOVER_RIG_TAPE" status
printf '\ndemo: done\n'
