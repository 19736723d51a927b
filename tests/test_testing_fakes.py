"""work_queue._testing's fake peers: the handshake is CCTools 7.17.1's, byte for byte, and a
fake worker and a fake manager talk to each other over loopback."""

from __future__ import annotations

from work_queue._testing import HANDSHAKE, FakeManager, FakeWorker, worker_handshake
from work_queue.protocol import messages as m
from work_queue.protocol.reader import NEED_DATA, worker_stream_reader
from work_queue.protocol.task_block import TaskSpec


def test_the_handshake_is_the_recorded_one():
    assert HANDSHAKE == (
        b"workqueue 11 fakehost Linux x86_64 7.17.1\n"
        b"info worker-id worker-00000000000000000000000000000000\n"
        b"alive\nresource workers 1 1 1\nresource disk 1000 1000 1000\n"
        b"resource memory 1000 1000 1000\nresource gpus 0 0 0\nresource cores 1 1 1\n"
        b"resource tag 0\ninfo end_of_resource_update 0\ninfo tasks_running 0\n"
        b"info worker-end-time 0\n")
    reader = worker_stream_reader()
    reader.feed(worker_handshake(cores=4))
    got = list(iter(reader.next_event, NEED_DATA))
    assert got[0] == m.Hello(11, "fakehost", "Linux", "x86_64", "7.17.1")
    assert m.ResourceReport("cores", 4, 4, 4) in got


def test_a_fake_worker_and_a_fake_manager_talk():
    with FakeManager() as manager:
        worker = FakeWorker(manager.port, lambda w: w.take_task_and_report(
            m.Result(0, 0, 2, 10, 1).encode() + b"ok"))
        peer = manager.accept(timeout=5)
        assert peer.read_until(b"info worker-end-time 0\n").endswith(b"worker-end-time 0\n")
        peer.send(m.TaskStart(1).encode() + m.End().encode())
        assert peer.line() == b"available_results"
        peer.send(m.SendResults().encode())
        assert peer.read_until(b"ok").endswith(b"result 0 0 2 10 1\nok")
        worker.thread.join(5)
        worker.check()


def test_fakes_read_whole_messages():
    """message() reads with the protocol's readers: a task block as one TaskSpec, a put with
    its bytes, a result with its output."""
    got = []

    def worker(w: FakeWorker) -> None:
        w.handshake()
        got.append(w.message())
        got.append(w.message())
        got.append(w.streamed)
        w.send(m.Result(0, 0, 2, 10, 1).encode() + b"ok")

    with FakeManager() as manager:
        fake = FakeWorker(manager.port, worker)
        peer = manager.accept(timeout=5)
        first = peer.message()
        assert first == m.Hello(11, "fakehost", "Linux", "x86_64", "7.17.1")
        while peer.message() != m.Info("worker-end-time", "0"):
            pass
        peer.send(b"task 7\ncmd 4\ntrueend\n" + m.Put("a b", 3, 0o644).encode() + b"xyz")
        assert peer.message() == m.Result(0, 0, 2, 10, 1, b"ok")
        fake.thread.join(5)
        fake.check()
    spec, put, data = got
    assert isinstance(spec, TaskSpec) and (spec.task_id, spec.command) == (7, "true")
    assert put == m.Put("a b", 3, 0o644) and data == b"xyz"
