#!/usr/bin/env python3
"""Coffea 0.7's WorkQueueExecutor, unmodified, runs a processor on this package.

The example writes two small ROOT files (a flat ``Events`` tree with ``pt`` and ``eta``
branches) with uproot, and runs a processor that fills a histogram and a few sums through
``processor.Runner(executor=processor.WorkQueueExecutor(...))``.  Coffea's executor
``import work_queue``s (this package), subclasses ``WorkQueue`` and ``Task`` and runs
preprocessing, processing and accumulation tasks; the workers are this package's
``work_queue_worker`` processes, started once the manager listens.  The result is checked
against numpy on the same data.  It needs ``pip install 'coffea==0.7.31'`` in the Python
that runs it (the workers run ``python`` found on PATH, which the example points at this
interpreter).

    python examples/coffea_workqueue.py [--workers 2] [--events 20000] [--monitor measure]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

import awkward as ak
import hist
import numpy as np
import uproot
from coffea import processor
from coffea.nanoevents import BaseSchema

BINS = (20, 0.0, 100.0)


class PtProcessor(processor.ProcessorABC):
    """Per dataset: number of events, sum of pt, and a pt histogram of the central ones.

    ``hog_kb`` > 0 makes each chunk hold that many KB per event for half a second, so that
    large chunks break a memory limit (coffea then splits them: ``split_on_exhaustion``).
    """

    def __init__(self, hog_kb: int = 0, fail_dataset: str | None = None) -> None:
        self.hog_kb = hog_kb
        self.fail_dataset = fail_dataset

    def process(self, events):
        if self.hog_kb > 0:
            hog = np.ones(len(events) * self.hog_kb * 128)  # 8-byte floats: hog_kb KB/event
            time.sleep(0.5)
            del hog
        dataset = events.metadata["dataset"]
        if dataset == self.fail_dataset:
            raise RuntimeError(f"failing on purpose for dataset {dataset}")
        central = events[abs(events.eta) < 1.5]
        h = hist.Hist.new.Reg(*BINS, name="pt").Double()
        h.fill(pt=central.pt)
        return {dataset: {"entries": len(events), "sum_pt": float(ak.sum(events.pt)),
                          "pt": h}}

    def postprocess(self, accumulator):
        return accumulator


def make_inputs(directory: str, events: int, seed: int = 1) -> dict[str, list[str]]:
    """Write one ROOT file per dataset; returns the fileset (names relative to ``directory``)."""
    rng = np.random.default_rng(seed)
    fileset = {}
    for i, dataset in enumerate(("signal", "background")):
        name = f"{dataset}.root"
        n = events + 1000 * i
        with uproot.recreate(os.path.join(directory, name)) as f:
            f["Events"] = {"pt": rng.exponential(20.0 + 10 * i, n).astype(np.float32),
                           "eta": rng.uniform(-2.5, 2.5, n).astype(np.float32)}
        fileset[dataset] = [name]
    return fileset


def expected(directory: str, fileset: dict[str, list[str]]) -> dict[str, dict]:
    """The same numbers computed with numpy, locally."""
    out = {}
    for dataset, names in fileset.items():
        with uproot.open(os.path.join(directory, names[0])) as f:
            arrays = f["Events"].arrays(["pt", "eta"], library="np")
        central = arrays["pt"][np.abs(arrays["eta"]) < 1.5]
        counts, _ = np.histogram(central, bins=BINS[0], range=BINS[1:])
        out[dataset] = {"entries": len(arrays["pt"]), "sum_pt": float(arrays["pt"].sum()),
                        "counts": counts}
    return out


class LocalWorkers:
    """``work_queue_worker`` processes started against the queue coffea made (custom_init)."""

    def __init__(self, count: int, directory: str, options: list[str],
                 worker: str | None = None) -> None:
        self.count = count
        self.worker = worker
        self.directory = directory
        self.options = options  # e.g. --password FILE, --ssl
        self.procs: list[subprocess.Popen] = []
        self.port: int | None = None

    def __call__(self, queue) -> None:
        # Called before each run on the queue (preprocessing, then processing): start once.
        if self.port == queue.port:
            return
        deadline = time.time() + 30
        self.port = queue.port
        bindir = os.path.dirname(sys.executable)
        if self.worker:
            worker = [self.worker]
        elif os.path.exists(os.path.join(bindir, "work_queue_worker")):
            worker = [os.path.join(bindir, "work_queue_worker")]
        else:  # this package's worker, run by this interpreter
            worker = [sys.executable, "-m", "work_queue.cli.worker"]
        env = dict(os.environ)
        # coffea's tasks run "python fn_wrapper ...": make that this interpreter.
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        for i in range(self.count):
            log = open(os.path.join(self.directory, f"worker{i}.log"), "w")
            self.procs.append(subprocess.Popen(
                [*worker, "--cores", "1", "--timeout", "60", *self.options, "localhost",
                 str(queue.port)],
                env=env, stdout=log, stderr=subprocess.STDOUT))
            log.close()
        # Let them all connect before coffea submits (wait on an empty queue only serves
        # connections), so the first tasks spread over all workers.
        while queue.stats.workers_connected < self.count and time.time() < deadline:
            queue.wait(0.2)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--events", type=int, default=20000,
                        help="events in the first file (the second has 1000 more)")
    parser.add_argument("--chunksize", type=int, default=5000)
    parser.add_argument("--monitor", choices=("off", "measure", "watchdog"), default="off",
                        help="coffea's resource_monitor (default off)")
    parser.add_argument("--resources-mode", choices=("fixed", "max-seen", "max-throughput"),
                        help="coffea's resources_mode (default: fixed with --monitor off, "
                        "else max-seen; coffea turns monitoring on for any mode but fixed)")
    parser.add_argument("--memory", type=int, default=500, help="MB per task")
    parser.add_argument("--hog-kb", type=int, default=0,
                        help="KB of memory per event each chunk holds (to show splitting)")
    parser.add_argument("--password", action="store_true",
                        help="workers authenticate with a password file")
    parser.add_argument("--ssl", action="store_true", help="TLS between manager and workers")
    parser.add_argument("--fast-terminate", type=int, default=None, metavar="MULTIPLIER",
                        help="coffea's fast_terminate_workers (fast abort per category)")
    parser.add_argument("--fail-dataset", choices=("signal", "background"),
                        help="the processor raises on this dataset: coffea retries its chunks, "
                        "then cancels the processing tasks and keeps what finished")
    parser.add_argument("--dynamic-chunksize", type=float, metavar="SECONDS",
                        help="coffea's dynamic_chunksize: aim at chunks of this wall time")
    parser.add_argument("--verbose", action="store_true", help="coffea's verbose task reports")
    parser.add_argument("--worker", help="worker program (default: work_queue_worker next to "
                        "this Python, else python -m work_queue.cli.worker)")
    parser.add_argument("--dir", help="working directory (default: a fresh temporary one)")
    parser.add_argument("--port", type=int, nargs=2, metavar=("LOW", "HIGH"),
                        help="manager port range (default: a random range of 1000 ports)")
    args = parser.parse_args()

    directory = os.path.abspath(args.dir or tempfile.mkdtemp(prefix="wq-coffea-"))
    os.makedirs(directory, exist_ok=True)
    os.chdir(directory)  # relative file names: coffea sends the ROOT files as task inputs
    fileset = make_inputs(directory, args.events)
    if args.port:
        low, high = args.port
    else:
        # Coffea turns port 0 into 9123; a range lets the manager pick any free port in it.
        low = random.randrange(20000, 30000)
        high = low + 999
    options = ["--ssl"] if args.ssl else []
    password_file = None
    if args.password:
        password_file = os.path.join(directory, "password.txt")
        with open(password_file, "w") as f:
            f.write(f"coffea-{random.getrandbits(64):x}\n")
        options += ["--password", password_file]
    workers = LocalWorkers(args.workers, directory, options, args.worker)
    executor = processor.WorkQueueExecutor(
        port=(low, high),
        cores=None if args.hog_kb else 1,  # cores=1 would mean the whole 1-core worker
        memory=args.memory,
        disk=500,
        resources_mode=args.resources_mode or ("fixed" if args.monitor == "off" else "max-seen"),
        resource_monitor=args.monitor,
        treereduction=2,
        password_file=password_file,
        ssl=args.ssl,
        fast_terminate_workers=args.fast_terminate,
        status=False,
        verbose=args.verbose,
        x509_proxy=False,
        filepath=directory,
        transactions_log=os.path.join(directory, "transactions.log"),
        custom_init=workers,
    )
    dynamic = {"wall_time": args.dynamic_chunksize, "memory": None} \
        if args.dynamic_chunksize else None
    runner = processor.Runner(executor=executor, schema=BaseSchema, chunksize=args.chunksize,
                              dynamic_chunksize=dynamic)
    start = time.time()
    try:
        out = runner(fileset, "Events",
                     processor_instance=PtProcessor(args.hog_kb, args.fail_dataset))
    finally:
        workers.stop()
    elapsed = time.time() - start

    want = expected(directory, fileset)
    ok = True
    for dataset, values in want.items():
        if dataset == args.fail_dataset:
            absent = dataset not in out
            ok &= absent
            print(f"{dataset}: {'no results, as expected' if absent else 'UNEXPECTED results'}")
            continue
        got = out.get(dataset)
        if got is None:
            ok = False
            print(f"{dataset}: MISSING")
            continue
        counts = got["pt"].values()
        same = (got["entries"] == values["entries"]
                and np.isclose(got["sum_pt"], values["sum_pt"], rtol=1e-6)
                and np.array_equal(counts, values["counts"]))
        ok &= bool(same)
        print(f"{dataset}: entries {got['entries']} sum_pt {got['sum_pt']:.1f} "
              f"central {int(counts.sum())} {'ok' if same else 'WRONG'}")
        if not same:
            print(f"  expected entries {values['entries']} sum_pt {values['sum_pt']:.1f} "
                  f"counts {values['counts'].tolist()} got {counts.tolist()}")
    print(f"{'all results match' if ok else 'MISMATCH'} ({elapsed:.1f} s, workdir {directory})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
