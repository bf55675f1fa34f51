#!/usr/bin/env python3
"""bench/reaper helper: hold N idle connections and time their end.

usage: reaper_hold.py CONNINFO N READYFILE DONEFILE [TIMEOUT_S]

Opens N libpq connections (through ctypes: pqlib.py), runs SELECT 1
on each so that it is idle, writes the time to READYFILE, then waits on all
sockets: a backend that is terminated sends its FATAL message and closes, so
its socket becomes readable.  When every connection is closed, writes
"first_close last_close" (epoch seconds) to DONEFILE and exits; after
TIMEOUT_S (default 120) writes "timeout N_open".
"""
import select
import sys
import time

from pqlib import connect_idle, pq


def main():
    conninfo, n, readyfile, donefile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 120.0
    conns = {}
    for _ in range(n):
        c = connect_idle(conninfo)
        conns[pq.PQsocket(c)] = c
    with open(readyfile, "w") as f:
        f.write("%.6f\n" % time.time())

    poller = select.poll()
    for fd in conns:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    first = last = None
    deadline = time.time() + timeout
    while conns and time.time() < deadline:
        for fd, _ in poller.poll(50):
            now = time.time()
            c = conns.get(fd)
            if c is None:
                continue
            # readable: the backend sent its FATAL and closed the connection
            pq.PQconsumeInput(c)
            poller.unregister(fd)
            pq.PQfinish(c)
            del conns[fd]
            first = first or now
            last = now
    with open(donefile, "w") as f:
        if conns:
            f.write("timeout %d\n" % len(conns))
        else:
            f.write("%.6f %.6f\n" % (first, last))
    for c in conns.values():
        pq.PQfinish(c)


main()
