#!/usr/bin/env python3
"""Throughput of trivial PythonTasks on K local one-core workers.

Runs the same workload twice in one process: with the workers' warm interpreters (our
extension) and, as the baseline, with a fresh interpreter per task as CCTools does
(``--disable-warm-python``).  Prints tasks/s for each and their ratio.

    python benchmarks/python_tasks.py [--tasks 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import work_queue as wq


def trivial(x):
    return x + 1


def run(n_tasks: int, n_workers: int, extra: list[str]) -> float:
    workdir = tempfile.mkdtemp(prefix="wq-pybench-")
    old = os.getcwd()
    os.chdir(workdir)
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    try:
        q = wq.WorkQueue(port=0)
        workers = [subprocess.Popen([sys.executable, "-m", "work_queue.cli.worker", "--cores",
                                     "1", "--memory", "1000", "--disk", "1000", "-t", "60",
                                     "--single-shot", *extra, "localhost", str(q.port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env=env)
                   for _ in range(n_workers)]
        deadline = time.time() + 30
        while q.stats.workers_connected < n_workers and time.time() < deadline:
            q.wait(0.05)
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
        assert total == sum(range(1, n_tasks + 1)), "wrong results"
        q.close()
        for w in workers:
            w.wait(timeout=30)
        return n_tasks / elapsed
    finally:
        os.chdir(old)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=2000)
    p.add_argument("--baseline-tasks", type=int, default=200,
                   help="tasks for the fresh-interpreter baseline (it is much slower)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    warm = run(args.tasks, args.workers, [])
    cold = run(args.baseline_tasks, args.workers, ["--disable-warm-python"])
    print(f"{'mode':28} {'tasks':>6} {'tasks/s':>9}")
    print(f"{'warm interpreter':28} {args.tasks:6d} {warm:9.0f}")
    print(f"{'fresh interpreter (CCTools)':28} {args.baseline_tasks:6d} {cold:9.0f}")
    print(f"speed-up: {warm / cold:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
