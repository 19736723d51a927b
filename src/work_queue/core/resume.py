"""The manager core's rules for workers whose connection dropped (extension ``wq-py-resume``).

A worker that announced the extension gets a token for its session (``OfferResume``).  When
its connection dies (``WorkerGone`` with reason FAILURE) while it holds tasks, the worker is
not removed: it is *away*.  It gets no new task, and its tasks stay where they are (RUNNING,
or WAITING_RETRIEVAL), for at most ``resume_grace`` seconds.  Within that time a connection
that opens with ``wq-py-resume`` and the right token and worker id takes the worker's place
(``WorkerResumed`` -> ``AcceptResume``): the tasks it no longer holds go back to the queue,
the tasks it holds that are no longer its own are killed there (``KillHeld``), outputs whose
fetch the drop cut short are fetched again, and results come as if nothing had happened.
After the grace time (``Tick``) the worker is removed as a lost worker, as without the
extension, and a late claim is refused.

A task is therefore on one worker at a time: either it stays on the away worker (and comes
back from it), or it was taken off it (requeued, cancelled, fast-aborted, grace expired) and
the returning worker is told to kill its copy.  Nothing here costs anything while no
connection drops: the away workers are kept apart (``away``), and the hot path never looks
at them.
"""

from __future__ import annotations

import hmac
import math

from ..constants import WORK_QUEUE_RESULT_SUCCESS
from . import events as ev
from . import task_state as ts
from .bookkeeping import Bookkeeping
from .instructions import AcceptResume, FetchOutputs, KillHeld, Note, OfferResume, RefuseResume
from .policies import outputs_to_fetch
from .scheduling import WorkerRecord

#: Seconds the manager keeps the tasks of a worker whose connection dropped, unless
#: ``tune("resume-grace-time")`` says otherwise (0 turns the extension off): the keepalive
#: timeout (30 s unless set), so a worker that was cut off gets as long to come back as a
#: silent one gets to answer.
RESUME_GRACE = 30.0


class ResumeRules(Bookkeeping):
    """Away workers and resumed sessions (a part of ManagerState; see the module docstring)."""

    def __init__(self, now: float, seed: int | None = None) -> None:
        super().__init__(now, seed)
        #: tune("resume-grace-time"): 0 never keeps the tasks of a dropped worker; negative:
        #: the keepalive timeout (see resume_grace).
        self.resume_grace_setting = -1.0
        self.keepalive_timeout = RESUME_GRACE
        #: Workers whose connection dropped, waiting for them to come back, by key.
        self.away: dict[int, WorkerRecord] = {}

    @property
    def resume_grace(self) -> float:
        """Seconds the tasks of a worker whose connection dropped wait for it."""
        setting = self.resume_grace_setting
        return setting if setting >= 0 else max(0.0, self.keepalive_timeout)

    def set_keepalive_timeout(self, seconds: float) -> None:
        """The manager's keepalive timeout (the grace time unless tuned otherwise)."""
        self.keepalive_timeout = float(seconds)

    def offer_resume(self, e: ev.FeatureReported) -> None:
        """The worker announced ``wq-py-resume``: hand it its session's token (if on)."""
        if e.token and self.resume_grace > 0:
            w = e.worker
            w.resume_token = e.token
            self.out.append(OfferResume(w.key, e.token, math.ceil(self.resume_grace)))

    def keeps_tasks(self, e: ev.WorkerGone, now: float) -> bool:
        """The connection of a worker died: keep it away (True) if it may come back.

        Not when the worker closed its end in order: its process ended (a worker that ends
        on purpose says ``wq-py-leaving``; one killed has its socket closed by the kernel),
        so its tasks go back to the queue at once, as without the extension.  A reset, a
        failed send, a keepalive timeout: that is the link, and the worker may return."""
        w = self.workers.get(e.key)
        if (w is None or e.reason != "FAILURE" or e.ended or not w.resume_token or not w.tasks
                or self.resume_grace <= 0 or w.key in self.away):
            return False
        w.away_since = now
        w.ready = False
        self.away[w.key] = w
        self._largest = None
        self.refresh(w)
        self.out.append(Note(f"worker {w.hostname} ({w.address}) disconnected with "
                             f"{len(w.tasks)} task(s); keeping them {self.resume_grace:g} s "
                             "for it to come back"))
        return True

    def expire_away(self, now: float) -> None:
        """Workers away for longer than the grace time (or with nothing left to come back
        for) are removed as lost workers: their tasks go back to the queue."""
        for w in list(self.away.values()):
            if not w.tasks:
                self.forget_away(w, now, "nothing left on it", lost=False)
            elif now - w.away_since >= self.resume_grace:
                self.forget_away(w, now, f"did not come back in {self.resume_grace:g} s")

    def forget_away(self, w: WorkerRecord, now: float, why: str, lost: bool = True) -> None:
        """Remove away worker ``w`` for good (its connection is already closed)."""
        del self.away[w.key]
        w.away_since = -1.0
        requeued = self.remove_worker(w.key, now, lost=lost)
        if lost:
            self.counters.workers_lost += 1
        for task in requeued:
            task.hostname = None
        self.out.append(Note(f"worker {w.hostname} ({w.address}) removed: {why}; "
                             f"{len(requeued)} task(s) requeued"))

    def resume(self, e: ev.WorkerResumed, now: float) -> None:
        """A connection claims the session of an away worker."""
        w = self._claimed(e, now)
        if w is None:
            return
        was_away = self.away.pop(w.key, None) is not None
        w.away_since = -1.0
        w.address = e.address
        held = e.held
        missing = [t for t in w.tasks.values() if t.id not in held]
        foreign = [tid for tid in held if tid not in w.tasks]
        kept = len(w.tasks) - len(missing)
        self.out.append(AcceptResume(e.conn_key, w, kept))
        if foreign:
            self.out.append(KillHeld(w.key, foreign))
        for task in missing:
            # It never reached the worker (lost in flight with the connection): not a try.
            task.try_count -= 1
            self.requeue(task, now)
        for task in list(w.tasks.values()):
            if task.state == ts.WAITING_RETRIEVAL:
                # The drop cut the fetch of its outputs short: fetch them again.
                success = task.result == WORK_QUEUE_RESULT_SUCCESS and task.return_status == 0
                files = outputs_to_fetch(task.files, getattr(task, "_monitor_files", ()),
                                         success)
                self.out.append(FetchOutputs(task, w.key, files))
        if was_away:
            w.ready = True
            self._largest = None
            self.refresh(w)
        self.dispatch_pending = True
        self.counters.workers_resumed += 1
        self.counters.tasks_recovered += kept
        self.out.append(Note(f"worker {w.hostname} came back from {e.address}: {kept} task(s) "
                             f"kept, {len(missing)} requeued, {len(foreign)} killed there"))

    def _claimed(self, e: ev.WorkerResumed, now: float) -> WorkerRecord | None:
        """The away worker whose session ``e`` claims, or None (and the refusal)."""
        token = e.token.encode()
        # The away workers first; then those whose drop the manager has not seen yet (the
        # worker noticed first): the new connection replaces theirs.
        for w in (*self.away.values(), *self.workers.values()):
            # Compared in constant time: the token is the proof.
            if w.resume_token and hmac.compare_digest(w.resume_token.encode(), token):
                break
        else:
            self.out.append(RefuseResume(e.conn_key, "no such session (unknown token, or "
                                         "its grace time is over)"))
            return None
        if not hmac.compare_digest(w.worker_id.encode(), e.worker_id.encode()):
            self.out.append(RefuseResume(e.conn_key, "the worker id is not the session's"))
            self.out.append(Note(f"a connection from {e.address} claimed the session of "
                                 f"{w.hostname} with another worker id; refused"))
            return None
        if w.key in self.away and now - w.away_since >= self.resume_grace:
            self.forget_away(w, now, f"did not come back in {self.resume_grace:g} s")
            self.out.append(RefuseResume(e.conn_key, "its grace time is over"))
            return None
        return w

    def validate_away(self) -> None:
        """Invariants of away workers (tests call validate() after every event)."""
        for key, w in self.away.items():
            assert self.workers.get(key) is w, key
            assert w.away_since >= 0 and not w.ready and w.resume_token, key
            assert key not in self.free and key not in self.roomy, key
        for key, w in self.workers.items():
            assert (w.away_since >= 0) == (key in self.away), key
