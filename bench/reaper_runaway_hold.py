#!/usr/bin/env python3
"""bench/reaper_runaway helper: hold idle sessions and running queries, and
time the end of each query.

usage: reaper_runaway_hold.py CONNINFO N_IDLE N_RUN READYFILE DONEFILE [TIMEOUT_S]

Opens N_IDLE libpq connections (through ctypes: pqlib.py) and runs
SELECT 1 on each so that it is idle, then N_RUN more that each send
SELECT pg_sleep(600) without waiting for it.  Writes the time the last query
was sent to READYFILE, then waits on all sockets.  A running query that is
cancelled returns its error (SQLSTATE 57014) and the connection stays; one
whose session is terminated closes.  When every query has ended, or after
TIMEOUT_S (default 120), writes to DONEFILE one line per query, "sent ended
sqlstate" (epoch seconds; "- -" for one still running), and a last line
"idle_closed K": how many idle connections closed meanwhile (none should).
"""
import select
import sys
import time

from pqlib import PG_DIAG_SQLSTATE, connect_idle, pq


def main():
    conninfo, n_idle, n_run = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    readyfile, donefile = sys.argv[4], sys.argv[5]
    timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 120.0
    idle = {}
    for _ in range(n_idle):
        c = connect_idle(conninfo)
        idle[pq.PQsocket(c)] = c
    runners = [connect_idle(conninfo) for _ in range(n_run)]
    running = {}
    sent = {}
    for c in runners:
        if not pq.PQsendQuery(c, b"SELECT pg_sleep(600)"):
            sys.exit("send failed: " + pq.PQerrorMessage(c).decode())
        fd = pq.PQsocket(c)
        sent[fd] = time.time()
        running[fd] = c
    with open(readyfile, "w") as f:
        f.write("%.6f\n" % time.time())

    poller = select.poll()
    for fd in list(idle) + list(running):
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    ended = {}
    idle_closed = 0
    deadline = time.time() + timeout
    while running and time.time() < deadline:
        for fd, _ in poller.poll(50):
            now = time.time()
            if fd in idle:
                # an idle session that was signalled closes: count it
                pq.PQconsumeInput(idle[fd])
                poller.unregister(fd)
                pq.PQfinish(idle.pop(fd))
                idle_closed += 1
                continue
            c = running.get(fd)
            if c is None:
                continue
            pq.PQconsumeInput(c)
            if pq.PQisBusy(c):
                continue
            state = "-"
            while True:
                r = pq.PQgetResult(c)
                if not r:
                    break
                code = pq.PQresultErrorField(r, PG_DIAG_SQLSTATE)
                if code:
                    state = code.decode()
                pq.PQclear(r)
            ended[fd] = (now, state)
            poller.unregister(fd)
            del running[fd]
    with open(donefile, "w") as f:
        for fd in sent:
            if fd in ended:
                f.write("%.6f %.6f %s\n" % (sent[fd], ended[fd][0], ended[fd][1]))
            else:
                f.write("%.6f - -\n" % sent[fd])
        f.write("idle_closed %d\n" % idle_closed)
    for c in list(idle.values()) + runners:
        pq.PQfinish(c)


main()
