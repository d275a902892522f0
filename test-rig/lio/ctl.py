#!/usr/bin/env python3
"""Run one shell command in the LIO rig's guest over its control serial port.

Usage: ctl.py SOCKET LOCKFILE CMD

The guest's second serial port (ttyS1) is QEMU's unix socket SOCKET. We send
one line "ID BASE64(CMD)"; the guest's command loop (guest/init) answers
"__RIG_BEGIN__ ID\n", the command's stdout+stderr, then
"\n__RIG_END__ ID RC\n". Anything before our BEGIN marker (late output of an
earlier, abandoned command) is dropped. Prints the output, exits with RC.
LOCKFILE serializes callers: the socket takes one client at a time.
Timeout: SANMOVER_LIO_CTL_TIMEOUT seconds (default 120); exit 124 then.
"""

import base64
import fcntl
import os
import re
import secrets
import socket
import sys
import time


def main() -> int:
    if len(sys.argv) != 4:
        print("usage: ctl.py SOCKET LOCKFILE CMD", file=sys.stderr)
        return 2
    path, lock_path, cmd = sys.argv[1:]
    timeout = float(os.environ.get("SANMOVER_LIO_CTL_TIMEOUT", "120"))
    deadline = time.monotonic() + timeout
    cid = secrets.token_hex(6)
    begin = f"__RIG_BEGIN__ {cid}\n".encode()
    end_re = re.compile(rb"\n__RIG_END__ " + cid.encode() + rb" (\d+)\n")

    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(max(1.0, deadline - time.monotonic()))
            s.connect(path)
            line = cid.encode() + b" " + base64.b64encode(cmd.encode()) + b"\n"
            s.sendall(line)
            buf = b""
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    print(f"ctl: no answer from the guest within {timeout:.0f} s", file=sys.stderr)
                    return 124
                s.settimeout(left)
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    print("ctl: the guest closed the control channel", file=sys.stderr)
                    return 125
                buf += chunk
                start = buf.find(begin)
                if start < 0:
                    continue
                body = buf[start + len(begin):]
                m = end_re.search(body)
                if m is None:
                    continue
                sys.stdout.buffer.write(body[: m.start()])
                sys.stdout.flush()
                return int(m.group(1))
        finally:
            s.close()


if __name__ == "__main__":
    sys.exit(main())
