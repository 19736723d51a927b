"""Fast abort, categories, max_concurrent, draining and bad input, with real workers."""

from __future__ import annotations

import time

import pytest

import work_queue as wq

from .conftest import wait_all


def test_fast_abort_takes_back_a_task_much_slower_than_its_category(queue, workers):
    queue.activate_fast_abort(3)
    workers.start(queue.port, cores=1)
    for _ in range(10):
        queue.submit(wq.Task("true"))
    assert all(t.result == wq.WORK_QUEUE_RESULT_SUCCESS for t in wait_all(queue))
    slow = wq.Task("sleep 30")
    slow.specify_max_retries(2)
    queue.submit(slow)
    start = time.time()
    (t,) = wait_all(queue, timeout=15)
    assert t is slow
    assert t.result == wq.WORK_QUEUE_RESULT_MAX_RETRIES
    assert t.fast_abort_count >= 2
    assert time.time() - start < 10


def test_fast_abort_off_for_one_category(queue, workers):
    queue.activate_fast_abort(2)
    queue.activate_fast_abort_category("patient", 0)
    workers.start(queue.port, cores=1)
    for _ in range(10):
        t = wq.Task("true")
        t.specify_category("patient")
        queue.submit(t)
    wait_all(queue)
    t = wq.Task("sleep 0.5")
    t.specify_category("patient")
    queue.submit(t)
    (done,) = wait_all(queue)
    assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS and done.fast_abort_count == 0


def test_max_concurrent_holds_back_a_category(queue, workers):
    queue.specify_category_max_concurrent("one-at-a-time", 1)
    workers.start(queue.port, cores=4, memory=4000, disk=4000)
    for _ in range(4):
        t = wq.Task("sleep 0.3")
        t.specify_category("one-at-a-time")
        t.specify_cores(1)
        queue.submit(t)
    done = wait_all(queue)
    spans = sorted((t.execute_cmd_start, t.execute_cmd_finish) for t in done)
    # never two at once: each starts after the previous one ended
    for (_s1, e1), (s2, _e2) in zip(spans, spans[1:], strict=False):
        assert s2 >= e1 - 1000


def test_drained_worker_finishes_its_task_then_exits(queue, workers):
    p = workers.start(queue.port, cores=1)
    queue.submit(wq.Task("sleep 0.5"))
    deadline = time.time() + 10
    while queue.stats.tasks_running < 1 and time.time() < deadline:
        queue.wait(0.1)
    host = next(iter(queue._state.workers.values())).hostname
    assert queue.specify_draining_by_hostname(host) == 1
    queue.submit(wq.Task("true"))
    (first,) = [queue.wait(5)]
    assert first is not None and first.command == "sleep 0.5"
    deadline = time.time() + 10
    while p.poll() is None and time.time() < deadline:
        queue.wait(0.2)  # the manager acts on draining inside wait()
    assert p.poll() is not None
    assert queue.stats.workers_connected == 0
    assert queue.stats.tasks_waiting == 1  # the drained worker took nothing new


@pytest.mark.parametrize(("call", "error"), [
    (lambda q: q.specify_category_mode("c", 99), "unknown category mode"),
    (lambda q: q.specify_category_max_resources("c", {"cores": -4}), "cannot be negative"),
    (lambda q: q.specify_category_max_resources("c", {"ram": 4}), "unknown resource"),
    (lambda q: q.specify_max_resources({"cores": "four"}), "must be a number"),
    (lambda q: q.stats_category("never-used"), "no category"),
    (lambda q: q.specify_category_max_concurrent("", 2), "non-empty string"),
])
def test_bad_category_calls_raise_clear_errors(queue, call, error):
    with pytest.raises((ValueError, TypeError, KeyError), match=error):
        call(queue)


def test_stats_category_counts_after_a_run(queue, workers):
    workers.start(queue.port, cores=2, memory=2000, disk=2000)
    for i in range(6):
        t = wq.Task("true" if i % 3 else "false")
        t.specify_category("odd" if i % 2 else "even")
        queue.submit(t)
    wait_all(queue)
    odd, even = queue.stats_category("odd"), queue.stats_category("even")
    assert odd.tasks_submitted == even.tasks_submitted == 3
    assert odd.tasks_done + even.tasks_done == 6
    assert set(queue.stats_by_category()) >= {"odd", "even"}


def test_a_task_no_worker_can_fit_is_reported(queue, workers, caplog):
    queue.unfit_warning_interval = 0.5
    workers.start(queue.port, cores=1, memory=500, disk=500)
    big = wq.Task("true")
    big.specify_memory(64000)
    big.specify_category("huge")
    queue.submit(big)
    small = wq.Task("true")
    queue.submit(small)
    with caplog.at_level("WARNING", logger="work_queue.manager.queue"):
        assert queue.wait(10) is small
        deadline = time.time() + 5
        while "need more than any connected worker" not in caplog.text:
            assert time.time() < deadline, "no warning about the task that cannot fit"
            queue.wait(0.2)
    (rec,) = [r for r in queue.status("wable_status") if r["category"] == "huge"]
    assert rec["tasks_waiting"] == 1 and rec["tasks_unfit"] == 1
    assert queue.cancel_by_taskid(big.id) is big
