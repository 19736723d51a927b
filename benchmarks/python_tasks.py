#!/usr/bin/env python3
"""Throughput of trivial PythonTasks on K local one-core workers.

Runs the same workload with the workers' warm interpreters (our extension) and, as the baseline,
with a fresh interpreter per task as CCTools does (``--disable-warm-python``).  Prints tasks/s
for each and the ratio to the baseline.

    python benchmarks/python_tasks.py [--tasks 2000] [--baseline-tasks 200] [--workers 2]

With ``CCTOOLS_HOME=/path/to/cctools`` it also runs our manager with CCTools workers and, when
that installation has CCTools' Python bindings (``lib/python3.X/site-packages/ndcctools``), the
CCTools manager's own ``PythonTask`` with CCTools workers, which then is the baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

import cctools_driver as cct

import work_queue as wq

# Run by the Python that runs this script, with CCTools' bindings on PYTHONPATH.
CCTOOLS_MANAGER = r"""
import sys, time
import ndcctools.work_queue as wq

def trivial(x):
    return x + 1

n, nworkers = int(sys.argv[1]), int(sys.argv[2])
q = wq.WorkQueue(0)
print("port", q.port, flush=True)
while q.stats.workers_connected < nworkers:
    q.wait(1)
t0 = time.perf_counter()
for i in range(n):
    t = wq.PythonTask(trivial, i)
    t.specify_cores(1)
    q.submit(t)
total = done = failed = 0
while not q.empty():
    t = q.wait(10)
    if t:
        done += 1
        failed += t.result != wq.WORK_QUEUE_RESULT_SUCCESS
        total += t.output if isinstance(t.output, int) else 0
elapsed = time.perf_counter() - t0
failed += total != sum(range(1, n + 1))
print(f"result tasks={done} failed={failed} seconds={elapsed}")
"""


def trivial(x):
    return x + 1


def run_ours(n_tasks: int, n_workers: int, worker_argv: list[str]) -> float:
    workdir = tempfile.mkdtemp(prefix="wq-pybench-")
    old = os.getcwd()
    os.chdir(workdir)
    try:
        q = wq.WorkQueue(port=0)
        workers = cct.start_workers(worker_argv, q.port, n_workers)
        cct.wait_connected(q, n_workers)
        t0 = time.perf_counter()
        for i in range(n_tasks):
            t = wq.PythonTask(trivial, i)
            t.specify_cores(1)
            q.submit(t)
        done = 0
        total = 0
        while done < n_tasks:
            t = q.wait(10)
            if t is None:
                raise RuntimeError(f"stalled after {done} tasks")
            done += 1
            total += t.output
        elapsed = time.perf_counter() - t0
        if total != sum(range(1, n_tasks + 1)):
            raise RuntimeError("wrong results")
        q.close()
        cct.stop_workers(workers)
        return n_tasks / elapsed
    finally:
        os.chdir(old)
        shutil.rmtree(workdir, ignore_errors=True)


def run_cctools(site: str, n_tasks: int, n_workers: int, worker_argv: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=site)
    r = cct.run_program([sys.executable, "-c", CCTOOLS_MANAGER, str(n_tasks), str(n_workers)],
                        start=lambda port: cct.start_workers(worker_argv, port, n_workers),
                        env=env)
    if r["failed"] or r["tasks"] != n_tasks:
        raise RuntimeError(f"CCTools PythonTasks failed: {r}")
    return n_tasks / float(r["seconds"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=2000)
    p.add_argument("--baseline-tasks", type=int, default=200,
                   help="tasks for the fresh-interpreter runs (they are much slower)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    # Workers run tasks with the `python3` on PATH: make it this one (it has cloudpickle).
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    home = cct.cctools_home()
    site = cct.python_bindings(home) if home else None
    ours = cct.worker_argv(None)
    runs: list[tuple[str, int, Callable[[int], float]]] = []
    if site:
        runs.append(("CCTools manager/CCTools workers", args.baseline_tasks,
                     lambda n: run_cctools(site, n, args.workers, cct.worker_argv(home))))
    runs += [("ours/ours, fresh interpreter", args.baseline_tasks,
              lambda n: run_ours(n, args.workers, ours + ["--disable-warm-python"])),
             ("ours/ours, warm interpreters", args.tasks,
              lambda n: run_ours(n, args.workers, ours))]
    if home:
        runs.append(("ours/CCTools workers", args.baseline_tasks,
                     lambda n: run_ours(n, args.workers, cct.worker_argv(home))))
    print(f"{'manager/workers':34} {'tasks':>6} {'tasks/s':>9} {'x baseline':>10}", flush=True)
    for _ in range(args.repeat):
        baseline = None
        for label, n, fn in runs:
            rate = fn(n)
            if baseline is None and ("CCTools manager" in label or "fresh" in label):
                baseline = rate
            ratio = f"{rate / baseline:10.1f}" if baseline else f"{'-':>10}"
            print(f"{label:34} {n:6d} {rate:9.0f} {ratio}", flush=True)
    if home is None:
        cct.skip_note()
    elif site is None:
        print(f"CCTools manager skipped: no Python bindings (ndcctools) under {home}/lib")
    return 0


if __name__ == "__main__":
    sys.exit(main())
