"""The pure manager core, driven with a fake clock: no sockets, no processes."""

from __future__ import annotations

import pytest

import work_queue as wq
from work_queue.core import task_state as ts
from work_queue.core.manager_state import Dispatch
from work_queue.core.resources import BoxPolicy, Resources, WorkerResources, allocation_box
from work_queue.core.scheduling import WorkerRecord
from work_queue.errors import InvalidTransition


def worker_res(cores, memory, disk, gpus=0):
    return WorkerResources(cores=cores, memory=memory, disk=disk, gpus=gpus, workers=1,
                           largest={"cores": cores, "memory": memory, "disk": disk,
                                    "gpus": gpus})


def box(cores=-1, memory=-1, disk=-1, gpus=-1, worker=(4, 12 * 1024, 36 * 1024, 0),
        **policy):
    b = allocation_box(Resources(cores, memory, disk, gpus), None, worker_res(*worker),
                       BoxPolicy(**policy))
    return (b.cores, b.memory, b.disk, b.gpus)


@pytest.mark.parametrize(("request_", "expected"), [
    # The manual's examples: worker of 4 cores, 12 GB memory, 36 GB disk
    ({}, (4, 12 * 1024, 36 * 1024, 0)),                        # nothing: the whole worker
    ({"cores": 1}, (1, 3 * 1024, 9 * 1024, 0)),                # 1/4 of everything
    ({"cores": 1, "memory": 6 * 1024}, (2, 6 * 1024, 18 * 1024, 0)),      # memory rules: 1/2
    ({"cores": 1, "memory": 6 * 1024, "disk": 27 * 1024}, (4, 12 * 1024, 36 * 1024, 0)),
    ({"gpus": 1}, (0, 12 * 1024, 36 * 1024, 1)),               # gpus only: zero cores
])
def test_manual_allocation_examples(request_, expected):
    assert box(**request_) == expected


@pytest.mark.parametrize(("request_", "expected"), [
    # CCTools test suite: worker 4 cores / 2000 MB / 2000 MB / 8 gpus
    ({}, (4, 2000, 2000, 0)),
    ({"cores": 0, "memory": 0, "disk": 0, "gpus": 0}, (4, 2000, 2000, 0)),
    ({"memory": 1000}, (2, 1000, 1000, 0)),
    ({"cores": 1}, (1, 500, 500, 0)),
    ({"cores": 4}, (4, 2000, 2000, 0)),
])
def test_cctools_allocation_examples(request_, expected):
    assert box(**request_, worker=(4, 2000, 2000, 8)) == expected


def test_allocation_without_proportions_is_exact():
    assert box(cores=1, memory=100, disk=100, worker=(4, 2000, 2000, 0),
               proportional=False) == (1, 100, 100, 0)
    # without whole-task rounding 3 of 4 cores stay 3 cores
    assert box(cores=3, worker=(4, 2000, 2000, 0), whole_tasks=False) == (3, 1500, 1500, 0)
    assert box(cores=3, worker=(4, 2000, 2000, 0)) == (4, 2000, 2000, 0)


class FakeTask:
    # The core writes try_count only when it is not 0 already, as the real Task's class
    # default is (a write into a fresh task's __dict__ costs a sixth of a submit).
    try_count = 0

    def __init__(self, cores=1, priority=0.0, max_retries=0, tag=None):
        self.id = 0
        self.state = ts.UNKNOWN
        self.priority = priority
        self.resources_requested = Resources(cores=cores)
        self.resources_min = Resources()
        self.resources_allocated = Resources()
        self.max_retries = max_retries
        self.end_time = 0
        self.min_running_time = 0
        self.algorithm = wq.WORK_QUEUE_SCHEDULE_UNSET
        self.features: set[str] = set()
        self.category = "default"
        self.resource_request = 0
        self.fast_abort_count = 0
        self.workers_lost_in_a_row = 0
        self.measured = None
        self.tag = tag
        self.result = wq.WORK_QUEUE_RESULT_UNKNOWN
        self.cmd_execution_time = 0
        self.exhausted_attempts = self.total_cmd_exhausted_execute_time = 0
        self.total_transfer_time = 0
        self.send_input_start = self.send_input_finish = 0
        self.receive_output_start = self.receive_output_finish = 0


def add_worker(state, key, cores=2, clock=None):
    w = WorkerRecord(key, hostname=f"host{key}")
    w.resources = worker_res(cores, 1000 * cores, 1000 * cores)
    state.add_worker(w, 0 if clock is None else clock.now)
    state.worker_ready(w)
    return w


def dispatch_all(state, now):
    out = []
    while (d := state.next_dispatch(now)) is not None:
        assert isinstance(d, Dispatch)
        state.commit_dispatch(d, now)
        state.validate()
        out.append(d)
    return out


def finish(state, task, now):
    state.result_arrived(task, now)
    task.result = wq.WORK_QUEUE_RESULT_SUCCESS
    state.retrieved(task, now)
    state.validate()


def test_dispatch_fills_workers_then_waits(state, clock):
    tasks = [FakeTask() for _ in range(5)]
    for t in tasks:
        state.submit(t, clock.now)
    assert dispatch_all(state, clock.now) == []  # no worker yet
    add_worker(state, 1, cores=2)
    add_worker(state, 2, cores=1)
    sent = dispatch_all(state, clock.now)
    assert [d.task.id for d in sent] == [1, 2, 3]
    assert sorted(len(w.tasks) for w in state.workers.values()) == [1, 2]
    finish(state, sent[0].task, clock.advance(1))
    more = dispatch_all(state, clock.now)
    assert [d.task.id for d in more] == [4]
    assert state.pop_returned().id == 1


def test_ready_order_is_priority_then_id(state, clock):
    low = FakeTask(priority=0)
    high = FakeTask(priority=10)
    mid = FakeTask(priority=5)
    later_high = FakeTask(priority=10)
    for t in (low, high, mid, later_high):
        state.submit(t, clock.now)
    add_worker(state, 1, cores=1)
    order = []
    for _ in range(4):
        (d,) = dispatch_all(state, clock.now)
        order.append(d.task)
        finish(state, d.task, clock.advance(1))
    assert order == [high, later_high, mid, low]


def test_worker_loss_requeues_and_retries_are_bounded(state, clock):
    t = FakeTask(max_retries=2)
    state.submit(t, clock.now)
    for attempt in range(1, 4):
        add_worker(state, attempt)
        (d,) = dispatch_all(state, clock.now)
        assert d.task is t and t.try_count == attempt
        state.remove_worker(attempt, clock.advance(1))
        state.validate()
    # max_retries=2 allows 3 dispatches; the third loss ends the task
    assert t.state == ts.RETRIEVED and t.result == wq.WORK_QUEUE_RESULT_MAX_RETRIES
    assert state.pop_returned() is t and t.state == ts.DONE
    assert state.empty()


def test_cancel_releases_the_worker(state, clock):
    t1, t2 = FakeTask(cores=2), FakeTask(cores=2)
    state.submit(t1, clock.now)
    state.submit(t2, clock.now)
    w = add_worker(state, 1, cores=2)
    (d,) = dispatch_all(state, clock.now)
    task, worker = state.cancel(d.task.id)
    assert task is t1 and worker is w and w.inuse_cores == 0
    assert t1.state == ts.CANCELED
    (d2,) = dispatch_all(state, clock.now)
    assert d2.task is t2
    assert state.cancel(12345) is None


def test_expired_tasks_are_failed_not_sent(state, clock):
    t = FakeTask()
    t.end_time = clock.now + 5
    state.submit(t, clock.now)
    clock.advance(10)
    add_worker(state, 1)
    assert state.next_dispatch(clock.now) is None
    assert t.state == ts.RETRIEVED and t.result == wq.WORK_QUEUE_RESULT_TASK_TIMEOUT
    assert state.pop_returned() is t


def test_blocked_host_gets_nothing(state, clock):
    state.submit(FakeTask(), clock.now)
    add_worker(state, 1)
    state.block_host("host1", until=clock.now + 60)
    assert dispatch_all(state, clock.now) == []
    clock.advance(61)
    state.dispatch_pending = True
    assert len(dispatch_all(state, clock.now)) == 1


def test_hungry(state, clock):
    assert state.hungry()
    for _ in range(10):
        state.submit(FakeTask(), clock.now)
    assert not state.hungry()
    for key in range(6):
        add_worker(state, key)
    assert state.hungry()  # 10 waiting < 2 x 6 workers


def test_wait_by_tag(state, clock):
    a, b = FakeTask(tag="a"), FakeTask(tag="b")
    state.submit(a, clock.now)
    state.submit(b, clock.now)
    add_worker(state, 1)
    for d in dispatch_all(state, clock.now):
        finish(state, d.task, clock.now)
    assert state.pop_returned("b") is b
    assert state.pop_returned("zzz") is None
    assert state.pop_returned() is a


def test_lifecycle_rejects_impossible_moves():
    assert ts.transition(1, ts.READY, "dispatch") == ts.RUNNING
    with pytest.raises(InvalidTransition):
        ts.transition(1, ts.DONE, "dispatch")
    with pytest.raises(InvalidTransition):
        ts.transition(1, ts.READY, "retrieved")


def test_prefetching_worker_may_hold_one_extra_task(state, clock):
    for _ in range(4):
        state.submit(FakeTask(cores=1), clock.now)
    w = add_worker(state, 1, cores=1)
    w.prefetch = True
    sent = dispatch_all(state, clock.now)
    assert len(sent) == 2  # one running, one queued at the worker
    finish(state, sent[0].task, clock.now)
    assert len(dispatch_all(state, clock.now)) == 1


def test_category_max_resources_apply_unless_the_task_says_otherwise(state, clock):
    state.categories.get_or_create("small").set_max(Resources(cores=1, memory=100, disk=100))
    plain, own = FakeTask(cores=-1), FakeTask(cores=2)
    plain.category = own.category = "small"
    w = add_worker(state, 1, cores=4)
    assert state.box_for(plain, w).cores == 1
    assert state.box_for(own, w).cores == 2


def test_task_state_is_remembered_after_the_task_leaves(state, clock):
    a, b = FakeTask(), FakeTask()
    state.submit(a, clock.now)
    state.submit(b, clock.now)
    add_worker(state, 1)
    for d in dispatch_all(state, clock.now):
        if d.task is a:
            finish(state, a, clock.now)
    state.cancel(b.id)
    assert state.pop_returned() is a
    assert state.state_of(a.id) == ts.DONE and state.state_of(b.id) == ts.CANCELED
    assert state.state_of(999) == ts.UNKNOWN


def test_statistics_of_a_returned_task_are_counted_when_settled(state, clock):
    """A retrieved task is returned at once; its statistics wait for ``settle()`` (the
    manager calls it after its next send, and before any look at the statistics)."""
    w = add_worker(state, 1)
    t = FakeTask()
    state.submit(t, clock.now)
    (d,) = dispatch_all(state, clock.now)
    t.cmd_execution_time = 5_000_000
    finish(state, t, clock.advance(5))
    assert state.returned and not w.tasks  # returned, and its worker is free again
    assert state.counters.time_workers_execute == 0 and w.tasks_complete == 0
    state.settle()
    assert state.counters.time_workers_execute == 5_000_000 and w.tasks_complete == 1
    assert state.categories["default"].stats.time_workers_execute == 5_000_000
    state.settle()  # nothing counted twice
    assert state.counters.time_workers_execute == 5_000_000
