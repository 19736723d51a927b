"""The manager core's invariants, checked after every event in the core tests.

Every task is in exactly one place that matches its state, and each worker's in-use
resources equal the sum of the boxes of its tasks (see Bookkeeping). Nothing here does I/O.
"""

from __future__ import annotations

from typing import Any

from . import task_state as ts
from .scheduling import is_full, is_saturated


def check_invariants(book: Any) -> None:
    """Assert the invariants of a Bookkeeping (``book``)."""
    for tid, task in book.tasks.items():
        assert task.id == tid
        assert task.state in ts.LIVE_STATES, (tid, task.state)
        assert (task.state == ts.READY) == (tid in book.ready), (tid, task.state)
        on_worker = task.state in (ts.RUNNING, ts.WAITING_RETRIEVAL)
        assert on_worker == (getattr(task, "worker_key", -1) in book.workers), tid
        assert (task.state == ts.RETRIEVED) == (tid in book.returned), tid
    for key, w in book.workers.items():
        assert (key in book.free) == (w.ready and not is_saturated(w)), key
        assert (key in book.roomy) == (w.ready and not is_full(w)), key
    for w in book.workers.values():
        for bucket in (w, w.cop) if w.cop is not None else (w,):
            for name in ("cores", "memory", "disk", "gpus"):
                total = sum(max(getattr(t.resources_allocated, name), 0)
                            for t in w.tasks.values() if w.bucket(t) is bucket)
                assert abs(total - getattr(bucket, "inuse_" + name)) < 1e-6, (w.key, name)
        for t in w.tasks.values():
            assert t.worker_key == w.key and t.id in book.tasks
    for tid, t in book.prefetched.items():
        assert t.state == ts.RUNNING and book.workers[t.worker_key].queued_task == tid, tid
