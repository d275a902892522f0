#!/usr/bin/env bash
# Give the running rig a blank tape: delete the tape LU, write a fresh image
# with tgtimg and add the LU again (position back at BOT, no blocks).
# Usage: reset-tape.sh [SIZE_MB]   (default 256; a small size makes EOM
# reachable). Sessions may stay logged in, but the LU must be idle.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

size=${1:-$TAPE_SIZE_MB}
[[ $size =~ ^[1-9][0-9]*$ ]] || die "size must be a positive number of MB, not '$size'"
require_rig

tadm "$RIG_CONTROL" --lld iscsi --op delete --mode logicalunit \
    --tid "$TAPE_TID" --lun "$TAPE_LUN" || die "could not delete the tape LU (still busy?)"
new_tape_image "$size"
add_tape_lun "$RIG_CONTROL"

# Keep rig.env truthful about the capacity.
tmp=$ENV_FILE.tmp
sed "s/^SANMOVER_RIG_TAPE_MB=.*/SANMOVER_RIG_TAPE_MB=$size/" "$ENV_FILE" >"$tmp"
mv "$tmp" "$ENV_FILE"
echo "tgt rig: blank tape $TAPE_BARCODE (${size} MB) at $(env_value SANMOVER_RIG_TAPE)"
