"""work_queue._testing's fake peers: the handshake is CCTools 7.17.1's, byte for byte, and a
fake worker and a fake manager talk to each other over loopback."""

from __future__ import annotations

from work_queue._testing import HANDSHAKE, FakeManager, FakeWorker, worker_handshake
from work_queue.protocol import messages as m
from work_queue.protocol.reader import NEED_DATA, worker_stream_reader


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
