"""A task that exhausts its allocation: the task's own counts of such attempts.

CCTools (``work_queue_accumulate_task``) adds one to ``t->exhausted_attempts`` and the
attempt's execution time to ``t->time_workers_execute_exhaustion`` (the Python binding's
``total_cmd_exhausted_execute_time``) for every attempt that ends in RESOURCE_EXHAUSTION,
whether the task is then retried with a larger allocation or returned; a resubmission
starts them again at 0."""

from __future__ import annotations

import pytest

import work_queue as wq
from work_queue.core import events as ev
from work_queue.core import task_state as ts
from work_queue.core.resources import Resources

from .conftest import wait_all
from .test_manager_core import Core
from .test_monitoring import TASK_PY

#: The exit codes our resource monitor reports (limits exceeded, wall time over).
MONITOR_CODES = (147, 148)


@pytest.fixture
def core(clock) -> Core:
    c = Core(clock)
    yield c
    c.state.validate()


def exhaust(core: Core, w, task, exec_usec: int) -> None:
    """The worker reports the monitor's "limits exceeded" exit, then the outputs arrive."""
    core.clock.advance(exec_usec / 1e6 + 0.001)  # the manager trusts no more than it saw
    core.step(ev.ResultReceived(w, task.id, wq.WORK_QUEUE_RESULT_SUCCESS, 147, exec_usec,
                                b"", MONITOR_CODES))
    assert task.result == wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION
    core.step(ev.OutputsFetched(task))


def test_a_retried_exhaustion_is_counted_on_the_task(core):
    c = core.state.categories.get_or_create("grow")
    c.set_mode(wq.WORK_QUEUE_ALLOCATION_MODE_MAX)
    c.set_first_guess(Resources(cores=1, memory=500, disk=500))
    w = core.worker(1, cores=4)
    t = core.submit(_category="grow")
    (d,) = core.dispatch()
    assert d.box.cores == 1
    exhaust(core, w, t, 400_000)
    assert t.state == ts.READY  # retried with the whole worker
    assert t.exhausted_attempts == 1
    assert t.total_cmd_exhausted_execute_time == 400_000
    (d,) = core.dispatch()
    assert d.box.cores == 4
    core.clock.advance(0.002)
    core.finish(w, t)
    assert core.pop() is t and t.result == wq.WORK_QUEUE_RESULT_SUCCESS
    assert (t.try_count, t.exhausted_attempts) == (2, 1)
    assert t.total_cmd_exhausted_execute_time == 400_000
    assert t.total_cmd_execution_time == 401_000
    assert core.state.counters.tasks_exhausted_attempts == 1


def test_an_exhaustion_that_is_returned_is_counted_too(core):
    """FIXED mode never retries; CCTools counts the attempt all the same."""
    w = core.worker(1, cores=4)
    t = core.submit(cores=1)
    core.dispatch()
    exhaust(core, w, t, 2000)
    assert core.pop() is t and t.result == wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION
    assert (t.try_count, t.exhausted_attempts) == (1, 1)
    assert t.total_cmd_exhausted_execute_time == 2000


def test_other_results_are_not_exhausted_attempts(core):
    w = core.worker(1)
    t = core.submit()
    core.dispatch()
    core.clock.advance(0.001)
    core.step(ev.ResultReceived(w, t.id, wq.WORK_QUEUE_RESULT_SUCCESS, 1, 1000, b"", None))
    core.step(ev.OutputsFetched(t))
    assert core.pop() is t and t.exhausted_attempts == 0
    assert t.total_cmd_exhausted_execute_time == 0


def test_real_worker_exhaustions_are_counted_and_reset_on_resubmission(queue, workers,
                                                                         in_tmp):
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
    assert done.exhausted_attempts == 1
    assert 0 < done.total_cmd_exhausted_execute_time < done.total_cmd_execution_time
    assert queue.stats.tasks_exhausted_attempts == 1
    queue.submit(done)                            # a resubmission starts the counts again
    assert done.exhausted_attempts == 0 and done.total_cmd_exhausted_execute_time == 0
    (again,) = wait_all(queue, timeout=30)
    assert again.result == wq.WORK_QUEUE_RESULT_SUCCESS, (again.result, again.output)
