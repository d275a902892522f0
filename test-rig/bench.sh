#!/usr/bin/env bash
# make bench: sanmover's host backup, restore, verify and router backup
# against raw peers on a private tgt rig: throughput against the pipeline
# the rig allows, client CPU per GiB against the peers', peak RSS.
#
# Peers (examples/, no engine, no format):
#   disk read   raw_disk read  of the source LUN (READ(16), same chunk and depth)
#   tape write  raw_tape write of the same size (WRITE(6), same block, depth 1)
#   tape read   raw_tape read  of that tape (READ(6), buffer 2x block)
#   disk write  raw_disk write of the target LUN (WRITE(16), same chunk and depth)
# Each is run alone, and the two peers of each direction are run at the
# same time over the same number of bytes: the backup pipeline (disk read
# with tape write) and the restore pipeline (tape read with disk write).
# From the first start to the last end is the best a pipeline of those
# two can do on this rig; that is the yardstick:
#   backup_vs_pipeline  = backup MB/s        / backup pipeline MB/s
#   restore_vs_pipeline = restore MB/s       / restore pipeline MB/s
#   router_vs_pipeline  = router backup MB/s / backup pipeline MB/s
# and, the client's user + system seconds per GiB:
#   backup_cpu_ratio  = backup  / (disk read + tape write, run together)
#   restore_cpu_ratio = restore / (tape read + disk write, run together)
#   verify_cpu_ratio  = verify  / tape read alone (verify reads only the tape)
# The rounds interleave (peers, sanmover, peers, sanmover, ...), at least 3;
# every figure is shown per round with its median and spread, and the
# verdicts use medians only. Targets: *_vs_pipeline >= 0.90 (the router
# with 0 data bytes through the backup server), backup_cpu_ratio <= 1.15x,
# restore and verify <= 1.10x, peak RSS < 64 MiB for every sanmover
# process and the router. The alone-peer ratios are printed for
# information. Exit status 1 when a target is missed (the output says
# which), 2 when the bench itself fails.
#
# Environment: SANMOVER_BENCH_MB (source size, default 1024),
# SANMOVER_BENCH_BLOCK (tape block bytes, default 262144),
# SANMOVER_BENCH_DEPTH (queue depth, default 8),
# SANMOVER_BENCH_ROUNDS (default 3, at least 3).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
MB=${SANMOVER_BENCH_MB:-1024}
BLOCK=${SANMOVER_BENCH_BLOCK:-262144}
DEPTH=${SANMOVER_BENCH_DEPTH:-8}
ROUNDS=${SANMOVER_BENCH_ROUNDS:-3}
RECORD_HEADER=48 # FORMAT.md: record header bytes in each tape block
LUN_BS=512       # tgt disk LUNs
for v in MB BLOCK DEPTH ROUNDS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || {
        echo "bench: $v must be a positive number, not '${!v}'" >&2
        exit 2
    }
done
((ROUNDS >= 3)) || {
    echo "bench: SANMOVER_BENCH_ROUNDS must be at least 3 (a median needs them), not $ROUNDS" >&2
    exit 2
}
# sanmover reads the disk in chunks of whole blocks that fit a record.
CHUNK=$(((BLOCK - RECORD_HEADER) / LUN_BS * LUN_BS))
((CHUNK > 0)) || {
    echo "bench: block size $BLOCK too small" >&2
    exit 2
}
BYTES=$((MB * 1048576))

echo "bench: cargo build --release --examples --bins"
"${CARGO:-cargo}" build --release --examples --bins
BIN=$ROOT/target/release
SANMOVER=$BIN/sanmover
RAW_TAPE=$BIN/examples/raw_tape
RAW_DISK=$BIN/examples/raw_disk

STATE=$(mktemp -d "${TMPDIR:-/tmp}/sanmover-bench.XXXXXX")
# Two targets, as on a SAN: a disk array (this rig) and a tape library (a
# second tgtd in TSTATE). One tgtd serving both would handle the disk and
# tape sessions in one event loop and add their times up.
TSTATE=$STATE/tape-library
mkdir -p "$TSTATE"
export SANMOVER_RIG_STATE=$STATE
# Room for two copies of the source (host and router sets) plus records,
# headers and slack.
export SANMOVER_RIG_TAPE_MB=$((2 * MB + MB / 4 + 64))
export SANMOVER_CATALOG=$STATE/catalog.db
ROUTER_STATE=$STATE/router
cleanup() {
    bash "$ROOT/test-rig/router/down.sh" "$ROUTER_STATE" >/dev/null 2>&1 ||
        echo "bench: stopping the router failed" >&2
    SANMOVER_RIG_STATE=$TSTATE bash "$ROOT/test-rig/tgt/down.sh" >/dev/null 2>&1 ||
        echo "bench: stopping the rig in $TSTATE failed" >&2
    bash "$ROOT/test-rig/tgt/down.sh" >/dev/null 2>&1 || echo "bench: stopping the rig in $STATE failed" >&2
    rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "bench: failed (line $LINENO)" >&2; exit 2' ERR

# The per-byte work of a backup on this CPU, one thread, before the rigs
# start: the set digest (both algorithms) and the record CRC.
"$BIN/examples/digest_speed" "$MB" | tee "$STATE/digest_speed.txt"

bash test-rig/tgt/up.sh >/dev/null
SANMOVER_RIG_STATE=$TSTATE bash test-rig/tgt/up.sh >/dev/null
env_value() { sed -n "s/^$1=//p" "$2"; }
TAPE=$(env_value SANMOVER_RIG_TAPE "$TSTATE/rig.env")
DISK_TARGET=iscsi://$(env_value SANMOVER_RIG_PORTAL "$STATE/rig.env")/$(env_value SANMOVER_RIG_DISK_IQN "$STATE/rig.env")
TAPE_TARGET=iscsi://$(env_value SANMOVER_RIG_PORTAL "$TSTATE/rig.env")/$(env_value SANMOVER_RIG_TAPE_IQN "$TSTATE/rig.env")
reset_tape() { SANMOVER_RIG_STATE=$TSTATE bash test-rig/tgt/reset-tape.sh >/dev/null; }
# The source and target LUNs are plain files, as behind a disk array: not
# on the rig's loop-mounted XFS (snapshots are not benched), whose loop
# device would add its own copies and threads to the 2 cores.
SRC=$(SANMOVER_RIG_LUN_PLACE=plain bash test-rig/tgt/lun.sh add 3 "$MB")
DST=$(SANMOVER_RIG_LUN_PLACE=plain bash test-rig/tgt/lun.sh add 4 "$MB")
echo "bench: filling the ${MB} MiB source LUN with random data"
head -c "$BYTES" /dev/urandom >"$STATE/lun-3.img"

# settle: write back the rig's dirty pages before a measurement, so no run
# pays for the writeback of the one before (the files stay in page cache).
settle() { sync "$STATE"/*.img "$TSTATE"/*.img; }

# mbps JSON: the MBps field of a JSON summary.
mbps() { python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["MBps"])'; }

# The CPU each run costs, its own and both tgtds' (utime + stime of the
# whole process, in clock ticks).
DISK_TGTD=$(env_value SANMOVER_RIG_TGTD_PID "$STATE/rig.env")
TAPE_TGTD=$(env_value SANMOVER_RIG_TGTD_PID "$TSTATE/rig.env")
TICK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# timed NAME CMD...: run CMD under GNU time; its stdout to STATE/NAME.json,
# the peak RSS in KiB to STATE/NAME.rss, and to STATE/NAME.cpu its user and
# system seconds, then the disk and tape tgtds' CPU seconds meanwhile (for
# two runs at once, both see the tgtds' whole CPU).
timed() {
    local name=$1 d0 t0 rss user sys
    shift
    d0=$(ticks "$DISK_TGTD")
    t0=$(ticks "$TAPE_TGTD")
    /usr/bin/time -f '%M %U %S' -o "$STATE/$name.time" "$@" >"$STATE/$name.json"
    read -r rss user sys < <(tail -n1 "$STATE/$name.time")
    echo "$rss" >"$STATE/$name.rss"
    echo "$user $sys $(python3 -c "print(($(ticks "$DISK_TGTD") - $d0) / $TICK, ($(ticks "$TAPE_TGTD") - $t0) / $TICK)")" >"$STATE/$name.cpu"
}

# together NAME1 CMD1 -- NAME2 CMD2: both timed runs at once; waits for
# both and fails if either failed.
together() {
    local a=() p1 p2
    while [[ $1 != -- ]]; do
        a+=("$1")
        shift
    done
    shift
    timed "${a[@]}" &
    p1=$!
    timed "$@" &
    p2=$!
    wait "$p1"
    wait "$p2"
}

# peers TAG: each peer alone, then each direction's two peers together.
peers() {
    local tag=$1
    settle
    timed "disk_read.$tag" "$RAW_DISK" read "$SRC" "$CHUNK" "$DEPTH"
    reset_tape
    settle
    timed "tape_write.$tag" "$RAW_TAPE" write "$TAPE" "$BLOCK" "$BYTES"
    settle
    timed "tape_read.$tag" "$RAW_TAPE" read "$TAPE" "$BLOCK"
    settle
    timed "disk_write.$tag" "$RAW_DISK" write "$DST" "$CHUNK" "$DEPTH"
    reset_tape
    settle
    together "pipe_disk_read.$tag" "$RAW_DISK" read "$SRC" "$CHUNK" "$DEPTH" -- \
        "pipe_tape_write.$tag" "$RAW_TAPE" write "$TAPE" "$BLOCK" "$BYTES"
    settle
    together "pipe_tape_read.$tag" "$RAW_TAPE" read "$TAPE" "$BLOCK" -- \
        "pipe_disk_write.$tag" "$RAW_DISK" write "$DST" "$CHUNK" "$DEPTH"
    local p line="bench: peers $tag:"
    for p in disk_read tape_write tape_read disk_write pipe_disk_read pipe_tape_write pipe_tape_read pipe_disk_write; do
        line+=" ${p//_/ } $(mbps <"$STATE/$p.$tag.json"),"
    done
    echo "${line%,} MB/s (each peer's own time)"
}

# sanmover_round TAG: label a fresh tape; backup, restore (compared),
# verify; then a backup of the same source through the router. The first
# round also restores the router's set and compares it (not timed).
sanmover_round() {
    local tag=$1 set_id xset router_pid
    reset_tape
    "$SANMOVER" tape "$TAPE" label "BENCH$tag" >/dev/null
    settle
    timed "backup.$tag" "$SANMOVER" --json backup --mode host --source "$SRC" --tape "$TAPE" \
        --block-size "$BLOCK" --queue-depth "$DEPTH" 2> >(grep -v 'is not reserved' >&2)
    set_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["set_id"])' <"$STATE/backup.$tag.json")
    settle
    timed "restore.$tag" "$SANMOVER" --json restore "$set_id" --target "$DST" --tape "$TAPE" \
        --queue-depth "$DEPTH"
    cmp -s "$STATE/lun-3.img" "$STATE/lun-4.img" || {
        echo "bench: the restored LUN differs from the source" >&2
        exit 2
    }
    settle
    timed "verify.$tag" "$SANMOVER" --json verify "$set_id" --tape "$TAPE"
    SANMOVER_BIN=$SANMOVER bash test-rig/router/up.sh "$ROUTER_STATE" "$DISK_TARGET" "$TAPE_TARGET" >/dev/null
    router_pid=$(env_value SANMOVER_ROUTER_PID "$ROUTER_STATE/router.env")
    settle
    timed "xcopy.$tag" "$SANMOVER" --json backup --mode xcopy --source "$SRC" --tape "$TAPE" \
        --copy-manager "$(env_value SANMOVER_ROUTER_URL "$ROUTER_STATE/router.env")" \
        --fallback never --block-size "$BLOCK"
    # The router's own peak RSS (it serves the copy, so its memory counts).
    awk '/^VmHWM:/ {print $2}' "/proc/$router_pid/status" >"$STATE/router.$tag.rss"
    bash test-rig/router/down.sh "$ROUTER_STATE" >/dev/null
    echo "bench: sanmover $tag: backup $(mbps <"$STATE/backup.$tag.json"), restore $(mbps <"$STATE/restore.$tag.json"), verify $(mbps <"$STATE/verify.$tag.json"), router backup $(mbps <"$STATE/xcopy.$tag.json") MB/s"
    [[ $tag == r1 ]] || return 0
    xset=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["set_id"])' <"$STATE/xcopy.$tag.json")
    dd if=/dev/zero of="$STATE/lun-4.img" bs=1M count=16 conv=notrunc status=none
    "$SANMOVER" restore "$xset" --target "$DST" --tape "$TAPE" --queue-depth "$DEPTH" >/dev/null
    cmp -s "$STATE/lun-3.img" "$STATE/lun-4.img" || {
        echo "bench: the router's set restored differs from the source" >&2
        exit 2
    }
}

# A first pass of the peers, not counted: on fresh rigs the first run of
# each is up to 3 times slower than later ones (measured: tape write 158
# against 336 MB/s, tape read 444 against 1356), which would flatter every
# ratio. The counted runs and sanmover's all see warm rigs.
peers warm-up
for ((r = 1; r <= ROUNDS; r++)); do
    peers "r$r"
    sanmover_round "r$r"
done

status=0
python3 "$ROOT/test-rig/bench_report.py" "$STATE" "$ROUNDS" "$MB" "$BLOCK" "$CHUNK" "$DEPTH" || status=$?
exit "$status"
