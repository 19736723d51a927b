#!/usr/bin/env python3
"""Memory and submit cost of a large queue: N ``true`` tasks submitted, no workers.

    python benchmarks/queue_size.py [--tasks 1000 100000 1000000]

Prints the manager's resident memory per queued task, the submit time per task, and how long
``wait(0)`` and ``stats`` take with that many tasks queued.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import work_queue as wq


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, nargs="+", default=[1000, 100000, 1000000])
    args = p.parse_args()
    os.chdir(tempfile.mkdtemp(prefix="wq-queue-size-"))
    print(f"{'tasks':>9} {'resident MB':>12} {'KB/task':>8} {'submit us':>10} "
          f"{'wait(0) ms':>11} {'stats ms':>9}")
    for n in args.tasks:
        before = resident_mb()
        q = wq.WorkQueue(port=0)
        t0 = time.perf_counter()
        for _ in range(n):
            q.submit(wq.Task("true"))
        submit = (time.perf_counter() - t0) / n * 1e6
        grown = resident_mb() - before
        t0 = time.perf_counter()
        q.wait(0)
        wait_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        assert q.stats.tasks_waiting == n
        stats_ms = (time.perf_counter() - t0) * 1000
        print(f"{n:9d} {resident_mb():12.0f} {grown * 1024 / n:8.2f} {submit:10.1f} "
              f"{wait_ms:11.2f} {stats_ms:9.2f}", flush=True)
        q.close()
        del q
    return 0


if __name__ == "__main__":
    sys.exit(main())
