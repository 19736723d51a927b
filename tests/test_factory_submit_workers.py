"""``*_submit_workers``: the job files and commands each batch system gets; Slurm for real."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

import work_queue as wq

from .factory_support import (
    env_with_path,
    make_recorders,
    read_log,
    scancel,
    slurm_jobs,
    slurm_ready,
)

USER = os.environ.get("USER") or __import__("getpass").getuser()


def run_script(name, args, tmp_path, refuse=False):
    bindir = tmp_path / "fakebin"
    make_recorders(bindir, ["condor_submit", "sbatch", "qsub"])
    env = env_with_path(bindir, FAKE_BATCH_LOG=str(tmp_path / "calls.jsonl"), USER=USER)
    if refuse:
        env["FAKE_BATCH_REFUSE"] = "1"
    proc = subprocess.run([name, *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    return proc, read_log(tmp_path / "calls.jsonl")


def test_condor_submit_workers_file(tmp_path):
    pw = tmp_path / "pw.txt"
    pw.write_text("secret\n")
    proc, calls = run_script("condor_submit_workers", [
        "-M", "myproject", "--cores", "2", "--memory", "1000", "-P", str(pw),
        "--scratch-dir", str(tmp_path / "s"), "-r", 'Arch == "X86_64"', "--class-ad", "+A = 1",
        "--class-ad", "+B = 2", "10"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 job(s) submitted to cluster 1000." in proc.stdout
    assert len(calls) == 1
    call = calls[0]
    assert call["argv"] == ["condor_submit", "condor_submit_file"]
    assert call["cwd"] == str(tmp_path / "s" / f"{USER}-workers")
    args = ("--cores $$([TARGET.Cpus]) --memory $$([TARGET.Memory]) --disk $$([TARGET.Disk/1024])"
            f"  -M myproject --cores 2 --memory 1000 -P {pw}  ")
    assert call["files"]["condor_submit_file"] == (
        "universe = vanilla\n"
        "executable = work_queue_worker\n"
        f"arguments = {args}\n"
        f"transfer_input_files = work_queue_worker, {pw}\n"
        "should_transfer_files = yes\n"
        "when_to_transfer_output = on_exit\n"
        "output = worker.$(PROCESS).output\n"
        "error = worker.$(PROCESS).error\n"
        "log = workers.log\n"
        "+JobMaxSuspendTime = 0\n"
        "\n"
        "\n+A = 1\n+B = 2\n"
        "\n"
        "# Some programs assume some variables are set, like HOME, so we export the\n"
        "# environment variables with the job.  Comment the next line if you do not want\n"
        "# the environment exported.\n"
        "getenv = true\n"
        'requirements =  Arch == "X86_64"\n'
        "request_cpus = 2\n"
        "request_memory = 1000\n"
        "request_disk = 1048576\n"
        "queue 10\n")
    submit_dir = tmp_path / "s" / f"{USER}-workers"
    assert os.access(submit_dir / "work_queue_worker", os.X_OK)
    assert (submit_dir / "pw.txt").read_text() == "secret\n"


def test_condor_refuses_localhost(tmp_path):
    proc, calls = run_script("condor_submit_workers", ["localhost", "9123", "1"], tmp_path)
    assert proc.returncode == 1 and "please specify the IP address instead" in proc.stderr
    assert calls == []


def test_slurm_submit_workers_commands(tmp_path):
    proc, calls = run_script("slurm_submit_workers", [
        "--cores", "4", "-t", "60", "-p", "--partition debug", "mgr.example.org", "9123", "2"],
        tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [c["argv"] for c in calls] == [
        ["sbatch", "--job-name", "wqWorker", "--ntasks=1", "--nodes=1", "--cpus-per-task", "4",
         "--partition", "debug"]] * 2
    assert calls[0]["stdin"] == ("#!/bin/sh\nwork_queue_worker  --cores 4 -t 60 "
                                 "mgr.example.org 9123\n")
    assert calls[0]["cwd"] == str(tmp_path / f"{USER}-workers")
    # no --cores: whole nodes
    _, calls = run_script("slurm_submit_workers", ["-M", "proj", "1"], tmp_path / "x")
    assert calls[0]["argv"][-1] == "--exclusive"


@pytest.mark.parametrize("name, array_flag", [("uge_submit_workers", "-t"),
                                              ("sge_submit_workers", "-t")])
def test_uge_submit_workers_commands(tmp_path, name, array_flag):
    proc, calls = run_script(name, ["--cores", "4", "-p", "-pe smp 4", "-j", "h", "1", "3"],
                             tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [c["argv"] for c in calls] == [
        ["qsub", array_flag, "1-3:1", "-cwd", "-pe", "smp", "4", "worker.sh"]]
    assert calls[0]["files"]["worker.sh"] == \
        "#!/bin/sh\n./work_queue_worker  --cores 4 h 1\n"
    proc, calls = run_script(name, ["h", "1", "2"], tmp_path / "b")
    assert [c["argv"] for c in calls] == [["qsub", "-cwd", "worker.sh"]] * 2


@pytest.mark.parametrize("name, array_flag, blank", [("pbs_submit_workers", "-J", ""),
                                                     ("torque_submit_workers", "-t", "\n")])
def test_pbs_and_torque_submit_workers_commands(tmp_path, name, array_flag, blank):
    proc, calls = run_script(name, ["--cores", "8", "-p", "-q long", "h", "1", "2"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [c["argv"] for c in calls] == [["qsub", "-q", "long", "worker.sh"]] * 2
    submit_dir = tmp_path / f"{USER}-workers"
    assert calls[0]["files"]["worker.sh"] == (
        f"#!/bin/sh\n#PBS -l nodes=1:ppn=8\n\ncd {submit_dir}\n{blank}"
        "./work_queue_worker  --cores 8 h 1\n")
    _, calls = run_script(name, ["-j", "h", "1", "5"], tmp_path / "j")
    assert calls[0]["argv"] == ["qsub", array_flag, "1-5:1", "worker.sh"]


@pytest.mark.parametrize("args, message", [
    (["h", "1"], '3 arguments (<servername> <port> <num-workers>), but found 2: "h 1".'),
    (["-M", "p", "h", "1"], '1 argument (<num-workers>) is expected, but found 2'),
    (["h", "1", "many"], "the number of workers must be a whole number, not 'many'"),
    (["--bogus", "h", "1", "1"], "unknown option --bogus"),
])
def test_bad_usage_is_explained(tmp_path, args, message):
    proc, calls = run_script("slurm_submit_workers", args, tmp_path)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert calls == []


def test_missing_batch_command(tmp_path):
    env = env_with_path(USER=USER)
    env["PATH"] = os.path.dirname(env["PATH"].split(os.pathsep)[0]) + "/bin"  # venv bin only
    proc = subprocess.run(["pbs_submit_workers", "h", "1", "1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "please add 'qsub' to your PATH." in proc.stderr


def test_refused_submission_is_reported(tmp_path):
    proc, calls = run_script("pbs_submit_workers", ["h", "1", "3"], tmp_path, refuse=True)
    assert proc.returncode == 1
    assert "qsub failed with exit status 1" in proc.stderr
    assert len(calls) == 1   # stopped at the first refusal


def test_slurm_submit_workers_for_real(tmp_path, monkeypatch):
    """Workers submitted through the real sbatch connect back and run tasks."""
    slurm_ready()
    monkeypatch.chdir(tmp_path)
    q = wq.WorkQueue(port=0)
    ids: list[str] = []
    try:
        proc = subprocess.run(["slurm_submit_workers", "--cores", "1", "--memory", "500",
                               "--disk", "500", "-t", "60", "localhost", str(q.port), "2"],
                              cwd=tmp_path, env=env_with_path(USER=USER), capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        ids = re.findall(r"Submitted batch job (\d+)", proc.stdout)
        assert len(ids) == 2
        for i in range(4):
            q.submit(wq.Task(f"sleep 1; echo slurm-{i}"))
        done = []
        deadline = time.time() + 60
        while len(done) < 4 and time.time() < deadline:
            t = q.wait(1)
            if t:
                done.append(t)
        assert sorted(t.output for t in done) == [f"slurm-{i}\n" for i in range(4)]
        assert q.stats.workers_joined == 2
    finally:
        scancel(ids)
        q.close()
    deadline = time.time() + 20
    while set(ids) & set(slurm_jobs()) and time.time() < deadline:
        time.sleep(0.2)
    assert not set(ids) & set(slurm_jobs())
