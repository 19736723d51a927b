"""Two commits, the same benchmarks, interleaved: is the new one as fast as the old?

    python benchmarks/compare_commits.py OLD_REV NEW_REV [--pairs 4] [--only throughput-true ...]

Each commit is checked out into a temporary git worktree and every benchmark runs with that
tree's ``src`` first on ``PYTHONPATH`` (its workers too: they inherit the environment), so each
side runs its own manager and worker. The runs alternate old, new, new, old, ... so that the
drift of a shared, noisy machine falls on both sides alike. Printed per benchmark: the median of
each side and new/old, oriented so that a ratio under 1.00 means the new commit is slower.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


@dataclass(frozen=True)
class Bench:
    """One figure of one benchmark script: how to run it and how to read the figure."""

    name: str
    args: list[str]
    read: Callable[[str], float]
    higher_is_better: bool = True
    unit: str = "tasks/s"


def _row_value(prefix: str, column: int) -> Callable[[str], float]:
    """The ``column``-th word of the first output line starting with ``prefix``."""
    def read(out: str) -> float:
        for line in out.splitlines():
            if line.strip().startswith(prefix):
                return float(line.split()[column])
        raise ValueError(f"no line starting with {prefix!r} in:\n{out}")
    return read


def _regex(pattern: str) -> Callable[[str], float]:
    def read(out: str) -> float:
        found = re.search(pattern, out)
        if not found:
            raise ValueError(f"{pattern!r} not in:\n{out}")
        return float(found.group(1))
    return read


BENCHES = [
    Bench("throughput-true", ["throughput.py", "--tasks", "2000", "--variant", "true"],
          _row_value("true", 5)),
    Bench("throughput-files", ["throughput.py", "--tasks", "1000", "--variant", "files"],
          _row_value("files", 5)),
    Bench("latency", ["latency.py", "--tasks", "300"], _row_value("ours/ours", 1),
          higher_is_better=False, unit="ms median"),
    Bench("python-tasks", ["python_tasks.py", "--tasks", "1000", "--baseline-tasks", "10"],
          _row_value("ours/ours, warm", 4)),
    Bench("many-workers", ["many_workers.py", "--workers", "200", "--tasks", "4000"],
          _regex(r"tasks: (\d+) tasks/s")),
    Bench("queue-size-submit", ["queue_size.py", "--tasks", "100000"], _row_value("ours", 4),
          higher_is_better=False, unit="us/submit"),
]


def _worktree(rev: str, into: str) -> str:
    subprocess.run(["git", "-C", REPO, "worktree", "add", "-q", "--detach", into, rev],
                   check=True)
    return into


def _run(tree: str, bench: Bench) -> float:
    env = dict(os.environ, PYTHONPATH=os.path.join(tree, "src"))
    env.pop("CCTOOLS_HOME", None)
    out = subprocess.run([sys.executable, *bench.args], cwd=os.path.join(tree, "benchmarks"),
                         env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{bench.name} failed in {tree}:\n{out.stdout}\n{out.stderr}")
    return bench.read(out.stdout)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES])
    a = p.parse_args()
    benches = [b for b in BENCHES if not a.only or b.name in a.only]
    with tempfile.TemporaryDirectory(prefix="wq-compare-") as tmp:
        trees = {"old": _worktree(a.old, os.path.join(tmp, "old")),
                 "new": _worktree(a.new, os.path.join(tmp, "new"))}
        try:
            print(f"{'benchmark':18} {'unit':10} {'old':>9} {'new':>9} {'new/old':>8}  runs")
            for bench in benches:
                figures: dict[str, list[float]] = {"old": [], "new": []}
                for i in range(a.pairs):
                    for side in (("old", "new") if i % 2 == 0 else ("new", "old")):
                        figures[side].append(_run(trees[side], bench))
                old, new = (statistics.median(figures[s]) for s in ("old", "new"))
                ratio = new / old if bench.higher_is_better else old / new
                print(f"{bench.name:18} {bench.unit:10} {old:9.2f} {new:9.2f} {ratio:8.3f}  "
                      f"old {figures['old']} new {figures['new']}", flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", tree],
                               check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
