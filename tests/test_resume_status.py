"""``work_queue_status -W`` while a worker is away (issue 19): the worker whose connection
dropped, and whose tasks the manager keeps for it, is listed and marked as away, not hidden."""

from __future__ import annotations

import json

import work_queue as wq
from work_queue.manager import snapshot

from .test_status_tool import status
from .test_trust_resume import RETURNED, reset, resumable_worker


def test_an_away_worker_is_listed_as_away(in_tmp):
    RETURNED.clear()
    q = wq.WorkQueue(port=0)
    try:
        q.submit(wq.Task("sleep 20"))
        peer, _token, task_id = resumable_worker(q)
        reset(q, peer)
        records = snapshot.worker_records(q, q._now())
        assert [r["state"] for r in records] == ["away"]
        assert records[0]["current_task_000_id"] == task_id
        assert records[0]["away_since"] > 0

        table = status("-W", "127.0.0.1", str(q.port))
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert len(lines) == 2 and " 1 away " in lines[1], table.stdout
        long = status("-W", "-l", "127.0.0.1", str(q.port))
        assert json.loads(long.stdout)[0]["state"] == "away"
    finally:
        q.close()
