"""``work_queue_factory -T slurm`` with the real one-node Slurm (``tests/slurm_setup.sh``)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

import work_queue as wq

from .factory_support import (
    FactoryProc,
    needs_catalog_client,
    scancel,
    serve_until,
    slurm_ready,
)


def jobs_in(directory) -> dict[str, str]:
    """Slurm jobs (id -> state) whose working directory is ``directory``."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %T %Z"], capture_output=True, text=True,
                         timeout=30).stdout
    jobs = {}
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and os.path.normpath(parts[2]) == str(directory):
            jobs[parts[0]] = parts[1]
    return jobs


@pytest.fixture
def q(tmp_path, monkeypatch):
    slurm_ready()
    needs_catalog_client()
    monkeypatch.chdir(tmp_path)
    queue = wq.WorkQueue(port=0)
    yield queue
    queue.close()
    scancel(list(jobs_in(tmp_path / "scratch")))


def slurm_factory(q, tmp_path, *args):
    return FactoryProc(["-T", "slurm", "--scratch-dir", str(tmp_path / "scratch"), "--cores", "1",
                        "--memory", "500", "--disk", "500", *args, "localhost", str(q.port)],
                       cwd=tmp_path)


def test_workers_from_sbatch_run_tasks_and_are_scancelled(q, tmp_path):
    for i in range(4):
        q.submit(wq.Task(f"sleep 1; echo task {i}"))
    f = slurm_factory(q, tmp_path, "--min-workers", "0", "--max-workers", "2")
    done: list = []
    try:
        assert serve_until(q, lambda: len(done) == 4, 60, done), (f.out, f.err)
        assert sorted(t.output for t in done) == [f"task {i}\n" for i in range(4)]
        assert q.stats.workers_joined == 2
        running = jobs_in(tmp_path / "scratch")
        assert len(running) == 2 and set(running.values()) == {"RUNNING"}
        assert f.stop() == 0
    finally:
        f.kill()
    assert "removing 2 workers..." in f.out
    deadline = time.time() + 20
    while jobs_in(tmp_path / "scratch") and time.time() < deadline:
        time.sleep(0.2)
    assert jobs_in(tmp_path / "scratch") == {}
    assert serve_until(q, lambda: q.stats.workers_connected == 0, 15)


def test_pending_jobs_no_longer_needed_are_cancelled(q, tmp_path):
    """Jobs held in the queue (--begin in an hour) are scancel'd when max-workers drops."""
    conf = tmp_path / "factory.json"
    conf.write_text(json.dumps({"min-workers": 3, "max-workers": 3}))
    f = slurm_factory(q, tmp_path, "-C", str(conf), "-B", "--begin=now+3600")
    try:
        assert serve_until(q, lambda: len(jobs_in(tmp_path / "scratch")) == 3, 30), f.err
        assert set(jobs_in(tmp_path / "scratch").values()) == {"PENDING"}
        conf.write_text(json.dumps({"min-workers": 1, "max-workers": 1}))
        assert serve_until(q, lambda: len(jobs_in(tmp_path / "scratch")) == 1, 20), f.out
        assert serve_until(q, lambda: f.stats()[-1][:2] == (1, 1), 10), f.out
        assert f.stop(timeout=30) == 0
    finally:
        f.kill()
    deadline = time.time() + 20
    while jobs_in(tmp_path / "scratch") and time.time() < deadline:
        time.sleep(0.2)
    assert jobs_in(tmp_path / "scratch") == {}
