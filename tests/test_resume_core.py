"""wq-py-resume in the pure cores (issue 19): a worker whose connection dropped keeps its
tasks, and comes back for them within the grace time.  Fake clock, validate() after every
event (``Core.step``); nothing here opens a socket."""

from __future__ import annotations

import pytest

import work_queue as wq
from work_queue.core import events as ev
from work_queue.core import instructions as ins
from work_queue.core import task_state as ts
from work_queue.core import worker_state as ws
from work_queue.core.worker_state import WorkerLimits, WorkerState
from work_queue.protocol import messages as m
from work_queue.protocol.extensions import PUSH_RESULTS, RESUME
from work_queue.protocol.task_block import TaskSpec

from .test_manager_core import Core

TOKEN = "ab" * 16


@pytest.fixture
def core(clock) -> Core:
    c = Core(clock)
    yield c
    c.state.validate()


def resumable(core: Core, key: int, cores: int = 2, token: str = TOKEN):
    """A worker that took the extension (its worker id ``worker-<key>``)."""
    w = core.worker(key, cores=cores)
    core.step(ev.WorkerInfo(w, "worker-id", f"worker-{key}"))
    out = core.step(ev.FeatureReported(w, RESUME, token))
    assert [(type(i), i.token, i.grace) for i in out] == [(ins.OfferResume, token, 30)]
    return w


def running(core: Core, w, n: int) -> list[wq.Task]:
    tasks = [core.submit(cores=1) for _ in range(n)]
    sent = core.dispatch()
    assert all(d.worker is w for d in sent) and len(sent) == n
    return tasks


def drop(core: Core, w, ended: bool = False) -> list:
    return core.step(ev.WorkerGone(w.key, "FAILURE", ended=ended))


def claim(core: Core, w, held: dict[int, str], token: str = TOKEN, worker_id: str = "",
          conn_key: int = 99) -> list:
    return core.step(ev.WorkerResumed(conn_key, "10.0.0.77:5000", token,
                                      worker_id or w.worker_id, held))


def test_the_token_is_offered_only_when_the_extension_is_on(core):
    resumable(core, 1)
    w = core.worker(2)
    assert core.step(ev.FeatureReported(w, RESUME)) == []  # no token drawn: nothing offered
    core.state.configure("resume-grace-time", 0)
    w3 = core.worker(3)
    assert core.step(ev.FeatureReported(w3, RESUME, TOKEN)) == []
    assert not w3.resume_token


def test_the_grace_time_is_the_keepalive_timeout_unless_tuned(core):
    assert core.state.resume_grace == 30
    core.state.set_keepalive_timeout(5)
    assert core.state.resume_grace == 5
    core.state.configure("resume-grace-time", 12)
    assert core.state.resume_grace == 12
    core.state.set_keepalive_timeout(7)
    assert core.state.resume_grace == 12


def test_a_dropped_worker_keeps_its_tasks_and_gets_no_new_ones(core):
    w = resumable(core, 1)
    tasks = running(core, w, 2)
    out = drop(core, w)
    assert [type(i) for i in out] == [ins.Note]  # no transition: nothing moved
    assert all(t.state == ts.RUNNING and t.worker_key == 1 for t in tasks)
    assert w.key in core.state.away and not w.ready
    core.submit(cores=1)
    assert core.dispatch() == []  # not to the away worker


def test_the_worker_comes_back_and_its_results_are_taken(core):
    w = resumable(core, 1)
    a, b = running(core, w, 2)
    drop(core, w)
    core.clock.advance(3)
    out = claim(core, w, {a.id: "running", b.id: "finished"})
    assert isinstance(out[0], ins.AcceptResume) and out[0].worker is w and out[0].kept == 2
    assert out[0].conn_key == 99 and w.address == "10.0.0.77:5000"
    assert not any(isinstance(i, ins.Transition) for i in out)
    assert w.ready and not core.state.away
    for t in (a, b):
        core.finish(w, t)
    assert {core.pop().id, core.pop().id} == {a.id, b.id}
    s = core.state.counters
    assert (s.workers_resumed, s.tasks_recovered, s.workers_lost) == (1, 2, 0)
    assert a.try_count == 1  # never run again


def test_tasks_it_does_not_hold_are_requeued_and_foreign_ones_killed_there(core):
    w = resumable(core, 1)
    a, b = running(core, w, 2)
    drop(core, w)
    out = claim(core, w, {a.id: "running", 12345: "finished"})
    assert out[0].kept == 1
    (kill,) = [i for i in out if isinstance(i, ins.KillHeld)]
    assert kill.worker_key == 1 and kill.task_ids == [12345]
    assert b.state == ts.READY and b.try_count == 0  # its block never arrived: not a try
    assert a.state == ts.RUNNING


def test_an_interrupted_fetch_is_done_again(core, tmp_path):
    w = resumable(core, 1)
    t = core.submit(cores=1)
    t.specify_output_file(str(tmp_path / "out"), "out")
    core.dispatch()
    core.result(w, t)
    assert t.state == ts.WAITING_RETRIEVAL
    drop(core, w)
    out = claim(core, w, {t.id: "finished"})
    (fetch,) = [i for i in out if isinstance(i, ins.FetchOutputs)]
    assert fetch.task is t and [f.remote_name for f in fetch.files] == ["out"]
    assert core.result(w, t) == []  # the result sent again is a duplicate: nothing happens
    core.step(ev.OutputsFetched(t))
    assert core.pop() is t


def test_after_the_grace_time_the_tasks_are_requeued_and_a_late_claim_refused(core):
    w = resumable(core, 1)
    a, b = running(core, w, 2)
    drop(core, w)
    core.clock.advance(29)
    core.step(ev.Tick())
    assert a.state == ts.RUNNING
    core.clock.advance(1.5)
    out = core.step(ev.Tick())
    assert [(i.task, i.cause) for i in out if isinstance(i, ins.Transition)] == \
        [(a, "requeue"), (b, "requeue")]
    assert 1 not in core.state.workers and core.state.counters.workers_lost == 1
    assert a.workers_lost_in_a_row == 1
    out = claim(core, w, {a.id: "running", b.id: "running"})
    assert [type(i) for i in out] == [ins.RefuseResume]
    # the tasks run elsewhere; the late worker's copies were killed by the refusal
    w2 = core.worker(2, cores=2)
    assert {d.worker for d in core.dispatch()} == {w2}


def test_a_claim_past_the_grace_time_before_the_tick_is_refused(core):
    w = resumable(core, 1)
    (a,) = running(core, w, 1)
    drop(core, w)
    core.clock.advance(31)
    out = claim(core, w, {a.id: "running"})
    assert isinstance(out[-1], ins.RefuseResume) and a.state == ts.READY


def test_a_wrong_token_or_worker_id_is_refused_and_changes_nothing(core):
    w = resumable(core, 1)
    (a,) = running(core, w, 1)
    drop(core, w)
    out = claim(core, w, {a.id: "running"}, token="cd" * 16)
    assert [type(i) for i in out] == [ins.RefuseResume]
    out = claim(core, w, {a.id: "running"}, worker_id="worker-someone-else")
    assert isinstance(out[0], ins.RefuseResume) and "worker id" in out[0].reason
    assert w.key in core.state.away and a.state == ts.RUNNING
    assert isinstance(claim(core, w, {a.id: "running"})[0], ins.AcceptResume)


def test_a_worker_cannot_claim_another_workers_tasks(core):
    w1 = resumable(core, 1, cores=1)
    w2 = resumable(core, 2, cores=1, token="ef" * 16)
    (a,) = [core.submit(cores=1)]
    (b,) = [core.submit(cores=1)]
    core.dispatch()
    assert {a.worker_key, b.worker_key} == {1, 2}
    mine, theirs = (a, b) if a.worker_key == 2 else (b, a)
    drop(core, w1)
    drop(core, w2)
    out = claim(core, w2, {mine.id: "running", theirs.id: "finished"}, token="ef" * 16)
    assert out[0].worker is w2 and out[0].kept == 1
    (kill,) = [i for i in out if isinstance(i, ins.KillHeld)]
    assert kill.task_ids == [theirs.id]
    assert theirs.state == ts.RUNNING and theirs.worker_key == 1  # still w1's
    assert core.result(w2, theirs) == []  # its result from w2 is not taken


def test_a_killed_worker_and_one_leaving_are_not_waited_for(core):
    w = resumable(core, 1)
    (a,) = running(core, w, 1)
    drop(core, w, ended=True)  # closed its end in order: its process ended
    assert a.state == ts.READY and not core.state.away
    w2 = resumable(core, 2)
    core.dispatch()
    core.step(ev.WorkerInfo(w2, "leaving", ""))
    drop(core, w2)
    assert a.state == ts.READY and not core.state.away


def test_an_idle_worker_or_a_cctools_worker_is_removed_at_once(core):
    w = resumable(core, 1)
    drop(core, w)
    assert 1 not in core.state.workers
    cctools = core.worker(2)
    (a,) = [core.submit(cores=1)]
    core.dispatch()
    core.step(ev.WorkerGone(cctools.key, "FAILURE"))
    assert a.state == ts.READY


def test_the_worker_noticed_the_drop_first(core):
    """The claim comes while the manager still has the old connection: it replaces it."""
    w = resumable(core, 1)
    (a,) = running(core, w, 1)
    out = claim(core, w, {a.id: "running"})
    assert isinstance(out[0], ins.AcceptResume) and out[0].kept == 1
    assert w.ready and a.state == ts.RUNNING


def test_cancelled_and_requeued_tasks_are_killed_on_return_and_come_back_once(core):
    w = resumable(core, 1)
    a, b = running(core, w, 2)
    drop(core, w)
    out = core.step(ev.TaskCancelled(a.id))
    assert any(isinstance(i, ins.SendKill) for i in out)  # to no connection: a no-op
    # b goes elsewhere meanwhile (fast abort, say): here, requeued and run on another worker
    core.state.requeue(b, core.clock.now)
    w2 = core.worker(2, cores=2)
    core.dispatch()
    assert b.worker_key == 2
    out = claim(core, w, {a.id: "running", b.id: "finished"})
    (kill,) = [i for i in out if isinstance(i, ins.KillHeld)]
    assert sorted(kill.task_ids) == sorted([a.id, b.id])
    assert core.result(w, b) == []  # the returning copy is not taken
    core.finish(w2, b)
    assert core.pop() is b and core.pop() is None


def test_fast_abort_keeps_its_meaning_while_away(core):
    core.state.set_fast_abort("default", 2)
    w = resumable(core, 1, cores=20)
    for _ in range(10):  # ten quick successes make the category's average
        t = core.submit(cores=1)
        core.dispatch()
        core.clock.advance(1)
        core.finish(w, t)
        core.pop()
    slow = running(core, w, 2)
    drop(core, w)
    core.clock.advance(10)
    out = core.step(ev.SlowTaskCheck())
    # both are taken back; the second slow one blocks the host and removes the away worker
    assert all(t.state == ts.READY for t in slow)
    assert [i.host for i in out if isinstance(i, ins.BlockHost)] == ["host1"]
    assert not any(isinstance(i, ins.DropWorker) for i in out)  # no connection to close
    assert 1 not in core.state.workers and not core.state.away
    assert core.state.counters.workers_fast_aborted == 1
    assert isinstance(claim(core, w, {t.id: "running" for t in slow})[0], ins.RefuseResume)


# -- the worker's core ------------------------------------------------------------------------


def spec(task_id: int, cores: float = 1) -> TaskSpec:
    s = TaskSpec(task_id)
    s.command = "true"
    s.cores, s.memory, s.disk, s.gpus = cores, 10, 10, 0
    return s


class WCore:
    def __init__(self) -> None:
        self.now = 1000.0
        self.state = WorkerState(WorkerLimits(4, 1000, 1000, 0), self.now)

    def step(self, event) -> list:
        out = self.state.handle(event, self.now)
        self.state.validate()
        return out


def test_the_worker_core_keeps_results_while_away_and_sends_them_all_again():
    c = WCore()
    c.step(ws.ExtensionConfirmed(PUSH_RESULTS))
    for i in (1, 2, 3):
        c.step(ws.TaskReceived(spec(i)))
    out = c.step(ws.TaskExited(1, 0, 0))
    assert [type(i) for i in out] == [ws.SendResult]  # pushed: task 1 is REPORTED
    c.step(ws.ManagerLost())
    assert c.step(ws.TaskExited(2, 0, 0)) == []  # kept, not sent
    assert c.state.held() == {1: "finished", 2: "finished", 3: "running"}
    out = c.step(ws.ManagerBack())
    assert sorted(i.task_id for i in out if isinstance(i, ws.SendResult)) == [1, 2]
    assert c.step(ws.TaskExited(3, 0, 0))[0].task_id == 3


def test_the_worker_core_announces_again_without_pushed_results():
    c = WCore()
    c.step(ws.TaskReceived(spec(1)))
    out = c.step(ws.TaskExited(1, 0, 0))
    assert [i.message for i in out] == [m.AvailableResults()]
    c.step(ws.ManagerLost())
    out = c.step(ws.ManagerBack())
    assert [i.message for i in out] == [m.AvailableResults()]


def test_wall_times_and_the_workers_end_still_apply_while_away():
    c = WCore()
    s = spec(1)
    s.wall_time = 5
    c.step(ws.TaskReceived(s))
    c.step(ws.ManagerLost())
    c.now += 6
    out = c.step(ws.Tick())
    assert [type(i) for i in out] == [ws.KillTask]
    c.state.limits.end_time = c.now + 1
    c.now += 2
    assert any(isinstance(i, ws.EndSession) for i in c.step(ws.Tick()))


def test_the_idle_timeout_keeps_its_meaning_across_a_reconnect():
    """Away with tasks is not idle; after the return the idle time counts from the work."""
    c = WCore()
    c.state.limits.idle_timeout = 10
    c.step(ws.TaskReceived(spec(1)))
    c.step(ws.ManagerLost())
    c.now += 20
    assert c.step(ws.Tick()) == []
    c.step(ws.TaskExited(1, 0, 0))
    c.now += 20
    assert c.step(ws.Tick()) == []  # its result still waits for the manager
    c.step(ws.ManagerBack())
    c.step(ws.KillRequested(1))  # the manager took the result and its outputs
    c.now += 5
    assert c.step(ws.Tick()) == []
    c.now += 6
    (end,) = c.step(ws.Tick())
    assert isinstance(end, ws.EndSession) and end.outcome == ws.IDLED_OUT
