#!/usr/bin/env bash
# Run a command with the LIO-in-QEMU rig up, then always bring it down,
# also when the command fails or is interrupted.
# Usage: test-rig/with-lio.sh COMMAND [ARGS...]
# The command sees SANMOVER_LIO_ENV=<absolute path of the LIO rig.env>.
# Exit status: up.sh's if the rig did not come up, else the command's;
# down.sh's only if everything before it passed.
set -uo pipefail

# shellcheck source-path=SCRIPTDIR source=lio/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lio/lib.sh"

(($# > 0)) || die "usage: with-lio.sh COMMAND [ARGS...]"

status=0
trap 'status=130' INT
trap 'status=143' TERM

bash "$(dirname "${BASH_SOURCE[0]}")/lio/up.sh" || status=$?
if ((status == 0)); then
    export SANMOVER_LIO_ENV=$ENV_FILE
    "$@" || status=$?
fi
down_status=0
bash "$(dirname "${BASH_SOURCE[0]}")/lio/down.sh" || down_status=$?
if ((status == 0)); then
    status=$down_status
fi
exit "$status"
