"""Resource monitoring with real workers: measured resources, the watchdog, automatic labelling."""

from __future__ import annotations

import json
import os

import work_queue as wq

from .conftest import wait_all

TASK_PY = """\
import sys
mb = int(sys.argv[1])
block = b"x" * (1 << 20)          # a 1 MB memory buffer
with open("output.dat", "wb") as f:
    for _ in range(mb):
        f.write(block)
        f.flush()
"""


def test_measured_resources_fill_the_task(queue, workers, in_tmp):
    queue.enable_monitoring("mon")
    workers.start(queue.port, cores=1, memory=1000, disk=1000)
    t = wq.Task("python3 -c 'b = bytearray(b\"x\" * (80 << 20)); import time; time.sleep(1)'")
    queue.submit(t)
    (done,) = wait_all(queue)
    assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS, done.output
    m = done.resources_measured
    assert m.memory >= 70, m            # the 80 MB the task touched
    assert m.wall_time >= 0.3 and m.cpu_time > 0
    assert m.total_processes >= 1 and m.exit_status == 0
    summaries = [f for f in os.listdir("mon") if f.endswith(".summary")]
    assert summaries, os.listdir("mon")
    with open(os.path.join("mon", summaries[0])) as f:
        data = json.load(f)
    assert data["memory"][1] == "MB" and data["exit_type"] == "normal"


def test_watchdog_kills_a_task_over_its_memory(queue, workers):
    queue.enable_monitoring()
    workers.start(queue.port, cores=4, memory=1000, disk=1000)
    t = wq.Task("python3 -c 'b = bytearray(b\"x\" * (300 << 20)); import time; time.sleep(5)'")
    t.specify_memory(100)
    t.specify_cores(1)
    queue.submit(t)
    (done,) = wait_all(queue, timeout=20)
    # 1 core of 4 gives a quarter of the worker: 250 MB, which the task goes over
    assert done.resources_allocated.memory == 250
    assert done.result == wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION
    assert done.limits_exceeded is not None and done.limits_exceeded.memory == 250
    assert done.resources_measured.memory > 250
    assert done.cmd_execution_time < 4e6  # killed, not left to sleep


def test_slide_example_one_task_breaks_the_category_limit(queue, workers, in_tmp):
    """The tutorial's example, scaled down: 30 tasks write a file; one writes too much."""
    with open("task.py", "w") as f:
        f.write(TASK_PY)
    queue.enable_monitoring()
    queue.specify_category_max_resources("my-tasks", {"cores": 1, "disk": 60})
    queue.specify_category_mode("my-tasks", wq.WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT)
    # Stay in the exploring phase, so the breaker is judged against the category maximum
    # whatever order the tasks finish in (steady state would size them from the histogram).
    queue.tune("category-steady-n-tasks", 1000)
    # 8 declared cores: a 1-core, 60 MB task gets a sixth of the 400 MB disk, 66 MB.
    workers.start(queue.port, cores=8, memory=2000, disk=400)
    for _ in range(30):
        t = wq.Task("python3 task.py 10")
        t.specify_input_file("task.py", cache=True)
        t.specify_category("my-tasks")
        t.specify_max_retries(2)
        queue.submit(t)
    breaker = wq.Task("python3 task.py 100")
    breaker.specify_input_file("task.py", cache=True)
    breaker.specify_category("my-tasks")
    breaker.specify_max_retries(2)
    queue.submit(breaker)
    done = wait_all(queue, timeout=60)
    assert len(done) == 31
    good = [t for t in done if t is not breaker]
    assert all(t.result == wq.WORK_QUEUE_RESULT_SUCCESS for t in good)
    assert all(9 <= t.resources_measured.disk <= 30 for t in good)
    assert breaker.result == wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION, breaker.output
    assert breaker.resources_allocated.disk == 66
    assert breaker.limits_exceeded.disk == 66 and breaker.resources_measured.disk > 66
    # it went over the category maximum, so it was not retried bigger
    assert breaker.try_count == 1
    (rec,) = [r for r in queue.status("wable_status") if r["category"] == "my-tasks"]
    assert rec["max_disk"] == "60" and rec["max_cores"] == "1.000"  # as CCTools prints it


def test_exhausted_first_allocation_is_retried_at_the_maximum(queue, workers, in_tmp):
    with open("task.py", "w") as f:
        f.write(TASK_PY)
    queue.enable_monitoring()
    queue.specify_category_mode("grow", wq.WORK_QUEUE_ALLOCATION_MODE_MAX)
    queue.specify_category_first_allocation_guess("grow", {"cores": 1, "disk": 20})
    workers.start(queue.port, cores=8, memory=2000, disk=400)
    t = wq.Task("python3 task.py 70")
    t.specify_input_file("task.py", cache=True)
    t.specify_category("grow")
    queue.submit(t)
    (done,) = wait_all(queue, timeout=30)
    assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS, (done.result, done.output)
    assert done.try_count == 2                    # first at the guess, then the whole worker
    assert done.resources_allocated.disk == 400
    assert done.resources_measured.disk >= 70
    assert queue.stats.tasks_exhausted_attempts == 1


def test_wrapped_command_for_cctools_workers_runs_and_enforces(tmp_path):
    """The command a CCTools worker receives, run as that worker would run it, with the
    self-contained monitor the manager sends as ``cctools-monitor``."""
    import shutil
    import subprocess

    from work_queue.core.resources import Resources
    from work_queue.core.rmsummary import ResourceSummary
    from work_queue.manager import monitoring

    exe = monitoring.locate_resource_monitor()
    assert exe is not None and os.access(exe, os.X_OK)
    shutil.copy(exe, tmp_path / "cctools-monitor")
    config = monitoring.MonitorConfig(executable=exe)

    class FakeTask:
        id, category = 7, "big"
        command = "python3 -c 'b = bytearray(b\"x\" * (200 << 20)); import time; time.sleep(3)'"

    wrapped = config.wrap(FakeTask, Resources(cores=1, memory=100, disk=100))
    assert wrapped.startswith("./cctools-monitor --no-pprint --with-output-files=cctools-monitor")
    assert "-L 'memory: 100'" in wrapped and "-V 'task_id: 7'" in wrapped
    proc = subprocess.run(["/bin/sh", "-c", wrapped], cwd=tmp_path, timeout=30)
    assert proc.returncode == monitoring.RM_OVERFLOW
    summary = ResourceSummary.from_text((tmp_path / "cctools-monitor.summary").read_text())
    assert summary.limits_exceeded is not None and summary.limits_exceeded.memory == 100
    assert summary.category == "big" and summary.memory > 100
