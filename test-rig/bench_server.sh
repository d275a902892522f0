#!/usr/bin/env bash
# make bench, part 3: the backup server as traffic cop.
#   server_vs_serial  aggregate MB/s of three hosts backing up three disks
#                     at once through `sanmover server` onto a 2-drive
#                     `sanmover vtl` library / the same three backups one
#                     after another on one loaded drive with no server.
#                     Target >= 0.95 (coordination costs at most 5%).
#   utilisation       share of drive time spent writing while the server's
#                     queue is non-empty (a host waits), from the server's
#                     event log: from the first grant until the last
#                     waiter's lease is active, each drive counts as writing
#                     between lease_active and lease_released. Target >= 0.90. The log's clock has
#                     a resolution of one second, so give each set several
#                     seconds (SANMOVER_BENCH_SERVER_MB) for a precise figure.
#   peak RSS          of the server process (VmHWM), information.
# Rounds interleave (server, serial, server, ...), at least 3; verdicts use
# medians. Exit 1 when a target is missed, 2 when the bench fails.
# Environment: SANMOVER_BENCH_SERVER_MB (per host, default 256),
# SANMOVER_BENCH_BLOCK (tape block bytes, default 262144),
# SANMOVER_BENCH_ROUNDS (default 3).
set -Eeuo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
MB=${SANMOVER_BENCH_SERVER_MB:-256}
BLOCK=${SANMOVER_BENCH_BLOCK:-262144}
ROUNDS=${SANMOVER_BENCH_ROUNDS:-3}
for v in MB BLOCK ROUNDS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || {
        echo "bench_server: $v must be a positive number, not '${!v}'" >&2
        exit 2
    }
done
((ROUNDS >= 3)) || {
    echo "bench_server: SANMOVER_BENCH_ROUNDS must be at least 3" >&2
    exit 2
}
HOSTS=(alpha bravo charlie)
# Room for three sets (vtl sizes are decimal MB) and their headers.
CART_MB=$((4 * MB + 64))

"${CARGO:-cargo}" build --release --bins
SM=$ROOT/target/release/sanmover
STATE=$(mktemp -d "${TMPDIR:-/tmp}/sanmover-bench-server.XXXXXX")
PIDS=()
stop_all() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    PIDS=()
}
cleanup() {
    stop_all
    SANMOVER_RIG_STATE=$STATE/tgt bash "$ROOT/test-rig/tgt/down.sh" >/dev/null 2>&1 ||
        echo "bench_server: stopping the tgt rig failed" >&2
    rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "bench_server: failed (line $LINENO)" >&2; exit 2' ERR

now() { date +%s.%N; }

# The three source disks, on a private tgt rig, filled once.
mkdir -p "$STATE/tgt"
SANMOVER_RIG_STATE=$STATE/tgt bash test-rig/tgt/up.sh >/dev/null
SOURCES=()
for i in 0 1 2; do
    url=$(SANMOVER_RIG_STATE=$STATE/tgt SANMOVER_RIG_LUN_PLACE=plain \
        bash test-rig/tgt/lun.sh add $((40 + i)) "$MB" | tail -n1)
    head -c "$((MB * 1048576))" /dev/urandom | dd of="$STATE/tgt/lun-$((40 + i)).img" \
        conv=notrunc status=none
    SOURCES+=("$url")
done

# `sanmover vtl` on a free port over a fresh media directory; sets VTL.
start_vtl() {
    local media=$1 drives=$2 slots=$3
    "$SM" --json vtl --listen 127.0.0.1:0 --media "$media" --drives "$drives" --slots "$slots" \
        --capacity "${CART_MB}M" >"$media.out" 2>"$media.log" &
    PIDS+=($!)
    for _ in $(seq 100); do
        [[ -s $media.out ]] && break
        sleep 0.1
    done
    VTL=$(python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).readline()); print("iscsi://%s/%s" % (r["listen"], r["target"]))' "$media.out")
}

# A host's command: its catalog, credential and initiator name.
host() {
    local catalog=$1 h=$2
    shift 2
    SANMOVER_SERVER_TOKEN=$h:$h-secret-0123456789 "$SM" --catalog "$catalog" \
        --initiator "iqn.2026-12.org.sanmover.bench:$h" "$@"
}

# Three hosts at once through the server: MB/s, utilisation, peak RSS.
server_round() {
    local r=$1 dir=$STATE/run-server-$r i t0 t1 addr spid
    mkdir -p "$dir"
    start_vtl "$dir/media" 2 4
    for h in "${HOSTS[@]}"; do
        printf '[[host]]\nname = "%s"\nsecret = "%s-secret-0123456789"\n' "$h" "$h"
    done >"$dir/hosts.toml"
    chmod 600 "$dir/hosts.toml"
    "$SM" --catalog "$dir/server.db" --initiator iqn.2026-12.org.sanmover.bench:server \
        server --listen 127.0.0.1:0 --library "$VTL/0" --drive "$VTL/1" --drive "$VTL/2" \
        --hosts "$dir/hosts.toml" --lease-secs 30 >"$dir/server.out" 2>"$dir/server.log" &
    spid=$!
    PIDS+=("$spid")
    for _ in $(seq 100); do
        [[ -s $dir/server.out ]] && break
        sleep 0.1
    done
    addr=$(awk '{print $5}' "$dir/server.out" | tr -d ,)
    local hp=()
    t0=$(now)
    for i in 0 1 2; do
        host "$dir/${HOSTS[$i]}.db" "${HOSTS[$i]}" backup --mode host --source "${SOURCES[$i]}" --pool bench \
            --block-size "$BLOCK" --server "http://$addr" >/dev/null 2>"$dir/${HOSTS[$i]}.log" &
        hp+=($!)
    done
    for p in "${hp[@]}"; do
        wait "$p" || {
            echo "bench_server: a host's backup failed: $(cat "$dir"/*.log)" >&2
            exit 2
        }
    done
    t1=$(now)
    python3 -c 'import sys; print("%.1f" % (3 * int(sys.argv[1]) * 1048576 / 1e6 / (float(sys.argv[3]) - float(sys.argv[2]))))' \
        "$MB" "$t0" "$t1" >"$STATE/server-$r"
    sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$spid/status" >"$STATE/rss-$r"
    python3 - "$dir/server.db" >"$STATE/util-$r" <<'EOF'
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT at, kind, drive FROM server_events ORDER BY seq").fetchall()
# The queue is non-empty from the first grant (all three asked at once)
# until the last waiter's drive is ready for it (its lease_active).
start = min(at for at, kind, _ in rows if kind == "lease_granted")
end = max(at for at, kind, _ in rows if kind == "lease_active")
busy, since = {}, {}
for at, kind, drive in rows:
    if kind == "lease_active":
        since[drive] = at
    elif kind == "lease_released" and drive in since:
        a, b = max(since.pop(drive), start), min(at, end)
        busy[drive] = busy.get(drive, 0) + max(0, b - a)
span = 2 * (end - start)
# A queue that emptied within the log's one-second resolution: no gap seen.
print("%.3f" % (sum(busy.values()) / span if span else 1.0))
EOF
    stop_all
    rm -rf "$dir"
}

# The same three backups one after another on one drive, no server.
serial_round() {
    local r=$1 dir=$STATE/run-serial-$r i t0 t1
    mkdir -p "$dir"
    start_vtl "$dir/media" 1 1
    "$SM" changer "$VTL/0" load 1 0 >/dev/null
    "$SM" --catalog "$dir/c.db" tape "$VTL/1" label BENCH >/dev/null
    t0=$(now)
    for i in 0 1 2; do
        host "$dir/c.db" "${HOSTS[$i]}" backup --mode host \
            --source "${SOURCES[$i]}" --tape "$VTL/1" --block-size "$BLOCK" >/dev/null
    done
    t1=$(now)
    python3 -c 'import sys; print("%.1f" % (3 * int(sys.argv[1]) * 1048576 / 1e6 / (float(sys.argv[3]) - float(sys.argv[2]))))' \
        "$MB" "$t0" "$t1" >"$STATE/serial-$r"
    stop_all
    rm -rf "$dir"
}

for r in $(seq "$ROUNDS"); do
    server_round "$r"
    serial_round "$r"
    echo "bench_server: round $r: server $(cat "$STATE/server-$r") MB/s (utilisation $(cat "$STATE/util-$r"), peak RSS $(cat "$STATE/rss-$r") kB), serial $(cat "$STATE/serial-$r") MB/s"
done

python3 - "$STATE" "$ROUNDS" "$MB" "$BLOCK" <<'EOF'
import statistics, sys
state, rounds, mb, block = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def vals(name):
    return [float(open(f"{state}/{name}-{r}").read()) for r in range(1, rounds + 1)]
def med(name):
    v = vals(name)
    return statistics.median(v), min(v), max(v)
s, q, u = med("server"), med("serial"), med("util")
rss = max(vals("rss"))
ratio = s[0] / q[0]
print(f"\nbench_server: 3 hosts x {mb} MiB, {block}-byte blocks, {rounds} interleaved rounds (median [min..max])")
ok_ratio, ok_util = ratio >= 0.95, u[0] >= 0.90
print(f"  server_vs_serial: 3 hosts / 2 drives via the server {s[0]:.1f} [{s[1]:.1f}..{s[2]:.1f}] MB/s"
      f" / one after another on 1 drive {q[0]:.1f} [{q[1]:.1f}..{q[2]:.1f}] MB/s = {ratio:.2f}"
      f"  target >= 0.95 {'met' if ok_ratio else 'MISSED'}")
print(f"  utilisation while the queue is non-empty: {u[0]:.3f} [{u[1]:.3f}..{u[2]:.3f}]"
      f"  target >= 0.90 {'met' if ok_util else 'MISSED'} (event log clock: 1 s)")
print(f"  server peak RSS: {rss / 1024:.1f} MiB")
sys.exit(0 if ok_ratio and ok_util else 1)
EOF
