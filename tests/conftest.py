"""Shared fixtures: a real manager on loopback and real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

import work_queue as wq
from work_queue._testing import FakeClock
from work_queue.core.manager_state import ManagerState

#: The worker the integration tests start; set WQ_TEST_WORKER to run them against another
#: worker executable (for example a CCTools work_queue_worker, to check interoperability).
WORKER_CMD = ([os.environ["WQ_TEST_WORKER"]] if os.environ.get("WQ_TEST_WORKER")
              else [sys.executable, "-m", "work_queue.cli.worker"])


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> str:
    """Run the test inside a fresh directory (managers use relative local names)."""
    monkeypatch.chdir(tmp_path)
    return str(tmp_path)


@pytest.fixture
def queue(in_tmp) -> Iterator[wq.WorkQueue]:
    q = wq.WorkQueue(port=0)
    yield q
    q.close()


class Workers:
    """Starts ``work_queue_worker`` processes and makes sure none outlives the test."""

    def __init__(self, workdir: str) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workdir = workdir

    def start(self, port: int, *args: str, cores: int = 1, memory: int = 1000,
              disk: int = 1000, timeout: int = 30, extra_env: dict[str, str] | None = None,
              ) -> subprocess.Popen[bytes]:
        cmd = [*WORKER_CMD, "--cores", str(cores), "--memory", str(memory), "--disk", str(disk),
               "-t", str(timeout), "-b", "1", "-s", self.workdir, *args, "localhost", str(port)]
        env = dict(os.environ)
        env.update(extra_env or {})
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self.procs.append(p)
        return p

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stderr:
                p.stderr.close()


@pytest.fixture
def workers(tmp_path) -> Iterator[Workers]:
    wdir = tmp_path / "workers"
    wdir.mkdir()
    w = Workers(str(wdir))
    yield w
    w.stop_all()


def wait_all(q: wq.WorkQueue, timeout: float = 30,
             on_task: Callable[[wq.Task], None] | None = None) -> list[wq.Task]:
    """Wait for every submitted task; fail the test if they do not all come back in time."""
    done = []
    deadline = time.time() + timeout
    while not q.empty():
        assert time.time() < deadline, f"tasks still pending after {timeout} s: {q.stats}"
        t = q.wait(0.5)
        if t is not None:
            done.append(t)
            if on_task:
                on_task(t)
    return done


def wait_until(predicate: Callable[[], bool], q: wq.WorkQueue | None = None,
               timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "condition not reached in time"
        if q is not None:
            q.wait(0.05)
        else:
            time.sleep(0.05)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> Iterator[ManagerState]:
    """A pure ManagerState whose invariants are checked when the test ends."""
    s = ManagerState(clock.now, seed=1)
    yield s
    s.validate()
