#!/usr/bin/env python3
"""The report of `make bench` (test-rig/bench.sh): reads the runs' JSON,
CPU and RSS files from the state directory, prints every figure per round
with its median and spread, and the verdicts, drawn from medians only.

usage: bench_report.py STATE ROUNDS MB BLOCK CHUNK DEPTH
Exit status 1 when a target is missed, 0 otherwise.
"""

import json
import statistics
import sys

MIN_RATIO = 0.90
MAX_CPU = {"backup": 1.15, "restore": 1.10, "verify": 1.10}
MAX_RSS_KB = 65536
GIB = 1 << 30


def load(state, name):
    with open(f"{state}/{name}.json") as f:
        return json.load(f)


def cpu(state, name):
    """Client user + system seconds, and the disk and tape tgtds'."""
    with open(f"{state}/{name}.cpu") as f:
        user, sys_, disk, tape = map(float, f.read().split())
    return user + sys_, disk, tape


def rss_kb(state, name):
    with open(f"{state}/{name}.rss") as f:
        return int(f.read().split()[0])


def digest_speed(state):
    """s/GiB per algorithm from `digest_speed NAME = X MB/s (Y s/GiB)`."""
    out = {}
    try:
        with open(f"{state}/digest_speed.txt") as f:
            for line in f:
                w = line.split()
                if len(w) >= 6 and w[0] == "digest_speed":
                    out[w[1]] = float(w[5].lstrip("("))
    except OSError:
        pass
    return out


def pipeline_mbps(state, a, b):
    """Two peers run at once: bytes over the time from the first start to
    the last end (each peer reports its own seconds and end time)."""
    ra, rb = load(state, a), load(state, b)
    start = min(ra["ended"] - ra["seconds"], rb["ended"] - rb["seconds"])
    end = max(ra["ended"], rb["ended"])
    nbytes = min(ra["bytes"], rb["bytes"])
    return nbytes / (end - start) / 1e6 if end > start else 0.0


def spread(values):
    """(max - min) / median, in percent."""
    m = statistics.median(values)
    return 100.0 * (max(values) - min(values)) / m if m > 0 else 0.0


def table(title, rows, fmt):
    """rows: (label, [value per round]); prints them and returns medians."""
    n = len(rows[0][1])
    head = "".join(f"{'r' + str(i + 1):>9}" for i in range(n))
    print(f"{title:44}{head}{'median':>9}{'spread':>8}")
    medians = {}
    for label, values in rows:
        m = statistics.median(values)
        medians[label] = m
        cells = "".join(f"{v:9{fmt}}" for v in values)
        print(f"{label:44}{cells}{m:9{fmt}}{spread(values):7.0f}%")
    return medians


def main():
    state, rounds = sys.argv[1], int(sys.argv[2])
    mb, block, chunk, depth = sys.argv[3:7]
    tags = [f"r{i + 1}" for i in range(rounds)]
    gib = lambda name: load(state, f"{name}.r1")["bytes"] / GIB  # noqa: E731

    print()
    print(f"make bench: {mb} MiB source, tape block {block} B, disk chunk {chunk} B, "
          f"queue depth {depth}, {rounds} rounds (peers, sanmover, peers, ...); "
          f"MB/s = 10^6 bytes/s")
    alone = [("disk_read", "peer disk read alone (raw_disk read)"),
             ("tape_write", "peer tape write alone (raw_tape write)"),
             ("tape_read", "peer tape read alone (raw_tape read)"),
             ("disk_write", "peer disk write alone (raw_disk write)")]
    ours = [("backup", "sanmover backup"), ("restore", "sanmover restore"),
            ("verify", "sanmover verify"), ("xcopy", "sanmover backup via router")]
    rows = [(label, [load(state, f"{n}.{t}")["MBps"] for t in tags]) for n, label in alone]
    rows.append(("backup pipeline (disk read + tape write)",
                 [pipeline_mbps(state, f"pipe_disk_read.{t}", f"pipe_tape_write.{t}") for t in tags]))
    rows.append(("restore pipeline (tape read + disk write)",
                 [pipeline_mbps(state, f"pipe_tape_read.{t}", f"pipe_disk_write.{t}") for t in tags]))
    rows += [(label, [load(state, f"{n}.{t}")["MBps"] for t in tags]) for n, label in ours]
    m = table("MB/s", rows, ".1f")
    mbps = {n: m[label] for n, label in alone + ours}
    mbps["backup pipeline"] = m["backup pipeline (disk read + tape write)"]
    mbps["restore pipeline"] = m["restore pipeline (tape read + disk write)"]

    print()
    per_gib = lambda n, t: cpu(state, f"{n}.{t}")[0] / gib(n)  # noqa: E731
    rows = [(label, [per_gib(n, t) for t in tags]) for n, label in alone]
    rows.append(("backup pipeline peers together (sum)",
                 [per_gib("pipe_disk_read", t) + per_gib("pipe_tape_write", t) for t in tags]))
    rows.append(("restore pipeline peers together (sum)",
                 [per_gib("pipe_tape_read", t) + per_gib("pipe_disk_write", t) for t in tags]))
    rows += [(label, [per_gib(n, t) for t in tags]) for n, label in ours[:3]]
    c = table("client CPU s/GiB (user + system)", rows, ".3f")
    print()
    tg = lambda n, t: sum(cpu(state, f"{n}.{t}")[1:]) / gib(n)  # noqa: E731
    table("both tgtds' CPU s/GiB meanwhile (information)",
          [(label, [tg(n, t) for t in tags]) for n, label in alone + ours[:3]], ".3f")

    missed = []
    print()
    x1 = load(state, "xcopy.r1")
    x_data = max(load(state, f"xcopy.{t}")["data_bytes_through_initiator"] for t in tags)
    for name, got, peer in [
        ("backup_vs_pipeline", mbps["backup"], mbps["backup pipeline"]),
        ("restore_vs_pipeline", mbps["restore"], mbps["restore pipeline"]),
        ("router_vs_pipeline", mbps["xcopy"], mbps["backup pipeline"]),
    ]:
        ratio = got / peer if peer > 0 else 0.0
        ok = ratio >= MIN_RATIO
        extra = ""
        if name.startswith("router"):
            ok = ok and x_data == 0
            extra = f", data through the server {x_data}"
        if not ok:
            missed.append(f"{name} {ratio:.3f}{extra} (needs >= {MIN_RATIO:.2f}"
                          f"{', 0 bytes' if extra else ''})")
        print(f"{name} = {got:.1f} / {peer:.1f} = {ratio:.3f}{extra}  "
              f"{'PASS' if ok else 'FAIL'} (>= {MIN_RATIO:.2f}{', 0 bytes' if extra else ''})")
    for what, peer_label in [("backup", "backup pipeline peers together (sum)"),
                             ("restore", "restore pipeline peers together (sum)"),
                             ("verify", "peer tape read alone (raw_tape read)")]:
        got = c[dict(ours)[what]]
        peer = c[peer_label]
        ratio = got / peer if peer > 0 else 0.0
        ok = ratio <= MAX_CPU[what]
        if not ok:
            missed.append(f"{what}_cpu_ratio {ratio:.2f}x (needs <= {MAX_CPU[what]:.2f}x)")
        print(f"{what}_cpu_ratio = {got:.2f} / {peer:.2f} = {ratio:.2f}x  "
              f"{'PASS' if ok else 'FAIL'} (<= {MAX_CPU[what]:.2f}x)")

    print()
    print("for information (medians; alone peers each had both cores):")
    # What the integrity work costs by itself (digest_speed, one thread):
    # the peers do none of it, so peers + this is the lowest CPU a checked
    # backup, restore or verify can have on this machine.
    speed = digest_speed(state)
    alg = load(state, "backup.r1").get("digest_algorithm", "sha256")
    if alg in speed and "crc32c" in speed:
        work = speed[alg] + speed["crc32c"]
        for what, peer_label in [("backup", "backup pipeline peers together (sum)"),
                                 ("restore", "restore pipeline peers together (sum)"),
                                 ("verify", "peer tape read alone (raw_tape read)")]:
            peer = c[peer_label]
            print(f"{what}_cpu_floor = {peer:.2f} + {alg} {speed[alg]:.2f} + crc32c "
                  f"{speed['crc32c']:.2f} = {peer + work:.2f} s/GiB = "
                  f"{(peer + work) / peer if peer else 0:.2f}x")
    for name, got, p1, p2 in [("backup_ratio", mbps["backup"], "disk_read", "tape_write"),
                              ("restore_ratio", mbps["restore"], "tape_read", "disk_write")]:
        peak = min(mbps[p1], mbps[p2])
        print(f"{name} = {got:.1f} / min({p1.replace('_', ' ')} {mbps[p1]:.1f}, "
              f"{p2.replace('_', ' ')} {mbps[p2]:.1f}) = {got / peak if peak else 0:.3f}")
    for name, got, peer in [("verify_vs_tape_read", mbps["verify"], mbps["tape_read"]),
                            ("router_vs_host_backup", mbps["xcopy"], mbps["backup"])]:
        print(f"{name} = {got:.1f} / {peer:.1f} = {got / peer if peer else 0:.3f}")

    print()
    print("bytes through the backup server's own sessions (round 1, same source):")
    host_bytes = load(state, "backup.r1")["bytes"]
    print(f"  host-driven        {2 * host_bytes:>14} data bytes (read the disk, wrote the tape)")
    print(f"  through the router {x1['data_bytes_through_initiator']:>14} data bytes, "
          f"{x1['bytes_through_initiator']} bytes of parameter lists and status")

    print()
    for what, name in [("backup", "backup"), ("restore", "restore"), ("verify", "verify"),
                       ("xcopy backup", "xcopy"), ("router", "router")]:
        kb = max(rss_kb(state, f"{name}.{t}") for t in tags)
        ok = kb < MAX_RSS_KB
        if not ok:
            missed.append(f"{what} peak RSS {kb / 1024:.1f} MiB >= {MAX_RSS_KB / 1024:.0f} MiB")
        print(f"{what.replace(' ', '_')}_peak_rss = {kb / 1024:.1f} MiB  "
              f"{'PASS' if ok else 'FAIL'} (< {MAX_RSS_KB / 1024:.0f} MiB, highest of {rounds} rounds)")
    print()
    if missed:
        print("bench: FAIL: " + "; ".join(missed))
        return 1
    print("bench: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
