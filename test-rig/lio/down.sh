#!/usr/bin/env bash
# Stop the LIO rig's QEMU (by its recorded pid only, after checking that the
# pid is our qemu) and remove rig.env, the pid file and the socket. The LUNs
# lived on a tmpfs in the guest: they are gone with it. Idempotent.
# console.log and qemu.log stay in the state dir for post-mortems.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ! -e $PID_FILE && ! -e $ENV_FILE ]]; then
    echo "lio rig: not running (no $PID_FILE)"
    exit 0
fi
pid=$(cat "$PID_FILE" 2>/dev/null || env_value SANMOVER_LIO_QEMU_PID || true)
if is_our_qemu "$pid"; then
    stop_qemu "$pid" || die "qemu $pid is still running; files kept"
    echo "lio rig: stopped qemu $pid"
else
    # Gone already, or the pid now belongs to someone else: never signal it.
    echo "lio rig: qemu ${pid:-?} not running; cleaning up"
fi
rm -f "$ENV_FILE" "$ENV_FILE.tmp" "$PID_FILE" "$PORT_FILE" "$CTL_SOCK" "$CTL_LOCK" "$INITRD" "$SNAPFS_IMG"
