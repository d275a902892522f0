#!/usr/bin/env bash
# make bench, part 2: our tape drives against their peers, tape only.
#   vtl_vs_tgt  write and read MB/s of a `sanmover vtl` drive / tgt's tape,
#               the same host, the same block size, one command in flight
#               (raw_tape, examples/). Target >= 1.0.
#   tcmu_vs_fileio (information): in the LIO guest, the TCMU tape served by
#               `sanmover tcmu` / a LIO fileio disk LUN written and read with
#               the same transfer size and depth 1 (raw_disk): what the
#               ring and user space cost. Needs the LIO rig (QEMU); skipped
#               with a message when SANMOVER_BENCH_LIO=0.
# Rounds interleave (tgt, vtl, tgt, vtl, ...), at least 3; verdicts use
# medians. Exit 1 when a target is missed, 2 when the bench fails.
# Environment: SANMOVER_BENCH_TAPE_MB (default 512), SANMOVER_BENCH_BLOCK
# (default 262144), SANMOVER_BENCH_ROUNDS (default 3),
# SANMOVER_BENCH_LIO_MB (default 32).
set -Eeuo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
MB=${SANMOVER_BENCH_TAPE_MB:-512}
BLOCK=${SANMOVER_BENCH_BLOCK:-262144}
ROUNDS=${SANMOVER_BENCH_ROUNDS:-3}
LIO_MB=${SANMOVER_BENCH_LIO_MB:-32}
for v in MB BLOCK ROUNDS LIO_MB; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || {
        echo "bench_tape: $v must be a positive number, not '${!v}'" >&2
        exit 2
    }
done
((ROUNDS >= 3)) || {
    echo "bench_tape: SANMOVER_BENCH_ROUNDS must be at least 3" >&2
    exit 2
}
BYTES=$((MB * 1048576))

"${CARGO:-cargo}" build --release --examples --bins
BIN=$ROOT/target/release
STATE=$(mktemp -d "${TMPDIR:-/tmp}/sanmover-bench-tape.XXXXXX")
VTL_PID=
cleanup() {
    [[ -z $VTL_PID ]] || kill "$VTL_PID" 2>/dev/null || true
    SANMOVER_RIG_STATE=$STATE/tgt bash "$ROOT/test-rig/tgt/down.sh" >/dev/null 2>&1 ||
        echo "bench_tape: stopping the tgt rig failed" >&2
    rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "bench_tape: failed (line $LINENO)" >&2; exit 2' ERR

env_value() { sed -n "s/^$1=//p" "$2"; }
mbps() { python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["MBps"])'; }

# tgt's tape, on a rig of its own, sized for one pass.
mkdir -p "$STATE/tgt"
SANMOVER_RIG_STATE=$STATE/tgt SANMOVER_RIG_TAPE_MB=$((MB + 64)) bash test-rig/tgt/up.sh >/dev/null
TGT_TAPE=$(env_value SANMOVER_RIG_TAPE "$STATE/tgt/rig.env")

# sanmover vtl: one drive, one cartridge, loaded.
"$BIN/sanmover" --json vtl --listen 127.0.0.1:0 --media "$STATE/media" --drives 1 --slots 1 \
    --capacity "$((MB + 64))M" >"$STATE/vtl.out" 2>"$STATE/vtl.log" &
VTL_PID=$!
for _ in $(seq 100); do
    [[ -s $STATE/vtl.out ]] && break
    sleep 0.1
done
VTL=$(python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).readline()); print("iscsi://%s/%s" % (r["listen"], r["target"]))' "$STATE/vtl.out")
"$BIN/sanmover" changer "$VTL/0" load 1 0 >/dev/null
VTL_TAPE=$VTL/1

for r in $(seq "$ROUNDS"); do
    for peer in tgt vtl; do
        url=$TGT_TAPE
        [[ $peer == vtl ]] && url=$VTL_TAPE
        "$BIN/examples/raw_tape" write "$url" "$BLOCK" "$BYTES" | mbps >"$STATE/$peer-write-$r"
        "$BIN/examples/raw_tape" read "$url" "$BLOCK" | mbps >"$STATE/$peer-read-$r"
    done
    echo "bench_tape: round $r: write tgt $(cat "$STATE/tgt-write-$r") vtl $(cat "$STATE/vtl-write-$r"), read tgt $(cat "$STATE/tgt-read-$r") vtl $(cat "$STATE/vtl-read-$r") MB/s"
done

lio_part() {
    local lio_env=$ROOT/test-rig/run/lio/rig.env portal iqn tape changer disk ctl
    bash test-rig/lio/up.sh >/dev/null
    ctl=$ROOT/test-rig/lio/ctl.sh
    portal=$(env_value SANMOVER_LIO_PORTAL "$lio_env")
    iqn=$(env_value SANMOVER_LIO_IQN "$lio_env")
    export SANMOVER_INITIATOR
    SANMOVER_INITIATOR=$(env_value SANMOVER_LIO_INITIATOR "$lio_env")
    bash "$ctl" "rig tcmu-stop; rig tcmu-start 1" >/dev/null
    bash "$ctl" "rig lun-del benchtape >/dev/null 2>&1; true" >/dev/null
    tape=iscsi://$portal/$iqn/$(bash "$ctl" "rig tcmu-add benchtape drive0 $SANMOVER_INITIATOR" | tail -n1 | tr -d '\r')
    # The drive starts empty, as in a library: the changer loads slot 1.
    bash "$ctl" "rig lun-del benchchanger >/dev/null 2>&1; true" >/dev/null
    changer=iscsi://$portal/$iqn/$(bash "$ctl" "rig tcmu-add benchchanger changer $SANMOVER_INITIATOR" | tail -n1 | tr -d '\r')
    "$BIN/sanmover" changer "$changer" load 1 0
    bash test-rig/lio/lun.sh del benchdisk >/dev/null 2>&1 || true
    disk=$(bash test-rig/lio/lun.sh add benchdisk "$LIO_MB" "$SANMOVER_INITIATOR" | tail -n1)
    for r in $(seq "$ROUNDS"); do
        "$BIN/examples/raw_disk" write "$disk" "$BLOCK" 1 | mbps >"$STATE/fileio-write-$r"
        "$BIN/examples/raw_tape" write "$tape" "$BLOCK" $((LIO_MB * 1048576)) | mbps >"$STATE/tcmu-write-$r"
        "$BIN/examples/raw_disk" read "$disk" "$BLOCK" 1 | mbps >"$STATE/fileio-read-$r"
        "$BIN/examples/raw_tape" read "$tape" "$BLOCK" | mbps >"$STATE/tcmu-read-$r"
        echo "bench_tape: LIO round $r: write fileio $(cat "$STATE/fileio-write-$r") tcmu $(cat "$STATE/tcmu-write-$r"), read fileio $(cat "$STATE/fileio-read-$r") tcmu $(cat "$STATE/tcmu-read-$r") MB/s"
    done
    bash "$ctl" "rig lun-del benchtape; rig lun-del benchchanger" >/dev/null || true
    bash test-rig/lio/lun.sh del benchdisk >/dev/null || true
}
if [[ ${SANMOVER_BENCH_LIO:-1} == 0 ]]; then
    echo "bench_tape: SANMOVER_BENCH_LIO=0: the TCMU part is not run"
else
    lio_part
fi

python3 - "$STATE" "$ROUNDS" "$MB" "$BLOCK" <<'EOF'
import os, statistics, sys
state, rounds, mb, block = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def med(name):
    vals = [float(open(f"{state}/{name}-{r}").read()) for r in range(1, rounds + 1)]
    return statistics.median(vals), min(vals), max(vals)
print(f"\nbench_tape: {mb} MiB per pass, {block}-byte blocks, depth 1, {rounds} interleaved rounds (median [min..max] MB/s)")
missed = False
for d in ("write", "read"):
    t, v = med(f"tgt-{d}"), med(f"vtl-{d}")
    ratio = v[0] / t[0]
    ok = ratio >= 1.0
    missed |= not ok
    print(f"  vtl_vs_tgt_{d}: vtl {v[0]:.1f} [{v[1]:.1f}..{v[2]:.1f}] / tgt {t[0]:.1f} [{t[1]:.1f}..{t[2]:.1f}] = {ratio:.2f}  target >= 1.00 {'met' if ok else 'MISSED'}")
if os.path.exists(f"{state}/tcmu-write-1"):
    for d in ("write", "read"):
        f, c = med(f"fileio-{d}"), med(f"tcmu-{d}")
        print(f"  tcmu_vs_fileio_{d} (information): TCMU tape {c[0]:.1f} / LIO fileio disk {f[0]:.1f} = {c[0] / f[0]:.2f}")
sys.exit(1 if missed else 0)
EOF
