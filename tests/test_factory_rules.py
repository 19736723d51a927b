"""The factory's scaling rule, configuration file and the exact job each batch system gets."""

from __future__ import annotations

import json
import os
import time

import pytest

from work_queue.factory import (
    BatchError,
    ConfigError,
    ConfigWatcher,
    FactoryConfig,
    JobSpec,
    WorkerSize,
    batch_queue_class,
    make_batch_queue,
    manager_need,
    plan,
    read_config_file,
    workers_needed,
)
from work_queue.factory.batch import condor_escape


def rec(**kw):
    base = {"protocol": 11, "tasks_waiting": 0, "tasks_left": 0, "tasks_on_workers": 0,
            "workers": 0}
    base.update(kw)
    return base


# -- scaling -----------------------------------------------------------------------------------
def test_need_counts_waiting_left_and_running_tasks():
    assert manager_need(rec(tasks_waiting=7, tasks_left=2, tasks_on_workers=3), WorkerSize()) == 12
    # foremen: the running ones are counted on the foremen instead
    assert manager_need(rec(tasks_waiting=7, tasks_on_workers=3), WorkerSize(),
                        only_not_running=True) == 7


def test_tasks_per_worker_divides_rounding_up():
    r = rec(tasks_waiting=9, tasks_on_workers=1)
    assert manager_need(r, WorkerSize(), tasks_per_worker=4) == 3
    assert manager_need(r, WorkerSize(), tasks_per_worker=10) == 1


def test_declared_task_resources_raise_the_need():
    # 4 tasks of 3 cores each on 4-core workers: 3 workers by cores, 1 per task by count = 4
    r = rec(tasks_waiting=4, tasks_total_cores=12, tasks_total_memory=40000)
    assert manager_need(r, WorkerSize(cores=4), tasks_per_worker=4) == 3
    # memory is the tighter resource: 40000 MB on 8000 MB workers = 5
    assert manager_need(r, WorkerSize(cores=4, memory=8000), tasks_per_worker=4) == 5
    # resources not given for the workers are not considered
    assert manager_need(r, WorkerSize(), tasks_per_worker=4) == 1


def test_capacity_limits_the_need_only_with_the_option():
    r = rec(tasks_waiting=50, capacity_tasks=10, capacity_weighted=6, capacity_cores=8)
    assert manager_need(r, WorkerSize()) == 50
    assert manager_need(r, WorkerSize(), consider_capacity=True) == 6
    assert manager_need(r, WorkerSize(cores=4), consider_capacity=True) == 2


def test_managers_with_another_protocol_are_skipped():
    records = [rec(tasks_waiting=3), rec(tasks_waiting=100, protocol=10)]
    assert workers_needed(records, WorkerSize()) == 3


def test_plan_clamps_to_min_and_max_and_paces_per_cycle():
    p = plan(raw_needed=0, submitted=0, connected=0, min_workers=2, max_workers=10,
             workers_per_cycle=5)
    assert (p.needed, p.new) == (2, 2)
    p = plan(raw_needed=50, submitted=0, connected=0, min_workers=0, max_workers=10,
             workers_per_cycle=5)
    assert (p.needed, p.new) == (10, 5)
    # 4 submitted, 1 connected: 3 still waiting to connect, so only 2 more this cycle
    p = plan(raw_needed=50, submitted=4, connected=1, min_workers=0, max_workers=10,
             workers_per_cycle=5)
    assert (p.to_connect, p.new) == (3, 2)
    # workers-per-cycle 0 means no pacing
    p = plan(raw_needed=50, submitted=0, connected=0, min_workers=0, max_workers=10,
             workers_per_cycle=0)
    assert p.new == 10
    # workers that came from elsewhere count against the need
    p = plan(raw_needed=5, submitted=1, connected=4, min_workers=0, max_workers=10,
             workers_per_cycle=5)
    assert (p.to_connect, p.new) == (0, 1)
    # more submitted than needed: a negative request
    p = plan(raw_needed=1, submitted=4, connected=4, min_workers=0, max_workers=10,
             workers_per_cycle=5)
    assert p.new == -3


# -- configuration file ------------------------------------------------------------------------
SLIDES_CONFIG = {"master-name": "some-master-name", "max-workers": 200, "min-workers": 5,
                 "workers-per-cycle": 5, "cores": 1, "disk": 10000, "memory": 4096,
                 "timeout": 900, "tasks-per-worker": 4}


def test_slides_config_with_old_master_name(tmp_path):
    path = tmp_path / "my-conf.json"
    path.write_text(json.dumps(SLIDES_CONFIG, indent=3))
    cfg = read_config_file(str(path), FactoryConfig(), has_manager_host=False)
    assert cfg.manager_name == "some-master-name"
    assert (cfg.max_workers, cfg.min_workers, cfg.workers_per_cycle) == (200, 5, 5)
    assert (cfg.cores, cfg.memory, cfg.disk, cfg.timeout, cfg.tasks_per_worker) == \
        (1, 4096, 10000, 900, 4)


def test_manager_name_wins_over_master_name_and_doubles_round_up(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"manager-name": "new", "master-name": "old",
                                "max-workers": 9.2, "cores": 4}))
    cfg = read_config_file(str(path), FactoryConfig(), has_manager_host=False)
    assert cfg.manager_name == "new"
    assert cfg.max_workers == 10
    assert cfg.tasks_per_worker == 4  # unset with a config file: one task per core


@pytest.mark.parametrize("content, reason", [
    ('{"max-workers": 10,', "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"manager-name": "x", "max-workers": "lots"}', "max-workers has not a valid value"),
    ('{"manager-name": "x", "max-workers": 0}', "max workers (0) is less than one"),
    ('{"manager-name": "x", "min-workers": -1}', "min workers (-1) is less than zero"),
    ('{"max-workers": 3}', "manager name is missing"),
])
def test_bad_config_is_refused_with_the_reason(tmp_path, content, reason):
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        read_config_file(str(path), FactoryConfig(), has_manager_host=False)


def test_min_above_max_in_a_config_becomes_max(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"min-workers": 8, "max-workers": 3}')
    cfg = read_config_file(str(path), FactoryConfig(), has_manager_host=True)
    assert (cfg.min_workers, cfg.max_workers) == (3, 3)


def test_watcher_reloads_on_change_and_keeps_last_good(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"manager-name": "a", "max-workers": 4}')
    w = ConfigWatcher(str(path))
    cfg = w.load(FactoryConfig(), False)
    assert cfg is not None and cfg.max_workers == 4
    assert w.load(cfg, False) is None          # unchanged: nothing to do
    path.write_text('{"manager-name": "a", "max-workers": ')
    assert w.changed()
    with pytest.raises(ConfigError, match="not valid JSON"):
        w.load(cfg, False)
    assert w.load(cfg, False) is None          # the same bad file is reported once
    path.write_text('{"manager-name": "a", "max-workers": 7}')
    new = w.load(cfg, False)
    assert new is not None and new.max_workers == 7 and cfg.max_workers == 4


# -- the exact job each batch system receives --------------------------------------------------
CMD = ("./work_queue_worker mgr.example.org 9123 -t 300 -C 'catalog.cse.nd.edu:9097' -d all "
       "-o worker.log  --cores=4 --memory=4096 --disk=10000   ")
SPEC = JobSpec(CMD, ["work_queue_worker", "pwfile"], cores=4, memory=4096, disk=10000)


def cluster_wrapper(name, id_var, cd=None):
    lines = ["#!/bin/sh", "#$ -S /bin/sh",
             f'[ -n "${{{id_var}}}" ] && JOB_ID=`echo ${{{id_var}}} | cut -d . -f 1`']
    if cd:
        lines.append(f"cd {cd}")
    lines += [f'logfile="${{PWD}}/{name}.status.${{JOB_ID}}"', "starttime=`date +%s`",
              "echo start $starttime > $logfile",
              "(while true; do sleep 30; echo alive $(date +%s) >> $logfile; done) &",
              "pid_heartbeat=$!", 'eval "$BATCH_JOB_COMMAND"', "", "status=$?",
              "kill $pid_heartbeat", "stoptime=`date +%s`",
              "echo stop $status $stoptime >> $logfile", "exit 0"]
    return "\n".join(lines) + "\n"


def test_slurm_job(tmp_path):
    q = make_batch_queue("slurm", str(tmp_path), batch_options="--partition=debug")
    d = q.describe(SPEC)
    assert d.argv == ["sbatch", "--mem=4096M", "-N", "1", "-n", "1", "-c", "4", "-D", ".", "-e",
                      "/dev/null", "--export=ALL", "-o", "/dev/null", "-J", "makeflow0",
                      "--partition=debug", "./slurm.wrapper"]
    assert d.env == {"BATCH_JOB_COMMAND": CMD}
    assert d.files == {"slurm.wrapper": cluster_wrapper("slurm", "SLURM_JOB_ID")}


@pytest.mark.parametrize("batch_type", ["uge", "sge"])
def test_uge_and_sge_job(tmp_path, batch_type):
    d = make_batch_queue(batch_type, str(tmp_path)).describe(SPEC)
    assert d.argv == ["qsub", "-l", "h_vmem=4096M", "-pe", "smp", "4", "-cwd", "-j", "y", "-V",
                      "-o", "/dev/null", "-N", "makeflow0", "./uge.wrapper"]
    assert d.files == {"uge.wrapper": cluster_wrapper("uge", "PBS_JOBID")}
    assert d.env == {"BATCH_JOB_COMMAND": CMD}


@pytest.mark.parametrize("batch_type", ["pbs", "torque"])
def test_pbs_and_torque_job(tmp_path, batch_type):
    d = make_batch_queue(batch_type, str(tmp_path), batch_options="-q long").describe(SPEC)
    assert d.argv == ["qsub", "-l", "nodes=1:ppn=4,mem=4096mb,file=10000mb", "-j", "oe", "-V",
                      "-o", "/dev/null", "-N", "makeflow0", "-q", "long",
                      f"./{batch_type}.wrapper"]
    assert d.files == {f"{batch_type}.wrapper": cluster_wrapper(batch_type, "PBS_JOBID",
                                                               cd=str(tmp_path))}


def test_cluster_job_without_sizes(tmp_path):
    spec = JobSpec("./work_queue_worker h 1")
    assert make_batch_queue("slurm", str(tmp_path)).describe(spec).argv[:7] == \
        ["sbatch", "-N", "1", "-n", "1", "-c", "1", ][:7]
    assert make_batch_queue("pbs", str(tmp_path)).describe(spec).argv[:3] == \
        ["qsub", "-l", "nodes=1:ppn=1"]


CONDOR_CMD = ("./work_queue_worker -M proj -t 300 -C 'catalog.cse.nd.edu:9097' -d all "
              "-o worker.log  -P pwfile  --cores=$$([TARGET.Cpus]) --memory=$$([TARGET.Memory])"
              " --disk=$$([TARGET.Disk/1024])   ")


def test_condor_job(tmp_path):
    q = make_batch_queue("condor", str(tmp_path), condor_requirements='(OpSys == "LINUX")',
                         batch_options="+Group = \"x\"\\naccounting_group = y")
    spec = JobSpec(CONDOR_CMD, ["work_queue_worker", "pwfile"], cores=4, memory=4096,
                   disk=10000, blocked_hosts=["bad1", "bad2"])
    d = q.describe(spec)
    assert d.argv == ["condor_submit", "condor.submit"]
    assert d.files["condor.sh"] == '#!/bin/sh\neval "$@"\nexit $?\n'
    args = CONDOR_CMD.replace("'", "'''")
    assert d.files["condor.submit"] == (
        "universe = vanilla\n"
        "executable = condor.sh\n"
        f'arguments = "{args} "\n'
        "transfer_input_files = work_queue_worker, pwfile, \n"
        "should_transfer_files = yes\n"
        "when_to_transfer_output = on_exit\n"
        "notification = never\n"
        "transfer_executable = true\n"
        "keep_claim_idle = 30\n"
        "log = condor.logfile\n"
        "+JobMaxSuspendTime = 0\n"
        'requirements = ((OpSys == "LINUX")) && ((machine != "bad1") && (machine != "bad2"))\n'
        "getenv = true\n"
        "request_cpus = 4\n"
        "request_memory = 4096\n"
        "request_disk = 10240000\n"
        '+Group = "x"\naccounting_group = y\n'
        "queue\n")


def test_condor_autosize_and_defaults(tmp_path):
    q = make_batch_queue("condor", str(tmp_path), autosize=True)
    text = q.describe(JobSpec("w", gpus=1)).files["condor.submit"]
    assert "request_cpus   = ifThenElse(1 > TotalSlotCpus, 1, TotalSlotCpus)\n" in text
    assert "request_memory = ifThenElse(1024 > TotalSlotMemory, 1024, TotalSlotMemory)\n" in text
    assert "request_disk   = ifThenElse((1048576) > TotalSlotDisk, (1048576), TotalSlotDisk)\n" \
        in text
    assert "request_gpus   = ifThenElse((1) > TotalSlotGpus, (1), TotalSlotGpus)\n" in text


def test_condor_escape():
    assert condor_escape("a 'b' \"c\"") == '"a \'\'\'b\'\'\' ""c"" "'


def test_local_job(tmp_path):
    d = make_batch_queue("local", str(tmp_path)).describe(JobSpec("./w h 1"))
    assert d.argv == ["/bin/sh", "-c", "./w h 1"] and d.files == {}


def test_unknown_and_unsupported_batch_types():
    with pytest.raises(BatchError, match="unknown batch type 'nope'.*local, condor, slurm"):
        batch_queue_class("nope")
    with pytest.raises(BatchError, match="'k8s' is not supported"):
        batch_queue_class("k8s")


def test_missing_batch_command_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BatchError, match=r"sbatch not found in PATH \(needed for batch type "
                                         r"'slurm'\)"):
        make_batch_queue("slurm", str(tmp_path)).check_commands()


def test_cluster_status_file_tracks_a_job(tmp_path):
    """The wrapper's status lines (start, alive, stop) are how cluster jobs are followed."""
    q = make_batch_queue("slurm", str(tmp_path))
    from work_queue.factory.batch import Job
    q.jobs["77"] = Job("77", time.time())
    assert q.poll() == [] and not q.started("77")
    status = tmp_path / "slurm.status.77"
    now = int(time.time())
    status.write_text(f"start {now}\n")
    assert q.poll() == [] and q.started("77")
    with open(status, "a") as f:
        f.write(f"alive {now + 1}\nstop 0 {now + 2}\n")
    done = q.poll()
    assert [j.id for j in done] == ["77"] and done[0].exit_code == 0
    assert not os.path.exists(status) and q.jobs == {}
