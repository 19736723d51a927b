"""What the bucketing allocation modes cost per task completion as the points grow.

Every successful task adds a point to each of its category's bucketing states (cores, memory,
disk, gpus) and CCTools then recomputes the buckets from all points.  This prints, for each
mode, the microseconds a completion costs (``BucketingManager.add_report`` of a successful
task: cores near 1, a bimodal memory, a small disk, no gpus) with 1,000, 10,000 and 100,000
points already recorded:

* ``old``: the first implementation (commit ``OLD_COMMIT``, loaded from git): sorted insertion
  and a recomputation from every point at every completion, as CCTools does;
* ``every``: today's algorithms, still recomputing at every completion;
* ``new``: today's state as the manager uses it (recomputing on a growing epoch), amortized
  over enough completions to include its recomputations.

A benchmark, not a test::

    .venv/bin/python benchmarks/bucketing_update.py [--points 1000 10000 100000] [--distinct]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from work_queue.core import bucketing as bk

OLD_COMMIT = "6f92a00"
ROOT = Path(__file__).resolve().parent.parent


def load_old() -> ModuleType | None:
    """The bucketing module as first committed, or None outside a git checkout."""
    try:
        text = subprocess.run(["git", "-C", str(ROOT), "show",
                               f"{OLD_COMMIT}:src/work_queue/core/bucketing.py"],
                              capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "bucketing_old.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("bucketing_old", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bucketing_old"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


DISTINCT = False  # --distinct: every measured value differs (the worst case)


def reports(seed: int) -> Any:
    """Endless measured resources: cores 0.8-1.0, memory 2/3 near 200 MB and 1/3 near 1,500
    MB, disk 1-20 MB, gpus 0; in whole MB and hundredths of a core as measured, or with
    ``DISTINCT`` as unrounded floats."""
    rnd = random.Random(seed)
    while True:
        memory = rnd.gauss(200, 15) if rnd.random() < 2 / 3 else rnd.gauss(1500, 60)
        cores, disk = rnd.uniform(0.8, 1.0), rnd.uniform(1, 20)
        if not DISTINCT:
            memory, cores, disk = float(round(memory)), round(cores, 2), float(round(disk))
        yield {"cores": cores, "memory": memory, "disk": disk, "gpus": 0.0}


def prefilled(module: ModuleType, mode: str, n: int, **params: Any) -> Any:
    """A bucketing manager whose states hold ``n`` points each, filled without recomputing
    (then computed once), and with ``params`` set on every state."""
    manager = module.BucketingManager(mode)
    gen = reports(1)
    rows = [next(gen) for _ in range(n)]
    for name, state in manager.states.items():
        for key, value in params.items():
            setattr(state, key, value)
        pts = sorted(((r[name], float(i + 1)) for i, r in enumerate(rows)),
                     key=lambda p: (p[0], -p[1]))
        if hasattr(state, "_vals"):  # the old state: two sorted lists
            state.points = pts
            state._vals = [p[0] for p in pts]
        else:  # today's state: runs of equal values
            for value, sig in sorted(pts, key=lambda p: p[1]):
                if value not in state._sigs:
                    state._sigs[value], state._sums[value] = [], 0.0
                state._sigs[value].append(sig)
                state._sums[value] += sig
            state._keys = sorted(state._sigs)
        state.num_points, state.next_sig, state.in_sampling_phase = n, n + 1, False
        state.update_buckets()
    return manager


def per_completion(manager: Any, count: int) -> float:
    """Microseconds per successful task's report over ``count`` completions."""
    gen = reports(2)
    rows = [next(gen) for _ in range(count)]
    start = time.perf_counter()
    for task_id, row in enumerate(rows):
        manager.add_report(task_id, row, True)
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--distinct", action="store_true",
                        help="every value distinct (unrounded floats): the worst case")
    parser.add_argument("--no-old", action="store_true", help="skip the old implementation")
    args = parser.parse_args()
    global DISTINCT
    DISTINCT = args.distinct
    old = None if args.no_old else load_old()
    if old is None and not args.no_old:
        print(f"old skipped: commit {OLD_COMMIT} not found (not a git checkout?)")
    print(f"{'mode':<15} {'points':>8} {'old us':>10} {'every us':>10} {'new us':>8}  "
          "computations of memory's buckets")
    for mode in bk.BUCKETING_MODES:
        for n in args.points:
            slow = max(2, 20_000 // n)  # every-completion runs: a few recomputations
            old_us = per_completion(prefilled(old, mode, n), slow) if old else float("nan")
            every = per_completion(prefilled(bk, mode, n, eager_points=10**12), slow)
            manager = prefilled(bk, mode, n)
            memory = manager.states["memory"]
            before = memory.updates
            window = max(1000, n // 4)  # several growth epochs
            new_us = per_completion(manager, window)
            print(f"{mode:<15} {n:>8} {old_us:>10.1f} {every:>10.1f} {new_us:>8.2f} "
                  f"{memory.updates - before:>4} in {window}")


if __name__ == "__main__":
    main()
