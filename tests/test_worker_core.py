"""The worker's pure core: packing, kills, time limits, results, idle timeout.

No process, socket or real second: events go in with a fake clock's time, instructions come
out, and ``validate()`` checks the invariants after every event.
"""

from __future__ import annotations

import pytest

from work_queue._testing import FakeClock
from work_queue.constants import (
    WORK_QUEUE_RESULT_DISK_ALLOC_FULL,
    WORK_QUEUE_RESULT_FORSAKEN,
    WORK_QUEUE_RESULT_INPUT_MISSING,
    WORK_QUEUE_RESULT_SIGNAL,
    WORK_QUEUE_RESULT_SUCCESS,
    WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME,
    WORK_QUEUE_RESULT_TASK_TIMEOUT,
    WORK_QUEUE_WATCH,
)
from work_queue.core import worker_state as ws
from work_queue.protocol import extensions
from work_queue.protocol import messages as m
from work_queue.protocol.task_block import TaskSpec


class Core:
    """A WorkerState driven by a fake clock, validated after every event."""

    def __init__(self, clock: FakeClock, **limits: float | str) -> None:
        self.clock = clock
        args: dict[str, float | str] = dict(cores=4, memory=4000, disk=4000, gpus=0)
        args.update(limits)
        self.state = ws.WorkerState(ws.WorkerLimits(**args), clock.now)  # type: ignore[arg-type]

    def __call__(self, event: ws.Event) -> list[ws.Instruction]:
        out = self.state.handle(event, self.clock.now)
        self.state.validate()
        return out

    def task(self, task_id: int, **fields: object) -> list[ws.Instruction]:
        spec = TaskSpec(task_id, command="true")
        for name, value in fields.items():
            setattr(spec, name, value)
        return self(ws.TaskReceived(spec))


@pytest.fixture
def core(clock: FakeClock) -> Core:
    return Core(clock)


def started(out: list[ws.Instruction]) -> list[int]:
    return [i.task_id for i in out if isinstance(i, ws.StartTask)]


def results(out: list[ws.Instruction]) -> list[ws.SendResult]:
    return [i for i in out if isinstance(i, ws.SendResult)]


def test_a_task_that_fits_starts_at_once(core: Core) -> None:
    assert started(core.task(1, cores=1, memory=10, disk=10, gpus=0)) == [1]
    assert core.state.tasks[1].state == ws.RUNNING
    assert core.state.used_cores == 1


def test_a_task_asking_for_nothing_takes_the_whole_worker(core: Core) -> None:
    assert started(core.task(1)) == [1]
    assert started(core.task(2, cores=1, memory=0, disk=0, gpus=0)) == []
    rec = core.state.tasks[1]
    assert (rec.cores, rec.memory, rec.disk) == (4, 4000, 4000)


def test_packing_starts_waiting_tasks_in_order_as_room_frees(core: Core) -> None:
    size = dict(cores=2, memory=100, disk=100, gpus=0)
    for task_id in (1, 2):
        assert started(core.task(task_id, **size)) == [task_id]
    core.task(3, **size)
    core.task(4, cores=1, memory=100, disk=100, gpus=0)
    assert started(core(ws.Tick())) == []
    core(ws.TaskExited(1, WORK_QUEUE_RESULT_SUCCESS, 0))
    assert started(core(ws.Tick())) == [3]
    core(ws.TaskExited(2, WORK_QUEUE_RESULT_SUCCESS, 0))
    assert started(core(ws.Tick())) == [4]


def test_a_smaller_task_behind_a_big_one_starts_when_it_fits(core: Core) -> None:
    core.task(1, cores=3, memory=0, disk=0, gpus=0)
    core.task(2, cores=3, memory=0, disk=0, gpus=0)
    core.task(3, cores=1, memory=0, disk=0, gpus=0)
    assert started(core(ws.Tick())) == [3]
    assert core.state.waiting == [2]


def test_a_task_larger_than_the_worker_is_forsaken(core: Core) -> None:
    out = core.task(1, cores=8, memory=0, disk=0, gpus=0)
    assert started(out) == []
    assert isinstance(out[-1], ws.SendMessage)
    assert isinstance(out[-1].message, m.AvailableResults)
    out = core(ws.ResultsRequested())
    assert [(r.task_id, r.status) for r in results(out)] == [(1, WORK_QUEUE_RESULT_FORSAKEN)]


def test_a_task_for_a_missing_coprocess_is_forsaken(core: Core) -> None:
    core.task(1, cores=1, memory=0, disk=0, gpus=0, coprocess="wq_worker_coprocess:other")
    assert core.state.tasks[1].status == WORK_QUEUE_RESULT_FORSAKEN


def test_coprocess_tasks_wait_for_a_free_instance(clock: FakeClock) -> None:
    core = Core(clock, coprocess="wq_worker_coprocess:sum", coprocess_instances=1)
    one = dict(cores=1, memory=0, disk=0, gpus=0, coprocess="wq_worker_coprocess:sum")
    assert started(core.task(1, **one)) == [1]
    assert started(core.task(2, **one)) == []
    core(ws.TaskExited(1, WORK_QUEUE_RESULT_SUCCESS, 0))
    assert started(core(ws.Tick())) == [2]
    core(ws.TaskDeferred(2))  # the instance could not be had after all: it waits again
    assert core.state.waiting == [2]
    assert started(core(ws.Tick())) == [2]


def test_wall_time_kill_then_result(core: Core, clock: FakeClock) -> None:
    core.task(1, cores=1, memory=0, disk=0, gpus=0, wall_time=10)
    assert core.state.timeout(clock.now) == pytest.approx(5.0)
    clock.advance(9.9)
    assert core(ws.Tick()) == []
    assert core.state.timeout(clock.now) == pytest.approx(0.1)
    clock.advance(0.1)
    out = core(ws.Tick())
    assert out == [ws.KillTask(1, WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME)]
    clock.advance(0.5)
    core(ws.TaskExited(1, WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME, 9))
    (result,) = results(core(ws.ResultsRequested()))
    assert (result.status, result.exit_code) == (WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME, 9)
    assert result.elapsed_usec == 10_500_000


def test_end_time_kill(core: Core, clock: FakeClock) -> None:
    core.task(1, cores=1, memory=0, disk=0, gpus=0, end_time=clock.now + 3)
    clock.advance(3)
    assert core(ws.Tick()) == [ws.KillTask(1, WORK_QUEUE_RESULT_TASK_TIMEOUT)]


def test_disk_alloc_full_only_for_a_failed_exit(core: Core) -> None:
    assert ws.WorkerState.may_be_disk_full(WORK_QUEUE_RESULT_SUCCESS, 1)
    assert not ws.WorkerState.may_be_disk_full(WORK_QUEUE_RESULT_SUCCESS, 0)
    assert not ws.WorkerState.may_be_disk_full(WORK_QUEUE_RESULT_SIGNAL, 9)
    size = dict(cores=1, memory=0, disk=10, gpus=0)
    core.task(1, **size)
    core.task(2, **size)
    core(ws.TaskExited(1, WORK_QUEUE_RESULT_SUCCESS, 1, disk_full=True))
    core(ws.TaskExited(2, WORK_QUEUE_RESULT_SUCCESS, 0, disk_full=True))
    got = {r.task_id: r.status for r in results(core(ws.ResultsRequested()))}
    assert got == {1: WORK_QUEUE_RESULT_DISK_ALLOC_FULL, 2: WORK_QUEUE_RESULT_SUCCESS}


def test_the_monitors_code_replaces_the_tasks_unless_forced(core: Core, clock: FakeClock) -> None:
    size = dict(cores=1, memory=0, disk=0, gpus=0)
    core.task(1, **size)
    core.task(2, wall_time=1, **size)
    clock.advance(1)
    core(ws.Tick())
    core(ws.TaskExited(1, WORK_QUEUE_RESULT_SIGNAL, 9, monitor_code=147))
    core(ws.TaskExited(2, WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME, 9, monitor_code=147))
    got = {r.task_id: (r.status, r.exit_code) for r in results(core(ws.ResultsRequested()))}
    assert got == {1: (WORK_QUEUE_RESULT_SUCCESS, 147), 2: (WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME, 9)}


def test_kill_of_waiting_and_running_tasks(core: Core) -> None:
    core.task(1, cores=4, memory=0, disk=0, gpus=0)
    core.task(2, cores=4, memory=0, disk=0, gpus=0)
    assert core(ws.KillRequested(2)) == [ws.DropTask(2)]
    assert core.state.waiting == []
    core.task(3, cores=4, memory=0, disk=0, gpus=0)
    assert core(ws.KillRequested(1)) == [ws.DropTask(1)]
    assert core.state.used_cores == 0
    assert started(core(ws.Tick())) == [3]
    assert core(ws.KillRequested(-1)) == [ws.DropTask(3)]
    assert core(ws.KillRequested(99)) == []
    assert core.state.tasks == {}


def test_a_killed_task_that_exits_later_is_ignored(core: Core) -> None:
    core.task(1, cores=1, memory=0, disk=0, gpus=0)
    core(ws.KillRequested(1))
    assert core(ws.TaskExited(1, WORK_QUEUE_RESULT_SUCCESS, 0)) == []


def test_results_go_in_the_order_tasks_came_and_once(core: Core) -> None:
    for task_id in (5, 3, 9):
        core.task(task_id, cores=1, memory=0, disk=0, gpus=0)
    announced = core(ws.TaskExited(9, WORK_QUEUE_RESULT_SUCCESS, 0))
    assert announced == [ws.SendMessage(m.AvailableResults())]
    assert core(ws.TaskExited(5, WORK_QUEUE_RESULT_SUCCESS, 2)) == []  # announced once
    out = core(ws.ResultsRequested())
    assert [r.task_id for r in results(out)] == [5, 9]
    assert out[-2:] == [ws.SendMessage(m.Info("tasks_running", "1")), ws.SendMessage(m.End())]
    assert results(core(ws.ResultsRequested())) == []
    assert core(ws.TaskExited(3, WORK_QUEUE_RESULT_SUCCESS, 0)) == [
        ws.SendMessage(m.AvailableResults())]


def test_pushed_results_go_at_once(core: Core) -> None:
    core(ws.ExtensionConfirmed(extensions.PUSH_RESULTS))
    core.task(1, cores=1, memory=0, disk=0, gpus=0)
    out = core(ws.TaskExited(1, WORK_QUEUE_RESULT_SUCCESS, 0))
    assert [type(i) for i in out] == [ws.SendResult]
    assert core.state.tasks[1].state == ws.REPORTED


def test_watched_outputs_are_announced_even_with_pushed_results(core: Core) -> None:
    core(ws.ExtensionConfirmed(extensions.PUSH_RESULTS))
    core.task(1, cores=1, memory=0, disk=0, gpus=0, outputs=[("c", "log", WORK_QUEUE_WATCH)])
    assert core(ws.OutputsGrew()) == [ws.SendMessage(m.AvailableResults())]
    assert ws.SendUpdates(1) in core(ws.ResultsRequested())


def test_a_task_that_could_not_start_has_no_run_time(core: Core, clock: FakeClock) -> None:
    core.task(1, cores=1, memory=0, disk=0, gpus=0)
    clock.advance(2)
    core(ws.TaskNotStarted(1, WORK_QUEUE_RESULT_INPUT_MISSING, 1))
    (result,) = results(core(ws.ResultsRequested()))
    assert (result.status, result.elapsed_usec) == (WORK_QUEUE_RESULT_INPUT_MISSING, 0)


def test_idle_timeout_counts_from_the_last_word_or_task(clock: FakeClock) -> None:
    core = Core(clock, idle_timeout=60)
    clock.advance(59)
    core(ws.ManagerSpoke())
    clock.advance(59)
    assert core(ws.Tick()) == []
    core.task(1, cores=1, memory=0, disk=0, gpus=0)
    clock.advance(100)
    assert core(ws.Tick()) == []  # a task is held: not idle
    core(ws.KillRequested(1))
    clock.advance(30)
    assert core(ws.Tick(receiving=True)) == []  # a file is coming in: not idle
    assert core.state.timeout(clock.now) == pytest.approx(5.0)
    clock.advance(60.5)
    (end,) = core(ws.Tick())
    assert end == ws.EndSession(ws.IDLED_OUT, m.Info("idle-disconnecting", "60"))


def test_the_workers_wall_time_ends_the_session(clock: FakeClock) -> None:
    core = Core(clock, end_time=clock.now + 30)
    core.task(1, cores=1, memory=0, disk=0, gpus=0)
    clock.advance(29)
    assert core.state.timeout(clock.now) == pytest.approx(1.0)
    assert core(ws.Tick()) == []
    clock.advance(1)
    (end,) = core(ws.Tick())
    assert end == ws.EndSession(ws.WALL_TIME, m.Info("wall_time_exhausted", "0"))
