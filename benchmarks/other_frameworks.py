#!/usr/bin/env python3
"""Dask and Ray on the same workloads, for the issue's context figures.

    python benchmarks/other_frameworks.py [--tasks 2000] [--repeat 2]

Two workers with one thread (Dask) or two one-CPU workers (Ray) on this machine run N shell
tasks (``subprocess.run(["true"])``) and N trivial Python calls, all submitted at once; prints
tasks/s.  Neither framework is a dependency of this project: a framework that is not installed
is skipped with a note (``pip install dask distributed ray`` into the interpreter that runs this
script).  Compare with ``throughput.py --variant true`` and ``python_tasks.py``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time


def shell_task(_: int) -> int:
    return subprocess.run(["true"]).returncode


def python_call(x: int) -> int:
    return x + 1


def run_dask(n: int) -> tuple[float, float] | None:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        return None
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.gather(client.map(python_call, range(10), pure=False))  # warm-up
        rates = []
        for fn in (shell_task, python_call):
            t0 = time.perf_counter()
            results = client.gather(client.map(fn, range(n), pure=False))
            rates.append(len(results) / (time.perf_counter() - t0))
    return rates[0], rates[1]


def run_ray(n: int) -> tuple[float, float] | None:
    try:
        import ray
    except ImportError:
        return None
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote_shell = ray.remote(num_cpus=1)(shell_task)
        remote_call = ray.remote(num_cpus=1)(python_call)
        ray.get([remote_call.remote(i) for i in range(10)])  # warm-up
        rates = []
        for fn in (remote_shell, remote_call):
            t0 = time.perf_counter()
            results = ray.get([fn.remote(i) for i in range(n)])
            rates.append(len(results) / (time.perf_counter() - t0))
    finally:
        ray.shutdown()
    return rates[0], rates[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    print(f"{args.tasks} tasks, 2 one-core workers, tasks/s")
    print(f"{'framework':>10} {'shell true':>11} {'Python call':>12}", flush=True)
    skipped = []
    for _ in range(args.repeat):
        for name, run in (("Dask", run_dask), ("Ray", run_ray)):
            if name in skipped:
                continue
            rates = run(args.tasks)
            if rates is None:
                skipped.append(name)
                continue
            print(f"{name:>10} {rates[0]:11.0f} {rates[1]:12.0f}", flush=True)
    for name in skipped:
        print(f"{name} skipped: not installed for {sys.executable}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
