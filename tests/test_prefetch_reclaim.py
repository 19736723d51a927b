"""A task sent ahead to a busy worker is taken back when another worker could start it now
(issue 17 items 7 and 8: prefetching must never make a run slower than not prefetching).

The rule is tested with a fake clock in tests/test_manager_core.py; this runs it with real
workers: the queued task is killed on the busy worker (where it never started) and runs on
the one that joined."""

from __future__ import annotations

import os
import time

import pytest

import work_queue as wq

from .conftest import wait_all


@pytest.mark.skipif(bool(os.environ.get("WQ_TEST_WORKER")),
                    reason="prefetching is our worker's extension (wq-py-prefetch); another "
                           "worker never holds a task ahead")
def test_the_queued_task_moves_to_a_worker_that_joins(queue, workers):
    tasks = [wq.Task("sleep 1.5; dirname $PWD") for _ in range(2)]
    for t in tasks:
        queue.submit(t)
    workers.start(queue.port, cores=1)
    deadline = time.time() + 20
    while queue.stats.tasks_on_workers < 2:  # one running, one queued behind it
        assert time.time() < deadline, queue.stats
        assert queue.wait(0.05) is None
    workers.start(queue.port, cores=1)
    done = wait_all(queue)
    assert all(t.result == wq.WORK_QUEUE_RESULT_SUCCESS and t.return_status == 0 for t in done)
    # each ran in its own worker's directory
    assert len({t.output for t in done}) == 2, [t.output for t in done]
    stories = [" ".join(queue.task_story(t.id)) for t in tasks]
    assert sum("(reclaim)" in s for s in stories) == 1, stories
