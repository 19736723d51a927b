#!/usr/bin/env python3
"""Round-trip latency: one ``true`` task at a time, from submit() to wait() returning it.

    python benchmarks/latency.py [--tasks 500] [--repeat 2]

Prints the median, 90th and 99th percentile in milliseconds (after 20 warm-up tasks), and
first the round-trip floor of ``spawn_baseline.py`` (bare sockets and ``posix_spawn``, no
manager or worker bookkeeping) measured in the same invocation.  With
``CCTOOLS_HOME=/path/to/cctools`` the same is measured with the CCTools manager and a CCTools
worker (the baseline; ``x CCTools`` is its median over ours) and with our manager and a CCTools
worker; ``--all-pairs`` adds CCTools' manager with our worker.  ``over floor`` is a median
minus the floor's of the same repetition: what the manager and worker add, the figure that
moves least when the machine's speed drifts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import cctools_driver as cct
from spawn_baseline import round_trip_floor

import work_queue as wq


def run_ours(n_tasks: int, worker_argv: list[str], command: str = "true") -> list[float]:
    """Milliseconds per round trip on our manager with one worker from ``worker_argv``."""
    workdir = tempfile.mkdtemp(prefix="wq-latency-")
    old = os.getcwd()
    os.chdir(workdir)
    try:
        q = wq.WorkQueue(port=0)
        workers = cct.start_workers(worker_argv, q.port, 1)
        while q.stats.workers_connected < 1:
            q.wait(0.05)
        samples = []
        for i in range(n_tasks + 20):
            t0 = time.perf_counter()
            q.submit(wq.Task(command))
            t = q.wait(10)
            if t is None or t.return_status != 0:
                raise RuntimeError(f"task {i} failed or did not come back")
            if i >= 20:  # warm-up
                samples.append((time.perf_counter() - t0) * 1000)
        q.close()
        cct.stop_workers(workers)
        return samples
    finally:
        os.chdir(old)
        shutil.rmtree(workdir, ignore_errors=True)


def summary(samples: list[float]) -> tuple[float, float, float]:
    s = sorted(samples)
    pct = [s[min(len(s) - 1, int(len(s) * k / 100))] for k in (90, 99)]
    return statistics.median(s), pct[0], pct[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=500)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--command", default="true", help="task command for our manager's runs")
    p.add_argument("--all-pairs", action="store_true")
    args = p.parse_args()
    home = cct.cctools_home()
    pairs = [("ours", "ours")]
    if home is not None:
        pairs = [("CCTools", "CCTools"), ("ours", "ours"), ("ours", "CCTools")]
        if args.all_pairs:
            pairs.append(("CCTools", "ours"))
    print(f"{args.tasks} tasks of {args.command!r}, one at a time (milliseconds)")
    print(f"{'manager/workers':>16} {'median':>7} {'p90':>7} {'p99':>7} {'x CCTools':>9} "
          f"{'over floor':>10}", flush=True)
    for _ in range(args.repeat):
        floor, p90, p99 = summary(round_trip_floor(args.tasks))
        print(f"{'floor':>16} {floor:7.2f} {p90:7.2f} {p99:7.2f} {'-':>9} {'-':>10}", flush=True)
        baseline = None
        for manager, workers in pairs:
            argv = cct.worker_argv(home if workers == "CCTools" else None)
            if manager == "ours":
                samples = run_ours(args.tasks, argv, args.command)
            else:
                assert home is not None
                r = cct.run_driver(home, "latency", args.tasks, 0, 1,
                                   start=lambda port, a=argv: cct.start_workers(a, port, 1))
                samples = r["samples"]
            med, p90, p99 = summary(samples)
            if (manager, workers) == ("CCTools", "CCTools"):
                baseline = med
            ratio = f"{baseline / med:9.2f}" if baseline else f"{'-':>9}"
            print(f"{manager + '/' + workers:>16} {med:7.2f} {p90:7.2f} {p99:7.2f} {ratio} "
                  f"{med - floor:10.2f}", flush=True)
    if home is None:
        cct.skip_note()
    return 0


if __name__ == "__main__":
    sys.exit(main())
