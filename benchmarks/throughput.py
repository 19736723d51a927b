#!/usr/bin/env python3
"""Throughput of the manager: N tasks of ``true`` on K local one-core workers.

Prints tasks/s and the manager's CPU milliseconds per task, for a plain ``true`` task and for a
variant with one unique 1 KB input and output file per task.  Run several queue sizes to see
whether the manager's cost per task grows with the number of queued tasks.

    python benchmarks/throughput.py [--tasks 1000 10000] [--workers 2] [--variant true files]
                                    [--window 50] [--repeat 2]

With ``CCTOOLS_HOME=/path/to/cctools`` the same workload also runs on the CCTools manager with
CCTools workers (the baseline: the ``x CCTools`` column is tasks/s over its tasks/s in the same
run) and on our manager with CCTools workers; ``--all-pairs`` adds CCTools' manager with ours.
Before the clock starts each run waits for its workers and runs one task per worker.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cctools_driver as cct

import work_queue as wq


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_task(i: int, variant: str) -> wq.Task:
    if variant == "files":
        name = f"in.{i}"
        with open(name, "w") as f:
            f.write(f"input {i}\n" + "x" * 1000)
        t = wq.Task(f"cat {name} > out.{i}")
        t.specify_input_file(name, cache=False)
        t.specify_output_file(f"out.{i}", cache=False)
    else:
        t = wq.Task("true")
    t.specify_cores(1)
    return t


def run_ours(n_tasks: int, n_workers: int, variant: str, worker_argv: list[str],
             window: int = 0) -> dict[str, float]:
    """Our manager; workers started from ``worker_argv``."""
    workdir = tempfile.mkdtemp(prefix="wq-bench-")
    old = os.getcwd()
    os.chdir(workdir)
    try:
        q = wq.WorkQueue(port=0)
        workers = cct.start_workers(worker_argv, q.port, n_workers)
        cct.wait_connected(q, n_workers)
        for _ in range(n_workers):  # warm-up, as the CCTools driver does
            q.submit(wq.Task("true"))
        for _ in range(n_workers):
            q.wait(30)
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        first = n_tasks if window <= 0 else min(window, n_tasks)
        for i in range(first):
            q.submit(make_task(i, variant))
        submitted = first
        submit_cpu = cpu_seconds() - cpu0
        done = failed = 0
        while done < n_tasks:
            t = q.wait(10)
            if t is None:
                break
            done += 1
            failed += t.result != wq.WORK_QUEUE_RESULT_SUCCESS or t.return_status != 0
            if submitted < n_tasks:  # keep at most `window` tasks outstanding
                q.submit(make_task(submitted, variant))
                submitted += 1
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds() - cpu0
        q.close()
        cct.stop_workers(workers)
        return {"tasks": done, "failed": failed, "seconds": elapsed, "cpu_s": cpu,
                "submit_cpu_s": submit_cpu}
    finally:
        os.chdir(old)
        shutil.rmtree(workdir, ignore_errors=True)


def run_cctools(home: Path, n_tasks: int, n_workers: int, variant: str,
                worker_argv: list[str], window: int = 0) -> dict[str, float]:
    """The CCTools manager (the C driver in cctools_driver.py); workers from ``worker_argv``."""
    r = cct.run_driver(home, variant, n_tasks, window, n_workers,
                       start=lambda port: cct.start_workers(worker_argv, port, n_workers))
    return {k: float(v) for k, v in r.items() if isinstance(v, float)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--variant", nargs="+", default=["true", "files"], choices=["true", "files"])
    p.add_argument("--window", type=int, default=0,
                   help="keep at most this many tasks outstanding (default: submit all at once)")
    p.add_argument("--repeat", type=int, default=1, help="run every configuration this often")
    p.add_argument("--all-pairs", action="store_true",
                   help="with CCTOOLS_HOME, also run CCTools' manager with our workers")
    args = p.parse_args()
    home = cct.cctools_home()
    pairs: list[tuple[str, str]] = [("ours", "ours")]
    if home is not None:
        pairs = [("CCTools", "CCTools"), ("ours", "ours"), ("ours", "CCTools")]
        if args.all_pairs:
            pairs.append(("CCTools", "ours"))
    print(f"{'variant':8} {'tasks':>7} {'window':>6} {'manager/workers':>16} {'seconds':>8} "
          f"{'tasks/s':>8} {'x CCTools':>9} {'mgr CPU ms/task':>16} {'of which submit':>16} "
          f"{'failed':>6}", flush=True)
    for variant in args.variant:
        for n in args.tasks:
            for _ in range(args.repeat):
                baseline = None
                for manager, workers in pairs:
                    argv = cct.worker_argv(home if workers == "CCTools" else None)
                    if manager == "ours":
                        r = run_ours(n, args.workers, variant, argv, args.window)
                    else:
                        assert home is not None
                        r = run_cctools(home, n, args.workers, variant, argv, args.window)
                    rate = r["tasks"] / r["seconds"]
                    if (manager, workers) == ("CCTools", "CCTools"):
                        baseline = rate
                    ratio = f"{rate / baseline:9.2f}" if baseline else f"{'-':>9}"
                    done = max(r["tasks"], 1)
                    print(f"{variant:8} {int(r['tasks']):7d} {args.window or '-':>6} "
                          f"{manager + '/' + workers:>16} {r['seconds']:8.2f} {rate:8.0f} "
                          f"{ratio} {1000 * r['cpu_s'] / done:16.3f} "
                          f"{1000 * r['submit_cpu_s'] / done:16.3f} {int(r['failed']):6d}",
                          flush=True)
    if home is None:
        cct.skip_note()
    return 0


if __name__ == "__main__":
    sys.exit(main())
