"""Limits the resource monitor enforces, and what the worker's debug log says about them."""

from __future__ import annotations

import re

import work_queue as wq

from .conftest import wait_all

WRITE_AND_WAIT = ("python3 -c 'open(\"big.dat\", \"wb\").write(b\"x\" * (30 << 20)); "
                  "import time; time.sleep(20)'")


def test_worker_debug_log_says_which_limit_was_broken(queue, workers, tmp_path):
    """``work_queue_worker -d all -o log``: the monitor's line for a broken limit
    (``rmsummary_check_limits``: "Resource limit for disk has been exceeded: 30 > 10 MB")."""
    log = tmp_path / "worker.debug"
    queue.enable_monitoring()
    # 1 core of 4: a quarter of the worker, 10 MB of disk
    workers.start(queue.port, "-d", "all", "-o", str(log), cores=4, memory=1000, disk=40)
    t = wq.Task(WRITE_AND_WAIT)
    t.specify_cores(1)
    queue.submit(t)
    (done,) = wait_all(queue, timeout=30)
    assert done.result == wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION, done.output
    assert done.limits_exceeded.disk == 10
    text = log.read_text()
    assert re.search(r"Resource limit for disk has been exceeded: \d+ > 10 MB", text), \
        text[-3000:]
