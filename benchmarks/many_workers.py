#!/usr/bin/env python3
"""One manager, many workers: N simulated one-core workers speaking the real protocol.

    python benchmarks/many_workers.py [--workers 1000] [--tasks 20000]

The workers live in one separate process (a selectors loop over N sockets).  Each answers its
handshake like a CCTools worker, "runs" a task instantly (``available_results``, then the result
when asked) and answers keepalive ``check`` messages.  Prints tasks/s, the manager's CPU per
task, the longest pause between two returned tasks, and whether any worker was dropped.

With ``CCTOOLS_HOME=/path/to/cctools`` the same simulated workers first serve the CCTools manager
(the C driver in cctools_driver.py, which also runs one task per worker before its clock starts),
the baseline of the ``x CCTools`` figure.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import selectors
import socket
import sys
import time

import cctools_driver as cct

import work_queue as wq
from work_queue.protocol import messages as m
from work_queue.protocol.reader import NEED_DATA, manager_stream_reader

HANDSHAKE = (b"workqueue 11 sim Linux x86_64 7.17.1\ninfo worker-id worker-%032d\nalive\n"
             b"resource workers 1 1 1\nresource disk 1000 1000 1000\n"
             b"resource memory 1000 1000 1000\nresource gpus 0 0 0\nresource cores 1 1 1\n"
             b"resource tag 0\ninfo end_of_resource_update 0\ninfo tasks_running 0\n"
             b"info worker-end-time 0\n")


def _answers(st: dict) -> list[bytes] | None:
    """What one simulated worker says to what its manager sent; None: it was told to go."""
    out = []
    reader = st["reader"]
    while (ev := reader.next_event()) is not NEED_DATA:
        if isinstance(ev, m.TaskStart):
            st["task"] = ev.task_id
        elif isinstance(ev, m.End) and st["task"] is not None:
            st["done"].append(st["task"])
            st["task"] = None
            out.append(b"available_results\n")
        elif isinstance(ev, m.SendResults):
            out += [b"result 0 0 0 100 %d\n" % t for t in st["done"]]
            out.append(b"end\n")
            st["done"].clear()
        elif isinstance(ev, m.Check):
            out.append(b"alive\ninfo tasks_running 0\n")
        elif isinstance(ev, m.Release | m.Exit):
            return None
    return out


def simulate(port: int, n: int, ready: multiprocessing.Event) -> None:  # type: ignore
    sel = selectors.DefaultSelector()
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(HANDSHAKE % i)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, {"reader": manager_stream_reader(), "done": [],
                                               "task": None})
    ready.set()
    while sel.get_map():
        for key, _ in sel.select(1.0):
            s, st = key.fileobj, key.data
            try:
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                continue
            st["reader"].feed(data)
            out = _answers(st)
            if out is None:
                sel.unregister(s)
                s.close()
                continue
            if out:
                try:
                    s.setblocking(True)
                    s.sendall(b"".join(out))
                    s.setblocking(False)
                except OSError:
                    pass


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=1000)
    p.add_argument("--tasks", type=int, default=20000)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.workers)), hard))
    home = cct.cctools_home()
    baseline = None
    if home is not None:
        def start(port: int) -> multiprocessing.Process:
            sim = multiprocessing.Process(target=simulate,
                                          args=(port, args.workers, multiprocessing.Event()))
            sim.start()
            return sim

        procs: list[multiprocessing.Process] = []
        r = cct.run_driver(home, "true", args.tasks, 0, args.workers,
                           start=lambda port: procs.append(start(port)))
        for sim in procs:
            sim.join(timeout=30)
            if sim.is_alive():
                sim.kill()
        baseline = r["tasks"] / r["seconds"]
        print(f"CCTools: {args.workers} workers, {int(r['tasks'])} tasks: {baseline:.0f} tasks/s, "
              f"manager CPU {1000 * r['cpu_s'] / max(r['tasks'], 1):.3f} ms/task, longest pause "
              f"{1000 * r['longest_pause_s']:.1f} ms, workers still connected "
              f"{int(r['workers_connected'])}, lost {int(r['workers_lost'])}", flush=True)
    q = wq.WorkQueue(port=0)
    ready = multiprocessing.Event()
    sim = multiprocessing.Process(target=simulate, args=(q.port, args.workers, ready))
    sim.start()
    while not ready.is_set() or q.stats.workers_connected < args.workers:
        q.wait(0.05)
    # The manager's own stalls: the longest loop pass, not counting time waiting in poll
    # (a pause between two returned tasks can also be the simulator being slow).
    worst = [0.0]
    original_pass, original_wait = q._pass, q._watcher.wait
    polled = [0.0]

    def timed_wait(timeout):
        t = time.perf_counter()
        try:
            return original_wait(timeout)
        finally:
            polled[0] += time.perf_counter() - t

    def timed_pass(now, poll):
        polled[0] = 0.0
        t = time.perf_counter()
        try:
            return original_pass(now, poll)
        finally:
            worst[0] = max(worst[0], time.perf_counter() - t - polled[0])

    q._watcher.wait, q._pass = timed_wait, timed_pass
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = last = time.perf_counter()
    longest = 0.0
    for _ in range(args.tasks):
        q.submit(wq.Task("true"))
    # Pauses are measured while the manager serves, not while the program submits.
    last = time.perf_counter()
    done = 0
    while done < args.tasks:
        t = q.wait(5)
        if t is None:
            print("stalled", q.stats)
            break
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
        done += 1
    elapsed = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    ratio = f" ({done / elapsed / baseline:.2f}x CCTools)" if baseline else ""
    print(f"ours: {args.workers} workers, {done} tasks: {done / elapsed:.0f} tasks/s{ratio}, "
          f"manager CPU {1000 * cpu / max(done, 1):.3f} ms/task, longest pause "
          f"{1000 * longest:.1f} ms, longest manager pass {1000 * worst[0]:.1f} ms, "
          f"workers still connected {q.stats.workers_connected}, "
          f"lost {q.stats.workers_lost}")
    q.close()
    sim.join(timeout=30)
    if sim.is_alive():
        sim.kill()
    if home is None:
        cct.skip_note()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
