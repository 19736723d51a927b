"""A foreman whose link to the manager drops keeps its tasks (issue 19 for foremen): the
wide-area link between a foreman and its manager is where connections reset, and the foreman
is a worker to its manager, so it takes ``wq-py-resume`` as our worker does.  A real manager,
a real TCP proxy that resets the manager <-> foreman connection while the tasks run, a real
foreman process and a real worker behind it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

import work_queue as wq
from work_queue._testing.proxy import ResettingProxy

from .conftest import wait_all, wait_until
from .test_foreman import Foreman
from .test_resume import executions, submit_logged


@pytest.fixture
def foreman(tmp_path) -> Iterator[Foreman]:
    wdir = tmp_path / "foreman"
    wdir.mkdir()
    f = Foreman(str(wdir))
    yield f
    f.stop()


@pytest.fixture
def proxy(queue: wq.WorkQueue) -> Iterator[ResettingProxy]:
    p = ResettingProxy(queue.port)
    yield p
    p.close()


def started(runs: str) -> int:
    """How many of the logged tasks have started (on the foreman's worker)."""
    return len(executions(runs)) if os.path.exists(runs) else 0


def test_a_foreman_whose_link_resets_keeps_its_tasks(queue, foreman: Foreman, workers, proxy,
                                                     in_tmp):
    runs = os.path.join(in_tmp, "runs.log")
    port = foreman.start(proxy.port)
    workers.start(port, cores=4, memory=4000, disk=4000)
    ids = submit_logged(queue, 4, 2, runs)
    wait_until(lambda: started(runs) == 4, queue, timeout=20)
    start = time.time()
    assert proxy.reset() == 1
    done = wait_all(queue, timeout=30)
    assert sorted(t.id for t in done) == sorted(ids)  # every task once
    for t in done:
        assert t.result == wq.WORK_QUEUE_RESULT_SUCCESS, t.result_str
        with open(f"out-{ids[t.id]}.txt") as f:
            assert f.read() == f"out-{ids[t.id]}\n"
    assert executions(runs) == [0, 1, 2, 3]  # none executed twice
    s = queue.stats
    assert (s.tasks_recovered, s.workers_resumed, s.workers_lost) == (4, 1, 0)
    assert s.tasks_dispatched == 4 and proxy.accepted == 2
    assert time.time() - start < 10  # liveness: the tasks had 2 s to run


def test_a_foreman_that_cannot_come_back_in_time_drops_its_tasks(queue, foreman: Foreman,
                                                                 workers, proxy, in_tmp):
    """Past the grace time the manager has given the tasks to others: the foreman cancels
    its copies and serves the manager anew when the link is back."""
    queue.tune("resume-grace-time", 1)
    runs = os.path.join(in_tmp, "runs.log")
    port = foreman.start(proxy.port)
    workers.start(port, cores=2, memory=2000, disk=2000)
    ids = submit_logged(queue, 2, 3, runs)
    wait_until(lambda: started(runs) == 2, queue, timeout=20)
    proxy.refusing = True
    proxy.reset()
    wait_until(lambda: queue.stats.workers_lost == 1, queue, timeout=20)
    proxy.refusing = False
    done = wait_all(queue, timeout=60)
    assert sorted(t.id for t in done) == sorted(ids)
    assert all(t.result == wq.WORK_QUEUE_RESULT_SUCCESS for t in done)
    assert executions(runs) == [0, 0, 1, 1]  # run again, once more each
    assert queue.stats.tasks_recovered == 0
