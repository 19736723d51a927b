"""Foremen (issue 18 item 3): a real manager, a real foreman process
(``work_queue_worker --foreman``) and real workers connected to the foreman.

The foreman is always ours; its workers are ``WORKER_CMD`` (ours, or another worker with
WQ_TEST_WORKER).  Checked: tasks with inputs and outputs pass through it, a shared cached
input crosses the manager -> foreman link once (the manager's bytes sent) and reaches each of
the foreman's workers once (the foreman's --specify-log), failures come back as they are,
cancelling a task frees the foreman's worker, a task whose worker dies still completes, and
the foreman reports its workers' resources as its own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import work_queue as wq
from tests.conftest import WORKER_CMD, Workers, wait_all, wait_until
from tests.test_resume import executions, submit_logged
from work_queue._testing.proxy import ResettingProxy

FOREMAN_CMD = [sys.executable, "-m", "work_queue.cli.worker", "--foreman"]
SHARED_SIZE = 300_000


class Foreman:
    """A foreman process connected to a manager; its port comes from its -Z file."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.stats_log = os.path.join(workdir, "foreman-stats.log")

    def start(self, manager_port: int, *args: str) -> int:
        port_file = os.path.join(self.workdir, "foreman.port")
        cmd = [*FOREMAN_CMD, "-Z", port_file, "--specify-log", self.stats_log, "-t", "30",
               "-b", "1", "-s", self.workdir, *args, "localhost", str(manager_port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while not (os.path.exists(port_file) and open(port_file).read().endswith("\n")):
            assert self.proc.poll() is None, self.proc.stderr.read()  # type: ignore[union-attr]
            assert time.time() < deadline, "the foreman wrote no port file"
            time.sleep(0.02)
        self.port = int(open(port_file).read())
        return self.port

    def last_stats(self) -> dict[str, float]:
        """The last line of the foreman's statistics log, by column name."""
        with open(self.stats_log) as f:
            lines = f.read().splitlines()
        names = lines[0].lstrip("# ").split()
        return dict(zip(names, map(float, lines[-1].split()), strict=False))

    def stop(self) -> None:
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        if p.stderr:
            p.stderr.close()


@pytest.fixture
def foreman(tmp_path) -> Iterator[Foreman]:
    wdir = tmp_path / "foreman"
    wdir.mkdir()
    f = Foreman(str(wdir))
    yield f
    f.stop()


def _foreman_record(q: wq.WorkQueue) -> dict[str, int]:
    """What the manager knows of the foreman's resources (it is the manager's one worker)."""
    summary = q.workers_summary()
    assert len(summary) <= 1, summary
    return summary[0] if summary else {}


def test_tasks_with_files_pass_through_a_foreman_and_shared_inputs_cross_once(
        queue, foreman, workers, in_tmp):
    with open("shared.dat", "wb") as f:
        f.write(os.urandom(SHARED_SIZE))
    os.mkdir("indir")
    with open("indir/a.txt", "w") as f:
        f.write("in a directory\n")
    for i in range(8):
        t = wq.Task("wc -c < shared.dat > out.txt; cat own.txt indir/a.txt >> out.txt; "
                    "mkdir -p outdir/sub && echo deep > outdir/sub/x.txt; echo stdout $N")
        t.specify_input_file("shared.dat", "shared.dat", cache=True)
        t.specify_directory("indir", "indir", recursive=True, cache=True)
        t.specify_buffer(f"own {i}\n", "own.txt")
        t.specify_output_file(f"out.{i}.txt", "out.txt")
        t.specify_directory(f"outdir.{i}", "outdir", wq.WORK_QUEUE_OUTPUT)
        t.specify_environment_variable("N", str(i))
        t.specify_cores(1)
        t.specify_tag(str(i))
        queue.submit(t)
    port = foreman.start(queue.port)
    workers.start(port)
    workers.start(port)
    done = wait_all(queue)
    assert len(done) == 8
    for t in done:
        i = int(t.tag)
        assert (t.result, t.return_status) == (wq.WORK_QUEUE_RESULT_SUCCESS, 0), t.output
        assert t.output == f"stdout {i}\n"
        assert open(f"out.{i}.txt").read() == f"{SHARED_SIZE}\nown {i}\nin a directory\n"
        assert open(f"outdir.{i}/sub/x.txt").read() == "deep\n"
    # The manager's one worker is the foreman: the shared input crossed to it once.
    assert queue.stats.workers_connected == 1
    assert SHARED_SIZE <= queue.stats.bytes_sent < 2 * SHARED_SIZE
    # ... and the foreman sent it on to each of its (at most two) workers once (its queue
    # writes a last line of statistics when it stops).
    foreman.stop()
    assert foreman.last_stats()["tasks_done"] == 8
    sent = foreman.last_stats()["bytes_sent"]
    assert SHARED_SIZE <= sent < 3 * SHARED_SIZE, sent


def test_failures_come_back_as_they_are(queue, foreman, workers, in_tmp):
    queue.submit(wq.Task("echo failing; exit 3"))
    t = wq.Task("true")
    t.specify_output_file("never.txt", "never.txt")
    queue.submit(t)
    port = foreman.start(queue.port)
    workers.start(port)
    results = {t.command: t for t in wait_all(queue)}
    failed = results["echo failing; exit 3"]
    assert (failed.result, failed.return_status) == (wq.WORK_QUEUE_RESULT_SUCCESS, 3)
    assert failed.output == "failing\n"
    assert results["true"].result == wq.WORK_QUEUE_RESULT_OUTPUT_MISSING


def test_a_cancelled_task_frees_the_foremans_worker(queue, foreman, workers, in_tmp):
    port = foreman.start(queue.port)
    workers.start(port)
    wait_until(lambda: _foreman_record(queue).get("cores") == 1, queue)
    long = queue.submit(wq.Task("sleep 60"))
    wait_until(lambda: queue.task_state(long) == wq.WORK_QUEUE_TASK_RUNNING, queue)
    time.sleep(0.3)  # on the foreman's worker by now
    assert queue.cancel_by_taskid(long) is not None
    queue.submit(wq.Task("echo next"))
    start = time.time()
    (t,) = wait_all(queue, timeout=20)
    assert t.output == "next\n"
    assert time.time() - start < 15  # not behind the 60 s sleep


def test_a_task_whose_worker_dies_still_completes(queue, foreman, workers, in_tmp):
    port = foreman.start(queue.port)
    first = workers.start(port)
    marker = os.path.join(in_tmp, "started")
    t = wq.Task(f"touch {marker}; sleep 2; echo survived > out.txt")
    t.specify_output_file("out.txt", "out.txt")
    queue.submit(t)
    wait_until(lambda: os.path.exists(marker), queue)
    first.send_signal(signal.SIGKILL)
    first.wait()
    workers.start(port)
    (done,) = wait_all(queue, timeout=30)
    assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS
    assert open("out.txt").read() == "survived\n"


def test_the_foreman_reports_its_workers_resources_as_its_own(queue, foreman, in_tmp):
    port = foreman.start(queue.port)
    wait_until(lambda: bool(_foreman_record(queue)), queue)
    # No workers: nothing but the foreman's own disk, as CCTools' foreman reports.
    assert _foreman_record(queue)["cores"] == 0
    assert _foreman_record(queue)["memory"] == 0
    w = Workers(os.path.join(in_tmp))
    try:
        # (the largest worker is largest in every resource: the manager sizes a task by the
        # largest of each, which may otherwise come from different workers)
        w.start(port, cores=2, memory=500)
        w.start(port, cores=3, memory=700)
        wait_until(lambda: _foreman_record(queue).get("cores") == 5, queue)
        assert _foreman_record(queue)["memory"] == 1200
        # A task as large as the largest worker fits; it runs on that worker.
        t = wq.Task("echo $CORES")
        t.specify_cores(3)
        queue.submit(t)
        (done,) = wait_all(queue)
        assert done.return_status == 0
        if WORKER_CMD[0] == sys.executable:
            assert done.output == "3\n"
    finally:
        w.stop_all()
    wait_until(lambda: _foreman_record(queue).get("cores") == 0, queue)


def test_a_changed_cached_input_reaches_the_foremans_workers(queue, foreman, workers, in_tmp):
    port = foreman.start(queue.port)
    workers.start(port)
    with open("data.txt", "w") as f:
        f.write("first\n")

    def run() -> str:
        t = wq.Task("cat data.txt")
        t.specify_input_file("data.txt", "data.txt", cache=True)
        queue.submit(t)
        (done,) = wait_all(queue)
        return done.output

    assert run() == "first\n"
    with open("data.txt", "w") as f:
        f.write("second\n")
    queue.invalidate_cache_file("data.txt")
    assert run() == "second\n"


def test_the_foreman_idles_out_and_exits(queue, foreman, workers, in_tmp):
    foreman.start(queue.port, "-t", "1")
    wait_until(lambda: queue.stats.workers_connected == 1, queue)
    assert foreman.proc is not None
    wait_until(lambda: foreman.proc.poll() is not None, queue, timeout=15)  # type: ignore
    assert foreman.proc.returncode == 0


def test_a_foreman_without_workers_gets_no_task(queue, foreman, workers, in_tmp):
    # CCTools' manager gives no task to a foreman reporting no workers; ours gave it a task
    # with no resources asked for, in an empty box (0 cores, 0 MB), before this was fixed.
    port = foreman.start(queue.port)
    wait_until(lambda: bool(_foreman_record(queue)), queue)
    tid = queue.submit(wq.Task("echo ran"))
    for _ in range(10):
        queue.wait(0.05)
    assert queue.task_state(tid) == wq.WORK_QUEUE_TASK_READY
    workers.start(port, cores=2)
    (done,) = wait_all(queue)
    assert done.output == "ran\n"
    assert done.resources_allocated.cores == 2  # the whole (largest) worker


def test_workers_find_a_named_foreman_through_the_catalog(queue, foreman, in_tmp, monkeypatch):
    from work_queue.catalog import client
    from work_queue.catalog.server import CatalogServer

    catalog = CatalogServer(port=0, history_dir=None).start()
    w: subprocess.Popen[bytes] | None = None
    try:
        where = f"127.0.0.1:{catalog.port}"
        foreman.start(queue.port, "-f", "wq-test-foreman", "-C", where)
        wait_until(lambda: bool(client.find_managers("wq-test-foreman",
                                                     [("127.0.0.1", catalog.port)])), queue)
        w = subprocess.Popen([*WORKER_CMD, "--cores", "1", "-t", "30", "-s", in_tmp,
                              "-M", "wq-test-foreman", "--catalog", where],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        queue.submit(wq.Task("echo found"))
        (done,) = wait_all(queue)
        assert done.output == "found\n"
    finally:
        if w is not None:
            w.terminate()
            w.wait()
        catalog.stop()


def test_a_password_guards_both_sides_of_the_foreman(foreman, workers, in_tmp):
    with open("pw", "w") as f:
        f.write("sesame")
    q = wq.WorkQueue(port=0)
    try:
        q.specify_password_file("pw")
        port = foreman.start(q.port, "-P", "pw")
        workers.start(port, "-P", "pw")
        q.submit(wq.Task("echo guarded"))
        (done,) = wait_all(q)
        assert done.output == "guarded\n"
    finally:
        q.close()


def test_a_stranger_cannot_have_the_foreman_answer_for_itself(foreman, in_tmp):
    """The foreman accepts workers and connects to its manager with one password.  A stranger
    that plays its manager (a catalog record with its project name is enough for -M) and
    connects to it as a worker sends the challenge the foreman's worker side issued to the
    foreman's manager side: the foreman must not compute that answer (the reflection attack,
    across the foreman's two roles)."""
    from work_queue._testing import FakeManager, FakePeer
    from work_queue.protocol import auth

    with open("pw", "w") as f:
        f.write("sesame")
    with FakeManager() as stranger:
        port = foreman.start(stranger.port, "-P", "pw")
        up = stranger.accept(timeout=20)
        assert up.line() == auth.AUTH_LINE  # the foreman's manager side, connecting
        # ... while its worker side (its queue's status thread) takes the stranger's "worker"
        down = FakePeer(socket.create_connection(("127.0.0.1", port)), lambda p: None)
        down.send(auth.AUTH_LINE + b"\n")
        assert down.line() == auth.AUTH_LINE
        issued = down.line()  # the challenge of the foreman's worker side
        assert issued is not None
        up.send(auth.AUTH_LINE + b"\n" + issued + b"\n")
        up.line()  # the foreman's own challenge to its "manager"
        answer = up.line(timeout=5)
        assert answer != auth.response_for(b"sesame", issued), "the foreman answered itself"
        down.sock.close()


def test_exit_from_the_manager_stops_the_foreman_and_its_idle_workers(
        queue, foreman, workers, in_tmp):
    port = foreman.start(queue.port)
    worker = workers.start(port)
    wait_until(lambda: _foreman_record(queue).get("cores") == 1, queue)
    assert queue.shutdown_workers(0) == 1
    assert foreman.proc is not None
    wait_until(lambda: foreman.proc.poll() is not None  # type: ignore[union-attr]
               and worker.poll() is not None, queue)
    assert foreman.proc.returncode == 0


def test_stats_hierarchy_counts_the_foremans_workers(queue, foreman, workers, in_tmp):
    port = foreman.start(queue.port)
    workers.start(port)
    workers.start(port)
    wait_until(lambda: _foreman_record(queue).get("cores") == 2, queue)
    for _ in range(4):
        t = wq.Task("cat in.txt")
        t.specify_buffer("x" * 1000, "in.txt")
        queue.submit(t)
    wait_all(queue)
    assert queue.stats.workers_joined == 1  # the manager's own worker: the foreman
    # As CCTools: the foreman's figures are added (they come with its next update).
    wait_until(lambda: queue.stats_hierarchy.workers_joined == 3, queue)
    h = queue.stats_hierarchy
    assert h.workers_connected == 3
    # the inputs went to the foreman, then on to its workers
    wait_until(lambda: queue.stats_hierarchy.bytes_sent == 2 * queue.stats.bytes_sent, queue)


def test_a_foreman_serves_the_next_manager_with_its_files(foreman, workers, in_tmp):
    # The foreman keeps its queue and workers between managers; what its workers cached
    # for the first manager must not stand in for the second one's file of the same name.
    with open("data.txt", "w") as f:
        f.write("first\n")

    def run(q: wq.WorkQueue) -> str:
        t = wq.Task("cat data.txt")
        t.specify_input_file("data.txt", "data.txt", cache=True)
        q.submit(t)
        (done,) = wait_all(q)
        return done.output

    q1 = wq.WorkQueue(port=0)
    port = q1.port
    try:
        workers.start(foreman.start(port))
        assert run(q1) == "first\n"
    finally:
        q1.close()  # releases the foreman, which connects again
    with open("data.txt", "w") as f:
        f.write("second\n")
    q2 = wq.WorkQueue(port=port)
    try:
        assert run(q2) == "second\n"
        assert q2.stats.workers_joined == 1
    finally:
        q2.close()


def test_large_files_cross_a_foreman_both_ways(queue, foreman, workers, in_tmp):
    data = os.urandom(5 << 20)
    with open("big.in", "wb") as f:
        f.write(data)
    t = wq.Task("cp big.in big.out; md5sum big.in")
    t.specify_input_file("big.in", "big.in")
    t.specify_output_file("big.out", "big.out")
    queue.submit(t)
    workers.start(foreman.start(queue.port))
    (done,) = wait_all(queue)
    assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS, done.output
    with open("big.out", "rb") as f:
        assert f.read() == data


def test_a_foreman_of_foremen(queue, foreman, workers, in_tmp, tmp_path):
    lower_dir = tmp_path / "lower"
    lower_dir.mkdir()
    lower = Foreman(str(lower_dir))
    try:
        upper_port = foreman.start(queue.port)
        workers.start(lower.start(upper_port), cores=2)
        wait_until(lambda: _foreman_record(queue).get("cores") == 2, queue)
        with open("in.txt", "w") as f:
            f.write("two levels\n")
        t = wq.Task("cat in.txt > out.txt")
        t.specify_input_file("in.txt", "in.txt", cache=True)
        t.specify_output_file("out.txt", "out.txt")
        queue.submit(t)
        (done,) = wait_all(queue)
        assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS
        assert open("out.txt").read() == "two levels\n"
    finally:
        lower.stop()


def test_monitored_tasks_through_a_foreman(queue, foreman, workers, in_tmp):
    # The foreman's workers announce our extensions (the native monitor among them); the
    # foreman must not pass those on as its own: before this was fixed, the manager asked the
    # foreman to measure tasks itself, and every monitored task came back MONITOR_ERROR.
    queue.enable_monitoring()
    t = wq.Task("python3 -c 'x = bytearray(300 << 20); import time; time.sleep(2)'")
    t.specify_cores(1)
    t.specify_memory(100)
    queue.submit(t)
    ok = wq.Task("echo fine")
    ok.specify_cores(1)
    queue.submit(ok)
    # (a one-core task is given half of this worker's memory: 200 MB)
    workers.start(foreman.start(queue.port), cores=2, memory=400)
    results = {t.command: t for t in wait_all(queue)}
    assert results["echo fine"].result == wq.WORK_QUEUE_RESULT_SUCCESS
    assert results["echo fine"].output == "fine\n"
    assert results[t.command].result == wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION
    assert results[t.command].resources_measured.memory > 100


def test_python_tasks_through_a_foreman(queue, foreman, workers, in_tmp):
    pytest.importorskip("cloudpickle")
    for i in range(3):
        queue.submit(wq.PythonTask(pow, i, 2))
    workers.start(foreman.start(queue.port))
    assert sorted(t.output for t in wait_all(queue)) == [0, 1, 4]


def test_remote_tasks_through_a_foreman(queue, foreman, workers, in_tmp, tmp_path):
    import json
    import stat

    from tests.test_remote_tasks import COPROCESS

    if WORKER_CMD[0] != sys.executable:
        pytest.skip("the coprocess flags here are our worker's")
    path = tmp_path / "coprocess.py"
    path.write_text(COPROCESS)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    tasks = [wq.RemoteTask("add", "test_coprocess", i, 10) for i in range(3)]
    for t in tasks:
        queue.submit(t)
    # The foreman reports its workers' coprocess resources as its own.
    workers.start(foreman.start(queue.port), "--coprocess", str(path),
                  "--coprocesses-total", "1")
    wait_all(queue)
    assert [json.loads(t.output) for t in tasks] == [
        {"Result": i + 10, "StatusCode": 200} for i in range(3)]


def test_url_and_command_inputs_watched_outputs_and_time_limits(queue, foreman, workers,
                                                                 in_tmp):
    with open("source.txt", "w") as f:
        f.write("from a url\n")
    t = wq.Task("cat u.txt c.txt > w.txt")
    t.specify_url(f"file://{os.path.abspath('source.txt')}", "u.txt", cache=True)
    t.specify_file_command("echo made by a command > %%", "c.txt", cache=True)
    t.specify_output_file("w.txt", "w.txt", flags=wq.WORK_QUEUE_WATCH)
    queue.submit(t)
    slow = wq.Task("sleep 30")
    slow.specify_running_time_max(1)
    queue.submit(slow)
    workers.start(foreman.start(queue.port), cores=2)
    results = {t.command: t for t in wait_all(queue)}
    assert results[t.command].result == wq.WORK_QUEUE_RESULT_SUCCESS
    assert open("w.txt").read() == "from a url\nmade by a command\n"
    assert results["sleep 30"].result == wq.WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME


def test_a_foreman_talks_tls_to_its_manager(foreman, workers, in_tmp):
    q = wq.WorkQueue(port=0, ssl=True)
    try:
        workers.start(foreman.start(q.port, "--ssl"))  # its own workers: plain, as CCTools
        t = wq.Task("cat in.txt")
        t.specify_buffer("over tls\n", "in.txt")
        q.submit(t)
        (done,) = wait_all(q)
        assert done.output == "over tls\n"
    finally:
        q.close()


# -- a foreman whose link to the manager drops keeps its tasks (wq-py-resume) -----------------
# The wide-area link between a foreman and its manager is where connections reset; the
# foreman is a worker to its manager and takes wq-py-resume as our worker does.  A real TCP
# proxy resets the manager <-> foreman connection while the tasks run.


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


def test_a_foreman_comes_back_over_tls_with_a_password(foreman, workers, in_tmp):
    """The claim goes over TLS and through the password exchange like the first connection."""
    with open("pw", "w") as f:
        f.write("sesame")
    q = wq.WorkQueue(port=0, ssl=True)
    q.specify_password_file("pw")
    proxy = ResettingProxy(q.port)
    try:
        runs = os.path.join(in_tmp, "runs.log")
        port = foreman.start(proxy.port, "--ssl", "-P", "pw")
        workers.start(port, "-P", "pw", cores=2, memory=2000, disk=2000)
        ids = submit_logged(q, 2, 2, runs)
        wait_until(lambda: started(runs) == 2, q, timeout=20)
        assert proxy.reset() == 1
        done = wait_all(q, timeout=30)
        assert sorted(t.id for t in done) == sorted(ids)
        assert executions(runs) == [0, 1] and q.stats.tasks_recovered == 2
    finally:
        q.close()
        proxy.close()
