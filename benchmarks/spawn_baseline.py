#!/usr/bin/env python3
"""The floor under every ``true`` figure: a bare loop of ``subprocess.run(["true"])``.

    python benchmarks/spawn_baseline.py [--runs 2000] [--repeat 2]

Prints runs/s of the loop on one core, and of ``os.posix_spawn`` + ``waitpid`` (how our worker
starts a plain command).  It also prints the round-trip floor: the median time for one
``true`` when a bare Python "manager" sends a line over loopback TCP to a bare Python
"worker" process, which spawns ``true``, waits for it through a pidfd and answers with one
line -- the same hops as a real round trip, with none of the bookkeeping.  No manager and no
worker take part, so there is nothing to compare with CCTools here.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import time


def round_trip_floor(n: int) -> list[float]:
    """Milliseconds per round trip of the bare two-process loop described above."""
    true = shutil.which("true") or "/bin/true"
    env = dict(os.environ)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    pid = os.fork()
    if pid == 0:  # the bare worker
        try:
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ep = select.epoll()
            ep.register(sock.fileno(), select.EPOLLIN)
            while ep.poll() and sock.recv(65536):
                child = os.posix_spawn(true, ["true"], env, setsid=True)
                pidfd = os.pidfd_open(child)
                ep.register(pidfd, select.EPOLLIN)
                while all(fd != pidfd for fd, _ in ep.poll()):
                    pass
                ep.unregister(pidfd)
                os.close(pidfd)
                os.waitpid(child, 0)
                sock.sendall(b"result 0 0 0 0 1\n")
        finally:
            os._exit(0)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ep = select.epoll()
    ep.register(conn.fileno(), select.EPOLLIN)
    samples = []
    for i in range(n + 20):
        t0 = time.perf_counter()
        conn.sendall(b"task 1\ncmd 4\ntruecategory default\ncores 1.000\nend\n")
        ep.poll()
        conn.recv(65536)
        if i >= 20:  # warm-up
            samples.append((time.perf_counter() - t0) * 1000)
    conn.close()
    listener.close()
    os.waitpid(pid, 0)
    return samples


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    true = shutil.which("true") or "/bin/true"
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for _ in range(args.runs):
            subprocess.run(["true"])
        run_rate = args.runs / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(args.runs):
            os.waitpid(os.posix_spawn(true, ["true"], os.environ), 0)
        spawn_rate = args.runs / (time.perf_counter() - t0)
        floor = statistics.median(round_trip_floor(min(args.runs, 1000)))
        print(f"subprocess.run(['true']) loop: {run_rate:.0f}/s; posix_spawn + waitpid: "
              f"{spawn_rate:.0f}/s; round-trip floor: {floor:.2f} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
