"""Where the monitor's summaries are kept (``specify_monitor_output``, ``enable_monitoring``)."""

from __future__ import annotations

import json
import os

import work_queue as wq

from .conftest import wait_all


def test_task_monitor_output_directory_is_created(queue, workers, in_tmp):
    """CCTools creates the task's monitor output directory when the summary comes back."""
    queue.enable_monitoring()
    workers.start(queue.port)
    t = wq.Task("echo hello")
    t.specify_monitor_output("my-resources-output/nested")
    queue.submit(t)
    (done,) = wait_all(queue)
    assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS, done.output
    kept = os.listdir("my-resources-output/nested")
    assert kept == [f"wq-{os.getpid()}-task-{done.id}.summary"]
    with open(os.path.join("my-resources-output/nested", kept[0])) as f:
        assert json.load(f)["exit_status"] == 0
