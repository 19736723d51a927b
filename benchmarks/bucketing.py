#!/usr/bin/env python3
"""Allocation modes on a bimodal memory workload (issue 17): what each one allocates.

Each task really allocates its memory (``python3 -c`` fills a bytes object of its size and
holds it for a moment) and uses one core: 2/3 of them about 200 MB, 1/3 about 1,500 MB.  All
tasks are in one category, with the allocation mode under test and no declared resources;
monitoring is on (``enable_monitoring``), so a task that goes over its allocation is killed
and retried larger.  Two local workers of 4 cores, 8,000 MB memory, 8,000 MB disk.  Prints for
MAX, MIN_WASTE, MAX_THROUGHPUT and each bucketing mode: the mean memory and cores allocated to
the attempt that succeeded, the RESOURCE_EXHAUSTION attempts (retries), the wall time, and
whether every task succeeded.

    python benchmarks/bucketing.py [--tasks 48] [--hold 0.3] [--modes MAX GREEDY ...]

With ``CCTOOLS_HOME=/path/to/cctools`` (with its Python bindings) the same workload also runs
on CCTools' manager (``ndcctools.work_queue`` in a subprocess with its ``PYTHONPATH``) and
CCTools workers; modes that installation does not have are shown as such (7.17.1 has GREEDY
and EXHAUSTIVE, not the DET_* and QUANTIZED ones).  A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cctools_driver as cct

#: Label -> the allocation mode's constant in ``work_queue`` (ours and CCTools').
MODES = {
    "MAX": "WORK_QUEUE_ALLOCATION_MODE_MAX",
    "MIN_WASTE": "WORK_QUEUE_ALLOCATION_MODE_MIN_WASTE",
    "MAX_THROUGHPUT": "WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT",
    "GREEDY": "WORK_QUEUE_ALLOCATION_MODE_GREEDY_BUCKETING",
    "EXHAUSTIVE": "WORK_QUEUE_ALLOCATION_MODE_EXHAUSTIVE_BUCKETING",
    "DET_GREEDY": "WORK_QUEUE_ALLOCATION_MODE_DET_GREEDY_BUCKETING",
    "DET_EXHAUSTIVE": "WORK_QUEUE_ALLOCATION_MODE_DET_EXHAUSTIVE_BUCKETING",
    "QUANTIZED": "WORK_QUEUE_ALLOCATION_MODE_QUANTIZED_BUCKETING",
}
WORKERS, CORES, MEMORY, DISK = 2, 4, 8000, 8000
CATEGORY = "bimodal"


def sizes(n: int, seed: int = 17) -> list[int]:
    """MB each task allocates: every third task ~1,500 MB, the others ~200 MB (seeded)."""
    rnd = random.Random(seed)
    return [rnd.randint(1450, 1550) if i % 3 == 2 else rnd.randint(180, 220) for i in range(n)]


def command(mb: int, hold: float) -> str:
    """A task that really uses ``mb`` MB: ``b'x' * n`` writes every page (``bytearray(n)``
    would map zero pages and not be counted)."""
    return f"python3 -c \"import time; b = b'x' * ({mb} << 20); time.sleep({hold})\""


def run_workload(wq: Any, mode: str, mbs: list[int], hold: float,
                 on_port: Callable[[int], object], timeout: float = 600) -> dict[str, float]:
    """Run the workload on a queue of ``wq`` (ours or ``ndcctools.work_queue``: the same API);
    ``on_port(port)`` gets the workers started."""
    q = wq.WorkQueue(port=0)
    on_port(q.port)
    q.enable_monitoring()
    q.specify_category_mode(CATEGORY, getattr(wq, MODES[mode]))
    while q.stats.workers_connected < WORKERS:
        q.wait(1)  # CCTools takes whole seconds
    start = time.perf_counter()
    for mb in mbs:
        t = wq.Task(command(mb, hold))
        t.specify_category(CATEGORY)
        q.submit(t)
    done: list[Any] = []
    deadline = time.time() + timeout
    while not q.empty() and time.time() < deadline:
        t = q.wait(5)
        if t is not None:
            done.append(t)
    wall = time.perf_counter() - start
    if hasattr(q, "close"):  # ours: let the single-shot workers go now (CCTools' on exit)
        q.close()
    ok = [t for t in done if t.result == wq.WORK_QUEUE_RESULT_SUCCESS and t.return_status == 0]
    n = max(1, len(ok))
    return {"tasks": len(mbs), "succeeded": len(ok), "wall": wall,
            "exhausted": sum(t.exhausted_attempts for t in done),
            "memory": sum(t.resources_allocated.memory for t in ok) / n,
            "cores": sum(t.resources_allocated.cores for t in ok) / n}


def start_workers(argv: list[str], port: int) -> list[subprocess.Popen[bytes]]:
    """The two workers, leaving when the manager does."""
    return [subprocess.Popen(argv + ["--cores", str(CORES), "--memory", str(MEMORY), "--disk",
                                     str(DISK), "-t", "60", "--single-shot", "localhost",
                                     str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(WORKERS)]


def run_ours(mode: str, mbs: list[int], hold: float) -> dict[str, float]:
    """Our manager in this process, our workers."""
    import work_queue as wq

    here = os.getcwd()
    os.chdir(tempfile.mkdtemp(prefix="wq-bucketing-"))
    workers: list[subprocess.Popen[bytes]] = []
    try:
        return run_workload(wq, mode, mbs, hold, lambda port: workers.extend(
            start_workers(cct.worker_argv(None), port)))
    finally:
        cct.stop_workers(workers)
        os.chdir(here)


def run_cctools(home: Path, site: str, mode: str, mbs: list[int], hold: float,
                ) -> dict[str, float]:
    """CCTools' manager (its Python bindings, a subprocess) and CCTools workers."""
    env = dict(os.environ, PYTHONPATH=site,
               PATH=str(home / "bin") + os.pathsep + os.environ["PATH"])
    argv = [sys.executable, __file__, "--child", mode, json.dumps(mbs), str(hold)]
    return cct.run_program(argv, env=env,
                           start=lambda port: port and start_workers(cct.worker_argv(home),
                                                                     port))


def child(mode: str, mbs: str, hold: str) -> None:
    """In the CCTools subprocess: run the workload, print a ``result`` line."""
    import ndcctools.work_queue as wq  # type: ignore[import-not-found]

    if not hasattr(wq, MODES[mode]):
        print("port 0", flush=True)
        time.sleep(1)  # run_program reads the port line first, the rest after starting workers
        print("result missing=1", flush=True)
        return
    r = run_workload(wq, mode, json.loads(mbs), float(hold),
                     lambda port: print("port", port, flush=True))
    print("result " + " ".join(f"{k}={v}" for k, v in r.items()), flush=True)


def row(side: str, mode: str, r: dict[str, float]) -> str:
    if r.get("missing"):
        return f"{side:8} {mode:15} {'(no such mode in this CCTools)':>40}"
    every = "yes" if r["succeeded"] == r["tasks"] else f"NO: {r['succeeded']:.0f}/{r['tasks']:.0f}"
    return (f"{side:8} {mode:15} {r['memory']:>9.0f} {r['cores']:>6.2f} {r['exhausted']:>8.0f} "
            f"{r['wall']:>7.1f} {every:>9}")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=48)
    p.add_argument("--hold", type=float, default=0.3, help="seconds a task holds its memory")
    p.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    args = p.parse_args()
    # Tasks run the `python3` on PATH: make it this one.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    home = cct.cctools_home()
    site = cct.python_bindings(home) if home else None
    mbs = sizes(args.tasks)
    small = [m for m in mbs if m < 1000]
    print(f"{args.tasks} tasks: {len(small)} of ~200 MB, {len(mbs) - len(small)} of ~1,500 MB "
          f"(mean need {sum(mbs) / len(mbs):.0f} MB), held {args.hold} s; {WORKERS} workers "
          f"of {CORES} cores, {MEMORY} MB", flush=True)
    print(f"{'manager':8} {'mode':15} {'mean MB':>9} {'cores':>6} {'retries':>8} {'wall s':>7} "
          f"{'all ok':>9}", flush=True)
    for mode in args.modes:
        print(row("ours", mode, run_ours(mode, mbs, args.hold)), flush=True)
        if home and site:
            print(row("CCTools", mode, run_cctools(home, site, mode, mbs, args.hold)),
                  flush=True)
    if home is None:
        cct.skip_note()
    elif site is None:
        print(f"CCTools manager skipped: no Python bindings (ndcctools) under {home}/lib")
    return 0


if __name__ == "__main__":
    sys.exit(main())
