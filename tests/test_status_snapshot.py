"""Status answered while the program is busy: a consistent snapshot, never a half-read state.

The status thread answers ``work_queue_status`` between ``wait()`` calls. It builds its records
under the lock the manager's loop and the state-changing calls hold, so an answer never reads
the task table while ``submit()`` grows it (before, it caught "dictionary changed size during
iteration" and tried again, up to 50 times, and answered ``[]`` after that)."""

from __future__ import annotations

import json
import socket
import threading

import work_queue as wq


def _ask(port: int, request: bytes) -> list[dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request + b"\n")
        data = b""
        while chunk := s.recv(1 << 16):
            data += chunk
    return json.loads(data)


def test_task_status_while_submitting_is_whole(in_tmp):
    q = wq.WorkQueue(port=0)
    try:
        sizes: list[int] = []
        errors: list[BaseException] = []
        done = threading.Event()

        def poll() -> None:
            try:
                while not done.is_set():
                    records = _ask(q.port, b"task_status")
                    ids = [r["taskid"] for r in records]
                    assert ids == sorted(ids) and len(set(ids)) == len(ids)
                    sizes.append(len(records))
            except BaseException as e:  # noqa: BLE001 - handed to the test
                errors.append(e)

        t = threading.Thread(target=poll, daemon=True)
        t.start()
        for i in range(20000):
            q.submit(wq.Task(f"echo {i}"))
        done.set()
        t.join(30)
        assert not errors, errors[0]
        assert sizes and sizes == sorted(sizes), sizes[:20]
        assert _ask(q.port, b"queue_status")[0]["tasks_waiting"] == 20000
    finally:
        q.close()
