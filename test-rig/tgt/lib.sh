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

# The tape library (tgt's SMC changer): one changer and two drives on
# their own target. Element addresses: picker 1, import/export 32, drives
# 256 and 257 (and 258, a spare: see add_library), slots 1024 on.
LIB_IQN=$IQN_BASE:library
LIB_TID=3
LIB_CHANGER_LUN=1
LIB_CHANGER_SN=SMLIB0
# Drive element 256 (mtx drive 0) is LUN 3 and element 257 (drive 1) is
# LUN 2: the order of the LUNs is not the order of the elements, so only
# a mapping by identifier gets them right. tgt sends at most 10 serial
# characters in the element's device identifier.
LIB_DRIVE0_LUN=3
LIB_DRIVE0_SN=SMDRVB
LIB_DRIVE1_LUN=2
LIB_DRIVE1_SN=SMDRVA
LIB_PICKER=1
LIB_IE=32
LIB_DT_FIRST=256
LIB_SLOT_FIRST=1024
LIB_SLOTS=10
# Cartridges LIB001..LIB008 in slots 1..8 (9 and 10 empty), LIB009 in the
# import/export slot; each a tgtimg image of LIB_CART_MB in MEDIA_DIR.
LIB_CARTS=8
LIB_IE_BARCODE=LIB009
LIB_CART_MB=${SANMOVER_RIG_CART_MB:-256}
MEDIA_DIR=$STATE/media
LIB_CHANGER_FILE=$STATE/changer.img

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

# lib_barcode N: the barcode of cartridge N (1-based).
lib_barcode() {
    printf 'LIB%03d' "$1"
}

# add_library N: the changer, its two drives and the cartridges, on target
# LIB_TID of the tgtd on control port N. Fresh cartridge images every time.
add_library() {
    local n=$1 i b
    L() { tadm "$n" --lld iscsi "$@"; }
    C() { L --op update --mode logicalunit --tid "$LIB_TID" --lun "$LIB_CHANGER_LUN" --params "$1"; }
    rm -rf "$MEDIA_DIR"
    mkdir -p "$MEDIA_DIR"
    for i in $(seq $((LIB_CARTS + 1))); do
        b=$(lib_barcode "$i")
        tgtimg --op=new --device-type=tape --barcode="$b" --size="$LIB_CART_MB" \
            --type=data --file="$MEDIA_DIR/$b" >>"$LOG_FILE" 2>&1
    done
    truncate -s 1k "$LIB_CHANGER_FILE"
    L --op new --mode target --tid "$LIB_TID" -T "$LIB_IQN"
    L --op new --mode logicalunit --tid "$LIB_TID" --lun "$LIB_CHANGER_LUN" \
        --device-type=changer -b "$LIB_CHANGER_FILE"
    L --op update --mode logicalunit --tid "$LIB_TID" --lun "$LIB_CHANGER_LUN" \
        --params "vendor_id=$VENDOR,product_id=VIRTUAL-CHANGER,product_rev=0001,scsi_sn=$LIB_CHANGER_SN"
    # Empty drives: no -b (tgt refuses -b NONE); ssc so a moved-in
    # cartridge image is served as a tape.
    for d in "$LIB_DRIVE1_LUN:$LIB_DRIVE1_SN" "$LIB_DRIVE0_LUN:$LIB_DRIVE0_SN"; do
        L --op new --mode logicalunit --tid "$LIB_TID" --lun "${d%%:*}" --device-type=tape --bstype=ssc
        L --op update --mode logicalunit --tid "$LIB_TID" --lun "${d%%:*}" \
            --params "vendor_id=$VENDOR,product_id=VIRTUAL-TAPE,product_rev=0001,scsi_sn=${d#*:}"
    done
    C "element_type=1,start_address=$LIB_PICKER,quantity=1"
    C "element_type=2,start_address=$LIB_SLOT_FIRST,quantity=$LIB_SLOTS"
    C "element_type=3,start_address=$LIB_IE,quantity=1"
    # A third drive element with no LU behind it: tgt drops the last 8
    # bytes of every READ ELEMENT STATUS, which cut the device identifier
    # of the last drive element; the spare takes that place, so both real
    # drives are identified (README.md, "Tape libraries").
    C "element_type=4,start_address=$LIB_DT_FIRST,quantity=3"
    C "element_type=4,address=$LIB_DT_FIRST,tid=$LIB_TID,lun=$LIB_DRIVE0_LUN"
    C "element_type=4,address=$((LIB_DT_FIRST + 1)),tid=$LIB_TID,lun=$LIB_DRIVE1_LUN"
    C "media_home=$MEDIA_DIR"
    for i in $(seq "$LIB_CARTS"); do
        C "element_type=2,address=$((LIB_SLOT_FIRST + i - 1)),barcode=$(lib_barcode "$i"),sides=1"
    done
    C "element_type=3,address=$LIB_IE,barcode=$LIB_IE_BARCODE,sides=1"
    L --op bind --mode target --tid "$LIB_TID" -I ALL
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
