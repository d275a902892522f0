#!/usr/bin/env bash
# Stop the router up.sh started in STATE_DIR, by its pid.
# Usage: down.sh STATE_DIR
set -euo pipefail
RIG_NAME=router
# shellcheck source-path=SCRIPTDIR source=../common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
(($# == 1)) || die "usage: down.sh STATE_DIR"
ENV_FILE=$1/router.env
pid=$(env_value SANMOVER_ROUTER_PID) || exit 0
[[ -n $pid ]] || exit 0
if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
fi
rm -f "$ENV_FILE"
log "down (pid $pid)"
