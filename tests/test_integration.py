"""A real manager and real worker processes on loopback: files, results, failures."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import platform
import shutil
import socket
import threading
import time

import pytest

import work_queue as wq
from tests.conftest import wait_all, wait_until


def test_manual_gzip_example(queue, workers):
    """The manual's example: gzip sent as a cached input, one file in, one file out."""
    for name in ("a", "b", "c"):
        with open(name, "w") as f:
            f.write(f"contents of {name}\n" * 500)
    gzip_path = shutil.which("gzip")
    for name in ("a", "b", "c"):
        t = wq.Task(f"./gzip < {name} > {name}.gz")
        t.specify_input_file(gzip_path, "gzip", cache=True)
        t.specify_input_file(name, cache=False)
        t.specify_output_file(f"{name}.gz", cache=False)
        assert queue.submit(t) > 0
    workers.start(queue.port)
    done = wait_all(queue)
    assert sorted(t.id for t in done) == [1, 2, 3]
    for t in done:
        assert t.result == wq.WORK_QUEUE_RESULT_SUCCESS and t.return_status == 0
        assert t.hostname
    for name in ("a", "b", "c"):
        with gzip.open(f"{name}.gz", "rt") as f:
            assert f.read() == f"contents of {name}\n" * 500


def test_tutorial_rev_and_tr(queue, workers):
    """The Jupyter tutorial's rev and tr tasks, with specify_file as it writes them."""
    infiles = ["file0.txt", "file1.txt", "file2.txt"]
    for i, f in enumerate(infiles):
        with open(f, "w") as fh:
            fh.write(f"This is file number {i}.")
    rev_path = shutil.which("rev")
    tr_path = shutil.which("tr")
    for i in range(3):
        t = wq.Task(f"./rev {infiles[i]} > {infiles[i]}.reversed")
        t.specify_file(rev_path, "rev", wq.WORK_QUEUE_INPUT, cache=True)
        t.specify_file(infiles[i], infiles[i], wq.WORK_QUEUE_INPUT, cache=False)
        t.specify_file(f"{infiles[i]}.reversed", f"{infiles[i]}.reversed",
                       wq.WORK_QUEUE_OUTPUT, cache=False)
        queue.submit(t)
        t = wq.Task(f'./tr "[a-z]" "[A-Z]" < {infiles[i]} > {infiles[i]}.capitalized')
        t.specify_file(tr_path, "tr", wq.WORK_QUEUE_INPUT, cache=True)
        t.specify_file(infiles[i], infiles[i], wq.WORK_QUEUE_INPUT, cache=False)
        t.specify_file(f"{infiles[i]}.capitalized", f"{infiles[i]}.capitalized",
                       wq.WORK_QUEUE_OUTPUT, cache=False)
        queue.submit(t)
    workers.start(queue.port, cores=2)
    done = wait_all(queue)
    assert len(done) == 6 and all(t.return_status == 0 for t in done)
    for i in range(3):
        assert open(f"file{i}.txt.reversed").read().strip() == f"This is file number {i}."[::-1]
        assert open(f"file{i}.txt.capitalized").read() == f"THIS IS FILE NUMBER {i}."


def test_exit_code_and_missing_output(queue, workers):
    queue.submit(wq.Task("echo failing; exit 3"))
    t2 = wq.Task("echo no output here")
    t2.specify_output_file("never.txt")
    queue.submit(t2)
    workers.start(queue.port)
    done = {t.id: t for t in wait_all(queue)}
    assert done[1].result == wq.WORK_QUEUE_RESULT_SUCCESS
    assert done[1].return_status == 3 and done[1].output == "failing\n"
    assert done[2].result == wq.WORK_QUEUE_RESULT_OUTPUT_MISSING
    assert done[2].result_str == "OUTPUT_MISS"
    assert not os.path.exists("never.txt")


def test_missing_input_comes_back_input_missing(queue, workers):
    t = wq.Task("cat nothing-here.txt")
    t.specify_input_file("nothing-here.txt")
    queue.submit(t)
    ok = wq.Task("echo still served")
    queue.submit(ok)
    workers.start(queue.port)
    done = {t.id: t for t in wait_all(queue)}
    assert done[1].result == wq.WORK_QUEUE_RESULT_INPUT_MISSING
    assert done[1].return_status == -1
    assert "nothing-here.txt" in done[1].output
    assert done[2].output == "still served\n"


def test_remote_names_escaping_the_sandbox_are_refused():
    t = wq.Task("true")
    with pytest.raises(ValueError, match="absolute"):
        t.specify_input_file("x", "/etc/passwd")
    with pytest.raises(ValueError, match=r"\.\."):
        t.specify_output_file("x", "../x")
    with pytest.raises(ValueError, match=r"\.\."):
        t.specify_buffer("data", "a/../../b")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D401 - silence the test output
        pass


def test_buffer_directory_url_command_piece_env(queue, workers, in_tmp):
    os.makedirs("indir/sub")
    open("indir/top.txt", "w").write("top level\n")
    open("indir/sub/nested.txt", "w").write("nested file\n")
    open("my data.txt", "w").write("spaced name\n")
    open("served.txt", "w").write("served over http\n")
    open("pieces.txt", "w").write("0123456789")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/served.txt"
        t = wq.Task("cat buf.txt indir/top.txt indir/sub/nested.txt fromurl.txt fromcmd.txt "
                    "'my data.txt' piece.txt && echo \" $GREETING\" && test -d empty "
                    "&& mkdir -p outdir/deeper && echo a > outdir/a.txt "
                    "&& echo b > outdir/deeper/b.txt")
        t.specify_buffer("buffer contents\n", "buf.txt")
        t.specify_directory("indir", "indir", wq.WORK_QUEUE_INPUT, recursive=True)
        t.specify_directory("emptysrc", "empty", wq.WORK_QUEUE_INPUT)
        t.specify_input_file("my data.txt", "my data.txt")
        t.specify_url(url, "fromurl.txt")
        t.specify_file_command("echo generated by command > %%", "fromcmd.txt")
        t.specify_file_piece("pieces.txt", "piece.txt", 2, 5)
        t.specify_environment_variable("GREETING", "hello world")
        t.specify_directory("outdir", "outdir", wq.WORK_QUEUE_OUTPUT)
        queue.submit(t)
        workers.start(queue.port)
        (t,) = wait_all(queue)
    finally:
        server.shutdown()
    assert t.result == wq.WORK_QUEUE_RESULT_SUCCESS, t.output
    assert t.output == ("buffer contents\ntop level\nnested file\nserved over http\n"
                        "generated by command\nspaced name\n2345 hello world\n")
    assert open("outdir/a.txt").read() == "a\n"
    assert open("outdir/deeper/b.txt").read() == "b\n"


def test_bad_url_is_input_missing(queue, workers):
    t = wq.Task("cat x")
    t.specify_url("http://127.0.0.1:1/nothing", "x")
    queue.submit(t)
    workers.start(queue.port)
    (t,) = wait_all(queue)
    assert t.result == wq.WORK_QUEUE_RESULT_INPUT_MISSING


def test_failure_only_and_success_only_outputs(queue, workers):
    ok = wq.Task("echo log > log.txt; echo r > result.txt")
    ok.specify_output_file("ok-log.txt", "log.txt", failure_only=True)
    ok.specify_output_file("ok-result.txt", "result.txt", flags=wq.WORK_QUEUE_SUCCESS_ONLY)
    bad = wq.Task("echo log > log.txt; echo r > result.txt; exit 1")
    bad.specify_output_file("bad-log.txt", "log.txt", failure_only=True)
    bad.specify_output_file("bad-result.txt", "result.txt", flags=wq.WORK_QUEUE_SUCCESS_ONLY)
    queue.submit(ok)
    queue.submit(bad)
    workers.start(queue.port)
    wait_all(queue)
    assert os.path.exists("ok-result.txt") and not os.path.exists("ok-log.txt")
    assert os.path.exists("bad-log.txt") and not os.path.exists("bad-result.txt")


def test_os_arch_interpolation(queue, workers):
    os.makedirs(f"bin-{platform.system()}-{platform.machine()}")
    with open(f"bin-{platform.system()}-{platform.machine()}/tool.txt", "w") as f:
        f.write("right platform\n")
    t = wq.Task("cat tool.txt")
    t.specify_input_file("bin-$OS-$ARCH/tool.txt", "tool.txt")
    queue.submit(t)
    workers.start(queue.port)
    (t,) = wait_all(queue)
    assert t.output == "right platform\n"


def test_sandbox_variable_and_resources_env(queue, workers):
    t = wq.Task('echo "$WORK_QUEUE_SANDBOX|$(pwd)|$CORES"')
    t.specify_cores(1)
    queue.submit(t)
    workers.start(queue.port, cores=2)
    (t,) = wait_all(queue)
    sandbox, cwd, cores = t.output.strip().split("|")
    # Like CCTools: the worker's workspace, which holds the task's sandbox (its cwd).
    assert cwd.startswith(sandbox + "/")
    assert cores == "1"


def test_allocation_boxes_on_the_wire(queue, workers):
    """Proportional allocation: a 1-core task on a 2-core worker gets half of everything."""
    whole = wq.Task("true")
    half = wq.Task("true")
    half.specify_cores(1)
    gpu_less = wq.Task("true")
    gpu_less.specify_memory(100)
    for t in (whole, half, gpu_less):
        queue.submit(t)
    workers.start(queue.port, cores=2, memory=2000, disk=2000)
    wait_all(queue)
    a = whole.resources_allocated
    assert (a.cores, a.memory, a.disk, a.gpus) == (2, 2000, 2000, 0)
    a = half.resources_allocated
    assert (a.cores, a.memory, a.disk, a.gpus) == (1, 1000, 1000, 0)
    a = gpu_less.resources_allocated  # 100/2000 = 1/20 of the worker, at least one core
    assert (a.cores, a.memory, a.disk, a.gpus) == (1, 100, 100, 0)


def test_one_core_tasks_run_side_by_side(queue, workers):
    for _ in range(4):
        t = wq.Task("date +%s.%N; sleep 0.5; date +%s.%N")
        t.specify_cores(1)
        queue.submit(t)
    workers.start(queue.port, cores=2)
    spans = [tuple(map(float, t.output.split())) for t in wait_all(queue)]
    # Two at a time on a 2-core worker (never more): count the tasks running at each start.
    running = [sum(1 for s, e in spans if s <= start < e) for start, _ in spans]
    assert max(running) == 2, spans


def test_worker_killed_mid_task_requeues(queue, workers):
    """A worker dies with SIGKILL while running a task: the task finishes elsewhere."""
    t = wq.Task("sleep 1; echo finished")
    t.specify_max_retries(5)
    queue.submit(t)
    victim = workers.start(queue.port)
    wait_until(lambda: queue.task_state(t.id) == wq.WORK_QUEUE_TASK_RUNNING, queue)
    victim.kill()
    workers.start(queue.port)
    (done,) = wait_all(queue)
    assert done is t and done.output == "finished\n"
    assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS
    assert queue.stats.workers_lost == 1


def test_every_task_returned_exactly_once(queue, workers):
    n = 200
    ids = {queue.submit(wq.Task(f"echo {i}")) for i in range(n)}
    workers.start(queue.port)
    workers.start(queue.port)
    done = wait_all(queue)
    assert len(done) == n and {t.id for t in done} == ids
    assert all(t.output == f"{t.id - 1}\n" for t in done)
    assert queue.wait(0.05) is None
    assert queue.stats.tasks_done == n and queue.stats.tasks_submitted == n


def test_cancel_running_task(queue, workers):
    tid = queue.submit(wq.Task("sleep 30"))
    keep = queue.submit(wq.Task("echo kept"))
    workers.start(queue.port)
    wait_until(lambda: queue.task_state(tid) == wq.WORK_QUEUE_TASK_RUNNING, queue)
    t = queue.cancel_by_taskid(tid)
    assert t is not None and t.id == tid
    assert queue.task_state(tid) == wq.WORK_QUEUE_TASK_CANCELED
    assert queue.cancel_by_taskid(tid) is None
    done = wait_all(queue, timeout=10)
    assert [d.id for d in done] == [keep]
    assert queue.stats.tasks_cancelled == 1


def test_cancel_by_tag_and_category(queue):
    a = wq.Task("true")
    a.specify_tag("mytag")
    b = wq.Task("true")
    b.specify_category("cat")
    c = wq.Task("true")
    c.specify_category("cat")
    for t in (a, b, c):
        queue.submit(t)
    assert queue.cancel_by_tasktag("mytag") is a
    assert queue.cancel_by_tasktag("mytag") is None
    assert sorted(t.id for t in queue.cancel_by_category("cat")) == [b.id, c.id]
    assert queue.empty()


def test_wait_for_tag_order(queue, workers):
    for tag in ("a", "b", "c", "d"):
        t = wq.Task(f"echo {tag}")
        t.specify_tag(tag)
        queue.submit(t)
    workers.start(queue.port, cores=2)
    got = []
    for tag in ("d", "b", "a", "c"):
        t = queue.wait_for_tag(tag, 20)
        assert t is not None
        got.append(t.tag)
        assert t.output == f"{tag}\n"
    assert got == ["d", "b", "a", "c"]


def test_resubmit_finished_task_and_clone(queue, workers):
    t = wq.Task("echo again")
    queue.submit(t)
    workers.start(queue.port)
    wait_all(queue)
    with pytest.raises(ValueError, match="already submitted"):
        queue.submit(t.clone()) and queue.submit(queue._state.tasks[t.id + 1])
    first = t.id
    queue.submit(t)
    assert t.id != first
    done = wait_all(queue)
    assert t in done and t.output == "again\n"


def test_running_time_max_is_seconds(queue, workers):
    slow = wq.Task("sleep 10")
    slow.specify_running_time_max(1)
    fine = wq.Task("sleep 1.5; echo ok")
    fine.specify_running_time_max(5)  # seconds, not microseconds: 1.5 s must be allowed
    queue.submit(slow)
    queue.submit(fine)
    workers.start(queue.port, cores=2)
    start = time.time()
    done = {t.id: t for t in wait_all(queue)}
    assert done[slow.id].result == wq.WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME
    assert done[fine.id].result == wq.WORK_QUEUE_RESULT_SUCCESS
    assert done[fine.id].output == "ok\n"
    assert time.time() - start < 8


def test_end_time(queue, workers):
    t = wq.Task("sleep 10")
    t.specify_end_time((time.time() + 1) * 1e6)
    queue.submit(t)
    workers.start(queue.port)
    (t,) = wait_all(queue, timeout=15)
    assert t.result == wq.WORK_QUEUE_RESULT_TASK_TIMEOUT


def test_watched_output_grows_while_running(queue, workers):
    t = wq.Task("for i in 1 2 3 4; do echo line $i >> watched.txt; sleep 0.6; done")
    t.specify_output_file("watched.txt", flags=wq.WORK_QUEUE_WATCH)
    queue.submit(t)
    workers.start(queue.port)
    seen_partial = False
    deadline = time.time() + 20
    while not queue.empty() and time.time() < deadline:
        queue.wait(0.2)
        if os.path.exists("watched.txt") and queue.empty() is False:
            content = open("watched.txt").read()
            seen_partial |= 0 < content.count("line") < 4
    assert open("watched.txt").read() == "".join(f"line {i}\n" for i in range(1, 5))
    if not os.environ.get("WQ_TEST_WORKER"):  # a CCTools worker looks only every 5 s
        assert seen_partial


def test_password(in_tmp, workers):
    with open("pw.txt", "w") as f:
        f.write("secret\n")
    with open("wrong.txt", "w") as f:
        f.write("not it\n")
    q = wq.WorkQueue(port=0)
    try:
        q.specify_password_file("pw.txt")
        q.submit(wq.Task("echo authenticated"))
        workers.start(q.port, "--password", "wrong.txt")
        assert q.wait(2) is None
        workers.start(q.port, "--password", "pw.txt")
        (t,) = wait_all(q)
        assert t.output == "authenticated\n"
    finally:
        q.close()


def _query(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def test_status_queries(queue, workers):
    tid = queue.submit(wq.Task("sleep 5"))
    workers.start(queue.port)
    wait_until(lambda: queue.task_state(tid) == wq.WORK_QUEUE_TASK_RUNNING, queue)
    replies = {}

    def ask() -> None:
        replies["queue"] = _query(queue.port, b"queue_status\n")
        replies["tasks"] = _query(queue.port, b"task_status\n")
        replies["workers"] = _query(queue.port, b"worker_status\n")
        replies["http"] = _query(queue.port, b"GET /tasks HTTP/1.1\r\nHost: x\r\n\r\n")

    th = threading.Thread(target=ask)
    th.start()
    while th.is_alive():
        queue.wait(0.05)
    record = json.loads(replies["queue"])[0]
    assert record["type"] == "wq_master" and record["protocol"] == 11
    assert record["port"] == queue.port and record["tasks_running"] == 1
    (task,) = json.loads(replies["tasks"])
    assert task["taskid"] == tid and task["state"] == "RUNNING" and task["priority"] == "0"
    (worker,) = json.loads(replies["workers"])
    assert worker["current_task_000_id"] == tid and worker["cores_total"] == 1
    head, _, body = replies["http"].partition(b"\n\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert json.loads(body)[0]["taskid"] == tid
    assert queue.status("tasks")[0]["taskid"] == tid
    assert queue.cancel_by_taskid(tid) is not None


def test_block_host(queue, workers):
    for name in {"localhost", socket.getfqdn(), socket.gethostname()}:
        queue.block_host(name)
    queue.submit(wq.Task("echo hi"))
    workers.start(queue.port)
    assert queue.wait(1.5) is None
    queue.unblock_host()
    (t,) = wait_all(queue)
    assert t.output == "hi\n"


def test_shutdown_workers(queue, workers):
    p = workers.start(queue.port)
    wait_until(lambda: queue.stats.workers_connected == 1, queue)
    assert queue.shutdown_workers(0) == 1
    assert p.wait(timeout=10) == 0


def test_logs(in_tmp, workers):
    q = wq.WorkQueue(port=0, stats_log="stats.log", transactions_log="tr.log",
                     debug_log="debug.log")
    q.submit(wq.Task("true"))
    workers.start(q.port)
    wait_all(q)
    q.close()
    header = open("stats.log").readline().split()
    assert header[:3] == ["#", "timestamp", "workers_connected"]
    rows = [line.split() for line in open("stats.log") if not line.startswith("#")]
    assert rows and all(len(r) == len(header) - 1 for r in rows)
    tr = open("tr.log").read()
    for event in ("MANAGER START", "TASK 1 WAITING default", "TASK 1 RUNNING",
                  "TASK 1 RETRIEVED SUCCESS", "TASK 1 DONE SUCCESS", "CONNECTION",
                  "MANAGER END"):
        assert event in tr
    assert "wq:" in open("debug.log").read()


def test_cached_input_is_reused_until_invalidated(queue, workers):
    with open("shared.txt", "w") as f:
        f.write("version 1\n")

    def task():
        t = wq.Task("cat shared.txt")
        t.specify_input_file("shared.txt", cache=True)
        return t

    queue.submit(task())
    workers.start(queue.port)
    (t,) = wait_all(queue)
    sent_first = queue.stats.bytes_sent
    assert t.output == "version 1\n" and sent_first == len("version 1\n")
    queue.submit(task())
    (t,) = wait_all(queue)
    assert queue.stats.bytes_sent == sent_first  # cached at the worker: not sent again
    with open("shared.txt", "w") as f:
        f.write("version 2\n")
    queue.invalidate_cache_file("shared.txt")
    queue.submit(task())
    (t,) = wait_all(queue)
    assert t.output == "version 2\n"


def test_tls_with_files(in_tmp, workers):
    with open("in.txt", "w") as f:
        f.write("secret data\n" * 10000)
    q = wq.WorkQueue(port=0, ssl=True)
    try:
        assert q.using_ssl
        t = wq.Task("tr a-z A-Z < in.txt > out.txt; echo converted")
        t.specify_input_file("in.txt")
        t.specify_output_file("out.txt")
        q.submit(t)
        workers.start(q.port)  # without --ssl: the handshake fails, nothing runs
        assert q.wait(1.5) is None
        workers.start(q.port, "--ssl")
        (t,) = wait_all(q)
        assert t.output == "converted\n"
        assert open("out.txt").read() == "SECRET DATA\n" * 10000
    finally:
        q.close()


def test_ssl_pair_with_neither_given_is_plain_text(in_tmp, workers):
    """CCTools' own test programs pass ssl=(None, None): no key and no certificate, no TLS."""
    q = wq.WorkQueue(port=0, ssl=(None, None))
    try:
        assert not q.using_ssl
        t = wq.Task("echo plain")
        q.submit(t)
        workers.start(q.port)
        wait_all(q)
        assert t.output == "plain\n"
    finally:
        q.close()
    with pytest.raises(ValueError, match="no certificate"):
        wq.WorkQueue(port=0, ssl=("key.pem", None))


# wait()'s timeouts (fractional, forever on an empty queue) are tested on a fake clock in
# tests/test_wait_clock.py.


def test_environment_set_and_unset(queue, workers):
    t = wq.Task('echo "${KEEP-unset} ${DROP-unset}"')
    t.specify_environment_variable("KEEP", "kept value")
    t.specify_environment_variable("DROP")
    queue.submit(t)
    workers.start(queue.port, extra_env={"DROP": "inherited"})
    (t,) = wait_all(queue)
    assert t.output == "kept value unset\n"


def test_leftover_processes_of_a_task_are_killed(queue, workers):
    """Each task runs in its own process group; nothing it started outlives it."""
    t = wq.Task("sleep 60 & echo $!")
    queue.submit(t)
    workers.start(queue.port)
    (t,) = wait_all(queue)
    pid = int(t.output)
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"background process {pid} of the task is still alive")


def test_result_properties(queue, workers):
    with open("in.txt", "w") as f:
        f.write("x" * 1000)
    t = wq.Task("sleep 0.2; cat in.txt > out.txt")
    t.specify_input_file("in.txt")
    t.specify_output_file("out.txt")
    t.specify_tag("props")
    t.specify_category("cat")
    t.specify_priority(3)
    t.specify_cores(1)
    queue.submit(t)
    workers.start(queue.port)
    (t,) = wait_all(queue)
    assert (t.tag, t.category, t.priority, t.command) == ("props", "cat", 3,
                                                           "sleep 0.2; cat in.txt > out.txt")
    assert t.result == 0 and t.result_str == "SUCCESS" and t.return_status == 0
    assert t.std_output == t.output == "" and t.total_submissions == 1
    assert t.host.startswith("127.0.0.1:") and t.hostname
    assert t.total_bytes_sent == 1000 and t.total_bytes_received == 1000
    assert t.total_bytes_transferred == 2000
    assert t.submit_time <= t.send_input_start <= t.send_input_finish
    assert t.send_input_finish <= t.receive_output_start <= t.receive_output_finish
    assert t.receive_output_finish <= t.finish_time
    assert 200_000 <= t.cmd_execution_time < 5_000_000
    assert t.total_cmd_execution_time >= t.cmd_execution_time
    assert t.resources_requested.cores == 1 and t.resources_allocated.cores == 1
    assert t.resources_allocated.memory == 1000
    assert t.exhausted_attempts == 0 and t.total_transfer_time >= 0


def test_large_inputs_of_consecutive_tasks_on_one_worker(queue, workers):
    """A large input goes out with sendfile right after its ``put`` line; the cleanup lines of
    the worker's previous task must not slip in between (they wait for the next task block)."""
    workers.start(queue.port, cores=1)
    sizes = [65536, 100_000, 70_000, 200_000, 65536, 1 << 20]
    for i, size in enumerate(sizes):
        with open(f"big.{i}", "wb") as f:
            f.write(bytes([i]) * size)
    for i, size in enumerate(sizes):  # one at a time: each follows a finished task
        t = wq.Task(f"wc -c < big.{i}")
        t.specify_input_file(f"big.{i}")
        queue.submit(t)
        done = queue.wait(30)
        assert done is t and t.result == wq.WORK_QUEUE_RESULT_SUCCESS, t.output
        assert int(t.output) == size
        assert t.try_count == 1  # not retried after the worker dropped a garbled stream
    assert queue.stats.workers_joined == 1 and queue.stats.workers_removed == 0


def test_the_readme_demo_runs(tmp_path):
    """``./demo.sh`` runs ``examples/gzip_demo.py``: a manager, two single-shot local
    workers, 20 gzip tasks with inputs up to 72 KB, outputs verified."""
    import subprocess
    import sys

    demo = os.path.join(os.path.dirname(__file__), "..", "examples", "gzip_demo.py")
    done = subprocess.run([sys.executable, demo], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "outputs verified: yes" in done.stdout
