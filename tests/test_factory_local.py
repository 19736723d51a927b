"""``work_queue_factory -T local HOST PORT`` against a real manager with real workers, and the
exact jobs other batch systems receive (recording stand-ins for their commands)."""

from __future__ import annotations

import json
import signal
import time

import pytest

import work_queue as wq
from work_queue.factory.batch import condor_escape

from .factory_support import (
    FactoryProc,
    env_with_path,
    make_recorders,
    needs_catalog_client,
    read_log,
    serve_until,
)


@pytest.fixture
def q(tmp_path, monkeypatch):
    needs_catalog_client()
    monkeypatch.chdir(tmp_path)
    queue = wq.WorkQueue(port=0)
    yield queue
    queue.close()


def local_factory(q, tmp_path, *args, env=None):
    return FactoryProc(["-T", "local", "--scratch-dir", str(tmp_path / "scratch"), "--cores", "1",
                        "--memory", "300", "--disk", "300", *args, "localhost", str(q.port)],
                       cwd=tmp_path, env=env)


def submit(q, n, command="sleep 30", **resources):
    for _ in range(n):
        t = wq.Task(command)
        for name, value in resources.items():
            getattr(t, f"specify_{name}")(value)
        q.submit(t)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_keeps_workers_between_min_and_max_and_cancels_all_on_signal(q, tmp_path, sig):
    submit(q, 10)
    f = local_factory(q, tmp_path, "--min-workers", "1", "--max-workers", "3",
                      "--workers-per-cycle", "2")
    try:
        assert serve_until(q, lambda: f.stats(), 10), f.err
        submitted, needed, _, requested = f.stats()[0]
        assert (submitted, needed, requested) == (0, 3, 2)   # 10 tasks, max 3, 2 per cycle
        assert serve_until(q, lambda: q.stats.workers_connected == 3, 15), (f.out, f.err)
        serve_until(q, lambda: False, 1.0)                      # a few more cycles
        assert q.stats.workers_connected == 3
        assert len(f.workers()) == 3
        assert max(s[0] for s in f.stats()) == 3
        assert f.stop(sig) == 0
        assert "removing 3 workers..." in f.out and "all workers removed." in f.out
        assert f.alive_workers() == []
        assert serve_until(q, lambda: q.stats.workers_connected == 0, 10)
    finally:
        f.kill()


@pytest.mark.parametrize("tasks, args, needed", [
    ([(8, {})], ["--tasks-per-worker", "4"], 2),
    ([(8, {})], ["--tasks-per-worker", "3"], 3),
    # 4 two-core tasks on two-core workers outweigh 8 tasks / 4 per worker
    ([(4, {}), (4, {"cores": 2})], ["--tasks-per-worker", "4", "--cores", "2"], 4),
    # 30 GB of declared memory on 10 GB workers
    ([(3, {"memory": 10000})], ["--tasks-per-worker", "3", "--memory", "10000"], 3),
])
def test_need_follows_tasks_per_worker_and_resources(q, tmp_path, tasks, args, needed):
    for n, res in tasks:
        submit(q, n, **res)
    f = local_factory(q, tmp_path, "--min-workers", "0", "--max-workers", "10",
                      "--workers-per-cycle", "0", *args)
    try:
        assert serve_until(q, lambda: f.stats(), 10), f.err
        assert f.stats()[0][1] == needed
    finally:
        f.stop()
        f.kill()


def test_idle_workers_leave_and_are_not_replaced(q, tmp_path):
    submit(q, 4, command="echo done")
    f = local_factory(q, tmp_path, "--min-workers", "0", "--max-workers", "2", "-t", "1")
    done: list = []
    try:
        assert serve_until(q, lambda: len(done) == 4, 20, done), (f.out, f.err)
        assert all(t.return_status == 0 and t.output == "done\n" for t in done)
        f.workers()
        # no tasks: the idle workers time out and the factory does not submit new ones
        assert serve_until(q, lambda: f.stats() and f.stats()[-1][:2] == (0, 0), 15), f.out
        assert f.alive_workers() == []
        serve_until(q, lambda: False, 1.0)
        assert f.stats()[-1][0] == 0 and q.stats.workers_connected == 0
    finally:
        f.stop()
        f.kill()


def test_config_file_is_reread_and_a_bad_one_keeps_the_last_good(q, tmp_path):
    conf = tmp_path / "factory.json"
    conf.write_text(json.dumps({"max-workers": 1, "min-workers": 0}))
    submit(q, 5)
    f = local_factory(q, tmp_path, "-C", str(conf))
    try:
        assert serve_until(q, lambda: q.stats.workers_connected == 1, 15), f.err
        assert f.stats()[-1][1] == 1
        conf.write_text(json.dumps({"max-workers": 3, "min-workers": 0, "workers-per-cycle": 5}))
        assert serve_until(q, lambda: q.stats.workers_connected == 3, 15), (f.out, f.err)
        conf.write_text('{"max-workers": 1, "min-workers": ')
        assert serve_until(q, lambda: any("Using previous values" in e for e in f.err), 10)
        bad = [e for e in f.err if "Error re-reading" in e]
        assert bad and "is not valid JSON" in bad[0] and str(conf) in bad[0]
        n = len(f.stats())
        assert serve_until(q, lambda: len(f.stats()) > n + 1, 10)
        assert f.stats()[-1][1] == 3                        # still the last good max-workers
        assert q.stats.workers_connected == 3
        f.workers()
    finally:
        f.stop()
        f.kill()
    assert f.alive_workers() == []


def test_password_and_ssl_reach_the_workers(tmp_path, monkeypatch):
    needs_catalog_client()
    monkeypatch.chdir(tmp_path)
    q = wq.WorkQueue(port=0, ssl=True)
    q.specify_password("s3cret")
    (tmp_path / "pw").write_text("s3cret")
    submit(q, 2, command="echo secure")
    f = local_factory(q, tmp_path, "--min-workers", "0", "--max-workers", "1",
                      "--password", str(tmp_path / "pw"), "--ssl")
    done: list = []
    try:
        assert serve_until(q, lambda: len(done) == 2, 20, done), (f.out, f.err)
        assert [t.output for t in done] == ["secure\n"] * 2
        assert (tmp_path / "scratch" / "pwfile").read_text() == "s3cret"
        assert f.stats()[0][1] == 1          # the factory's own query passed TLS and password
        # Stop it while the manager keeps serving: its TLS workers and its own status query
        # get their answers while it shuts down.
        f.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 30
        while f.proc.poll() is None:
            assert time.time() < deadline, "the factory did not stop"
            q.wait(0.1)
    finally:
        f.stop()
        f.kill()
        q.close()


# -- other batch systems: the exact job they receive -------------------------------------------
def recorded_factory(q, tmp_path, batch_type, *args, refuse=False):
    bindir = tmp_path / "fakebin"
    make_recorders(bindir, ["condor_submit", "condor_rm", "sbatch", "scancel", "qsub", "qdel"])
    env = env_with_path(bindir, FAKE_BATCH_LOG=str(tmp_path / "calls.jsonl"))
    if refuse:
        env["FAKE_BATCH_REFUSE"] = "1"
    return FactoryProc(["-T", batch_type, "--scratch-dir", str(tmp_path / "scratch"),
                        "--catalog", "cat.example.org:9097", "--min-workers", "2",
                        "--max-workers", "2", *args, "localhost", str(q.port)],
                       cwd=tmp_path, env=env)


def test_condor_factory_job_and_removal(q, tmp_path):
    f = recorded_factory(q, tmp_path, "condor", "--condor-requirements", "Memory > 1000",
                         "--gpus", "1")
    try:
        assert serve_until(q, lambda: f.stats(), 10), f.err
        assert f.stop() == 0
    finally:
        f.kill()
    calls = read_log(tmp_path / "calls.jsonl")
    command = (f"./work_queue_worker localhost {q.port} -t 300 -C 'cat.example.org:9097' "
               "-d all -o worker.log   --cores=$$([TARGET.Cpus]) --memory=$$([TARGET.Memory]) "
               "--disk=$$([TARGET.Disk/1024]) --gpus=$$([TARGET.GPUs])   ")
    submits = [c for c in calls if c["argv"][0] == "condor_submit"]
    assert [c["argv"] for c in submits] == [["condor_submit", "condor.submit"]] * 2
    text = submits[0]["files"]["condor.submit"]
    assert f"arguments = {condor_escape(command)}\n" in text
    assert "transfer_input_files = work_queue_worker, \n" in text
    assert "requirements = ((Memory > 1000))\n" in text
    assert "request_gpus = 1\n" in text
    assert submits[0]["cwd"] == str(tmp_path / "scratch")
    removes = [c["argv"] for c in calls if c["argv"][0] == "condor_rm"]
    assert sorted(removes) == [["condor_rm", "1000"], ["condor_rm", "1001"]]


@pytest.mark.parametrize("batch_type, wrapper", [("uge", "uge"), ("sge", "uge"), ("pbs", "pbs"),
                                                 ("torque", "torque"), ("slurm", "slurm")])
def test_cluster_factory_jobs_and_removal(q, tmp_path, batch_type, wrapper):
    f = recorded_factory(q, tmp_path, batch_type, "--cores", "2", "--memory", "1000", "-B",
                         "-A proj", "-E", "--wall-time 3600")
    try:
        assert serve_until(q, lambda: f.stats(), 10), f.err
        assert f.stop() == 0
    finally:
        f.kill()
    calls = read_log(tmp_path / "calls.jsonl")
    submit_cmd, remove_cmd = ("sbatch", "scancel") if batch_type == "slurm" else ("qsub", "qdel")
    submits = [c for c in calls if c["argv"][0] == submit_cmd]
    assert len(submits) == 2
    assert submits[0]["argv"][-3:] == ["-A", "proj", f"./{wrapper}.wrapper"]
    assert submits[0]["argv"][-5:-3] == ["-N" if batch_type != "slurm" else "-J", "makeflow0"]
    assert submits[1]["argv"][-4] == "makeflow1"
    assert submits[0]["BATCH_JOB_COMMAND"] == (
        f"./work_queue_worker localhost {q.port} -t 300 -C 'cat.example.org:9097' -d all "
        "-o worker.log   --cores=2 --memory=1000   --wall-time 3600")
    assert f"{wrapper}.wrapper" in submits[0]["files"]
    removes = sorted(c["argv"] for c in calls if c["argv"][0] == remove_cmd)
    job = 1000 if batch_type != "slurm" else 1000
    assert removes == [[remove_cmd, str(job)], [remove_cmd, str(job + 1)]]


def test_refused_submission_is_reported_and_nothing_is_left(q, tmp_path):
    f = recorded_factory(q, tmp_path, "pbs", refuse=True)
    try:
        assert serve_until(q, lambda: len(f.stats()) >= 2, 10), f.err
        assert f.stop() == 0
    finally:
        f.kill()
    refusal = [e for e in f.err if "could not submit a worker" in e]
    assert refusal and refusal[0] == ("work_queue_factory: could not submit a worker: qsub "
                                      "refused the job: error: submission refused by policy: "
                                      "no allocation left")
    assert "removing 0 workers..." in f.out
    calls = read_log(tmp_path / "calls.jsonl")
    assert {c["argv"][0] for c in calls} == {"qsub"}      # nothing accepted, nothing to cancel
    assert f.stats()[-1][0] == 0


@pytest.mark.parametrize("args, message", [
    (["-T", "nope", "localhost", "1"], "unknown batch type 'nope' (use one of: local, condor"),
    (["-T", "lsf", "localhost", "1"], "batch type 'lsf' is not supported by this factory"),
    (["localhost", "1"], "you must specify a batch type with the -T option"),
    (["-T", "local"], "You must either give a project name with the -M option"),
    (["-T", "local", "-w", "5", "-W", "2", "localhost", "1"],
     "min workers (5) is greater than max workers (2)"),
])
def test_bad_command_lines(tmp_path, args, message):
    f = FactoryProc(args, cwd=tmp_path)
    assert f.proc.wait(timeout=30) == 1
    time.sleep(0.1)
    assert any(message in e for e in f.err), f.err


def test_missing_batch_command_and_bad_config_at_start(tmp_path):
    env = env_with_path()
    env["PATH"] = env["PATH"].split(":")[0]     # this virtualenv only (/bin may be /usr/bin)
    f = FactoryProc(["-T", "slurm", "-S", str(tmp_path / "s"), "localhost", "1"], cwd=tmp_path,
                    env=env)
    assert f.proc.wait(timeout=30) == 1
    time.sleep(0.1)
    assert f.err == ["work_queue_factory: sbatch not found in PATH (needed for batch type "
                     "'slurm')"]
    assert not (tmp_path / "s").exists()
    conf = tmp_path / "c.json"
    conf.write_text('{"max-workers": 4,}')
    f = FactoryProc(["-T", "local", "-C", str(conf), "localhost", "1"], cwd=tmp_path)
    assert f.proc.wait(timeout=30) == 1
    time.sleep(0.1)
    assert any("There were errors in the configuration file" in e and "not valid JSON" in e
               for e in f.err), f.err
