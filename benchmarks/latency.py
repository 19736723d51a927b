#!/usr/bin/env python3
"""Round-trip latency: one ``true`` task at a time, from submit() to wait() returning it.

    python benchmarks/latency.py [--tasks 500] [--worker-cmd PATH]

Prints the median, 90th and 99th percentile in milliseconds.  With ``--worker-cmd`` the same is
measured with another worker executable (for example a CCTools work_queue_worker).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import work_queue as wq


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=500)
    p.add_argument("--worker-cmd", default=None)
    p.add_argument("--command", default="true")
    args = p.parse_args()
    worker = [args.worker_cmd] if args.worker_cmd else [sys.executable, "-m",
                                                        "work_queue.cli.worker"]
    workdir = tempfile.mkdtemp(prefix="wq-latency-")
    os.chdir(workdir)
    q = wq.WorkQueue(port=0)
    w = subprocess.Popen(worker + ["--cores", "1", "--memory", "1000", "--disk", "1000", "-t",
                                   "60", "--single-shot", "localhost", str(q.port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while q.stats.workers_connected < 1:
        q.wait(0.05)
    samples = []
    for i in range(args.tasks + 20):
        t0 = time.perf_counter()
        q.submit(wq.Task(args.command))
        t = q.wait(10)
        assert t is not None and t.return_status == 0
        if i >= 20:  # warm-up
            samples.append((time.perf_counter() - t0) * 1000)
    q.close()
    w.wait(timeout=30)
    shutil.rmtree(workdir, ignore_errors=True)
    samples.sort()
    pct = {k: samples[min(len(samples) - 1, int(len(samples) * k / 100))] for k in (90, 99)}
    print(f"{args.tasks} tasks of {args.command!r}, one at a time: median "
          f"{statistics.median(samples):.2f} ms, p90 {pct[90]:.2f} ms, p99 {pct[99]:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
