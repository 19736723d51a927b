"""Helpers for the factory tests: recording stand-ins for batch commands, and Slurm.

The recorders are only used for batch systems that have no package on this machine (HTCondor,
UGE/SGE, PBS, Torque): each writes what it was given (its arguments, working directory,
``BATCH_JOB_COMMAND``, standard input and the job files beside it) as one JSON line and prints
the acknowledgement its real counterpart prints. Slurm tests use the real Slurm.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

HERE = Path(__file__).resolve().parent
VENV_BIN = os.path.dirname(sys.executable)

REPLIES = {
    "condor_submit": "Submitting job(s).\n1 job(s) submitted to cluster {n}.",
    "sbatch": "Submitted batch job {n}",
    "qsub": "Your job {n} (\"worker.sh\") has been submitted",
}

RECORDER = r'''#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
log = os.environ["FAKE_BATCH_LOG"]
files = {{}}
for n in sorted(os.listdir(".")):
    if n.endswith((".wrapper", ".submit", ".sh", "condor_submit_file")):
        with open(n) as f:
            files[n] = f.read()
try:
    stdin = sys.stdin.read()
except OSError:
    stdin = ""
with open(log, "a") as f:
    n = sum(1 for _ in open(log)) if os.path.exists(log) else 0
    f.write(json.dumps({{"argv": [name] + sys.argv[1:], "cwd": os.getcwd(),
                        "BATCH_JOB_COMMAND": os.environ.get("BATCH_JOB_COMMAND"),
                        "stdin": stdin, "files": files}}) + "\n")
if os.environ.get("FAKE_BATCH_REFUSE") and name in ("condor_submit", "sbatch", "qsub"):
    print("error: submission refused by policy: no allocation left", file=sys.stderr)
    sys.exit(1)
reply = {replies!r}.get(name)
if reply:
    print(reply.format(n=1000 + n))
'''


def make_recorders(bindir: Path, names: list[str]) -> None:
    """Write recording stand-ins for ``names`` into ``bindir``."""
    bindir.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = bindir / name
        path.write_text(RECORDER.format(python=sys.executable, replies=REPLIES))
        path.chmod(0o755)


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def env_with_path(*dirs: str | Path, **extra: str) -> dict[str, str]:
    """The environment with ``dirs`` then this virtualenv's bin first in PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([*map(str, dirs), VENV_BIN, env.get("PATH", "")])
    env.update(extra)
    return env


_SLURM: dict[str, str | bool] = {}


def slurm_ready() -> None:
    """Set up the one-node Slurm cluster once per session, or skip saying why not."""
    if "ok" not in _SLURM:
        proc = subprocess.run(["bash", str(HERE / "slurm_setup.sh")], capture_output=True,
                              text=True, timeout=300)
        said = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
        _SLURM["ok"] = proc.returncode == 0
        _SLURM["why"] = said[-1] if said else f"slurm_setup.sh exited {proc.returncode}"
    if not _SLURM["ok"]:
        pytest.skip(f"Slurm is not available: {_SLURM['why']}")


def slurm_jobs(name: str | None = None) -> list[str]:
    """Ids of the jobs Slurm still has (optionally only those with this job name)."""
    cmd = ["squeue", "-h", "-o", "%i %j"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    ids = []
    for line in out.splitlines():
        job_id, _, job_name = line.partition(" ")
        if name is None or job_name == name:
            ids.append(job_id)
    return ids


def scancel(ids: list[str]) -> None:
    if ids and shutil.which("scancel"):
        subprocess.run(["scancel", *ids], capture_output=True, timeout=30)


STATS = re.compile(r"\|submitted: (\d+) \|needed: (\d+) \|waiting connection: (\d+) "
                   r"\|requested: (\d+)")


class FactoryProc:
    """A ``work_queue_factory`` process whose output is collected as it comes."""

    def __init__(self, args: list[str], cwd: str | Path, env: dict[str, str] | None = None,
                 period: float = 0.3) -> None:
        env = dict(env or env_with_path())
        env.setdefault("WORK_QUEUE_FACTORY_PERIOD", str(period))
        # WQ_TEST_FACTORY: another factory command to test (e.g. CCTools' work_queue_factory)
        exe = (os.environ["WQ_TEST_FACTORY"].split() if os.environ.get("WQ_TEST_FACTORY")
               else [os.path.join(VENV_BIN, "work_queue_factory")])
        self.proc = subprocess.Popen([*exe, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()
        self.worker_pids: set[int] = set()

    @staticmethod
    def _pump(stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def stats(self) -> list[tuple[int, int, int, int]]:
        """(submitted, needed, waiting connection, requested) of each cycle so far."""
        return [tuple(map(int, m.groups())) for line in list(self.out)  # type: ignore[misc]
                if (m := STATS.search(line))]

    def workers(self) -> list[psutil.Process]:
        """This factory's local worker processes (remembered, to check they are gone later)."""
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        found = []
        for p in kids:
            try:
                if p.name() not in ("sh", "dash", "bash") and any(
                        os.path.basename(part) == "work_queue_worker" for part in p.cmdline()):
                    found.append(p)
            except psutil.Error:
                pass
        self.worker_pids.update(p.pid for p in found)
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.worker_pids:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass

    def alive_workers(self) -> list[int]:
        out = []
        for pid in self.worker_pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    out.append(pid)
            except psutil.NoSuchProcess:
                pass
        return out


def serve_until(q: Any, cond: Any, timeout: float, tasks: list[Any] | None = None) -> bool:
    """Let the manager serve (``q.wait``) until ``cond()`` holds; collect finished tasks."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        t = q.wait(0.1)
        if t is not None and tasks is not None:
            tasks.append(t)
        if cond():
            return True
    return False


def needs_catalog_client() -> None:
    """The factory reads managers with ``work_queue.catalog.client``; skip until it exists."""
    if os.environ.get("WQ_TEST_FACTORY"):
        return   # testing another factory command
    pytest.importorskip("work_queue.catalog.client",
                        reason="work_queue.catalog.client (query_manager) is not in this tree yet")
