#!/usr/bin/env python3
"""Throughput of the manager: N tasks of ``true`` on K local one-core workers.

Prints tasks/s and the manager's CPU milliseconds per task, for a plain ``true`` task and for a
variant with one unique 1 KB input and output file per task.  Run several queue sizes to see
whether the manager's cost per task grows with the number of queued tasks.

    python benchmarks/throughput.py [--tasks 1000 10000] [--workers 2] [--variant true files]
                                    [--window 50]

With ``--worker-cmd`` another worker executable can be measured (for example a CCTools
``work_queue_worker``): ``--worker-cmd /path/to/work_queue_worker``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

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


def run(n_tasks: int, n_workers: int, variant: str, worker_cmd: list[str],
        window: int = 0) -> dict[str, float]:
    workdir = tempfile.mkdtemp(prefix="wq-bench-")
    old = os.getcwd()
    os.chdir(workdir)
    try:
        q = wq.WorkQueue(port=0)
        workers = [subprocess.Popen(worker_cmd + ["--cores", "1", "--memory", "1000",
                                                  "--disk", "1000", "-t", "60",
                                                  "--single-shot", "localhost", str(q.port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for _ in range(n_workers)]
        # Let the workers connect before the clock starts.
        deadline = time.time() + 30
        while q.stats.workers_connected < n_workers and time.time() < deadline:
            q.wait(0.05)
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        submitted = 0
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
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
        return {"tasks": done, "failed": failed, "seconds": elapsed,
                "tasks_per_s": done / elapsed, "cpu_ms_per_task": 1000 * cpu / max(done, 1),
                "submit_cpu_ms_per_task": 1000 * submit_cpu / max(done, 1)}
    finally:
        os.chdir(old)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--variant", nargs="+", default=["true", "files"], choices=["true", "files"])
    p.add_argument("--window", type=int, default=0,
                   help="keep at most this many tasks outstanding (default: submit all at once)")
    p.add_argument("--worker-cmd", default=None,
                   help="worker executable (default: this package's work_queue_worker)")
    args = p.parse_args()
    worker_cmd = [args.worker_cmd] if args.worker_cmd else \
        [sys.executable, "-m", "work_queue.cli.worker"]
    print(f"{'variant':8} {'tasks':>7} {'workers':>7} {'seconds':>8} {'tasks/s':>9} "
          f"{'mgr CPU ms/task':>16} {'of which submit':>16} {'failed':>6}")
    for variant in args.variant:
        for n in args.tasks:
            r = run(n, args.workers, variant, worker_cmd, args.window)
            print(f"{variant:8} {r['tasks']:7d} {args.workers:7d} {r['seconds']:8.2f} "
                  f"{r['tasks_per_s']:9.0f} {r['cpu_ms_per_task']:16.3f} "
                  f"{r['submit_cpu_ms_per_task']:16.3f} {r['failed']:6d}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
