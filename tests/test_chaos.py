"""Fault injection: workers killed at random moments while tasks move files both ways.

Every submitted task must come back from wait() exactly once, successful, with a complete
output; the manager keeps serving throughout.
"""

from __future__ import annotations

import os
import random
import signal

import work_queue as wq
from tests.conftest import wait_all, wait_until


def test_random_worker_kills_lose_nothing(queue, workers):
    rng = random.Random(7)
    n = 120
    payload = "x" * 200_000  # big enough that kills land in transfers, not only in execution
    for i in range(n):
        with open(f"in.{i}", "w") as f:
            f.write(f"{i}\n{payload}")
        t = wq.Task(f"sleep 0.0{i % 5}; head -c 300000 in.{i} > out.{i}")
        t.specify_input_file(f"in.{i}", cache=False)
        t.specify_output_file(f"out.{i}", cache=False)
        t.specify_cores(1)
        queue.submit(t)
    live = [workers.start(queue.port, timeout=60) for _ in range(3)]
    kills = 0

    def chaos(t: wq.Task) -> None:
        nonlocal kills
        if rng.random() < 0.15:
            victim = live.pop(rng.randrange(len(live)))
            victim.send_signal(signal.SIGKILL if rng.random() < 0.7 else signal.SIGSTOP)
            kills += 1
            live.append(workers.start(queue.port, timeout=60))

    queue.specify_keepalive_interval(0.5)
    queue.specify_keepalive_timeout(1)
    # Killing whichever worker a task is on, this often, may lose three in a row with one
    # task; by default that task would come back FORSAKEN (tests/test_trust.py tests that).
    queue.tune("lost-workers-in-a-row", 0)
    done = wait_all(queue, timeout=120, on_task=chaos)
    assert kills >= 5
    assert sorted(t.id for t in done) == list(range(1, n + 1))
    for t in done:
        assert t.result == wq.WORK_QUEUE_RESULT_SUCCESS and t.return_status == 0, t.output
    for i in range(n):
        assert open(f"out.{i}").read() == f"{i}\n{payload}"
    assert not [f for f in os.listdir(".") if f.endswith(".part")]
    for p in workers.procs:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)


def test_manager_disk_full_when_an_output_arrives(queue, workers):
    """Writing an output fails (file size limit standing in for a full disk): the task says
    OUTPUT_TRANSFER_ERROR, no partial file is left, and the manager keeps serving."""
    import resource

    big = wq.Task("head -c 300000 /dev/zero > big.out")
    big.specify_output_file("big.out")
    small = wq.Task("echo fine > small.out")
    small.specify_output_file("small.out")
    workers.start(queue.port)  # before the limit, which children would inherit
    wait_until(lambda: queue.stats.workers_connected == 1, queue)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, old_limit[1]))
    try:
        queue.submit(big)
        (t,) = wait_all(queue)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert t is big and t.result == wq.WORK_QUEUE_RESULT_OUTPUT_TRANSFER_ERROR
    assert not os.path.exists("big.out")
    assert not [f for f in os.listdir(".") if f.endswith(".part")]
    queue.submit(small)
    (t,) = wait_all(queue)
    assert t is small and open("small.out").read() == "fine\n"
