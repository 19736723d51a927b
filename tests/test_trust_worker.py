"""Trust in the worker: what one task leaves behind (a FIFO for an output, an escaped process,
a full sandbox) never hangs the worker nor reaches the next task."""

from __future__ import annotations

import os
import signal
import time
import uuid

import work_queue as wq
from tests.conftest import wait_all, wait_until


def _kill_marked(marker: str) -> None:
    """Kill the processes this test started whose command line holds ``marker``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if marker.encode() in cmdline:
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


def test_fifo_output_comes_back_missing_and_worker_stays(queue, workers):
    """A FIFO named as an output is never opened: the task returns OUTPUT_MISSING at once and
    the same worker serves the next task (a FIFO inside a directory output is skipped)."""
    workers.start(queue.port)
    wait_until(lambda: queue.stats.workers_connected == 1, queue)
    t = wq.Task("mkfifo o")
    t.specify_output_file("o")
    queue.submit(t)
    start = time.time()
    (done,) = wait_all(queue, timeout=15)
    assert done.result == wq.WORK_QUEUE_RESULT_OUTPUT_MISSING, (done.result, done.output)
    assert time.time() - start < 10
    d = wq.Task("mkdir d && echo hi > d/f && mkfifo d/p")
    d.specify_output_file("d")
    queue.submit(d)
    (done,) = wait_all(queue, timeout=15)
    assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS, (done.result, done.output)
    assert open("d/f").read() == "hi\n" and not os.path.exists("d/p")
    after = wq.Task("echo still here")
    queue.submit(after)
    (ok,) = wait_all(queue, timeout=15)
    assert ok.result == wq.WORK_QUEUE_RESULT_SUCCESS and ok.output == "still here\n"
    assert queue.stats.workers_lost == 0 and queue.stats.workers_connected == 1


def test_escaped_process_never_writes_into_a_later_sandbox(queue, workers):
    """A daemon that left its task (setsid) keeps its sandbox as working directory: no later
    task on that worker may see what it writes there."""
    marker = "wq-escape-" + uuid.uuid4().hex
    workers.start(queue.port, cores=1)
    wait_until(lambda: queue.stats.workers_connected == 1, queue)
    daemon = (f"setsid sh -c ': {marker}; sleep .3; while :; do echo x > intruder.txt; "
              f"sleep .05; done' </dev/null >/dev/null 2>&1 & sleep .1")
    try:
        queue.submit(wq.Task(daemon))
        later = [wq.Task("sleep .6; ls -A") for _ in range(3)]
        for t in later:
            queue.submit(t)
        done = wait_all(queue, timeout=30)
        assert len(done) == 4
        for t in later:
            assert t.result == wq.WORK_QUEUE_RESULT_SUCCESS, (t.result, t.output)
            assert "intruder.txt" not in t.output, t.output
    finally:
        _kill_marked(marker)


def test_finished_sandbox_is_gone_before_the_next_task_starts(queue, workers):
    """The files of a finished task are removed before the next task starts (not when the
    worker next has a moment), so its space is free for that task."""
    workers.start(queue.port, cores=1)
    wait_until(lambda: queue.stats.workers_connected == 1, queue)
    first = wq.Task('echo "$PWD" > "$WORK_QUEUE_SANDBOX/first-sandbox" && mkdir sub && '
                    "dd if=/dev/zero of=sub/bigfile bs=1M count=8 2>/dev/null")
    second = wq.Task('p=$(cat "$WORK_QUEUE_SANDBOX/first-sandbox") && '
                     'if [ -e "$p/sub/bigfile" ]; then echo present; else echo gone; fi')
    queue.submit(first)
    queue.submit(second)
    done = wait_all(queue, timeout=30)
    assert len(done) == 2
    assert first.result == wq.WORK_QUEUE_RESULT_SUCCESS and first.return_status == 0
    assert second.output == "gone\n", second.output
