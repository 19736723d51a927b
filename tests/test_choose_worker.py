"""Which eligible worker a task goes to, by scheduling algorithm (CCTools' rules)."""

from __future__ import annotations

import random

from work_queue.constants import (
    WORK_QUEUE_SCHEDULE_FCFS,
    WORK_QUEUE_SCHEDULE_FILES,
    WORK_QUEUE_SCHEDULE_RAND,
    WORK_QUEUE_SCHEDULE_TIME,
    WORK_QUEUE_SCHEDULE_WORST,
)
from work_queue.core.scheduling import CANDIDATES, WorkerRecord, choose_worker


def worker(key: int, done: int = 0, task_time: float = 0.0, transfer: float = 0.0,
           cores: int = 4, inuse: float = 0) -> WorkerRecord:
    w = WorkerRecord(key)
    w.tasks_complete, w.total_task_time, w.total_transfer_time = done, task_time, transfer
    w.resources.cores, w.resources.memory, w.resources.disk = cores, 1000, 1000
    w.inuse_cores = inuse
    return w


def test_time_picks_the_shortest_average_among_workers_that_completed_a_task():
    rng = random.Random(0)
    fresh = worker(1)
    slow = worker(2, done=2, task_time=400, transfer=0)    # 200 per task
    fast = worker(3, done=4, task_time=300, transfer=100)  # 100 per task
    also_fast = worker(4, done=1, task_time=50, transfer=50)  # 100: the first of equals wins
    assert choose_worker([fresh, slow, fast, also_fast], WORK_QUEUE_SCHEDULE_TIME, None,
                         rng) is fast
    assert choose_worker([fresh, also_fast, fast], WORK_QUEUE_SCHEDULE_TIME, None,
                         rng) is also_fast
    # none has completed a task: the first candidate
    assert choose_worker([fresh, worker(5)], WORK_QUEUE_SCHEDULE_TIME, None, rng) is fresh
    assert choose_worker([], WORK_QUEUE_SCHEDULE_TIME, None, rng) is None


def test_only_the_first_candidates_are_compared():
    rng = random.Random(0)
    pool = [worker(i, done=1, task_time=100.0 - i) for i in range(CANDIDATES + 5)]
    # the best of all is beyond the sample: the best of the first CANDIDATES is chosen
    best = choose_worker(iter(pool), WORK_QUEUE_SCHEDULE_TIME, None, rng)
    assert best is pool[CANDIDATES - 1]


def test_fcfs_worst_and_rand():
    rng = random.Random(0)
    a, b, c = worker(1, inuse=3), worker(2, inuse=1), worker(3, inuse=2)
    assert choose_worker([a, b, c], WORK_QUEUE_SCHEDULE_FCFS, None, rng) is a
    assert choose_worker([a, b, c], WORK_QUEUE_SCHEDULE_WORST, None, rng) is b
    assert choose_worker([a, b, c], WORK_QUEUE_SCHEDULE_RAND, None, rng) in (a, b, c)
    assert choose_worker([a, b, c], WORK_QUEUE_SCHEDULE_FILES, None, rng) is a
