# Definitions every rig shares (tgt, LIO). Sourced by each rig's lib.sh,
# which sets RIG_NAME and ENV_FILE. Sourced, not run.
# shellcheck shell=bash

log() { printf '%s: %s\n' "$RIG_NAME" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# rig_state_dir STATE_VAR ENV_VAR DEFAULT: the state dir from $STATE_VAR,
# else the dir of $ENV_VAR (helpers run from tests), else DEFAULT; made
# absolute.
rig_state_dir() {
    local dir
    if [[ -n ${!1:-} ]]; then
        dir=${!1}
    elif [[ -n ${!2:-} ]]; then
        dir=$(dirname "${!2}")
    else
        dir=$3
    fi
    case $dir in
    /*) ;;
    *) dir=$PWD/$dir ;;
    esac
    printf '%s\n' "$dir"
}

# Read KEY from rig.env (no sourcing: the file is data).
env_value() {
    local key=$1
    [[ -r $ENV_FILE ]] || return 1
    sed -n "s/^$key=//p" "$ENV_FILE" | head -n1
}

# A TCP port on 127.0.0.1 that is free right now (never 3260, tgtd's
# fallback portal and the iSCSI default).
free_tcp_port() {
    python3 - <<'PY'
import socket
while True:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    if port != 3260:
        print(port)
        break
PY
}
