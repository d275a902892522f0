#!/usr/bin/env bash
# Start `sanmover router` (the data router: our iSCSI target with an
# EXTENDED COPY copy manager) on 127.0.0.1, a port it picks itself, with
# the given backend targets. Unless the extra arguments bring a --config,
# it writes $STATE/router.toml with the copy rights a user would give this
# host's initiator name (SANMOVER_INITIATOR, else sanmover's default): a
# backend given as source=URL may be read, destination=URL written, a
# plain URL both. Writes $STATE/router.env:
#   SANMOVER_ROUTER_URL   iscsi://127.0.0.1:PORT/IQN/0 (the copy manager LU)
#   SANMOVER_ROUTER_PID   its pid (down.sh stops it by pid)
#   SANMOVER_ROUTER_LOG   its log
# Usage: up.sh STATE_DIR [source=|destination=]BACKEND_URL... [-- EXTRA ROUTER ARGS]
# SANMOVER_BIN picks the binary (default target/debug/sanmover).
set -euo pipefail
RIG_NAME=router
# shellcheck source-path=SCRIPTDIR source=../common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

(($# >= 2)) || die "usage: up.sh STATE_DIR BACKEND_URL... [-- ROUTER ARGS]"
STATE=$1
shift
mkdir -p "$STATE"
ENV_FILE=$STATE/router.env
SANMOVER=${SANMOVER_BIN:-$(dirname "${BASH_SOURCE[0]}")/../../target/debug/sanmover}
[[ -x $SANMOVER ]] || die "$SANMOVER not built"

args=()
extra=()
lus=()
while (($#)); do
    if [[ $1 == -- ]]; then
        shift
        extra+=("$@")
        break
    fi
    role=both
    url=$1
    case $1 in
    source=*) role=source url=${1#source=} ;;
    destination=*) role=destination url=${1#destination=} ;;
    esac
    # iscsi://HOST:PORT/IQN[/LUN]: the rights name the target (all LUNs).
    iqn=$(cut -d/ -f4 <<<"$url")
    [[ -n $iqn ]] || die "backend $url names no target"
    lus+=("{ target = \"$iqn\", role = \"$role\" }")
    args+=(--backend "$url")
    shift
done
if [[ " ${extra[*]} " != *" --config "* ]]; then
    initiator=${SANMOVER_INITIATOR:-iqn.2024-01.org.sanmover:initiator}
    {
        echo "# Written by test-rig/router/up.sh: copy rights for $initiator."
        echo "[[copy_rights]]"
        echo "initiators = [\"$initiator\"]"
        printf 'lus = [%s]\n' "$(IFS=,; echo "${lus[*]}")"
    } >"$STATE/router.toml"
    args+=(--config "$STATE/router.toml")
fi
args+=("${extra[@]}")

LOG=$STATE/router.log
OUT=$STATE/router.out
: >"$OUT"
"$SANMOVER" router --listen 127.0.0.1:0 "${args[@]}" </dev/null >"$OUT" 2>"$LOG" &
PID=$!
for _ in $(seq 300); do
    if [[ -s $OUT ]] && grep -q 'listening on' "$OUT"; then
        break
    fi
    kill -0 "$PID" 2>/dev/null || die "router exited; log: $(tail -n 5 "$LOG")"
    sleep 0.1
done
line=$(grep -m1 'listening on' "$OUT") || {
    kill "$PID" 2>/dev/null || true
    die "router did not report its address in 30 s; log: $LOG"
}
# "sanmover router: listening on ADDR, target IQN, copy manager LUN 0"
addr=$(sed -n 's/.*listening on \([^,]*\),.*/\1/p' <<<"$line")
iqn=$(sed -n 's/.*target \([^,]*\),.*/\1/p' <<<"$line")
[[ $addr == 127.0.0.1:* && -n $iqn ]] || {
    kill "$PID" 2>/dev/null || true
    die "unexpected router banner: $line"
}
{
    echo "SANMOVER_ROUTER_URL=iscsi://$addr/$iqn/0"
    echo "SANMOVER_ROUTER_PID=$PID"
    echo "SANMOVER_ROUTER_LOG=$LOG"
} >"$ENV_FILE"
log "up: pid $PID on $addr ($iqn)"
cat "$ENV_FILE"
