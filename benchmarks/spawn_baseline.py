#!/usr/bin/env python3
"""The floor under every ``true`` figure: a bare loop of ``subprocess.run(["true"])``.

    python benchmarks/spawn_baseline.py [--runs 2000] [--repeat 2]

Prints runs/s of the loop on one core, and of ``os.posix_spawn`` + ``waitpid`` (how our worker
starts a plain command).  No manager and no worker take part, so there is nothing to compare
with CCTools here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    true = shutil.which("true") or "/bin/true"
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for _ in range(args.runs):
            subprocess.run(["true"])
        run_rate = args.runs / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(args.runs):
            os.waitpid(os.posix_spawn(true, ["true"], os.environ), 0)
        spawn_rate = args.runs / (time.perf_counter() - t0)
        print(f"subprocess.run(['true']) loop: {run_rate:.0f}/s; posix_spawn + waitpid: "
              f"{spawn_rate:.0f}/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
