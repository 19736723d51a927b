"""What a real worker's debug output (``-d all -o FILE``) says when it kills a task for a limit.

CCTools 7.17.1's worker writes ``Task N went over its running time limit: A s > B s`` when it
kills a task past its ``specify_running_time_max`` (``enforce_processes_max_running_time``),
and ``Task N went over its disk size limit: A MB > B MB`` when a task's sandbox outgrows its
disk (``enforce_process_limits``).  The 2019 tutorial greps the worker's output for ``Limit``
and finds the resource monitor's ``Limit disk broken.``.  One kill is told once (the loop
must not keep sampling, and logging, a task it already killed)."""

from __future__ import annotations

import re

import work_queue as wq

from .conftest import wait_all, wait_until


def debug_text(queue, path, pattern):
    """The worker's debug file once ``pattern`` shows in it (it is written as it goes)."""
    wait_until(lambda: path.exists() and re.search(pattern, path.read_text()), queue,
               timeout=10)
    return path.read_text()


def test_running_time_limit_without_monitoring_is_told_once(queue, workers, tmp_path):
    log = tmp_path / "worker.debug"
    t = wq.Task("sleep 30")
    t.specify_running_time_max(1)
    queue.submit(t)
    workers.start(queue.port, "-d", "all", "-o", str(log))
    (done,) = wait_all(queue, timeout=20)
    assert done.result == wq.WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME
    text = debug_text(queue, log, "went over")
    lines = re.findall(rf"Task {t.id} went over its running time limit: ([0-9.]+) s > "
                       r"1\.000000 s", text)
    assert len(lines) == 1, text
    assert 1.0 <= float(lines[0]) < 10


def test_disk_limit_under_monitoring_is_told_as_cctools_does(queue, workers, tmp_path):
    log = tmp_path / "worker.debug"
    queue.enable_monitoring()
    queue.tune("proportional-resources", 0)  # exactly the 10 MB asked for
    t = wq.Task("dd if=/dev/zero of=big bs=1M count=30 2>/dev/null; sleep 10")
    t.specify_cores(1)
    t.specify_memory(100)
    t.specify_disk(10)
    queue.submit(t)
    workers.start(queue.port, "-d", "all", "-o", str(log), cores=2, memory=2000, disk=2000)
    (done,) = wait_all(queue, timeout=30)
    assert done.result == wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION
    assert done.limits_exceeded.disk == 10
    text = debug_text(queue, log, "Limit disk broken")
    over = re.findall(rf"Task {t.id} went over its disk size limit: (\d+) MB > 10 MB", text)
    assert len(over) == 1, text
    assert 10 < int(over[0]) <= 31
    assert len(re.findall(r"Limit disk broken\.", text)) == 1
    assert len(re.findall(rf"task {t.id} broke its disk limit", text)) == 1


def test_running_time_limit_under_monitoring_is_told_once(queue, workers, tmp_path):
    log = tmp_path / "worker.debug"
    queue.enable_monitoring()
    t = wq.Task("sleep 30")
    t.specify_running_time_max(1)
    queue.submit(t)
    workers.start(queue.port, "-d", "all", "-o", str(log))
    (done,) = wait_all(queue, timeout=20)
    # the monitor's wall time: END_TIME, as CCTools' worker and monitor give it
    assert done.result == wq.WORK_QUEUE_RESULT_TASK_TIMEOUT
    assert done.limits_exceeded.wall_time == 1
    text = debug_text(queue, log, "went over")
    assert len(re.findall(rf"Task {t.id} went over its running time limit: [0-9.]+ s > "
                          r"1\.000000 s", text)) == 1, text
    # once, not at every pass of the loop until the killed task is reaped
    assert len(re.findall(rf"task {t.id} broke its wall_time limit", text)) == 1, text
