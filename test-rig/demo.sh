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
# The tape library: tgt's changer with two drives, ten slots and an
# import/export slot (mtx's numbering: slots from 1, drives from 0).
# --drive maps each drive element to its LU by the identifier the changer
# reports (DVCID), not by order.
run changer "$SANMOVER_RIG_CHANGER" status --drive "$SANMOVER_RIG_LIB_DRIVE0" \
    --drive "$SANMOVER_RIG_LIB_DRIVE1"
# A demo run that stopped half-way may have left a cartridge in drive 0.
if [[ $("$SANMOVER" --json changer "$SANMOVER_RIG_CHANGER" status |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["drives"][0]["full"])') == True ]]; then
    "$SANMOVER" changer "$SANMOVER_RIG_CHANGER" unload
fi
run changer "$SANMOVER_RIG_CHANGER" load 1 0
run tape "$SANMOVER_RIG_LIB_DRIVE0" status

# Host-driven backup onto the cartridge in drive 0: label it, back up 8 MiB
# of random data from the first disk, verify it, restore it to the second
# disk and compare. The demo keeps its own catalog in the rig's state dir.
export SANMOVER_CATALOG=$SANMOVER_RIG_STATE_DIR/demo-catalog.db
rm -f "$SANMOVER_CATALOG" "$SANMOVER_CATALOG"-*
head -c 8388608 /dev/urandom | dd of="$SANMOVER_RIG_DISK_FILE" conv=notrunc status=none
run tape "$SANMOVER_RIG_LIB_DRIVE0" label LIB001 --force
run backup --mode host --source "$SANMOVER_RIG_DISK" --blocks 16384 --tape "$SANMOVER_RIG_LIB_DRIVE0" --label demo
set_id=$("$SANMOVER" --json catalog list | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
run verify "$set_id" --compare-source
run restore "$set_id" --target "$SANMOVER_RIG_DISK2"
run catalog list
if cmp -n 8388608 "$SANMOVER_RIG_DISK_FILE" "$SANMOVER_RIG_DISK2_FILE"; then
    printf '\ndemo: the restored 8 MiB equal the source byte for byte\n'
else
    echo "demo: the restore differs from the source" >&2
    exit 1
fi
# Back to its slot (the changer remembers where it came from).
run changer "$SANMOVER_RIG_CHANGER" unload
run changer "$SANMOVER_RIG_CHANGER" status

# The other modes write the rig's hand-loaded tape.
bash "$here/tgt/reset-tape.sh"
run tape "$SANMOVER_RIG_TAPE" label DEMO01

# Third-party copy: the data router (sanmover router, our own iSCSI target
# with an EXTENDED COPY copy manager) moves the same 8 MiB from the disk to
# the tape; this host sends parameter lists and reads status, no data.
ROUTER_STATE=$SANMOVER_RIG_STATE_DIR/demo-router
trap 'bash "$here/router/down.sh" "$ROUTER_STATE" >/dev/null 2>&1 || true' EXIT
# Its copy rights: this host may read the disk target and write the tape
# target, nothing else (up.sh writes them to router.toml, shown below).
bash "$here/router/up.sh" "$ROUTER_STATE" \
    "source=iscsi://$SANMOVER_RIG_PORTAL/$SANMOVER_RIG_DISK_IQN" \
    "destination=iscsi://$SANMOVER_RIG_PORTAL/$SANMOVER_RIG_TAPE_IQN" >/dev/null
cat "$ROUTER_STATE/router.toml"
ROUTER=$(sed -n 's/^SANMOVER_ROUTER_URL=//p' "$ROUTER_STATE/router.env")
run inquiry "$ROUTER"
run copy-results "$ROUTER" --op-params
run backup --mode xcopy --source "$SANMOVER_RIG_DISK" --blocks 16384 --tape "$SANMOVER_RIG_TAPE" \
    --copy-manager "$ROUTER" --fallback never --label demo-xcopy
set_id=$("$SANMOVER" --json catalog list | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
run verify "$set_id"
dd if=/dev/zero of="$SANMOVER_RIG_DISK2_FILE" bs=1M count=8 conv=notrunc status=none
run restore "$set_id" --target "$SANMOVER_RIG_DISK2"
if cmp -n 8388608 "$SANMOVER_RIG_DISK_FILE" "$SANMOVER_RIG_DISK2_FILE"; then
    printf '\ndemo: the third-party-copy set restored equal to the source byte for byte\n'
else
    echo "demo: the restore of the third-party-copy set differs from the source" >&2
    exit 1
fi
bash "$here/router/down.sh" "$ROUTER_STATE" >/dev/null

# Snapshot-serverless backup: the second disk plays the production LUN.
# The tgt provider snapshots it with a reflink copy on the rig's XFS,
# exports the copy read-only to this initiator only (a second name is
# refused), and sanmover backs the copy up; the production LUN only gets
# INQUIRY and SYNCHRONIZE CACHE. Then restore to a fresh LUN and compare.
head -c 16777216 /dev/urandom | dd of="$SANMOVER_RIG_DISK2_FILE" conv=notrunc status=none
run backup --mode serverless --source "$SANMOVER_RIG_DISK2" --tape "$SANMOVER_RIG_TAPE" \
    --snapshot "tgt:env=$SANMOVER_RIG_ENV" --quiesce 'echo "demo: application frozen" >&2' \
    --thaw 'echo "demo: application thawed" >&2' --label serverless-demo
run snapshots list
snap_set=$("$SANMOVER" --json catalog list | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
restore_lun=$(bash "$here/tgt/lun.sh" add 9 16)
run restore "$snap_set" --target "$restore_lun"
if cmp "$SANMOVER_RIG_DISK2_FILE" "$SANMOVER_RIG_STATE_DIR/lun-9.img"; then
    printf '\ndemo: the serverless set restored equals the production LUN at the snapshot\n'
else
    echo "demo: the serverless restore differs from the production LUN" >&2
    exit 1
fi
bash "$here/tgt/lun.sh" del 9
printf '\ndemo: done\n'
