# Shared definitions for the LIO rig scripts (Linux LIO in a QEMU/TCG guest).
# Sourced, not run. See test-rig/README.md, section "LIO rig".
# shellcheck shell=bash
# Variables here are used by the scripts that source this file.
# shellcheck disable=SC2034

LIO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RIG_ROOT=$(cd "$LIO_DIR/.." && pwd)
RIG_NAME="lio rig"
# shellcheck source-path=SCRIPTDIR source=../common.sh
source "$RIG_ROOT/common.sh"
# State dir: SANMOVER_LIO_STATE, else the dir of SANMOVER_LIO_ENV, else default.
STATE=$(rig_state_dir SANMOVER_LIO_STATE SANMOVER_LIO_ENV "$RIG_ROOT/run/lio")
# Downloaded kernel package and its extracted tree (shared by all rigs).
CACHE=${SANMOVER_LIO_CACHE:-$RIG_ROOT/cache/lio}

PID_FILE=$STATE/qemu.pid
PORT_FILE=$STATE/port
ENV_FILE=$STATE/rig.env
CONSOLE_LOG=$STATE/console.log
QEMU_LOG=$STATE/qemu.log
CTL_SOCK=$STATE/ctl.sock
CTL_LOCK=$STATE/ctl.lock
INITRD=$STATE/initrd.gz

# Packages the rig needs on the host (besides libiscsi-bin for the checks).
LIO_DEPS=(qemu-system-x86 busybox-static cpio kmod libiscsi-bin python3 xz-utils zstd xfsprogs)

# Modules insmodded in the guest, in this order (measured: see test-rig/README.md). Their
# dependencies (and soft dependencies) are resolved from the extracted tree
# with depmod/modprobe --show-depends and loaded before them.
# crc32c_generic is not a symbol dependency of anything, but without it
# every iSCSI login fails (crypto_alloc_ahash("crc32c") in the guest).
LIO_MODULES=(crc32c_generic configfs scsi_common crct10dif_common crc-t10dif
    target_core_mod target_core_file iscsi_target_mod uio target_core_user e1000
    virtio_pci virtio_blk xfs sg st ch tcm_loop)

QEMU_MEM_MB=640
# tmpfs in the guest holding the fileio backing files.
GUEST_LUN_DIR=/luns
GUEST_TMPFS_MB=480
# XFS with reflink in the guest, for point-in-time snapshots of LUNs whose
# backing file lives there (`cp --reflink=always`, the lio snapshot
# provider; busybox cp clones too): a sparse image on the host, made with
# mkfs.xfs, attached as a virtio disk and mounted on GUEST_SNAP_DIR.
GUEST_SNAP_DIR=/snapfs
SNAPFS_IMG=$STATE/snapfs.img
SNAPFS_MB=512

IQN=iqn.2026-11.org.sanmover.lio:target
# Initiator masking is on (generate_node_acls=0): only these two names can
# log in. The backup server sees every LUN, the other host only LUN 1.
BACKUP_INITIATOR=iqn.2026-11.org.sanmover:backup-server
OTHER_INITIATOR=iqn.2026-11.org.sanmover:other-host
OTHER_LUNS=(1)
# The rig's LUNs: backstore name, size in MiB, unit serial.
# LIO makes the 16-byte NAA of VPD 0x83 from the leading hex digits of the
# unit serial (about 25): serials must differ early, or every LUN gets the
# same NAA and EXTENDED COPY silently hits the wrong LUN (seen in this rig).
LUN_NAMES=(lun0 lun1 lun2)
LUN_MB=(64 32 16)
LUN_SERIALS=(
    a0a05a4e-0000-4000-8000-000000000000
    b1b15a4e-0001-4000-8000-000000000001
    c2c25a4e-0002-4000-8000-000000000002
)



# True if PID is a live (non-zombie) qemu-system-x86_64 whose command line
# names our pid file: guards every kill (a recycled pid, or somebody else's
# QEMU, is never touched).
is_our_qemu() {
    local pid=$1 state cmd
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/stat ]] || return 1
    state=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ $state != Z && $state != X ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == qemu-system-x86 ]] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ " $cmd " == *" -pidfile $PID_FILE "* ]]
}

# stop_qemu PID: SIGTERM, wait up to 5 s, then SIGKILL; that pid only.
stop_qemu() {
    local pid=$1
    is_our_qemu "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        is_our_qemu "$pid" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        is_our_qemu "$pid" || return 0
        sleep 0.1
    done
    return 1
}


# ctl CMD: run CMD in the guest through the control channel; its output on
# stdout, its exit status as ours.
ctl() {
    python3 "$LIO_DIR/ctl.py" "$CTL_SOCK" "$CTL_LOCK" "$@"
}

# serial_for NAME: a UUID-shaped unit serial for an added LUN, its leading
# hex digits taken from a hash of the name (so they differ between LUNs).
serial_for() {
    local h
    h=$(printf '%s' "$1" | sha256sum | cut -c1-32)
    printf '%s-%s-4%s-8%s-%s\n' "${h:0:8}" "${h:8:4}" "${h:13:3}" "${h:17:3}" "${h:20:12}"
}
