"""Categories and automatic resource labelling, in the pure core with a fake clock."""

from __future__ import annotations

import pytest

import work_queue as wq
from work_queue.core.categories import (
    ALLOCATION_ERROR,
    ALLOCATION_FIRST,
    ALLOCATION_MAX,
    Category,
    Histogram,
)
from work_queue.core.resources import Resources

from .test_core import FakeTask, add_worker, dispatch_all


def measured(cores=1, memory=100, disk=100, wall_time=1.0):
    r = Resources(cores=cores, memory=memory, disk=disk, gpus=0)
    r.wall_time = wall_time
    return r


def run(state, clock, task, result=wq.WORK_QUEUE_RESULT_SUCCESS, usage=None):
    state.result_arrived(task)
    task.result = result
    task.measured = usage
    state.retrieved(task, clock.now)
    state.validate()


def test_histogram_rounds_up_to_buckets():
    h = Histogram(250)
    assert h.round_up(0) == 0
    assert h.round_up(1) == 250
    assert h.round_up(250) == 250
    assert h.round_up(251) == 500
    h.insert(300, 1.0)
    # the largest seen, plus a third of a bucket, rounded up; capped by the worker
    assert h.max_seen(top=2000, max_worker=4000, max_explicit=-1) == 500
    assert h.max_seen(top=2000, max_worker=400, max_explicit=-1) == 400


def test_max_mode_learns_a_first_allocation_after_steady_n_tasks():
    c = Category("c", mode=wq.WORK_QUEUE_ALLOCATION_MODE_MAX, steady_n_tasks=5)
    worker = Resources(cores=4, memory=4000, disk=4000, gpus=0)
    # before steady state: whole workers (nothing set)
    assert c.task_max(Resources(), ALLOCATION_FIRST).as_dict() == {}
    for _ in range(5):
        c.accumulate(measured(cores=1, memory=300, disk=120), True, worker)
    assert c.steady_state is False  # becomes steady at the next accumulation (as in CCTools)
    c.accumulate(measured(cores=1, memory=300, disk=120), True, worker)
    assert c.steady_state
    first = c.task_max(Resources(), ALLOCATION_FIRST)
    assert (first.cores, first.memory, first.disk) == (1, 500, 250)
    # a retry after exhaustion asks for the maximum: the whole worker again
    assert c.task_max(Resources(), ALLOCATION_MAX).as_dict() == {}
    # the task's own values always win
    assert c.task_max(Resources(memory=64), ALLOCATION_FIRST).memory == 64


def test_a_new_maximum_resets_the_statistics():
    c = Category("c", mode=wq.WORK_QUEUE_ALLOCATION_MODE_MAX, steady_n_tasks=3)
    for _ in range(4):
        c.accumulate(measured(memory=100), True, None)
    assert c.steady_state and c.first_allocation is not None
    c.steady_state = False  # statistics are checked for new maxima outside steady state
    assert c.accumulate(measured(memory=900), True, None)
    assert c.first_allocation is None and c.completions_since_reset == 1


def test_min_waste_and_max_throughput_pick_from_the_histogram():
    for mode in (wq.WORK_QUEUE_ALLOCATION_MODE_MIN_WASTE,
                 wq.WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT):
        c = Category("c", mode=mode, steady_n_tasks=10)
        worker = Resources(cores=8, memory=8000, disk=8000, gpus=0)
        # 9 small tasks and one big one: the first allocation fits the small ones
        for i in range(10):
            c.accumulate(measured(memory=2000 if i == 0 else 200, wall_time=10), True, worker)
        assert c.first_allocation is not None
        assert c.first_allocation.memory == 250, mode


def test_exhaustion_retries_at_max_unless_over_an_explicit_limit():
    c = Category("c", mode=wq.WORK_QUEUE_ALLOCATION_MODE_MAX)
    assert c.next_label(Resources(), measured(disk=900)) == ALLOCATION_MAX
    c.set_max(Resources(disk=500))
    assert c.next_label(Resources(), measured(disk=900)) == ALLOCATION_ERROR
    assert c.next_label(Resources(disk=1000), measured(disk=900)) == ALLOCATION_MAX
    fixed = Category("f")
    assert fixed.next_label(Resources(), measured()) == ALLOCATION_ERROR


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown category mode"):
        Category("c", mode=42)


def test_exhausted_task_is_retried_with_the_whole_worker(state, clock):
    c = state.categories.get_or_create("big")
    c.set_mode(wq.WORK_QUEUE_ALLOCATION_MODE_MAX)
    c.set_first_guess(Resources(cores=1, memory=500, disk=500))
    add_worker(state, 1, cores=4)
    t = FakeTask(cores=-1)
    t.category = "big"
    state.submit(t, clock.now)
    (d,) = dispatch_all(state, clock.now)
    assert (d.box.cores, d.box.memory) == (1, 1000)  # the guess, boxed on a 4-core worker
    run(state, clock, t, wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION, measured(memory=2000))
    assert not state.returned and t.resource_request == ALLOCATION_MAX
    (d,) = dispatch_all(state, clock.now)
    assert (d.box.cores, d.box.memory) == (4, 4000)  # whole worker
    run(state, clock, t, wq.WORK_QUEUE_RESULT_SUCCESS, measured(memory=2000))
    assert list(state.returned) == [t.id]


def test_exhaustion_over_the_category_maximum_is_returned(state, clock):
    c = state.categories.get_or_create("capped")
    c.set_mode(wq.WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT)
    c.set_max(Resources(cores=1, disk=500))
    add_worker(state, 1, cores=4)
    t = FakeTask(cores=-1)
    t.category = "capped"
    state.submit(t, clock.now)
    (d,) = dispatch_all(state, clock.now)
    assert (d.box.cores, d.box.disk) == (1, 1000)
    run(state, clock, t, wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION, measured(disk=1001))
    assert list(state.returned) == [t.id]
    assert c.exhausted_seen.disk == 1001


def test_max_concurrent_limits_running_tasks_of_a_category(state, clock):
    state.categories.get_or_create("few").max_concurrent = 2
    add_worker(state, 1, cores=8)
    tasks = [FakeTask() for _ in range(5)]
    for t in tasks:
        t.category = "few"
        state.submit(t, clock.now)
    other = FakeTask()
    state.submit(other, clock.now)
    sent = dispatch_all(state, clock.now)
    assert sorted(d.task.id for d in sent) == [1, 2, other.id]
    run(state, clock, sent[0].task)
    assert [d.task.id for d in dispatch_all(state, clock.now)] == [3]


def test_category_statistics_count_their_own_tasks(state, clock):
    from work_queue.core.stats import category_snapshot

    add_worker(state, 1, cores=2)
    for cat in ("a", "a", "b"):
        t = FakeTask()
        t.category = cat
        state.submit(t, clock.now)
    for d in dispatch_all(state, clock.now):
        run(state, clock, d.task)
    while state.pop_returned() is not None:
        pass
    a = category_snapshot(state, state.categories["a"])
    b = category_snapshot(state, state.categories["b"])
    assert (a.tasks_submitted, a.tasks_done, a.tasks_waiting) == (2, 2, 0)
    assert (b.tasks_submitted, b.tasks_done, b.tasks_waiting) == (1, 0, 1)


def test_ramp_down_gives_a_task_the_free_worker(state, clock):
    state.ramp_down = True
    add_worker(state, 1, cores=4)
    add_worker(state, 2, cores=4)
    t = FakeTask(cores=1)
    state.submit(t, clock.now)
    (d,) = dispatch_all(state, clock.now)
    assert (d.box.cores, d.box.memory) == (4, 4000)  # more workers than tasks: all of it
    state.ramp_down = False
    t2 = FakeTask(cores=1)
    state.submit(t2, clock.now)
    (d2,) = dispatch_all(state, clock.now)
    assert (d2.box.cores, d2.box.memory) == (1, 1000)
