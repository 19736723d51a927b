"""The first allocation MIN_WASTE and MAX_THROUGHPUT learn, as CCTools 7.17.1 computes it.

``category_update_first_allocation`` (dttools/src/category.c) holds the largest value seen,
the worker's and the explicit maximum in ``int64_t``: tasks that each use less than a whole
core (0.74 cores at most) give a largest value of 0 cores, so the first allocation asks for
0 cores and the box is sized by memory and disk alone (``task_worker_box_size``: 1 core and
a 1/16 share of a 4-core worker's memory, not a quarter of it).  Fake clock, no sockets."""

from __future__ import annotations

import pytest

import work_queue as wq
from work_queue.core.categories import ALLOCATION_FIRST, ALLOCATION_MAX, Category
from work_queue.core.resources import Resources

from .test_core import FakeTask, add_worker, dispatch_all

WORKER = Resources(cores=4, memory=4000, disk=4000, gpus=0)


def measured(cores, memory, disk=1):
    r = Resources(cores=cores, memory=memory, disk=disk, gpus=0)
    r.wall_time = 1.0
    return r


def learn(c: Category, usage: list[tuple[float, float]]) -> None:
    for cores, memory in usage:
        c.accumulate(measured(cores, memory), True, WORKER)


@pytest.mark.parametrize("mode", [wq.WORK_QUEUE_ALLOCATION_MODE_MIN_WASTE,
                                  wq.WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT])
def test_tasks_under_a_core_get_a_first_allocation_of_zero_cores(mode):
    c = Category("c", mode=mode, steady_n_tasks=5)
    learn(c, [(0.74, 200), (0.3, 210), (0.5, 190), (0.6, 205), (0.4, 200), (0.7, 215)])
    assert c.steady_state
    first = c.task_max(Resources(), ALLOCATION_FIRST)
    assert (first.cores, first.memory, first.disk) == (0, 250, 250)
    # a retry gets the largest values seen (at least the first allocation), as in CCTools
    retry = c.task_max(Resources(), ALLOCATION_MAX)
    assert (retry.cores, retry.memory, retry.disk) == (0.74, 250, 250)


def test_max_mode_rounds_the_largest_core_seen_up_to_one():
    c = Category("c", mode=wq.WORK_QUEUE_ALLOCATION_MODE_MAX, steady_n_tasks=5)
    learn(c, [(0.74, 200)] * 6)
    first = c.task_max(Resources(), ALLOCATION_FIRST)
    assert (first.cores, first.memory, first.disk) == (1, 500, 250)


def test_fractional_maxima_are_truncated_as_cctools_does():
    c = Category("c", mode=wq.WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT, steady_n_tasks=5)
    learn(c, [(1.3, 200)] + [(0.9, 200)] * 5)
    # top is int64(1.3) = 1: the bucket of 1.3 (2 cores) is above it, so 1 core
    assert c.task_max(Resources(), ALLOCATION_FIRST).cores == 1


def test_the_box_of_a_task_under_a_core_is_sized_by_its_memory(state, clock):
    c = state.categories.get_or_create("small")
    c.set_mode(wq.WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT)
    c.steady_n_tasks = 5
    learn(c, [(0.5, 200)] * 6)
    add_worker(state, 1, cores=4)
    t = FakeTask(cores=-1)
    t.category = "small"
    state.submit(t, clock.now)
    (d,) = dispatch_all(state, clock.now)
    # CCTools: proportion max(0/4, 250/4000, 250/4000) = 1/16 -> 1 core, 250 MB, 250 MB
    assert (d.box.cores, d.box.memory, d.box.disk) == (1, 250, 250)
