"""A dropped connection is not a lost task (issue 19): real workers through a real TCP proxy
that resets every connection while the tasks run.  The tasks keep running, the workers come
back, each result arrives once, nothing runs twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import work_queue as wq
from work_queue._testing.proxy import ResettingProxy

from .conftest import wait_all, wait_until

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("WQ_TEST_WORKER")),
    reason="wq-py-resume is our worker's extension (a CCTools worker drops its tasks)")


@pytest.fixture
def proxy(queue):
    p = ResettingProxy(queue.port)
    yield p
    p.close()


def submit_logged(q: wq.WorkQueue, n: int, seconds: float, runs: str) -> dict[int, int]:
    """``n`` tasks that note each execution in ``runs``, sleep, and write an output."""
    ids = {}
    for i in range(n):
        t = wq.Task(f"echo {i} >> {runs}; sleep {seconds}; echo out-{i} > out.txt")
        t.specify_cores(1)
        t.specify_output_file(f"out-{i}.txt", "out.txt", cache=False)
        ids[q.submit(t)] = i
    return ids


def executions(runs: str) -> list[int]:
    with open(runs) as f:
        return sorted(int(x) for x in f.read().split())


def test_twenty_tasks_survive_a_reset_of_every_connection(queue, workers, proxy, in_tmp):
    runs = os.path.join(in_tmp, "runs.log")
    for _ in range(2):
        workers.start(proxy.port, cores=10)
    wait_until(lambda: queue.stats.workers_connected == 2, queue)
    start = time.time()
    ids = submit_logged(queue, 20, 3, runs)
    wait_until(lambda: queue.stats.tasks_running == 20, queue)
    assert proxy.reset() == 2
    done = wait_all(queue, timeout=30)
    elapsed = time.time() - start
    assert sorted(t.id for t in done) == sorted(ids)  # every task once
    for t in done:
        assert t.result == wq.WORK_QUEUE_RESULT_SUCCESS, t.result_str
        with open(f"out-{ids[t.id]}.txt") as f:
            assert f.read() == f"out-{ids[t.id]}\n"
    assert executions(runs) == list(range(20))  # none executed twice
    s = queue.stats
    assert (s.tasks_recovered, s.workers_resumed, s.workers_lost) == (20, 2, 0)
    assert s.tasks_dispatched == 20 and proxy.accepted == 4
    assert elapsed < 6, f"{elapsed:.1f} s"  # the bound (re-running them takes 6+)
    # work_queue_status says so too
    status = subprocess.run([sys.executable, "-m", "work_queue.cli.status", "-l", "localhost",
                             str(queue.port)], capture_output=True, text=True, timeout=30)
    (record,) = json.loads(status.stdout)
    assert (record["tasks_recovered"], record["workers_resumed"]) == (20, 2)


def test_with_the_extension_off_the_tasks_run_again(queue, workers, proxy, in_tmp):
    """tune('resume-grace-time', 0): CCTools' behaviour, every task executed again."""
    queue.tune("resume-grace-time", 0)
    runs = os.path.join(in_tmp, "runs.log")
    workers.start(proxy.port, cores=2)
    ids = submit_logged(queue, 2, 1, runs)
    wait_until(lambda: queue.stats.tasks_running == 2, queue)
    proxy.reset()
    done = wait_all(queue, timeout=30)
    assert sorted(t.id for t in done) == sorted(ids)
    assert executions(runs) == [0, 0, 1, 1]
    assert queue.stats.tasks_recovered == 0 and queue.stats.workers_lost == 1


def test_the_password_is_asked_again_on_return(queue, workers, proxy, in_tmp):
    secret = os.path.join(in_tmp, "secret.txt")
    with open(secret, "w") as f:
        f.write("sesame\n")
    queue.specify_password_file(secret)
    runs = os.path.join(in_tmp, "runs.log")
    workers.start(proxy.port, "--password", secret, cores=2)
    ids = submit_logged(queue, 2, 1, runs)
    wait_until(lambda: queue.stats.tasks_running == 2, queue)
    proxy.reset()
    done = wait_all(queue, timeout=30)
    assert sorted(t.id for t in done) == sorted(ids)
    assert executions(runs) == [0, 1] and queue.stats.tasks_recovered == 2


def test_a_worker_that_returns_to_a_new_manager_drops_its_tasks_and_serves_it(
        queue, workers, proxy, in_tmp):
    """The manager at the address restarted: the claim is refused, the old tasks are killed
    there, and the worker serves the new manager on the same connection."""
    marker = os.path.join(in_tmp, "old-task-finished")
    worker = workers.start(proxy.port, cores=1)
    queue.submit(wq.Task(f"sleep 3; touch {marker}"))
    wait_until(lambda: queue.stats.tasks_running == 1, queue)
    fresh = wq.WorkQueue(port=0)
    try:
        proxy.target = fresh.port
        proxy.reset()
        t = wq.Task("echo new")
        fresh.submit(t)
        (done,) = wait_all(fresh, timeout=20)
        assert done is t and done.output == "new\n"
        assert fresh.stats.workers_joined == 1 and fresh.stats.tasks_recovered == 0
        time.sleep(3.5)
        assert not os.path.exists(marker)  # the old manager's task was killed
        assert worker.poll() is None  # the same worker process served the new manager
    finally:
        fresh.close()


def test_a_worker_that_cannot_come_back_in_time_drops_its_tasks(queue, workers, proxy, in_tmp):
    """The link stays down past the grace time: the manager requeues, the worker kills its
    copies (none finishes), and once the link is back the tasks run once more."""
    queue.tune("resume-grace-time", 2)
    runs, finished = os.path.join(in_tmp, "runs.log"), os.path.join(in_tmp, "finished.log")
    workers.start(proxy.port, cores=2)
    for i in range(2):
        t = wq.Task(f"echo {i} >> {runs}; sleep 4; echo {i} >> {finished}")
        t.specify_cores(1)
        queue.submit(t)
    wait_until(lambda: os.path.exists(runs) and len(executions(runs)) == 2, queue)
    proxy.refusing = True
    proxy.reset()
    wait_until(lambda: queue.stats.workers_lost == 1, queue, timeout=10)
    assert queue.stats.tasks_running == 0
    time.sleep(0.5)  # the worker gives up too (its own grace time from its own clock)
    proxy.refusing = False
    done = wait_all(queue, timeout=30)
    assert len(done) == 2 and all(t.result == wq.WORK_QUEUE_RESULT_SUCCESS for t in done)
    assert executions(runs) == [0, 0, 1, 1]
    assert executions(finished) == [0, 1]  # the first copies were killed, not finished
    assert queue.stats.tasks_recovered == 0


def test_resume_over_tls(in_tmp, workers):
    """The claim and the resumed session go over TLS like the first connection."""
    q = wq.WorkQueue(port=0, ssl=True)
    proxy = ResettingProxy(q.port)
    try:
        runs = os.path.join(in_tmp, "runs.log")
        workers.start(proxy.port, "--ssl", cores=2)
        ids = submit_logged(q, 2, 1, runs)
        wait_until(lambda: q.stats.tasks_running == 2, q)
        proxy.reset()
        done = wait_all(q, timeout=30)
        assert sorted(t.id for t in done) == sorted(ids)
        assert executions(runs) == [0, 1] and q.stats.tasks_recovered == 2
    finally:
        q.close()
        proxy.close()


def test_an_object_cut_short_by_the_drop_is_reported_on_return(tmp_path):
    """A fake manager hands our worker a token and a task, then starts a ``put`` and resets
    the connection halfway through it: the worker comes back, is taken back, and says
    ``cache-invalid`` for the object the drop cut short (the manager sends it again when a
    task needs it), not a half-written file in its cache."""
    import socket
    import struct
    import subprocess

    from tests.conftest import WORKER_CMD
    from work_queue._testing import FakeManager

    token = "ab" * 16
    with FakeManager() as manager:
        worker = subprocess.Popen([*WORKER_CMD, "-t", "30", "-b", "1", "-s", str(tmp_path),
                                   "localhost", str(manager.port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            first = manager.accept(timeout=20)
            while b"end_of_resource_update" not in first.received:
                assert first.line() is not None, first.received
            first.send(b"feature wq-py-resume\nwq-py-resume-token %s 30\n" % token.encode())
            first.send(b"task 1\ncmd 7\nsleep 5end\n")
            first.send(b"put big.dat 100000 0644\n" + b"x" * 1000)
            time.sleep(0.5)  # the worker has started the task and is writing big.dat
            first.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            first.sock.close()
            back = manager.accept(timeout=20)
            claim = back.line()
            assert claim is not None and claim.startswith(b"wq-py-resume " + token.encode())
            back.line()  # the held list: "1 running"
            back.send(b"wq-py-resumed 1\n")
            line = back.line()
            while line is not None and not line.startswith(b"cache-invalid"):
                line = back.line()
            assert line is not None and line.split()[1] == b"big.dat", back.received
        finally:
            worker.kill()
            worker.wait()
