#!/usr/bin/env bash
# Add or remove a fileio LUN of the running LIO rig, through the control
# channel (the guest's `rig` helper: backstore + TPG LUN + ACL mapping).
# Usage: lun.sh add NAME SIZE_MB [INITIATOR...]  -> prints the LUN's iscsi:// URL
#        lun.sh del NAME
# The LUN takes the lowest free LUN number and is mapped under that number
# for each INITIATOR (default: the backup server, SANMOVER_LIO_INITIATOR).
# Its unit serial is a UUID whose leading hex digits come from a hash of
# NAME (LIO's NAA comes from them); the backing file lives on the guest's
# tmpfs, or with SANMOVER_LIO_LUN_DIR=snap on the guest's XFS (reflink:
# the lio snapshot provider can clone it). lun0..lun2 belong to the rig
# and are refused.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { die "usage: lun.sh add NAME SIZE_MB [INITIATOR...] | lun.sh del NAME"; }
op=${1:-}
name=${2:-}
[[ $name =~ ^[A-Za-z0-9_-]{1,32}$ ]] || usage
for own in "${LUN_NAMES[@]}"; do
    [[ $name != "$own" ]] || die "$name is one of the rig's own LUNs"
done
[[ -s $ENV_FILE && -S $CTL_SOCK ]] || die "LIO rig not up (no $ENV_FILE)"

case $op in
add)
    size=${3:-}
    [[ $size =~ ^[1-9][0-9]*$ ]] || usage
    shift 3
    inis=("$@")
    ((${#inis[@]} > 0)) || inis=("$BACKUP_INITIATOR")
    for ini in "${inis[@]}"; do
        [[ $ini =~ ^(iqn|eui|naa)\.[A-Za-z0-9.:_-]+$ ]] || die "bad initiator name '$ini'"
    done
    serial=$(serial_for "$name")
    dir=
    case ${SANMOVER_LIO_LUN_DIR:-} in
    '' | tmpfs) ;;
    snap) dir="RIG_LUN_DIR=$GUEST_SNAP_DIR " ;;
    *) die "SANMOVER_LIO_LUN_DIR must be tmpfs or snap" ;;
    esac
    out=$(ctl "${dir}rig lun-add $name $size $serial ${inis[*]}") || die "lun-add $name failed: $out"
    lun=$(printf '%s\n' "$out" | tail -n1)
    [[ $lun =~ ^[0-9]+$ ]] || die "lun-add $name: unexpected answer: $out"
    echo "iscsi://$(env_value SANMOVER_LIO_PORTAL)/$IQN/$lun"
    ;;
del)
    (($# == 2)) || usage
    out=$(ctl "rig lun-del $name") || die "lun-del $name failed: $out"
    ;;
*) usage ;;
esac
