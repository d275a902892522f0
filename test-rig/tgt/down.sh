#!/usr/bin/env bash
# Stop the tgtd started by up.sh (by its recorded pid only) and remove the
# rig's env file, pid file and images. Idempotent: no rig -> exit 0.
# The tgtd log stays in the state dir for post-mortems.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ! -e $PID_FILE && ! -e $ENV_FILE ]]; then
    # A failed start may still have left the XFS image mounted.
    unmount_data
    echo "tgt rig: not running (no $PID_FILE)"
    exit 0
fi

pid=$(cat "$PID_FILE" 2>/dev/null || env_value SANMOVER_RIG_TGTD_PID || true)
control=$(cat "$CONTROL_FILE" 2>/dev/null || env_value SANMOVER_RIG_TGT_CONTROL || true)

if is_our_tgtd "$pid" "$control"; then
    if ! stop_tgtd "$pid" "$control"; then
        # The filesystem stays mounted while tgtd holds its files open.
        die "tgtd $pid (control $control) is still running; files and $DATA_DIR kept"
    fi
    echo "tgt rig: stopped tgtd $pid"
else
    # Gone already, or the pid was recycled by another process: never
    # signal it; only clear tgtd's leftover socket files.
    echo "tgt rig: tgtd ${pid:-?} (control ${control:-?}) not running; cleaning up"
    stop_tgtd "${pid:-0}" "${control:-x}" || true
fi

rm -f "$ENV_FILE" "$ENV_FILE.tmp" "$PID_FILE" "$CONTROL_FILE" "$PORT_FILE" \
    "$DISK1_FILE" "$DISK2_FILE" "$TAPE_FILE" "$STATE"/lun-*.img "$LIB_CHANGER_FILE"
rm -rf "$MEDIA_DIR"
# Snapshots, extra LUNs and the filesystem itself go with the image.
unmount_data
if data_mounted; then
    die "could not unmount $DATA_DIR (loop image $XFS_IMG)"
fi
