# Shared definitions for the tgt rig scripts. Sourced, not run.
# shellcheck shell=bash
# Variables here are used by the scripts that source this file.
# shellcheck disable=SC2034

RIG_TGT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RIG_ROOT=$(cd "$RIG_TGT_DIR/.." && pwd)
# The state dir can be moved (e.g. to run two rigs from one checkout) with
# SANMOVER_RIG_STATE; helpers run from tests find it through SANMOVER_RIG_ENV.
RIG_NAME=rig
# shellcheck source-path=SCRIPTDIR source=../common.sh
source "$RIG_ROOT/common.sh"
STATE=$(rig_state_dir SANMOVER_RIG_STATE SANMOVER_RIG_ENV "$RIG_ROOT/run/tgt")

IQN_BASE=iqn.2026-11.org.sanmover.rig
DISK_IQN=$IQN_BASE:disk
TAPE_IQN=$IQN_BASE:tape
DISK_TID=1
TAPE_TID=2
TAPE_LUN=1
TAPE_BARCODE=SANM01
# SANMOVER_RIG_TAPE_MB overrides the tape size (MB) of up.sh and of
# reset-tape.sh without an argument (make bench needs a tape > 1 GiB).
TAPE_SIZE_MB=${SANMOVER_RIG_TAPE_MB:-256}
[[ $TAPE_SIZE_MB =~ ^[1-9][0-9]*$ ]] || {
    printf 'rig: error: SANMOVER_RIG_TAPE_MB must be a positive number of MB, not %s\n' "$TAPE_SIZE_MB" >&2
    exit 1
}
DISK1_MB=64
DISK2_MB=16
# tgt derives the 16-byte NAA designator of VPD 0x83 from the hex digits of
# scsi_id, and the T10 vendor-id designator from its text: keep them hex and
# make them differ in their leading digits (so NAAs differ early too).
DISK1_ID=d15a4e00000000000000000000000001
DISK2_ID=d25a4e00000000000000000000000002
TAPE_ID=7a5a4e00000000000000000000000001
DISK1_SN=D1-SANMOVER-RIG
DISK2_SN=D2-SANMOVER-RIG
TAPE_SN=T1-SANMOVER-RIG
VENDOR=IET  # tgt's own vendor id: sanmover recognises tgt (and its quirks) by it

PID_FILE=$STATE/tgtd.pid
CONTROL_FILE=$STATE/control
PORT_FILE=$STATE/port
ENV_FILE=$STATE/rig.env
LOG_FILE=$STATE/tgtd.log
TAPE_FILE=$STATE/tape.img
# Disk backing files live on an XFS filesystem with reflink, in a sparse
# image loop-mounted at DATA_DIR, so `cp --reflink=always` of a backing
# file is an instant copy-on-write snapshot (the tgt snapshot provider).
# Every rig (every state dir) has its own image and mount.
XFS_IMG=$STATE/xfs.img
DATA_DIR=$STATE/data
# SANMOVER_RIG_XFS_MB: size of that (sparse) image; it must hold the disks,
# extra LUNs and snapshots (make bench puts two 1 GiB LUNs there).
XFS_MB=${SANMOVER_RIG_XFS_MB:-8192}
[[ $XFS_MB =~ ^[1-9][0-9]*$ ]] || {
    printf 'rig: error: SANMOVER_RIG_XFS_MB must be a positive number of MB, not %s\n' "$XFS_MB" >&2
    exit 1
}
DISK1_FILE=$DATA_DIR/disk1.img
DISK2_FILE=$DATA_DIR/disk2.img

# tgtd keeps its management socket (and a lock file) here, suffixed by -C N.
TGT_SOCKET_DIR=/var/run/tgtd


# tadm N ARGS...: tgtadm on control port N.
tadm() {
    local n=$1
    shift
    tgtadm -C "$n" "$@"
}

# True if PID is a live (non-zombie) tgtd started with control port N.
# Guards every kill: a recycled pid or somebody else's tgtd is never touched.
is_our_tgtd() {
    local pid=$1 n=$2 state cmd
    [[ $pid =~ ^[0-9]+$ && $n =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/stat ]] || return 1
    # Field 3 of /proc/PID/stat is the state; the comm before it is in parens.
    state=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ $state != Z && $state != X ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == tgtd ]] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ " $cmd " == *" -C $n "* ]]
}

# The TCP addresses PID listens on, one per line (e.g. 127.0.0.1:40123).
listen_addrs() {
    local pid=$1
    ss -ltnpH 2>/dev/null | awk -v tag="pid=$pid," 'index($0, tag) { print $4 }' | sort -u
}

# True if some process listens on the management socket of control port N.
control_in_use() {
    local n=$1
    ss -lxH 2>/dev/null | awk '{ print $5 }' | grep -qxF "$TGT_SOCKET_DIR/socket.$n"
}


# A tgtd control port number nobody serves now.
free_control_port() {
    local n tries=0
    while ((tries < 200)); do
        # tgtd and tgtadm accept -C 0..32767.
        n=$((10000 + RANDOM % 22768))
        if ! control_in_use "$n"; then
            echo "$n"
            return 0
        fi
        tries=$((tries + 1))
    done
    return 1
}


# stop_tgtd PID N: stop our tgtd on control port N, by pid only.
# tgtd ignores SIGTERM, so ask it through tgtadm first: offline, drop
# targets (forced, sessions may be open), delete the system; then SIGTERM
# and SIGKILL to that one pid if it is still there.
stop_tgtd() {
    local pid=$1 n=$2 tid
    if is_our_tgtd "$pid" "$n"; then
        tadm "$n" --op update --mode sys --name State -v offline >/dev/null 2>&1 || true
        for tid in $(tadm "$n" --op show --mode target 2>/dev/null |
            sed -n 's/^Target \([0-9][0-9]*\):.*/\1/p'); do
            tadm "$n" --op delete --force --mode target --tid "$tid" >/dev/null 2>&1 || true
        done
        tadm "$n" --op delete --mode system >/dev/null 2>&1 || true
        for _ in $(seq 50); do
            is_our_tgtd "$pid" "$n" || break
            sleep 0.1
        done
        if is_our_tgtd "$pid" "$n"; then
            log "tgtd $pid still running after 'delete system'; sending SIGTERM"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 30); do
                is_our_tgtd "$pid" "$n" || break
                sleep 0.1
            done
        fi
        if is_our_tgtd "$pid" "$n"; then
            log "tgtd $pid ignored SIGTERM; sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
            for _ in $(seq 30); do
                is_our_tgtd "$pid" "$n" || break
                sleep 0.1
            done
        fi
        if is_our_tgtd "$pid" "$n"; then
            log "tgtd $pid does not die"
            return 1
        fi
    fi
    # tgtd leaves its socket and lock file behind; drop them once nobody
    # serves that control port.
    if [[ $n =~ ^[0-9]+$ ]] && ! control_in_use "$n"; then
        rm -f "$TGT_SOCKET_DIR/socket.$n" "$TGT_SOCKET_DIR/socket.$n.lock"
    fi
    return 0
}

# new_tape_image SIZE_MB: a blank tape image (1200 bytes: BOT, MAM, EOD).
new_tape_image() {
    rm -f "$TAPE_FILE"
    tgtimg --op=new --device-type=tape --barcode="$TAPE_BARCODE" --size="$1" \
        --type=data --file="$TAPE_FILE" >>"$LOG_FILE" 2>&1
}

# add_tape_lun N: the tape LU on the tape target, with its identity.
add_tape_lun() {
    local n=$1
    tadm "$n" --lld iscsi --op new --mode logicalunit --tid "$TAPE_TID" --lun "$TAPE_LUN" \
        --device-type=tape --bstype=ssc -b "$TAPE_FILE"
    tadm "$n" --lld iscsi --op update --mode logicalunit --tid "$TAPE_TID" --lun "$TAPE_LUN" \
        --params "vendor_id=$VENDOR,product_id=VIRTUAL-TAPE,product_rev=0001,scsi_sn=$TAPE_SN,scsi_id=$TAPE_ID"
}

# require_rig: load pid and control port of a running rig or fail.
require_rig() {
    [[ -s $ENV_FILE ]] || die "no rig (missing $ENV_FILE); run test-rig/tgt/up.sh"
    RIG_PID=$(env_value SANMOVER_RIG_TGTD_PID)
    RIG_CONTROL=$(env_value SANMOVER_RIG_TGT_CONTROL)
    is_our_tgtd "$RIG_PID" "$RIG_CONTROL" || die "tgtd ${RIG_PID:-?} of $ENV_FILE is not running"
}


# True if DATA_DIR is a mounted XFS filesystem (ours: the image's loop).
data_mounted() {
    [[ $(findmnt -n -o FSTYPE --mountpoint "$DATA_DIR" 2>/dev/null) == xfs ]]
}

# mount_data KEEP: make sure DATA_DIR is our reflink XFS. With KEEP=1 an
# existing image is mounted again as it is; otherwise a fresh one is made.
# There is no fallback to a plain directory: without reflink the tgt
# snapshot provider cannot work, so a host that cannot loop-mount fails
# here, loudly.
mount_data() {
    local keep=$1 err
    if data_mounted; then
        return 0
    fi
    for tool in mkfs.xfs mount umount losetup findmnt; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run 'make deps': xfsprogs, mount)"
    done
    if [[ $keep != 1 || ! -f $XFS_IMG ]]; then
        rm -f "$XFS_IMG"
        truncate -s "${XFS_MB}M" "$XFS_IMG"
        err=$(mkfs.xfs -q -f -m reflink=1 "$XFS_IMG" 2>&1) || {
            rm -f "$XFS_IMG"
            die "mkfs.xfs -m reflink=1 $XFS_IMG failed: $err"
        }
    fi
    mkdir -p "$DATA_DIR"
    err=$(mount -t xfs -o loop "$XFS_IMG" "$DATA_DIR" 2>&1) || {
        die "CANNOT LOOP-MOUNT the rig's XFS image ($XFS_IMG on $DATA_DIR): $err
rig: the tgt rig keeps its disks on a loop-mounted XFS with reflink (snapshots
rig: are cp --reflink=always); this host does not allow that (root and loop
rig: devices are needed). There is no fallback to a plain directory."
    }
    data_mounted || die "$DATA_DIR is not an XFS mount after mount -o loop"
}

# Unmount DATA_DIR and detach the loop device(s) of XFS_IMG, then remove
# the image. Best effort, for down.sh and failure paths: retries a busy
# unmount, then detaches lazily.
unmount_data() {
    local i dev
    if data_mounted; then
        for i in $(seq 20); do
            umount "$DATA_DIR" 2>/dev/null && break
            sleep 0.2
        done
        if data_mounted; then
            log "warning: $DATA_DIR is busy; detaching it lazily"
            umount -l "$DATA_DIR" 2>/dev/null || log "warning: could not unmount $DATA_DIR"
        fi
    fi
    # mount -o loop sets autoclear, but a lazy unmount or a crash can leave
    # the loop device bound: detach whatever still points at our image.
    if [[ -e $XFS_IMG ]]; then
        for dev in $(losetup -j "$XFS_IMG" 2>/dev/null | cut -d: -f1); do
            losetup -d "$dev" 2>/dev/null || log "warning: could not detach $dev"
        done
    fi
    data_mounted || {
        rmdir "$DATA_DIR" 2>/dev/null || true
        rm -f "$XFS_IMG"
    }
}
