"""``t.resources_requested``, ``resources_allocated`` and ``resources_measured`` hold floats,
as CCTools' rmsummary (doubles) does: ``t.resources_allocated.cores / 2`` and ``"%d"`` work the
same, and ``isinstance(x, float)`` checks written for CCTools hold (issue 17 item 9)."""

from __future__ import annotations

import work_queue as wq

from .conftest import wait_all

FIELDS = ("cores", "memory", "disk", "gpus")


def test_requested_allocated_and_measured_are_floats(queue, workers):
    queue.enable_monitoring()
    t = wq.Task("true")
    t.specify_cores(1)
    t.specify_memory(100)
    assert all(isinstance(getattr(t.resources_requested, k), float) for k in FIELDS)
    assert t.resources_requested.cores == 1.0 and t.resources_requested.disk == -1.0
    queue.submit(t)
    workers.start(queue.port, cores=2)
    (done,) = wait_all(queue)
    for name in ("resources_requested", "resources_allocated", "resources_measured"):
        r = getattr(done, name)
        assert all(isinstance(getattr(r, k), float) for k in FIELDS), (name, r)
    assert done.resources_allocated.cores == 1.0 and done.resources_allocated.memory >= 100
