"""RemoteTask and worker coprocesses (the serverless protocol of CCTools)."""

from __future__ import annotations

import json
import stat

import pytest

import work_queue as wq
from tests.conftest import wait_all

COPROCESS = r'''#!/usr/bin/env python3
import json, os, socket, sys

def add(x, y):
    return x + y

def slow(s):
    import time
    time.sleep(s)
    return s

def die():
    os._exit(1)

def boom():
    raise ValueError("boom")

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
hello = json.dumps({"name": "test_coprocess", "port": srv.getsockname()[1]}).encode()
sys.stdout.buffer.write(b"%d\n" % len(hello) + hello)
sys.stdout.flush()
while True:
    conn, _ = srv.accept()
    f = conn.makefile("rb")
    fn, taskid, n = f.readline().split()
    event = json.loads(f.read(int(n)))
    try:
        out = {"Result": globals()[fn.decode()](*event["fn_args"], **event["fn_kwargs"]),
               "StatusCode": 200}
    except Exception as e:
        out = {"Result": str(e), "StatusCode": 500}
    data = json.dumps(out).encode()
    conn.sendall(b"%d\n" % len(data) + data)
    conn.close()
'''


@pytest.fixture
def coprocess_file(tmp_path):
    path = tmp_path / "coprocess.py"
    path.write_text(COPROCESS)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_remote_tasks_call_the_coprocess(queue, workers, coprocess_file):
    tasks = [wq.RemoteTask("add", "test_coprocess", i, 10) for i in range(6)]
    kw = wq.RemoteTask("add", "test_coprocess", x=1, y=2)
    kw.specify_exec_method("direct")
    bad = wq.RemoteTask("boom", "test_coprocess")
    plain = wq.Task("echo not a remote task")
    for t in [*tasks, kw, bad, plain]:
        queue.submit(t)
    workers.start(queue.port, "--coprocess", coprocess_file, "--coprocesses-total", "2",
                  cores=2)
    wait_all(queue)
    assert [json.loads(t.output) for t in tasks] == [
        {"Result": i + 10, "StatusCode": 200} for i in range(6)]
    assert json.loads(kw.output) == {"Result": 3, "StatusCode": 200}
    assert json.loads(bad.output) == {"Result": "boom", "StatusCode": 500}
    assert plain.output == "not a remote task\n"


def test_remote_task_needs_a_worker_with_that_coprocess(queue, workers):
    t = wq.RemoteTask("add", "test_coprocess", 1, 2)
    queue.submit(t)
    workers.start(queue.port)
    assert queue.wait(1.5) is None
    assert queue.task_state(t.id) == wq.WORK_QUEUE_TASK_READY


def test_dead_coprocess_is_restarted_and_its_task_fails(queue, workers, coprocess_file):
    dead = wq.RemoteTask("die", "test_coprocess")
    queue.submit(dead)
    workers.start(queue.port, "--coprocess", coprocess_file, "--coprocesses-total", "1")
    (dead,) = wait_all(queue)
    answer = json.loads(dead.output)
    assert answer["StatusCode"] == 500 and "did not answer" in answer["Result"]
    assert dead.return_status != 0
    again = wq.RemoteTask("add", "test_coprocess", 2, 3)
    queue.submit(again)
    (again,) = wait_all(queue)
    assert json.loads(again.output) == {"Result": 5, "StatusCode": 200}


def test_bad_arguments_and_exec_method():
    with pytest.raises(ValueError, match="exec method"):
        wq.RemoteTask("f", "c").specify_exec_method("spawn")
    t = wq.RemoteTask("f", "c", object())
    q = wq.WorkQueue(port=0)
    try:
        with pytest.raises(TypeError, match="JSON"):
            q.submit(t)
    finally:
        q.close()


def test_missing_coprocess_program_is_a_clear_error(tmp_path):
    from work_queue.cli.worker import main

    with pytest.raises(SystemExit):
        main(["--coprocess", str(tmp_path / "nope.py"), "localhost", "9123"])


SANDBOX_COPROCESS = COPROCESS.replace('"test_coprocess"', '"sandbox_coprocess"').replace(
    "def die():", "def where(taskid):\n    return os.path.isdir('t.%d' % taskid)\n\ndef die():")


def test_task_sandbox_is_named_after_the_task(queue, workers, tmp_path):
    """Coprocesses (Parsl's) find a task's files in <workspace>/t.<taskid>."""
    path = tmp_path / "sandbox_coprocess.py"
    path.write_text(SANDBOX_COPROCESS)
    path.chmod(0o755)
    workers.start(queue.port, "--coprocess", str(path), "--coprocesses-total", "1")
    for _ in range(5):
        t = wq.RemoteTask("where", "sandbox_coprocess")
        queue.submit(t)
        t.specify_fn_args([t.id])
        t._before_submit()
        (t,) = wait_all(queue)
        assert json.loads(t.output) == {"Result": True, "StatusCode": 200}
