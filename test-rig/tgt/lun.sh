#!/usr/bin/env bash
# Add or remove an extra file-backed disk LUN on the rig's disk target.
# Usage: lun.sh add LUN SIZE_MB   -> prints the LUN's iscsi:// URL
#        lun.sh del LUN
# LUN 1 and 2 belong to the rig (rig.env) and are refused.
# Added LUNs are backed by DATA_DIR/lun-LUN.img (on the rig's reflink XFS,
# so they can be snapshotted), with a symlink STATE/lun-LUN.img to it;
# both are removed by down.sh. SANMOVER_RIG_LUN_PLACE=plain puts the file
# in STATE itself instead (no snapshots; make bench, which measures the data
# path and not the loop device under the XFS).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { die "usage: lun.sh add LUN SIZE_MB | lun.sh del LUN"; }
op=${1:-}
lun=${2:-}
[[ $lun =~ ^[0-9]+$ ]] || usage
((lun >= 3 && lun <= 255)) || die "LUN must be 3..255 (1 and 2 are the rig's)"
require_rig
file=$DATA_DIR/lun-$lun.img
link=$STATE/lun-$lun.img
case ${SANMOVER_RIG_LUN_PLACE:-xfs} in
xfs) ;;
plain) file=$link ;;
*) die "SANMOVER_RIG_LUN_PLACE must be xfs or plain" ;;
esac

case $op in
add)
    size=${3:-}
    [[ $size =~ ^[1-9][0-9]*$ ]] || usage
    [[ ! -e $file ]] || die "LUN $lun exists already ($file)"
    truncate -s "${size}M" "$file"
    [[ $file == "$link" ]] || ln -sfn "$file" "$link"
    if ! tadm "$RIG_CONTROL" --lld iscsi --op new --mode logicalunit \
        --tid "$DISK_TID" --lun "$lun" -b "$file"; then
        rm -f "$file" "$link"
        die "could not add LUN $lun"
    fi
    # Distinct identity; the leading digits differ per LUN (see lib.sh).
    id=$(printf 'e%03x5a4e%024x' "$lun" "$lun")
    tadm "$RIG_CONTROL" --lld iscsi --op update --mode logicalunit --tid "$DISK_TID" --lun "$lun" \
        --params "vendor_id=$VENDOR,product_id=RIG-DISK$lun,product_rev=0001,scsi_sn=L$lun-SANMOVER-RIG,scsi_id=$id"
    echo "iscsi://$(env_value SANMOVER_RIG_PORTAL)/$DISK_IQN/$lun"
    ;;
del)
    tadm "$RIG_CONTROL" --lld iscsi --op delete --mode logicalunit \
        --tid "$DISK_TID" --lun "$lun" || die "could not delete LUN $lun"
    rm -f "$file" "$link" "$DATA_DIR/lun-$lun.img"
    ;;
*) usage ;;
esac
