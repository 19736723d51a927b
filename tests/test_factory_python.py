"""``work_queue.Factory`` (spec 4.8) as in the manual: a context manager around
``work_queue_factory``, whose ``max_workers`` can change while it runs."""

from __future__ import annotations

import json
import os

import psutil
import pytest

import ndcctools.work_queue as nd_wq
import work_queue

from .factory_support import VENV_BIN, needs_catalog_client, serve_until


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.setenv("WORK_QUEUE_FACTORY_PERIOD", "0.3")
    return tmp_path


def test_exported_from_both_packages():
    assert nd_wq.Factory is work_queue.Factory


def test_manual_example_runs_and_max_workers_changes_while_running(env):
    needs_catalog_client()
    q = work_queue.WorkQueue(port=0)
    try:
        for i in range(6):
            q.submit(work_queue.Task(f"sleep 0.5; echo {i}"))
        workers = work_queue.Factory("local", manager=q)
        workers.cores = 1
        workers.memory = 300
        workers.disk = 300
        workers.min_workers = 0
        workers.max_workers = 1
        done = []
        with workers:
            assert serve_until(q, lambda: q.stats.workers_connected == 1, 15, done)
            config = json.load(open(workers._config_file))
            assert config == {"cores": 1, "memory": 300, "disk": 300, "min-workers": 0,
                              "max-workers": 1}
            workers.max_workers = 3                 # rewrites the config; the factory follows
            assert json.load(open(workers._config_file))["max-workers"] == 3
            assert serve_until(q, lambda: q.stats.workers_connected == 3, 15, done)
            factory_pid = workers._factory_proc.pid
            kids = psutil.Process(factory_pid).children(recursive=True)
            while not q.empty():
                t = q.wait(5)
                if t:
                    done.append(t)
            with pytest.raises(AttributeError, match="cannot be changed once the factory is "
                                                     "running"):
                workers.batch_type = "slurm"
        assert sorted(t.output for t in done) == [f"{i}\n" for i in range(6)]
        assert not psutil.pid_exists(factory_pid) or \
            psutil.Process(factory_pid).status() == psutil.STATUS_ZOMBIE
        alive = [p for p in kids if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert alive == []
        assert serve_until(q, lambda: q.stats.workers_connected == 0, 10)
    finally:
        q.close()


def test_constructor_forms_and_attribute_errors(env):
    workers = work_queue.Factory("condor", "myproject")       # the manual's form
    assert workers.manager_name == "myproject"
    assert workers.batch_type == "condor"
    assert workers.worker_binary == os.path.join(VENV_BIN, "work_queue_worker")
    workers.cores = 4
    workers.max_workers = 20
    assert (workers.cores, workers.max_workers) == (4, 20)
    with pytest.raises(KeyError, match="memory is a valid factory attribute"):
        workers.memory  # noqa: B018
    with pytest.raises(AttributeError, match="bogus is not a supported option"):
        workers.bogus = 1
    f = work_queue.Factory("slurm", manager_host_port="mgr.example.org:9123")
    f._config_file = "cfg.json"
    cmd = f._construct_command_line()
    assert cmd[1:4] == ["--parent-death", "--config-file", "cfg.json"]
    assert "--batch-type=slurm" in cmd and cmd[-2:] == ["mgr.example.org", "9123"]
    f._config_file = None
    with pytest.raises(ValueError, match="HOST:PORT"):
        work_queue.Factory("local", manager_host_port="nonsense")
    with pytest.raises(ValueError, match="should be specified"):
        work_queue.Factory("local")
    with pytest.raises(OSError, match="Command not found"):
        work_queue.Factory("local", manager_name="x", worker_binary=str(env / "nope"))


def test_start_reports_a_factory_that_cannot_run(env):
    workers = work_queue.Factory("nope", manager_host_port="localhost:1")
    with pytest.raises(RuntimeError, match="unknown batch type 'nope'"):
        workers.start()
    with pytest.raises(RuntimeError, match="not yet started"):
        workers.stop()
