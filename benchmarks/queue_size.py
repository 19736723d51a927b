#!/usr/bin/env python3
"""Memory and submit cost of a large queue: N ``true`` tasks submitted, no workers.

    python benchmarks/queue_size.py [--tasks 1000 100000 1000000]

Prints the manager's resident memory per queued task, the submit time per task, and how long
``wait(0)`` and ``stats`` take with that many tasks queued.  With ``CCTOOLS_HOME=/path/to/cctools``
the CCTools manager (the C driver in cctools_driver.py, a fresh process per size) is measured
beside ours; ``x CCTools`` is its submit time over ours.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import cctools_driver as cct

import work_queue as wq


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, nargs="+", default=[1000, 100000, 1000000])
    args = p.parse_args()
    os.chdir(tempfile.mkdtemp(prefix="wq-queue-size-"))
    home = cct.cctools_home()
    print(f"{'manager':8} {'tasks':>9} {'resident MB':>12} {'KB/task':>8} {'submit us':>10} "
          f"{'x CCTools':>9} {'wait(0) ms':>11} {'stats ms':>9}")
    for n in args.tasks:
        baseline = None
        if home is not None:
            r = cct.run_driver(home, "queue", n)
            baseline = r["submit_s"] / n * 1e6
            print(f"{'CCTools':8} {n:9d} {r['rss_mb']:12.0f} {r['grown_mb'] * 1024 / n:8.2f} "
                  f"{baseline:10.1f} {1.0:9.2f} {r['wait0_s'] * 1000:11.2f} "
                  f"{r['stats_s'] * 1000:9.2f}", flush=True)
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
        ratio = f"{baseline / submit:9.2f}" if baseline else f"{'-':>9}"
        print(f"{'ours':8} {n:9d} {resident_mb():12.0f} {grown * 1024 / n:8.2f} {submit:10.1f} "
              f"{ratio} {wait_ms:11.2f} {stats_ms:9.2f}", flush=True)
        q.close()
        del q
    if home is None:
        cct.skip_note()
    return 0


if __name__ == "__main__":
    sys.exit(main())
