#!/usr/bin/env bash
# Check the running rig with a peer initiator (libiscsi's iscsi-ls and
# iscsi-inq), independent of sanmover: tgtd listens only on its loopback
# portal, discovery lists both targets, and every LUN answers INQUIRY with
# the type and serial number the rig gave it.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_rig
portal=$(env_value SANMOVER_RIG_PORTAL)
fail=0
bad() {
    log "check failed: $*"
    fail=1
}

addrs=$(listen_addrs "$RIG_PID" | tr '\n' ' ')
[[ $addrs == "$portal " ]] || bad "tgtd $RIG_PID listens on [$addrs], expected only $portal"

listing=$(iscsi-ls -s "iscsi://$portal" 2>&1) || bad "iscsi-ls: $listing"
for iqn in "$DISK_IQN" "$TAPE_IQN" "$LIB_IQN"; do
    [[ $listing == *"Target:$iqn Portal:$portal,1"* ]] || bad "discovery does not list $iqn at $portal"
done

# check_lun KEY TYPE SERIAL_KEY
check_lun() {
    local url inq serial
    url=$(env_value "$1")
    inq=$(iscsi-inq "$url" 2>&1) || {
        bad "iscsi-inq $url: $inq"
        return
    }
    [[ $inq == *"Peripheral Device Type:$2"* ]] || bad "$url is not $2"
    [[ $inq == *"Vendor:$VENDOR"* ]] || bad "$url vendor is not $VENDOR"
    serial=$(iscsi-inq -e 1 -c 128 "$url" 2>&1) || {
        bad "iscsi-inq VPD 0x80 $url: $serial"
        return
    }
    [[ $serial == *"$(env_value "$3")]"* ]] || bad "$url serial: $serial"
    echo "ok  $url  $2  $(env_value "$3")"
}
check_lun SANMOVER_RIG_DISK DIRECT_ACCESS SANMOVER_RIG_DISK_SERIAL
check_lun SANMOVER_RIG_DISK2 DIRECT_ACCESS SANMOVER_RIG_DISK2_SERIAL
check_lun SANMOVER_RIG_TAPE SEQUENTIAL_ACCESS SANMOVER_RIG_TAPE_SERIAL
check_lun SANMOVER_RIG_CHANGER MEDIA_CHANGER SANMOVER_RIG_CHANGER_SERIAL
check_lun SANMOVER_RIG_LIB_DRIVE0 SEQUENTIAL_ACCESS SANMOVER_RIG_LIB_DRIVE0_SERIAL
check_lun SANMOVER_RIG_LIB_DRIVE1 SEQUENTIAL_ACCESS SANMOVER_RIG_LIB_DRIVE1_SERIAL
exit "$fail"
