"""The manager core's rules, driven by events with a fake clock (milliseconds matter).

Every event goes through ``step``, which checks the core's invariants after it; nothing here
opens a socket or starts a process."""

from __future__ import annotations

import pytest

import work_queue as wq
from work_queue.core import events as ev
from work_queue.core import instructions as ins
from work_queue.core import policies
from work_queue.core import task_state as ts
from work_queue.core.manager_state import ManagerState
from work_queue.core.scheduling import WorkerRecord
from work_queue.protocol.extensions import PREFETCH


class Core:
    """A ManagerState, the fake clock, and helpers that feed it events."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.state = ManagerState(clock.now, seed=1)

    def step(self, event) -> list:
        out = self.state.handle(event, self.clock.now)
        self.state.validate()
        return out

    def worker(self, key: int, cores: int = 1, host: str | None = None) -> WorkerRecord:
        w = WorkerRecord(key, hostname=host or f"host{key}", address=f"10.0.0.{key}:9000")
        self.step(ev.WorkerConnected(w))
        for name, value in (("cores", cores), ("memory", 1000 * cores), ("disk", 1000 * cores),
                            ("gpus", 0)):
            self.step(ev.ResourcesReported(w, name, value, value))
        self.step(ev.ResourcesReported(w, "tag", 0, 0))
        out = self.step(ev.WorkerInfo(w, "worker-end-time", "0"))
        assert w.ready and any(isinstance(i, ins.Note) for i in out)
        return w

    def submit(self, command: str = "true", cores: int | None = None, **kw) -> wq.Task:
        t = wq.Task(command)
        if cores is not None:
            t.specify_cores(cores)
        for name, value in kw.items():
            setattr(t, name, value)
        out = self.step(ev.TaskSubmitted(t))
        assert [(i.old, i.new, i.cause) for i in out] == [(ts.UNKNOWN, ts.READY, "submit")]
        return t

    def dispatch(self) -> list[ins.SendTask]:
        sent = []
        while (d := self.state.next_dispatch(self.clock.now)) is not None:
            out = self.step(ev.TaskSent(d, self.clock.now, 10, 5, d.worker.address, []))
            assert [i.cause for i in out if isinstance(i, ins.Transition)][-1] == "dispatch"
            sent.append(d)
        return sent

    def pop(self):
        """wait(): the next returned task, and the instructions that returns it."""
        task = self.state.pop_returned(None, self.clock.now)
        self.state.collect()
        return task

    def result(self, w, task, status=wq.WORK_QUEUE_RESULT_SUCCESS, exit_code=0) -> list:
        return self.step(ev.ResultReceived(w, task.id, status, exit_code, 1000, b"out", None))

    def finish(self, w, task) -> list:
        out = self.result(w, task)
        (fetch,) = [i for i in out if isinstance(i, ins.FetchOutputs)]
        return out + self.step(ev.OutputsFetched(task))


@pytest.fixture
def core(clock) -> Core:
    c = Core(clock)
    yield c
    c.state.validate()


def test_a_task_goes_through_its_states_and_its_story_says_so(core):
    t = core.submit()
    w = core.worker(1)
    (d,) = core.dispatch()
    assert d.task is t and t.hostname == "host1" and t.host == w.address
    core.clock.advance(0.002)
    out = core.finish(w, t)
    kinds = [type(i).__name__ for i in out]
    assert kinds == ["Transition", "FetchOutputs", "SendKill", "Transition"]
    assert out[2].later and out[2].worker_key == 1
    assert core.state.pop_returned(None, core.clock.now) is t
    assert [i.new for i in core.state.collect()] == [ts.DONE]
    story = [(old, new, cause) for old, new, cause, _ in core.state.story(t.id)]
    assert story == [(ts.UNKNOWN, ts.READY, "submit"), (ts.READY, ts.RUNNING, "dispatch"),
                     (ts.RUNNING, ts.WAITING_RETRIEVAL, "result"),
                     (ts.WAITING_RETRIEVAL, ts.RETRIEVED, "retrieved"),
                     (ts.RETRIEVED, ts.DONE, "return")]


def test_outputs_fetched_depend_on_success(core, tmp_path):
    w = core.worker(1)
    t = core.submit()
    t.specify_output_file(str(tmp_path / "always"), "always")
    t.specify_output_file(str(tmp_path / "on-success"), "ok", flags=wq.WORK_QUEUE_SUCCESS_ONLY)
    t.specify_output_file(str(tmp_path / "on-failure"), "bad", failure_only=True)
    core.dispatch()
    (fetch,) = [i for i in core.result(w, t) if isinstance(i, ins.FetchOutputs)]
    assert [f.remote_name for f in fetch.files] == ["always", "ok"]
    core.step(ev.OutputsFetched(t))
    core.pop()
    t2 = core.submit()
    t2.specify_output_file(str(tmp_path / "on-success"), "ok", flags=wq.WORK_QUEUE_SUCCESS_ONLY)
    t2.specify_output_file(str(tmp_path / "on-failure"), "bad", failure_only=True)
    core.dispatch()
    (fetch,) = [i for i in core.result(w, t2, exit_code=1) if isinstance(i, ins.FetchOutputs)]
    assert [f.remote_name for f in fetch.files] == ["bad"]


def test_result_precedence_keeps_the_serious_result(core):
    w = core.worker(1)
    t = core.submit()
    core.dispatch()
    core.result(w, t)
    core.step(ev.OutputFailed(t, wq.WORK_QUEUE_RESULT_OUTPUT_TRANSFER_ERROR))
    core.step(ev.OutputFailed(t, wq.WORK_QUEUE_RESULT_OUTPUT_MISSING))
    assert t.result == wq.WORK_QUEUE_RESULT_OUTPUT_TRANSFER_ERROR
    assert policies.merge_result(wq.WORK_QUEUE_RESULT_SUCCESS,
                                 wq.WORK_QUEUE_RESULT_OUTPUT_MISSING) == \
        wq.WORK_QUEUE_RESULT_OUTPUT_MISSING
    core.step(ev.OutputsFetched(t))


def test_monitor_exit_codes_turn_a_success_into_exhaustion_or_timeout():
    assert policies.result_of(0, 147, (147, 148)) == wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION
    assert policies.result_of(0, 148, (147, 148)) == wq.WORK_QUEUE_RESULT_TASK_TIMEOUT
    assert policies.result_of(0, 147, None) == wq.WORK_QUEUE_RESULT_SUCCESS


def test_a_forsaken_result_runs_again_without_counting_the_attempt(core):
    w = core.worker(1)
    t = core.submit(max_retries=1)
    core.dispatch()
    out = core.result(w, t, status=wq.WORK_QUEUE_RESULT_FORSAKEN)
    assert [type(i).__name__ for i in out] == ["SendKill", "Transition"]
    assert t.state == ts.READY and t.try_count == 0


def test_a_lost_worker_requeues_and_three_in_a_row_forsake_the_task(core):
    t = core.submit()
    for key in (1, 2, 3):
        core.worker(key)
        core.dispatch()
        core.clock.advance(0.001)
        out = core.step(ev.WorkerGone(key, "FAILURE"))
        assert any(isinstance(i, ins.Note) for i in out)
    assert t.state == ts.RETRIEVED and t.result == wq.WORK_QUEUE_RESULT_FORSAKEN
    assert core.state.counters.workers_lost == 3


def test_a_worker_released_on_purpose_does_not_count_as_lost(core):
    t = core.submit()
    core.worker(1)
    core.dispatch()
    core.step(ev.WorkerGone(1, "EXPLICIT", released=True))
    assert t.state == ts.READY and t.workers_lost_in_a_row == 0
    assert core.state.counters.workers_released == 1 and core.state.counters.workers_lost == 0


def test_max_retries_end_a_task_whose_workers_vanish(core):
    t = core.submit(max_retries=1)
    for key in (1, 2):
        core.worker(key)
        core.dispatch()
        core.step(ev.WorkerGone(key, "EXPLICIT"))
    assert t.result == wq.WORK_QUEUE_RESULT_MAX_RETRIES


def test_cancel_kills_only_a_task_on_a_worker(core):
    waiting = core.submit()
    out = core.step(ev.TaskCancelled(waiting.id))
    assert [type(i).__name__ for i in out] == ["Transition"]
    running = core.submit()
    core.worker(1)
    core.dispatch()
    out = core.step(ev.TaskCancelled(running.id))
    kill = [i for i in out if isinstance(i, ins.SendKill)]
    assert kill[0].task is running and kill[0].kill and kill[0].outputs_too
    assert core.step(ev.TaskCancelled(running.id)) == []


def test_a_missing_input_fails_the_task_and_unlinks_what_was_sent(core):
    t = core.submit()
    w = core.worker(1)
    d = core.state.next_dispatch(core.clock.now)
    out = core.step(ev.TaskInputMissing(d, "no such file", [("file-abc", 3)]))
    assert t.result == wq.WORK_QUEUE_RESULT_INPUT_MISSING and t.return_status == -1
    assert w.cached == {"file-abc": 3}
    (unlink,) = [i for i in out if isinstance(i, ins.SendKill)]
    assert not unlink.kill and not unlink.outputs_too


def _teach_average(core, w, seconds: float, n: int = 10):
    """n successful tasks of ``seconds`` each: the category's average for fast abort."""
    for _ in range(n):
        t = core.submit(cores=1)
        core.dispatch()
        t_start = core.clock.now
        core.clock.advance(seconds)
        core.step(ev.ResultReceived(w, t.id, 0, 0, int((core.clock.now - t_start) * 1e6),
                                    b"", None))
        core.step(ev.OutputsFetched(t))
        core.pop()


def test_fast_abort_takes_a_slow_task_back_then_blocks_a_slow_host(core):
    w = core.worker(1, cores=2)
    core.state.set_fast_abort("default", 2)
    _teach_average(core, w, 1.0)
    slow = core.submit(cores=1)
    core.dispatch()
    core.clock.advance(1.999)
    assert core.step(ev.SlowTaskCheck()) == []
    core.clock.advance(0.002)  # two averages: it is slow
    out = core.step(ev.SlowTaskCheck())
    assert [type(i).__name__ for i in out] == ["Note", "SendKill", "Transition"]
    assert slow.state == ts.READY and slow.fast_abort_count == 1 and w.fast_abort_alarm
    other = core.submit(cores=1)
    sent = core.dispatch()
    assert {d.task for d in sent} == {slow, other}
    core.clock.advance(10)  # both slow; the retried one cannot mark the worker twice
    out = core.step(ev.SlowTaskCheck())
    blocks = [i for i in out if isinstance(i, ins.BlockHost)]
    drops = [i for i in out if isinstance(i, ins.DropWorker)]
    assert blocks[0].host == "host1" and blocks[0].until == core.clock.now + 900
    assert drops[0].reason == "FAST_ABORT" and not drops[0].goodbye
    assert core.state.is_blocked("host1", core.clock.now + 899.999)
    assert not core.state.is_blocked("host1", core.clock.now + 900)
    core.step(ev.WorkerGone(1, "FAST_ABORT"))


def test_draining_workers_leave_once_idle(core):
    w = core.worker(1)
    t = core.submit()
    core.dispatch()
    assert core.state.drain_host("host1", True) == 1
    assert core.step(ev.Tick()) == []
    core.finish(w, t)
    (drop,) = core.step(ev.Tick())
    assert drop.goodbye and drop.reason == "EXPLICIT" and drop.worker_key == 1


def test_factory_trimming_sends_idle_workers_home(core):
    busy = core.worker(1)
    for key in (1, 2, 3):
        w = core.state.workers[key] if key == 1 else core.worker(key)
        core.step(ev.WorkerInfo(w, "from-factory", "f"))
    core.submit()
    core.dispatch()
    assert busy.tasks
    out = core.step(ev.Tick({"f": 1}))
    assert sorted(i.worker_key for i in out) == [2, 3]
    # a worker joining a factory already at its limit is sent home at once
    w4 = core.worker(4)
    (drop,) = core.step(ev.WorkerInfo(w4, "from-factory", "f"))
    assert drop.worker_key == 4 and drop.goodbye


def test_idle_disconnecting_worker_is_dropped_and_counted(core):
    w = core.worker(1)
    (drop,) = core.step(ev.WorkerInfo(w, "idle-disconnecting", ""))
    assert drop.reason == "IDLE_OUT"
    core.step(ev.WorkerGone(1, "IDLE_OUT"))
    assert core.state.counters.workers_idled_out == 1


def test_liveness_deadlines_to_the_millisecond():
    def verdict(now, **kw):
        facts = dict(connected_at=0.0, last_message=0.0, last_check=0.0,
                     spoke_since_check=True, ready=True)
        facts.update(kw)
        return policies.liveness_verdict(policies.Liveness(**facts), now, 120, 900, 60,
                                         lambda n: 60.0)

    assert verdict(900.0, ready=False) == policies.KEEP
    assert verdict(900.001, ready=False) == policies.DROP_HANDSHAKE
    assert verdict(119.999) == policies.KEEP
    assert verdict(120.0) == policies.CHECK
    assert verdict(899.999, spoke_since_check=False) == policies.KEEP
    assert verdict(900.0, spoke_since_check=False) == policies.DROP_SILENT
    assert verdict(60.0, expecting=True) == policies.KEEP
    assert verdict(60.001, expecting=True) == policies.DROP_STALLED
    assert verdict(10.001, in_payload=True, payload_deadline=10.0, last_message=10.0) == \
        policies.DROP_SLOW_PAYLOAD
    assert verdict(65.001, blocked_since=5.0, blocked_bytes=1) == policies.DROP_SLOW_READER
    assert verdict(65.0, blocked_since=5.0, blocked_bytes=1) == policies.KEEP


def test_transfer_wait_is_at_least_the_minimum():
    assert policies.transfer_wait(0, 1 << 20, 10, 60) == 60
    assert policies.transfer_wait(100 << 20, 1 << 20, 10, 60) == 1000


def test_stories_are_bounded(core):
    t = core.submit()
    for key in range(1, 30):
        core.worker(key)
        core.dispatch()
        core.step(ev.WorkerGone(key, "EXPLICIT"))
    story = core.state.story(t.id)
    assert len(story) == 16 and story[-1][2] == "requeue"
    core.step(ev.TaskCancelled(t.id))
    assert core.state.story(t.id)[-1][1] == ts.CANCELED
    assert core.state.story(12345) == []


def test_tune_reaches_the_core(core):
    assert core.state.configure("attempt-schedule-depth", 7)
    assert core.state.schedule_depth == 7
    assert not core.state.configure("keepalive-interval", 3)  # the shell's


def test_the_state_lock_is_free_while_the_loop_polls_and_held_by_public_methods():
    """The status thread can take a consistent look at the state while wait() is blocked
    in poll; a public method that changes the state holds the lock."""
    import threading

    with wq.WorkQueue(port=0) as q:
        seen = []
        waiter = threading.Thread(target=lambda: seen.append(q.wait(0.5)))
        q.submit(wq.Task("true"))
        waiter.start()
        took = q._state_lock.acquire(timeout=0.4)  # wait() polls: the lock is free
        assert took
        assert q._submit_lock.acquire(timeout=0.4)  # and so is submit's
        q._submit_lock.release()
        q._state_lock.release()
        waiter.join()
        assert seen == [None]
        assert not q._submit_lock.locked()
        held = []
        # submit() holds its own lock (the status thread takes it after the state lock).
        q._state.submit = lambda *a, **k: held.append(q._submit_lock.locked())  # type: ignore
        try:
            q.submit(wq.Task("true"))
        except Exception:
            pass
        assert held == [True]


def test_a_task_waiting_since_before_the_history_still_has_a_story(core):
    # The history is one bounded ring for all tasks; a task submitted long ago keeps its submit.
    from work_queue.core.manager_state import HISTORY_LENGTH

    first = core.submit()
    for _ in range(HISTORY_LENGTH):  # straight to the core: validate() each time is O(n^2)
        core.state.handle(ev.TaskSubmitted(wq.Task("true")), core.clock.now)
    assert core.state.story(first.id) == [(ts.UNKNOWN, ts.READY, "submit",
                                           first.time_when_submitted)]


# -- prefetching never makes a run slower (issue 17 items 7 and 8) -----------------------------

def _prefetching_worker(core, key, cores):
    w = core.worker(key, cores=cores)
    core.step(ev.FeatureReported(w, PREFETCH))
    assert w.prefetch
    return w


def test_a_prefetched_task_is_taken_back_for_an_idle_worker(core):
    # Two 10-core workers, twenty 1-core tasks: CCTools starts all twenty at once.
    a = _prefetching_worker(core, 1, cores=10)
    tasks = [core.submit(cores=1) for _ in range(20)]
    assert len(core.dispatch()) == 11  # ten running and one queued there, ahead of time
    queued = [t for t in tasks if t.worker_key == a.key][-1]
    b = _prefetching_worker(core, 2, cores=10)
    sent, out = [], []  # the other nine, and the queued one taken back for b's free core
    while (d := core.state.next_dispatch(core.clock.now)) is not None:
        out += core.step(ev.TaskSent(d, core.clock.now, 10, 5, d.worker.address, []))
        sent.append(d)
    kills = [i for i in out + core.state.collect() if isinstance(i, ins.SendKill)]
    assert len(sent) == 10 and sent[-1].task is queued and sent[-1].worker is b
    assert [(k.task, k.worker_key, k.outputs_too) for k in kills] == [(queued, a.key, False)]
    assert len(a.tasks) == 10 and len(b.tasks) == 10
    story = [cause for _, _, cause, _ in core.state.story(queued.id)]
    assert story == ["submit", "dispatch", "reclaim", "dispatch"]
    assert queued.try_count == 1  # it never ran on a: not a try


def test_a_queued_task_that_has_started_is_not_taken_back(core):
    a = _prefetching_worker(core, 1, cores=1)
    first, second = core.submit(cores=1), core.submit(cores=1)
    assert len(core.dispatch()) == 2
    core.result(a, first)  # a core is free again: the worker has started the second one
    _prefetching_worker(core, 2, cores=1)
    assert core.dispatch() == [] and second.worker_key == a.key


def test_submits_are_in_the_story_in_order_though_written_late(core):
    # submit() leaves its history line to the next transition (speed); the stories must not
    # show it: every task starts with its submit, at its submit time, before its dispatch.
    tasks = []
    for _ in range(5):
        tasks.append(core.submit())
        core.clock.advance(0.5)
    core.worker(1)
    core.dispatch()
    for t in tasks:
        story = core.state.story(t.id)
        assert story[0] == (ts.UNKNOWN, ts.READY, "submit", t.time_when_submitted), story
    dispatched = [t for t in tasks if t.state == ts.RUNNING]
    assert dispatched and [c for _, _, c, _ in core.state.story(dispatched[0].id)] == \
        ["submit", "dispatch"]


def test_a_task_submitted_again_tells_from_where(core):
    t = core.submit()
    w = core.worker(1)
    core.dispatch()
    core.finish(w, t)
    assert core.state.pop_returned(None, core.clock.now) is t
    core.clock.advance(1)
    core.step(ev.TaskSubmitted(t))
    story = core.state.story(t.id)
    assert story == [(ts.DONE, ts.READY, "submit", core.clock.now)], story


def test_a_submit_starts_the_attempts_afresh(core):
    """What submit() sets on a task (some only when it differs: a fresh task's attributes
    stay the class defaults, which is cheaper to leave than to write)."""
    t = core.submit()
    assert (t.try_count, t.resource_request) == (0, 0)
    assert t.submit_time == int(core.clock.now * 1e6) > 0
    w = core.worker(1)
    core.dispatch()
    t.resource_request = 1  # as after an attempt that exhausted its first allocation
    core.finish(w, t)
    assert core.state.pop_returned(None, core.clock.now) is t and t.try_count == 1
    core.clock.advance(2.5)
    core.step(ev.TaskSubmitted(t))
    assert (t.try_count, t.resource_request, t.state) == (0, 0, ts.READY)
    assert t.time_when_submitted == core.clock.now
    assert t.submit_time == int(core.clock.now * 1e6)


def test_skipped_ids_have_no_story_and_later_tasks_do(core):
    first = core.submit()
    core.state.set_min_task_id(1000)
    later = core.submit()
    assert later.id == 1000
    core.step(ev.TaskCancelled(later.id))
    assert [c for _, _, c, _ in core.state.story(first.id)] == ["submit"]
    assert [c for _, _, c, _ in core.state.story(later.id)] == ["submit", "cancel"]
    assert core.state.story(500) == []
