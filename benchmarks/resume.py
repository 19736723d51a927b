#!/usr/bin/env python3
"""A dropped connection is not a lost task (issue 19): the cost of a link reset mid-run.

    python benchmarks/resume.py [--tasks 20] [--seconds 3] [--workers 2] [--reset-after 1]
                                [--repeat 1]

``--tasks`` tasks of ``--seconds`` seconds each, with an output file, on ``--workers`` local
workers (enough cores for all of them at once), connected to the manager through a TCP proxy
(``work_queue._testing.proxy``) that resets every connection once, ``--reset-after`` seconds
after every task started.  Prints the wall time from submit to the last result and how many
times the tasks were executed, for:

* ``ours, wq-py-resume``: our manager and workers, the extension on (the tasks keep running,
  the workers come back for them);
* ``ours, extension off``: the same with ``tune("resume-grace-time", 0)``, which is CCTools'
  behaviour (every task on a dropped worker runs again);
* with ``CCTOOLS_HOME=/path/to/cctools``: our manager with CCTools 7.17.1 workers (they never
  announce the extension, so they get CCTools' behaviour from our manager too).

Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import cctools_driver as cct

import work_queue as wq
from work_queue._testing.proxy import ResettingProxy


def run(worker_argv: list[str], n_tasks: int, seconds: float, n_workers: int,
        resume: bool, reset_after: float) -> tuple[float, int, int]:
    """(wall seconds, executions, tasks recovered) of one run with one reset."""
    workdir = tempfile.mkdtemp(prefix="wq-resume-")
    old = os.getcwd()
    os.chdir(workdir)
    q = wq.WorkQueue(port=0)
    proxy = ResettingProxy(q.port)
    cores = -(-n_tasks // n_workers)
    workers = [subprocess.Popen(worker_argv + ["--cores", str(cores), "--memory", "1000",
                                               "--disk", "1000", "-t", "60", "-b", "1",
                                               "localhost", str(proxy.port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(n_workers)]
    try:
        if not resume:
            q.tune("resume-grace-time", 0)
        cct.wait_connected(q, n_workers)
        runs = os.path.join(workdir, "runs.log")
        start = time.time()
        for i in range(n_tasks):
            t = wq.Task(f"echo {i} >> {runs}; sleep {seconds}; echo {i} > out")
            t.specify_cores(1)
            t.specify_output_file(f"out-{i}", "out", cache=False)
            q.submit(t)
        while q.stats.tasks_running < n_tasks and time.time() - start < 60:
            q.wait(0.05)
        reset_at = time.time() + reset_after
        while time.time() < reset_at:
            q.wait(0.05)
        proxy.reset()
        done = 0
        while done < n_tasks and time.time() - start < 120:
            if q.wait(0.5) is not None:
                done += 1
        elapsed = time.time() - start
        with open(runs) as f:
            executions = len(f.read().split())
        return elapsed, executions, q.stats.tasks_recovered
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(10)
            except subprocess.TimeoutExpired:
                w.kill()
        q.close()
        proxy.close()
        os.chdir(old)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=20)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--reset-after", type=float, default=1.0,
                   help="seconds after every task started (default 1)")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    ours = [sys.executable, "-m", "work_queue.cli.worker"]
    setups = [("ours, wq-py-resume", ours, True), ("ours, extension off", ours, False)]
    home = cct.cctools_home()
    if home is not None:
        setups.append(("our manager, CCTools workers", cct.worker_argv(home), True))
    else:
        cct.skip_note()
    print(f"{args.tasks} tasks of {args.seconds:g} s on {args.workers} workers, every "
          f"connection reset once, {args.reset_after:g} s after all started")
    print(f"{'setup':32} {'wall s':>7} {'executions':>10} {'recovered':>9}")
    for _ in range(args.repeat):
        for name, argv, resume in setups:
            elapsed, executions, recovered = run(argv, args.tasks, args.seconds,
                                                 args.workers, resume, args.reset_after)
            print(f"{name:32} {elapsed:7.2f} {executions:10d} {recovered:9d}", flush=True)


if __name__ == "__main__":
    main()
