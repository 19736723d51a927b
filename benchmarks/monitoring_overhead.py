#!/usr/bin/env python3
"""Per-task cost of resource monitoring around a ``true`` task, as the worker does it.

    python benchmarks/monitoring_overhead.py [--tasks 500] [--cli]

Each task is started with ``posix_spawn`` in a sandbox directory and reaped with ``wait4``;
the monitored variant also creates a :class:`TreeMonitor`, samples the tree once right after
the start (the worker's first sample; a ``true`` normally ends before it), finishes it with the
rusage and writes ``cctools-monitor.summary`` in the sandbox (a new file, as in a new
sandbox: rewriting an existing one costs a flush on ext4).  Plain and monitored batches are
interleaved so machine load affects both alike.  Prints the mean per-task times, their ratio
(the goal: at most 2x) and the cost of each step.

With ``--cli`` it also times the wrapper CCTools workers get, ``./cctools-monitor --sh true``
(the standalone single-file monitor), against ``/bin/sh -c true``.

With ``--end-to-end`` it also runs the whole thing: a manager with two local one-core
workers runs batches of ``true`` tasks with and without ``q.enable_monitoring()``
(alternating), and prints tasks/s of each and the cost ratio.
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

import cctools_driver as cct

from work_queue.monitor import standalone
from work_queue.monitor import summary as summary_mod
from work_queue.monitor.measure import TreeMonitor, exit_code

TRUE = shutil.which("true") or "/bin/true"
LIMITS = {"cores": 1, "memory": 1000, "disk": 1000}


def plain_task(sandbox: str) -> None:
    here = os.getcwd()
    os.chdir(sandbox)
    try:
        pid = os.posix_spawn(TRUE, [TRUE], os.environ)
    finally:
        os.chdir(here)
    os.wait4(pid, 0)


def monitored_task(sandbox: str, steps: dict[str, float], sample: bool = True) -> None:
    here = os.getcwd()
    os.chdir(sandbox)
    try:
        pid = os.posix_spawn(TRUE, [TRUE], os.environ)
    finally:
        os.chdir(here)
    t0 = time.perf_counter()
    tree = TreeMonitor(pid, sandbox, LIMITS, start=time.time())
    t1 = time.perf_counter()
    if sample:
        tree.sample(time.time())
    t2 = time.perf_counter()
    _, status, rusage = os.wait4(pid, 0)
    t3 = time.perf_counter()
    summary = tree.finish(time.time(), rusage=rusage,
                          exit_status=os.waitstatus_to_exitcode(status))
    t4 = time.perf_counter()
    summary["command"] = "true"
    summary["task_id"] = "1"
    with open(os.path.join(sandbox, "cctools-monitor.summary"), "w") as f:
        f.write(summary_mod.dumps(summary))
    exit_code(summary)
    t5 = time.perf_counter()
    os.unlink(os.path.join(sandbox, "cctools-monitor.summary"))  # the sandbox is emptied
    steps["init"] += t1 - t0
    steps["first sample"] += t2 - t1
    steps["finish"] += t4 - t3
    steps["summary file"] += t5 - t4


def per_task(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def _queue_run(n: int, monitor: bool) -> float:
    """Tasks/s of ``n`` true tasks on two local one-core workers."""
    import work_queue as wq

    here = os.getcwd()
    work = tempfile.mkdtemp(prefix="wq-monitor-e2e-")
    os.chdir(work)
    try:
        q = wq.WorkQueue(port=0)
        if monitor:
            q.enable_monitoring()
        workers = cct.start_workers([sys.executable, "-m", "work_queue.cli.worker"], q.port, 2)
        cct.wait_connected(q, 2)
        start = time.perf_counter()
        for _ in range(n):
            t = wq.Task("true")
            t.specify_cores(1)
            q.submit(t)
        while not q.empty():
            q.wait(1)
        rate = n / (time.perf_counter() - start)
        q.close()
        cct.stop_workers(workers)
        return rate
    finally:
        os.chdir(here)
        shutil.rmtree(work, ignore_errors=True)


def end_to_end(n: int) -> None:
    plain, monitored = [], []
    for _ in range(3):
        plain.append(_queue_run(n, False))
        monitored.append(_queue_run(n, True))
    a, b = statistics.median(plain), statistics.median(monitored)
    print(f"end to end, {n} true tasks, 2 one-core workers (median of 3 alternating runs):")
    print(f"  without monitoring {a:7.0f} tasks/s   with enable_monitoring() {b:7.0f} tasks/s"
          f"   cost ratio {a / b:.2f}x")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=500)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--cli", action="store_true", help="also time the cctools-monitor wrapper")
    p.add_argument("--end-to-end", action="store_true",
                   help="also time true tasks through a manager and two workers")
    args = p.parse_args()
    if args.end_to_end:
        end_to_end(max(args.tasks, 1000))
    work = tempfile.mkdtemp(prefix="wq-monitor-bench-")
    sandbox = os.path.join(work, "t.1")
    os.mkdir(sandbox)
    steps = dict.fromkeys(("init", "first sample", "finish", "summary file"), 0.0)
    plain: list[float] = []
    sampled: list[float] = []
    unsampled: list[float] = []
    for _ in range(3):  # warm-up
        plain_task(sandbox)
        monitored_task(sandbox, dict(steps))
    for _ in range(max(1, args.tasks // args.batch)):
        plain.append(per_task(lambda: plain_task(sandbox), args.batch))
        sampled.append(per_task(lambda: monitored_task(sandbox, steps), args.batch))
        unsampled.append(per_task(lambda: monitored_task(sandbox, {k: 0.0 for k in steps},
                                                         sample=False), args.batch))
    n = len(sampled) * args.batch
    base = statistics.median(plain)
    print(f"{n} tasks of 'true' (batches of {args.batch}, median of batch means):")
    print(f"  without monitoring          {base * 1e6:8.0f} us/task")
    for name, runs in (("monitored, first sample", sampled),
                       ("monitored, no sample", unsampled)):
        med = statistics.median(runs)
        print(f"  {name:<27} {med * 1e6:8.0f} us/task   ratio {med / base:.2f}x")
    print("  monitoring steps: " + ", ".join(f"{k} {v / n * 1e6:.0f} us"
                                             for k, v in steps.items()))
    if args.cli:
        exe = standalone.build(os.path.join(work, "cctools-monitor"), sys.executable)
        reps = max(5, args.tasks // 20)
        sh = per_task(lambda: subprocess.run(["/bin/sh", "-c", "true"], cwd=sandbox,
                                             check=True), reps)
        wrapped = per_task(lambda: subprocess.run(
            [exe, "--no-pprint", "--with-output-files=cctools-monitor", "-L", "cores: 1",
             "-V", "task_id: 1", "--sh", "true"], cwd=sandbox, check=True), reps)
        print(f"  CCTools-worker wrapper: sh -c true {sh * 1e3:.1f} ms, "
              f"./cctools-monitor --sh true {wrapped * 1e3:.1f} ms ({wrapped / sh:.1f}x; "
              f"mostly starting Python)")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
