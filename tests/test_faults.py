"""Misbehaving peers: half-sent messages, garbage, vanishing managers.  Nothing is lost."""

from __future__ import annotations

import socket
import time

import pytest

import work_queue as wq
from tests.conftest import wait_all, wait_until
from work_queue._testing import HANDSHAKE, FakeWorker, drive


def test_worker_dying_inside_a_result_payload(queue, workers):
    """Half a result, then the connection drops: the task is requeued and run elsewhere."""
    t = wq.Task("echo real")
    queue.submit(t)

    def script(fw: FakeWorker) -> None:
        fw.take_task_and_report(b"result 0 0 100 1000 1\nonly part of the")
        fw.sock.close()

    fake = FakeWorker(queue.port, script)
    drive(queue, fake)
    assert queue.task_state(t.id) == wq.WORK_QUEUE_TASK_READY
    workers.start(queue.port)
    (done,) = wait_all(queue)
    assert done is t and done.output == "real\n"
    assert queue.stats.workers_lost == 1


def test_garbage_from_a_worker_drops_only_that_worker(queue, workers):
    tasks = [wq.Task(f"echo {i}") for i in range(3)]
    for t in tasks:
        queue.submit(t)

    def script(fw: FakeWorker) -> None:
        fw.sock.sendall(HANDSHAKE)
        fw.read_until(b"end\n")
        fw.sock.sendall(b"this is not the protocol\n")
        fw.read_until(b"never comes", timeout=5)

    fake = FakeWorker(queue.port, script)
    drive(queue, fake, timeout=3)
    workers.start(queue.port)
    done = wait_all(queue)
    assert sorted(t.id for t in done) == [1, 2, 3]
    assert all(t.result == wq.WORK_QUEUE_RESULT_SUCCESS for t in done)


def test_line_too_long_and_wrong_protocol(queue, workers):
    def long_line(fw: FakeWorker) -> None:
        fw.sock.sendall(b"x" * 10000)
        fw.read_until(b"never", timeout=3)

    def old_protocol(fw: FakeWorker) -> None:
        fw.sock.sendall(b"workqueue 10 oldhost Linux x86_64 6.0.0\n")
        fw.read_until(b"never", timeout=3)

    a = FakeWorker(queue.port, long_line)
    b = FakeWorker(queue.port, old_protocol)
    queue.submit(wq.Task("echo ok"))
    workers.start(queue.port)
    (t,) = wait_all(queue)
    assert t.output == "ok\n"
    wait_until(lambda: not a.thread.is_alive() and not b.thread.is_alive(), queue)
    assert queue.stats.workers_connected == 1


def test_worker_reconnects_to_a_new_manager(in_tmp, workers):
    q1 = wq.WorkQueue(port=0)
    port = q1.port
    q1.submit(wq.Task("echo first"))
    proc = workers.start(port, timeout=30)
    (t,) = wait_all(q1)
    assert t.output == "first\n"
    q1.close()  # releases the worker, which comes back looking for a manager
    q2 = wq.WorkQueue(port=port)
    try:
        q2.submit(wq.Task("echo second"))
        (t,) = wait_all(q2, timeout=20)
        assert t.output == "second\n"
        assert proc.poll() is None
    finally:
        q2.close()


def test_worker_idle_timeout(queue, workers):
    proc = workers.start(queue.port, timeout=1)
    wait_until(lambda: queue.stats.workers_connected == 1, queue)
    wait_until(lambda: proc.poll() is not None, queue, timeout=10)
    assert proc.returncode == 0
    wait_until(lambda: queue.stats.workers_connected == 0, queue)
    assert queue.stats.workers_idled_out == 1


def test_task_too_large_for_any_worker_waits(queue, workers):
    big = wq.Task("echo big")
    big.specify_cores(64)
    small = wq.Task("echo small")
    small.specify_cores(1)
    queue.submit(big)
    queue.submit(small)
    workers.start(queue.port, cores=2)
    t = queue.wait(10)
    assert t is small
    assert queue.wait(1) is None
    assert queue.task_state(big.id) == wq.WORK_QUEUE_TASK_READY


def test_frozen_worker_is_dropped_by_keepalive(queue, workers):
    """A worker that stops answering (SIGSTOP) loses its task to a live worker."""
    import signal

    queue.specify_keepalive_interval(0.5)
    queue.specify_keepalive_timeout(1)
    t = wq.Task("sleep 1; echo done")
    queue.submit(t)
    frozen = workers.start(queue.port)
    wait_until(lambda: queue.task_state(t.id) == wq.WORK_QUEUE_TASK_RUNNING, queue)
    frozen.send_signal(signal.SIGSTOP)
    try:
        workers.start(queue.port)
        (done,) = wait_all(queue, timeout=20)
        assert done is t and done.output == "done\n"
        assert queue.stats.workers_lost >= 1
    finally:
        frozen.send_signal(signal.SIGCONT)


def test_output_cut_short_never_appears(queue, workers, in_tmp):
    """The worker dies while streaming an output back: no truncated file is left behind."""
    import os

    t = wq.Task("echo real > out.txt")
    t.specify_output_file("out.txt")
    queue.submit(t)

    def script(fw: FakeWorker) -> None:
        fw.take_task_and_report(b"result 0 0 0 1000 1\nend\n")
        name = fw.requested_output()
        fw.sock.sendall(f"file {name} 100\n".encode() + b"x" * 40)
        fw.sock.close()

    fake = FakeWorker(queue.port, script)
    drive(queue, fake)
    queue.wait(0.2)
    assert not os.path.exists("out.txt")
    assert not [f for f in os.listdir(".") if f.endswith(".part")]
    workers.start(queue.port)
    (done,) = wait_all(queue)
    assert done is t and open("out.txt").read() == "real\n"


def test_half_message_then_silence_is_dropped(queue, workers):
    """A worker that sends half a result and goes silent loses its task to a live worker."""
    queue.tune("min-transfer-timeout", 1)
    t = wq.Task("echo done")
    queue.submit(t)

    def script(fw: FakeWorker) -> None:
        fw.take_task_and_report(b"result 0 0 100 1000 1\nonly a part")
        fw.read_until(b"never", timeout=15)  # silence, connection kept open

    fake = FakeWorker(queue.port, script)
    wait_until(lambda: b"send_results" in fake.received, queue)
    workers.start(queue.port)
    (done,) = wait_all(queue, timeout=15)
    assert done is t and done.output == "done\n"


def test_connections_that_never_handshake_are_dropped(queue, workers):
    queue.specify_keepalive_timeout(1)
    idle = [socket.create_connection(("127.0.0.1", queue.port)) for _ in range(50)]
    try:
        queue.submit(wq.Task("echo served"))
        workers.start(queue.port)
        (t,) = wait_all(queue)
        assert t.output == "served\n"
        wait_until(lambda: len(queue._conns) == 1, queue, timeout=10)
    finally:
        for s in idle:
            s.close()


@pytest.mark.parametrize("bad_name", ["../../etc/passwd", "/etc/passwd", "{name}/../../x",
                                      "{name}-sibling"])
def test_outputs_outside_the_request_drop_the_worker(queue, workers, in_tmp, bad_name):
    import os

    t = wq.Task("mkdir -p out && echo ok > out/file.txt")
    t.specify_output_file("out")
    queue.submit(t)

    def script(fw: FakeWorker) -> None:
        fw.take_task_and_report(b"result 0 0 0 1000 1\nend\n")
        name = fw.requested_output()
        evil = bad_name.format(name=name)
        fw.sock.sendall(f"dir {name} 0\nfile {evil} 4\nevil".encode())
        fw.read_until(b"never", timeout=5)

    fake = FakeWorker(queue.port, script)
    wait_until(lambda: queue.stats.workers_lost == 1, queue, timeout=10)
    assert not os.path.exists("x") and not os.path.exists("out-sibling")
    workers.start(queue.port)
    (done,) = wait_all(queue)
    assert done is t and open("out/file.txt").read() == "ok\n"
    fake.sock.close()


def _unshare_works() -> bool:
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare -rm and tmpfs mounts")
def test_task_that_fills_the_worker_disk(queue, tmp_path):
    """The worker's file system (a 20 MB tmpfs) fills up: the task says DISK_ALLOC_FULL, its
    sandbox is cleaned up, and the worker goes on serving."""
    import subprocess

    from tests.conftest import WORKER_CMD

    space = tmp_path / "small-disk"
    space.mkdir()
    script = (f"mount -t tmpfs -o size=20m tmpfs {space} && exec "
              + " ".join(WORKER_CMD) + f" --cores 1 --memory 500 --disk 15 -t 30 -s {space}"
              + f" localhost {queue.port}")
    proc = subprocess.Popen(["unshare", "-rm", "sh", "-c", script],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        hog = wq.Task("dd if=/dev/zero of=fill bs=1M count=64")
        queue.submit(hog)
        (done,) = wait_all(queue, timeout=30)
        assert done.result == wq.WORK_QUEUE_RESULT_DISK_ALLOC_FULL, (done.result, done.output)
        after = wq.Task("echo still here")
        queue.submit(after)
        (ok,) = wait_all(queue, timeout=30)
        assert ok.result == wq.WORK_QUEUE_RESULT_SUCCESS and ok.output.strip() == "still here"
    finally:
        proc.kill()
        proc.wait()


def test_outputs_arriving_in_uneven_pieces_are_written_exactly(queue, in_tmp):
    """File bytes are written straight from the receive buffer: pieces of every size, and a
    piece that holds the end of one file and the start of the next, come out byte for byte."""
    import random

    rng = random.Random(7)
    one = bytes(rng.getrandbits(8) for _ in range(300_000)) * 7   # about 2 MB
    two = bytes(rng.getrandbits(8) for _ in range(5_000))
    t = wq.Task("true")
    t.specify_output_file("one.bin")
    t.specify_output_file("two.bin")
    queue.submit(t)

    def script(fw: FakeWorker) -> None:
        fw.take_task_and_report(b"result 0 0 0 1000 1\nend\n")
        deadline = time.time() + 10
        while True:
            lines = fw.received.split(b"\n")[:-1]  # complete lines only
            names = [line.split()[1].decode() for line in lines if line.startswith(b"get ")]
            if len(names) == 2 or time.time() > deadline:
                break
            fw.received += fw.sock.recv(65536)
        # Each reply to a get is the file item, then "end".
        stream = (f"file {names[0]} {len(one)}\n".encode() + one + b"end\n"
                  + f"file {names[1]} {len(two)}\n".encode() + two + b"end\n")
        pos = 0
        while pos < len(stream):
            size = rng.choice([1, 7, 100, 4096, 65536, 300_000])
            fw.sock.sendall(stream[pos:pos + size])
            pos += size
            if rng.random() < 0.2:
                time.sleep(0.002)

    FakeWorker(queue.port, script)
    done = None
    deadline = time.time() + 30
    while done is None and time.time() < deadline:
        done = queue.wait(0.1)
    assert done is t and done.result == wq.WORK_QUEUE_RESULT_SUCCESS
    with open("one.bin", "rb") as f:
        assert f.read() == one
    with open("two.bin", "rb") as f:
        assert f.read() == two
