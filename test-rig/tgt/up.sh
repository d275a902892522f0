#!/usr/bin/env bash
# Start a private tgtd on a free 127.0.0.1 port with one disk target (two
# LUNs) and one tape target, and write test-rig/run/tgt/rig.env for the
# integration tests. Idempotent: a healthy rig is left as it is.
# Stop it with down.sh. See test-rig/README.md.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

START_ATTEMPTS=5
# SANMOVER_RIG_PORT pins the portal port (one attempt, no fallback to another).
FIXED_PORT=${SANMOVER_RIG_PORT:-}
if [[ -n $FIXED_PORT ]]; then
    if ! [[ $FIXED_PORT =~ ^[1-9][0-9]{0,4}$ ]] || ((FIXED_PORT > 65535)); then
        die "SANMOVER_RIG_PORT must be a TCP port number"
    fi
    START_ATTEMPTS=1
fi

for tool in tgtd tgtadm tgtimg ss python3 setsid truncate; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run 'make deps')"
done

mkdir -p "$STATE"
# rig.env values are written unquoted; refuse paths that would need quoting.
for path in "$STATE" "$RIG_TGT_DIR" "$DATA_DIR"; do
    [[ $path =~ ^[A-Za-z0-9_./+-]+$ ]] || die "path '$path' has characters rig.env cannot carry unquoted"
done

summary() {
    local port=$1 control=$2 pid=$3 tape_mb=${4:-$TAPE_SIZE_MB}
    cat <<EOF
tgt rig up: tgtd pid $pid, portal 127.0.0.1:$port, control port $control
  disk  iscsi://127.0.0.1:$port/$DISK_IQN/1  (${DISK1_MB} MiB, $DISK1_FILE)
  disk2 iscsi://127.0.0.1:$port/$DISK_IQN/2  (${DISK2_MB} MiB, $DISK2_FILE)
  tape  iscsi://127.0.0.1:$port/$TAPE_IQN/1  ($TAPE_BARCODE, ${tape_mb} MB, $TAPE_FILE)
  library changer iscsi://127.0.0.1:$port/$LIB_IQN/$LIB_CHANGER_LUN
          drive 0 iscsi://127.0.0.1:$port/$LIB_IQN/$LIB_DRIVE0_LUN ($LIB_DRIVE0_SN), drive 1 iscsi://127.0.0.1:$port/$LIB_IQN/$LIB_DRIVE1_LUN ($LIB_DRIVE1_SN)
          $LIB_SLOTS slots, $LIB_CARTS cartridges + $LIB_IE_BARCODE in import/export ($MEDIA_DIR)
  env   $ENV_FILE
  log   $LOG_FILE
  stop  $RIG_TGT_DIR/down.sh
EOF
}

# The only acceptable listening set for our tgtd is exactly 127.0.0.1:PORT
# (on a failed bind tgtd silently serves 0.0.0.0:3260 and [::]:3260).
bind_ok() {
    local pid=$1 port=$2 addrs
    addrs=$(listen_addrs "$pid")
    [[ $addrs == "127.0.0.1:$port" ]]
}

# --- idempotency: is a healthy rig already running? ----------------------
if [[ -s $PID_FILE && -s $CONTROL_FILE ]]; then
    old_pid=$(cat "$PID_FILE")
    old_control=$(cat "$CONTROL_FILE")
    if is_our_tgtd "$old_pid" "$old_control"; then
        old_port=$(cat "$PORT_FILE" 2>/dev/null || true)
        targets=$(tadm "$old_control" --op show --mode target 2>/dev/null || true)
        if [[ -s $ENV_FILE ]] &&
            [[ $(env_value SANMOVER_RIG_TGTD_PID) == "$old_pid" ]] &&
            [[ $(env_value SANMOVER_RIG_PORTAL) == "127.0.0.1:$old_port" ]] &&
            [[ $targets == *"$DISK_IQN"* && $targets == *"$TAPE_IQN"* ]] &&
            [[ $targets == *"$LIB_IQN"* && -n $(env_value SANMOVER_RIG_CHANGER) ]] &&
            [[ $targets == *"path: $DISK1_FILE"* && $targets == *"path: $DISK2_FILE"* ]] &&
            [[ $targets == *"path: $TAPE_FILE"* ]] &&
            data_mounted &&
            bind_ok "$old_pid" "$old_port"; then
            log "already up (pid $old_pid); nothing to do"
            summary "$old_port" "$old_control" "$old_pid" "$(env_value SANMOVER_RIG_TAPE_MB)"
            exit 0
        fi
        log "tgtd $old_pid is running but the rig is incomplete; restarting it"
        stop_tgtd "$old_pid" "$old_control" || die "could not stop tgtd $old_pid"
    else
        # Stale files of a rig whose tgtd is gone.
        stop_tgtd "$old_pid" "$old_control" || true
    fi
fi
rm -f "$ENV_FILE" "$PID_FILE" "$CONTROL_FILE" "$PORT_FILE"

# --- start tgtd -------------------------------------------------------------
PID=
CONTROL=
PORT=
# Until the rig is complete, any exit tears our tgtd down again.
cleanup_on_failure() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then
        if [[ -n $PID ]]; then
            log "setup failed; stopping tgtd $PID (log: $LOG_FILE)"
            stop_tgtd "$PID" "$CONTROL" || true
        fi
        rm -f "$ENV_FILE" "$ENV_FILE.tmp" "$PID_FILE" "$CONTROL_FILE" "$PORT_FILE"
        if [[ -z ${KEEP_IMAGES:-} ]]; then
            rm -f "$DISK1_FILE" "$DISK2_FILE" "$TAPE_FILE" "$LIB_CHANGER_FILE"
            rm -rf "$MEDIA_DIR"
            unmount_data
        fi
    fi
}
trap cleanup_on_failure EXIT

: >"$LOG_FILE"
started=
for attempt in $(seq "$START_ATTEMPTS"); do
    PORT=${FIXED_PORT:-$(free_tcp_port)}
    CONTROL=$(free_control_port) || die "no free tgtd control port"
    printf '=== rig: attempt %s: tgtd portal 127.0.0.1:%s control %s\n' \
        "$attempt" "$PORT" "$CONTROL" >>"$LOG_FILE"
    # A non-interactive shell's background child is no group leader, so
    # setsid does not fork and $! is tgtd's own pid (checked below).
    setsid tgtd -f --iscsi "portal=127.0.0.1:$PORT" -C "$CONTROL" \
        </dev/null >>"$LOG_FILE" 2>&1 &
    PID=$!
    echo "$PID" >"$PID_FILE"
    echo "$CONTROL" >"$CONTROL_FILE"
    echo "$PORT" >"$PORT_FILE"

    ready=
    for _ in $(seq 100); do
        if ! kill -0 "$PID" 2>/dev/null; then
            break
        fi
        if is_our_tgtd "$PID" "$CONTROL" &&
            tadm "$CONTROL" --op show --mode system >/dev/null 2>&1; then
            ready=1
            break
        fi
        sleep 0.1
    done
    if [[ -z $ready ]]; then
        log "attempt $attempt: tgtd did not answer on control port $CONTROL"
        stop_tgtd "$PID" "$CONTROL" || die "could not stop tgtd $PID"
        PID=
        continue
    fi

    # Check the actual bind: the listener may appear just after the control socket.
    for _ in $(seq 20); do
        [[ -n $(listen_addrs "$PID") ]] && break
        sleep 0.1
    done
    if ! bind_ok "$PID" "$PORT"; then
        log "attempt $attempt: tgtd $PID listens on [$(listen_addrs "$PID" | tr '\n' ' ')], not only 127.0.0.1:$PORT"
        stop_tgtd "$PID" "$CONTROL" || die "could not stop tgtd $PID"
        PID=
        continue
    fi
    started=1
    break
done
[[ -n $started ]] || {
    die "tgtd failed to start on a private 127.0.0.1 port after $START_ATTEMPTS attempts (log: $LOG_FILE)"
}

# --- targets and LUNs -------------------------------------------------------
T() { tadm "$CONTROL" --lld iscsi "$@"; }

# SANMOVER_RIG_KEEP_IMAGES=1 restarts a rig on the images a stopped (or
# killed) tgtd left behind: the "target came back" half of crash tests.
keep=0
[[ ${SANMOVER_RIG_KEEP_IMAGES:-} == 1 ]] && keep=1
mount_data "$keep"
if [[ $keep == 1 && -f $DISK1_FILE && -f $DISK2_FILE && -f $TAPE_FILE ]]; then
    log "keeping the existing disk and tape images"
    KEEP_IMAGES=1
else
    # Snapshots and extra LUNs of an earlier rig in this state dir go too.
    rm -f "$DATA_DIR"/*.img "$STATE"/lun-*.img
    rm -f "$DISK1_FILE" "$DISK2_FILE" "$TAPE_FILE"
    truncate -s "${DISK1_MB}M" "$DISK1_FILE"
    truncate -s "${DISK2_MB}M" "$DISK2_FILE"
    new_tape_image "$TAPE_SIZE_MB"
fi

T --op new --mode target --tid "$DISK_TID" -T "$DISK_IQN"
T --op new --mode logicalunit --tid "$DISK_TID" --lun 1 -b "$DISK1_FILE"
T --op update --mode logicalunit --tid "$DISK_TID" --lun 1 \
    --params "vendor_id=$VENDOR,product_id=RIG-DISK1,product_rev=0001,scsi_sn=$DISK1_SN,scsi_id=$DISK1_ID"
T --op new --mode logicalunit --tid "$DISK_TID" --lun 2 -b "$DISK2_FILE"
T --op update --mode logicalunit --tid "$DISK_TID" --lun 2 \
    --params "vendor_id=$VENDOR,product_id=RIG-DISK2,product_rev=0001,scsi_sn=$DISK2_SN,scsi_id=$DISK2_ID"
T --op bind --mode target --tid "$DISK_TID" -I ALL

T --op new --mode target --tid "$TAPE_TID" -T "$TAPE_IQN"
add_tape_lun "$CONTROL"
T --op bind --mode target --tid "$TAPE_TID" -I ALL

add_library "$CONTROL"

# --- rig.env: written last, atomically; its presence means "rig complete" ---
tmp=$ENV_FILE.tmp
{
    echo "# tgt rig, written by test-rig/tgt/up.sh; removed by down.sh"
    echo "SANMOVER_RIG_PORTAL=127.0.0.1:$PORT"
    echo "SANMOVER_RIG_DISK=iscsi://127.0.0.1:$PORT/$DISK_IQN/1"
    echo "SANMOVER_RIG_DISK2=iscsi://127.0.0.1:$PORT/$DISK_IQN/2"
    echo "SANMOVER_RIG_TAPE=iscsi://127.0.0.1:$PORT/$TAPE_IQN/$TAPE_LUN"
    echo "SANMOVER_RIG_DISK_IQN=$DISK_IQN"
    echo "SANMOVER_RIG_TAPE_IQN=$TAPE_IQN"
    echo "SANMOVER_RIG_DISK_FILE=$DISK1_FILE"
    echo "SANMOVER_RIG_DISK2_FILE=$DISK2_FILE"
    echo "SANMOVER_RIG_TAPE_FILE=$TAPE_FILE"
    echo "SANMOVER_RIG_DISK_BYTES=$((DISK1_MB * 1048576))"
    echo "SANMOVER_RIG_DISK2_BYTES=$((DISK2_MB * 1048576))"
    echo "SANMOVER_RIG_DISK_SERIAL=$DISK1_SN"
    echo "SANMOVER_RIG_DISK2_SERIAL=$DISK2_SN"
    echo "SANMOVER_RIG_TAPE_SERIAL=$TAPE_SN"
    echo "SANMOVER_RIG_DISK_SCSI_ID=$DISK1_ID"
    echo "SANMOVER_RIG_DISK2_SCSI_ID=$DISK2_ID"
    echo "SANMOVER_RIG_TAPE_SCSI_ID=$TAPE_ID"
    echo "SANMOVER_RIG_VENDOR=$VENDOR"
    echo "SANMOVER_RIG_TAPE_BARCODE=$TAPE_BARCODE"
    echo "SANMOVER_RIG_TAPE_MB=$TAPE_SIZE_MB"
    echo "SANMOVER_RIG_TGT_CONTROL=$CONTROL"
    echo "SANMOVER_RIG_TGTD_PID=$PID"
    echo "SANMOVER_RIG_STATE_DIR=$STATE"
    echo "SANMOVER_RIG_DATA_DIR=$DATA_DIR"
    echo "SANMOVER_RIG_LOG=$LOG_FILE"
    echo "SANMOVER_RIG_RESET_TAPE=$RIG_TGT_DIR/reset-tape.sh"
    echo "SANMOVER_RIG_LUN_TOOL=$RIG_TGT_DIR/lun.sh"
    lib=iscsi://127.0.0.1:$PORT/$LIB_IQN
    echo "SANMOVER_RIG_LIB_IQN=$LIB_IQN"
    echo "SANMOVER_RIG_CHANGER=$lib/$LIB_CHANGER_LUN"
    echo "SANMOVER_RIG_CHANGER_SERIAL=$LIB_CHANGER_SN"
    echo "SANMOVER_RIG_LIB_DRIVE0=$lib/$LIB_DRIVE0_LUN"
    echo "SANMOVER_RIG_LIB_DRIVE1=$lib/$LIB_DRIVE1_LUN"
    echo "SANMOVER_RIG_LIB_DRIVE0_SERIAL=$LIB_DRIVE0_SN"
    echo "SANMOVER_RIG_LIB_DRIVE1_SERIAL=$LIB_DRIVE1_SN"
    echo "SANMOVER_RIG_LIB_SLOTS=$LIB_SLOTS"
    echo "SANMOVER_RIG_LIB_BARCODES=$(for i in $(seq "$LIB_CARTS"); do printf '%s ' "$(lib_barcode "$i")"; done | sed 's/ $//; s/ /,/g')"
    echo "SANMOVER_RIG_LIB_IE_BARCODE=$LIB_IE_BARCODE"
    echo "SANMOVER_RIG_LIB_ELEMENTS=picker:$LIB_PICKER,slots:$LIB_SLOT_FIRST+$LIB_SLOTS,ie:$LIB_IE+1,drives:$LIB_DT_FIRST+3"
    echo "SANMOVER_RIG_LIB_CART_MB=$LIB_CART_MB"
    echo "SANMOVER_RIG_LIB_MEDIA_DIR=$MEDIA_DIR"
} >"$tmp"
mv "$tmp" "$ENV_FILE"

trap - EXIT
summary "$PORT" "$CONTROL" "$PID"
