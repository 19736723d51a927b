#!/usr/bin/env python3
"""Where the manager's time goes, by phase, for the ``throughput.py`` workloads.

    python benchmarks/profile_manager.py --variant true --tasks 20000 [--pstats out.pstats]
    py-spy record --idle --format raw -o out.txt -- \\
        python benchmarks/profile_manager.py --variant true --tasks 20000 --no-cprofile
    python benchmarks/profile_manager.py --collapsed out.txt

Runs N tasks on K local one-core workers in this process (as throughput.py does) under cProfile
and prints the manager process's time split into phases: submit, dispatch decision,
encoding/sending, receiving/parsing, retrieval, bookkeeping, polling, and the benchmark's own
code (application).  A function named in PHASES counts its own time (tottime) in its phase; any
other function (a builtin such as ``socket.send``, a helper such as ``Resources.__init__``)
inherits the phases of its callers in proportion to the time each caller spent in it.  cProfile
slows Python calls (roughly 1.5-2x), so shares are more telling than absolute times.

``--collapsed`` reads a py-spy ``--format raw`` file instead (one ``frame;frame;... count`` line
per stack) and charges every sample of the main thread to the innermost frame PHASES names;
py-spy samples the process from outside without slowing it (``--idle`` keeps the samples spent
waiting in ``epoll``, ``--native`` shows the C frames, such as ``send``).  Neither CCTools'
manager nor the workers are profiled.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import sys
from collections import defaultdict

import cctools_driver as cct
import throughput

# (path fragment, function name or "*") -> phase; the first match wins.
PHASES: list[tuple[str, str, str]] = [
    ("", "<module>", "imports"),
    ("selectors.py", "select", "polling"),
    ("~", "<method 'poll' of 'select.epoll' objects>", "polling"),
    ("throughput.py", "*", "application"),  # py-spy shows benchmarks' files by name only
    ("profile_manager.py", "main", "application"),
    ("cctools_driver.py", "*", "application"),
    ("manager/queue.py", "submit", "submit"),
    ("core/manager_state.py", "submit", "submit"),
    ("manager/task.py", "*", "submit"),
    ("manager/files.py", "*", "submit"),
    ("core/manager_state.py", "next_dispatch", "dispatch decision"),
    ("core/manager_state.py", "_place", "dispatch decision"),
    ("core/manager_state.py", "box_for", "dispatch decision"),
    ("core/manager_state.py", "_signature", "dispatch decision"),
    ("core/manager_state.py", "_saturated", "dispatch decision"),
    ("core/manager_state.py", "limits_of", "dispatch decision"),
    ("core/scheduling.py", "worker_can_take", "dispatch decision"),
    ("core/scheduling.py", "choose_worker", "dispatch decision"),
    ("core/scheduling.py", "scan", "dispatch decision"),
    ("core/scheduling.py", "restore", "dispatch decision"),
    ("core/scheduling.py", "prefetch_slack", "dispatch decision"),
    ("core/categories.py", "*", "dispatch decision"),
    ("manager/queue.py", "_dispatch_all", "dispatch decision"),
    ("manager/queue.py", "_send_task", "encoding/sending"),
    ("manager/queue.py", "_task_block", "encoding/sending"),
    ("manager/queue.py", "_monitor_files", "encoding/sending"),
    ("manager/queue.py", "_flush_all", "encoding/sending"),
    ("manager/transfer.py", "*", "encoding/sending"),
    ("manager/connection.py", "write", "encoding/sending"),
    ("manager/connection.py", "flush", "encoding/sending"),
    ("manager/connection.py", "send_file", "encoding/sending"),
    ("manager/connection.py", "receive", "receiving/parsing"),
    ("manager/queue.py", "_process", "receiving/parsing"),
    ("manager/queue.py", "_on_message", "receiving/parsing"),
    ("manager/queue.py", "_on_info", "receiving/parsing"),
    ("manager/queue.py", "_on_update", "receiving/parsing"),
    ("protocol/reader.py", "*", "receiving/parsing"),
    ("protocol/buffer.py", "*", "receiving/parsing"),
    ("protocol/messages.py", "parse*", "receiving/parsing"),
    ("manager/queue.py", "_on_result", "retrieval"),
    ("manager/queue.py", "_on_end", "retrieval"),
    ("manager/queue.py", "_on_get_item", "retrieval"),
    ("manager/queue.py", "_on_chunk", "retrieval"),
    ("manager/queue.py", "_current_get", "retrieval"),
    ("manager/queue.py", "_task_retrieved", "retrieval"),
    ("manager/queue.py", "_kill_on_worker", "retrieval"),
    ("manager/queue.py", "_unlink_inputs", "retrieval"),
    ("manager/connection.py", "*", "retrieval"),  # MemoryOutput/FileOutput, output paths
    ("core/manager_state.py", "*", "bookkeeping"),  # commit_dispatch, retrieved, pop_returned
    ("core/stats.py", "*", "bookkeeping"),
    ("core/task_state.py", "*", "bookkeeping"),
    ("manager/logs.py", "*", "bookkeeping"),
    ("manager/monitoring.py", "*", "bookkeeping"),
    ("manager/queue.py", "*", "bookkeeping"),  # wait, _finish, _pass, _periodic, ...
]
ORDER = ["imports", "application", "submit", "dispatch decision", "encoding/sending",
         "receiving/parsing", "retrieval", "bookkeeping", "polling", "other"]


def rule_phase(path: str, func: str) -> str | None:
    path = path.replace(os.sep, "/")
    for frag, name, phase in PHASES:
        if frag not in path:
            continue
        if name == "*" or name == func or (name.endswith("*") and func.startswith(name[:-1])):
            return phase
    return None


def phases_from_pstats(stats: pstats.Stats) -> tuple[dict[str, float], float]:
    """Own time per phase (seconds), attributing unnamed functions to their callers' phases."""
    table = stats.stats  # type: ignore[attr-defined]
    memo: dict[tuple[str, int, str], dict[str, float]] = {}

    def distribution(fn: tuple[str, int, str], depth: int = 0) -> dict[str, float]:
        """Fractions of fn's time per phase."""
        if fn in memo:
            return memo[fn]
        phase = rule_phase(fn[0], fn[2])
        if phase is not None:
            memo[fn] = {phase: 1.0}
            return memo[fn]
        callers = table.get(fn, (0, 0, 0, 0, {}))[4]
        total = sum(v[3] for v in callers.values())  # cumulative time within each caller
        if depth > 40 or not callers or total <= 0:
            memo[fn] = {"other": 1.0}
            return memo[fn]
        memo[fn] = {"other": 1.0}  # cycle guard
        out: dict[str, float] = defaultdict(float)
        for caller, v in callers.items():
            for ph, frac in distribution(caller, depth + 1).items():
                out[ph] += frac * v[3] / total
        memo[fn] = dict(out)
        return memo[fn]

    per_phase: dict[str, float] = defaultdict(float)
    contributors.clear()
    for fn, (_cc, _nc, tt, _ct, _callers) in table.items():
        for ph, frac in distribution(fn).items():
            per_phase[ph] += tt * frac
            contributors[ph].append((tt * frac, pstats.func_std_string(fn)))
    return per_phase, sum(v[2] for v in table.values())


#: phase -> [(seconds, function)], filled by phases_from_pstats
contributors: dict[str, list[tuple[float, str]]] = defaultdict(list)


def print_contributors(n: int) -> None:
    """The n functions contributing most own time to each phase."""
    for ph in ORDER:
        rows = sorted(contributors.get(ph, []), reverse=True)[:n]
        if not rows or rows[0][0] <= 0:
            continue
        print(f"{ph}:")
        for secs, name in rows:
            if secs > 0:
                name = re.sub(r"^.*?/(src/|benchmarks/|lib/python3\.\d+/)", "", name)
                print(f"  {secs:8.3f}  {name}")


FRAME = re.compile(r"^(?P<func>.*?) \((?P<path>[^()]*?)(?::\d+)?\)$")


def phases_from_collapsed(path: str) -> tuple[dict[str, float], float]:
    """Samples per phase from a py-spy raw file (innermost named frame wins)."""
    per_phase: dict[str, float] = defaultdict(float)
    total = 0.0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            if "Thread._bootstrap" in stack:  # another thread (the status responder): not ours
                continue
            total += n
            phase = "other"
            for frame in reversed(stack.split(";")):
                mo = FRAME.match(frame.strip())
                if mo is None:
                    continue
                # py-spy names methods Class.method
                found = rule_phase(mo.group("path"), mo.group("func").rpartition(".")[2])
                if found is not None:
                    phase = found
                    break
            per_phase[phase] += n
    return per_phase, total


def print_phases(per_phase: dict[str, float], total: float, unit: str, tasks: int) -> None:
    busy = sum(v for k, v in per_phase.items() if k != "polling")
    print(f"{'phase':20} {unit:>10} {'% of all':>9} {'% of busy':>10}"
          + (f" {'us/task':>8}" if tasks and unit == "seconds" else ""))
    for ph in ORDER:
        v = per_phase.get(ph, 0.0)
        if not v:
            continue
        share_busy = f"{100 * v / busy:10.1f}" if ph != "polling" and busy else f"{'':>10}"
        per_task = f" {1e6 * v / tasks:8.1f}" if tasks and unit == "seconds" else ""
        shown = f"{v:10.3f}" if unit == "seconds" else f"{v:10.0f}"
        print(f"{ph:20} {shown} {100 * v / total:9.1f} {share_busy}{per_task}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="true", choices=["true", "files"])
    p.add_argument("--tasks", type=int, default=20000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--window", type=int, default=0)
    p.add_argument("--pstats", help="also write the cProfile data here (for snakeviz, pstats)")
    p.add_argument("--top", type=int, default=0, help="also list this many functions by own time")
    p.add_argument("--per-phase", type=int, default=6,
                   help="functions to list per phase (by own time charged to the phase)")
    p.add_argument("--no-cprofile", action="store_true",
                   help="just run the workload (to be sampled by py-spy)")
    p.add_argument("--collapsed", help="group a py-spy --format raw file by phase and exit")
    args = p.parse_args()
    if args.collapsed:
        per_phase, total = phases_from_collapsed(args.collapsed)
        print_phases(per_phase, total, "samples", 0)
        return 0
    worker = cct.worker_argv(None)
    if args.no_cprofile:
        r = throughput.run_ours(args.tasks, args.workers, args.variant, worker, args.window)
    else:
        prof = cProfile.Profile()
        prof.enable()
        r = throughput.run_ours(args.tasks, args.workers, args.variant, worker, args.window)
        prof.disable()
        stats = pstats.Stats(prof)
        if args.pstats:
            stats.dump_stats(args.pstats)
        per_phase, total = phases_from_pstats(stats)
        print(f"{args.variant}: {int(r['tasks'])} tasks, {r['tasks'] / r['seconds']:.0f} tasks/s "
              f"under cProfile, manager CPU {1000 * r['cpu_s'] / r['tasks']:.3f} ms/task")
        print_phases(per_phase, total, "seconds", int(r["tasks"]))
        print()
        print_contributors(args.per_phase)
        if args.top:
            print()
            stats.sort_stats("tottime").print_stats(args.top)
        return 0
    print(f"{args.variant}: {int(r['tasks'])} tasks, {r['tasks'] / r['seconds']:.0f} tasks/s, "
          f"manager CPU {1000 * r['cpu_s'] / r['tasks']:.3f} ms/task")
    return 0


if __name__ == "__main__":
    sys.exit(main())
