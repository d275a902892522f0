#!/usr/bin/env bash
# Run a command with the tgt rig up, then always bring the rig down again,
# also when the command fails or is interrupted.
# Usage: test-rig/with-rig.sh COMMAND [ARGS...]
# The command sees SANMOVER_RIG_ENV=<absolute path of rig.env>.
# Exit status: up.sh's if the rig did not come up, else the command's;
# down.sh's only if everything before it passed.
set -uo pipefail

# shellcheck source-path=SCRIPTDIR source=tgt/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/tgt/lib.sh"

(($# > 0)) || die "usage: with-rig.sh COMMAND [ARGS...]"

status=0
# A Ctrl-C reaches the command too; record it and fall through to down.sh.
trap 'status=130' INT
trap 'status=143' TERM

bash "$RIG_TGT_DIR/up.sh" || status=$?
if ((status == 0)); then
    export SANMOVER_RIG_ENV=$ENV_FILE
    "$@" || status=$?
fi
down_status=0
bash "$RIG_TGT_DIR/down.sh" || down_status=$?
if ((status == 0)); then
    status=$down_status
fi
exit "$status"
