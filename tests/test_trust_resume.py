"""Hostile peers against the resume path (issue 19, with issue 15's guarantees): a claim needs
the password again, the session's token and the worker's id; it can deliver results only for
the tasks of its own session; a half-sent claim, a claim past the grace time, a malformed or
oversized one change nothing.  Each test plays the peer byte by byte (work_queue._testing)
against the real manager."""

from __future__ import annotations

import os
import socket
import struct
import time

import pytest

import work_queue as wq
from work_queue._testing import FakeWorker, worker_handshake
from work_queue.core import task_state as ts
from work_queue.errors import AuthenticationError
from work_queue.events import endpoints_of
from work_queue.protocol import auth
from work_queue.protocol import messages as m
from work_queue.protocol.extensions import RESUME
from work_queue.protocol.task_block import TaskSpec

from .conftest import wait_until

WORKER_ID = "worker-" + "0" * 32
PASSWORD = b"the-real-password\n"


#: Tasks wait() returned while a fake peer's script ran (see drive).
RETURNED: list[wq.Task] = []


def drive(q: wq.WorkQueue, *peers: FakeWorker, timeout: float = 10) -> None:
    """Run the manager's loop until every peer's script has ended; what wait() returns
    meanwhile is kept in RETURNED (see returned())."""
    deadline = time.time() + timeout
    while any(p.thread.is_alive() for p in peers) and time.time() < deadline:
        t = q.wait(0.05)
        if t is not None:
            RETURNED.append(t)
    for p in peers:
        p.check()


def returned(q: wq.WorkQueue, timeout: float = 5) -> wq.Task | None:
    """The next task returned, whether during a drive or now."""
    return RETURNED.pop(0) if RETURNED else q.wait(timeout)


def resumable_worker(q: wq.WorkQueue, password: bytes | None = None) -> tuple[FakeWorker, str,
                                                                              int]:
    """A fake worker that took wq-py-resume and was given one task: it, its token, the task."""
    got: dict[str, object] = {}

    def script(peer: FakeWorker) -> None:
        if password is not None:
            authenticate(peer, password)
        peer.send(worker_handshake() + m.Feature(RESUME).encode())
        while "task" not in got:
            msg = peer.message()
            assert msg is not None, "the manager closed the connection"
            if isinstance(msg, m.ResumeToken):
                got["token"] = msg.token
            elif isinstance(msg, TaskSpec):
                got["task"] = msg.task_id

    peer = FakeWorker(q.port, script)
    drive(q, peer)
    assert len(str(got["token"])) == 32
    return peer, str(got["token"]), int(got["task"])  # type: ignore[call-overload]


def authenticate(peer: FakeWorker, password: bytes) -> None:
    # The fake peer lives in the manager's process: its end of the connection is named, so
    # that the manager's challenge, coming back on this very connection, is no reflection.
    exchange = auth.PasswordExchange(password, initiator=True, endpoints=endpoints_of(peer.sock))
    auth.run_blocking(exchange, peer.send,
                      lambda: peer.line() or b"")


def reset(q: wq.WorkQueue, peer: FakeWorker) -> None:
    """Cut the peer's connection with a TCP reset (what a NAT or a firewall does); wait
    until the manager has the worker away."""
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.sock.close()
    wait_until(lambda: bool(q._state.away), q, timeout=10)


def claim_bytes(token: str, held: dict[int, str], worker_id: str = WORKER_ID) -> bytes:
    payload = m.Resume.held_payload(held)
    return m.Resume(token, worker_id, len(payload)).encode() + payload


def claim(q: wq.WorkQueue, data: bytes, password: bytes | None = None,
          then: bytes = b"") -> tuple[FakeWorker, m.Message | None]:
    """A new connection that sends ``data`` (a claim), reads the manager's answer, then
    sends ``then``; the connection stays open for the test."""
    answer: list[m.Message | None] = []

    def script(peer: FakeWorker) -> None:
        if password is not None:
            authenticate(peer, password)
        peer.send(data)
        answer.append(peer.message(timeout=5))
        if then:
            peer.send(then)

    peer = FakeWorker(q.port, script)
    drive(q, peer)
    return peer, answer[0]


def result(task_id: int, output: bytes = b"hi\n") -> bytes:
    return m.Result(0, 0, len(output), 1000, task_id).encode() + output


@pytest.fixture
def q(in_tmp):
    RETURNED.clear()
    queue = wq.WorkQueue(port=0)
    yield queue
    queue.close()


def test_the_right_claim_delivers_the_result_once(q):
    t = wq.Task("echo hi")
    q.submit(t)
    peer, token, task_id = resumable_worker(q)
    reset(q, peer)
    back, answer = claim(q, claim_bytes(token, {task_id: "finished"}), then=result(task_id))
    assert answer == m.Resumed(1)
    done = returned(q)
    assert done is t and done.output == "hi\n" and done.result == wq.WORK_QUEUE_RESULT_SUCCESS
    assert q.stats.tasks_recovered == 1 and q.stats.workers_resumed == 1
    assert q.stats.tasks_dispatched == 1  # not run again
    back.sock.close()


def test_a_wrong_token_is_refused_and_the_connection_may_still_handshake(q):
    t = wq.Task("echo hi")
    q.submit(t)
    peer, token, task_id = resumable_worker(q)
    reset(q, peer)
    wrong = ("0" if token[0] != "0" else "1") + token[1:]
    back, answer = claim(q, claim_bytes(wrong, {task_id: "running"}), then=worker_handshake())
    assert isinstance(answer, m.ResumeRefused)
    wait_until(lambda: q.stats.workers_connected == 2, q)  # the away one, and the new one
    assert q.task_state(t.id) == wq.WORK_QUEUE_TASK_RUNNING  # still the away worker's
    assert q._state.tasks[t.id].worker_key in q._state.away
    back.sock.close()


def test_another_workers_id_with_the_token_is_refused(q):
    q.submit(wq.Task("echo hi"))
    peer, token, task_id = resumable_worker(q)
    reset(q, peer)
    _, answer = claim(q, claim_bytes(token, {task_id: "running"}, worker_id="worker-" + "1" * 32))
    assert isinstance(answer, m.ResumeRefused) and "worker id" in answer.reason
    assert q._state.away


def test_claims_for_foreign_task_ids_are_killed_and_their_results_ignored(q):
    a, b = wq.Task("echo a"), wq.Task("echo b")
    q.submit(a)
    q.submit(b)
    peer1, token1, id1 = resumable_worker(q)
    peer2, token2, id2 = resumable_worker(q)
    assert {id1, id2} == {a.id, b.id}
    reset(q, peer1)
    reset(q, peer2)
    wait_until(lambda: len(q._state.away) == 2, q)
    # worker 2 claims worker 1's task and one never given to anyone, and sends their results
    back2, answer = claim(q, claim_bytes(token2, {id2: "finished", id1: "finished",
                                                  424242: "finished"}),
                          then=result(id1, b"stolen\n") + result(424242) + result(id2, b"b\n"))
    assert answer == m.Resumed(1)
    back2.read_until(b"kill 424242")
    assert f"kill {id1}\n".encode() in back2.received
    done = returned(q)
    assert done is not None and done.id == id2 and done.output == "b\n"
    assert q.task_state(id1) == wq.WORK_QUEUE_TASK_RUNNING  # still worker 1's, not stolen
    back1, answer = claim(q, claim_bytes(token1, {id1: "finished"}), then=result(id1, b"a\n"))
    assert answer == m.Resumed(1)
    done = returned(q)
    assert done is not None and done.id == id1 and done.output == "a\n"
    assert returned(q, 0.5) is None and q.empty()
    back1.sock.close()
    back2.sock.close()


def test_a_half_sent_claim_changes_nothing(q):
    t = wq.Task("echo hi")
    q.submit(t)
    peer, token, task_id = resumable_worker(q)
    reset(q, peer)
    whole = claim_bytes(token, {task_id: "finished"})

    def half(p: FakeWorker) -> None:
        p.send(whole[: len(whole) - 5])
        p.sock.close()

    drive(q, FakeWorker(q.port, half))
    q.wait(0.2)
    assert q._state.away and q.task_state(t.id) == wq.WORK_QUEUE_TASK_RUNNING
    # a claim whose list stops halfway and then goes silent holds nothing either
    stalled = FakeWorker(q.port, lambda p: p.send(whole[:-3]))
    drive(q, stalled)
    back, answer = claim(q, whole, then=result(task_id))
    assert answer == m.Resumed(1)
    assert returned(q) is t
    stalled.sock.close()


def test_malformed_oversized_and_repeated_claims_drop_only_that_connection(q):
    q.submit(wq.Task("echo hi"))
    peer, token, task_id = resumable_worker(q)
    reset(q, peer)
    for data in (m.Resume(token, WORKER_ID, 8).encode() + b"1 asleep\n"[:8],  # bad state
                 m.Resume(token, WORKER_ID, 11).encode() + b"-1 running\n",  # "every task"
                 f"wq-py-resume {token} {WORKER_ID} {1 << 30}\n".encode(),  # too large
                 claim_bytes("f" * 32, {}) + claim_bytes(token, {task_id: "running"})):
        bad, answer = claim(q, data)
        if isinstance(answer, m.ResumeRefused):  # the repeated one: refused, then dropped
            bad.read_to_close(timeout=5)
        else:
            assert answer is None
        assert bad.closed_by_peer
        assert q._state.away  # the session is still there for the real worker
    _, answer = claim(q, claim_bytes(token, {task_id: "running"}))
    assert answer == m.Resumed(1)


def test_a_claim_after_the_grace_time_is_refused_and_the_task_runs_again(q):
    q.tune("resume-grace-time", 1)
    t = wq.Task("echo hi")
    q.submit(t)
    peer, token, task_id = resumable_worker(q)
    reset(q, peer)
    time.sleep(1.2)
    wait_until(lambda: q.task_state(t.id) == wq.WORK_QUEUE_TASK_READY, q, timeout=5)
    assert q.stats.workers_lost == 1 and not q._state.away
    # the late worker is refused, drops its copy, and serves the manager as a new worker
    got: list[object] = []

    def late(p: FakeWorker) -> None:
        p.send(claim_bytes(token, {task_id: "finished"}))
        got.append(p.message())
        p.send(worker_handshake())
        while not isinstance(msg := p.message(), TaskSpec):
            assert msg is not None
        got.append(msg.task_id)
        p.send(result(msg.task_id, b"again\n"))

    back = FakeWorker(q.port, late)
    drive(q, back)
    assert isinstance(got[0], m.ResumeRefused) and got[1] == t.id
    done = returned(q)
    assert done is t and done.output == "again\n"
    back.sock.close()


def test_a_claim_needs_the_password_again(in_tmp):
    RETURNED.clear()
    q = wq.WorkQueue(port=0)
    try:
        q.specify_password(PASSWORD.decode())
        t = wq.Task("echo hi")
        q.submit(t)
        peer, token, task_id = resumable_worker(q, password=PASSWORD)
        reset(q, peer)
        # without the exchange, and with a wrong password: no answer, dropped
        _, answer = claim(q, claim_bytes(token, {task_id: "finished"}))
        assert answer is None
        with pytest.raises(AuthenticationError):
            claim(q, claim_bytes(token, {task_id: "finished"}), password=b"wrong\n")
        assert q._state.away and q._state.tasks[t.id].state == ts.RUNNING
        back, answer = claim(q, claim_bytes(token, {task_id: "finished"}), password=PASSWORD,
                             then=result(task_id))
        assert answer == m.Resumed(1)
        assert returned(q) is t
        back.sock.close()
    finally:
        q.close()


def test_a_cctools_worker_gets_no_token_and_today_s_behaviour(q):
    """No ``feature wq-py-resume``: no token line, and a reset requeues at once."""
    t = wq.Task("echo hi")
    q.submit(t)
    seen: list[bytes] = []

    def cctools(p: FakeWorker) -> None:
        p.send(worker_handshake())
        p.read_until(b"end\n")
        seen.append(p.received)

    peer = FakeWorker(q.port, cctools)
    drive(q, peer)
    assert b"wq-py" not in seen[0]
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.sock.close()
    wait_until(lambda: q.task_state(t.id) == wq.WORK_QUEUE_TASK_READY, q, timeout=5)
    assert not q._state.away


def test_an_output_cut_short_by_the_drop_is_fetched_again_whole(q, in_tmp):
    """The reset comes in the middle of an output's bytes: the half file never appears, and
    after the claim the manager asks for it again and gets it whole."""
    t = wq.Task("seq 1 1000 > out")
    t.specify_output_file("out.txt", "out", cache=False)
    q.submit(t)
    peer, token, task_id = resumable_worker(q)
    data = "".join(f"{i}\n" for i in range(1, 1001)).encode()
    asked: list[str] = []

    def half(p: FakeWorker) -> None:
        p.send(result(task_id, b""))
        asked.append(p.requested_output())
        p.send(m.FileItem(asked[0], len(data)).encode() + data[: len(data) // 2])

    same = FakeWorker(peer.sock, half)  # the same connection, a new script
    drive(q, same)
    assert q.task_state(t.id) == wq.WORK_QUEUE_TASK_WAITING_RETRIEVAL
    reset(q, same)
    assert not os.path.exists("out.txt")
    got: list[object] = []

    def whole(p: FakeWorker) -> None:
        p.send(claim_bytes(token, {task_id: "finished"}))
        got.append(p.message())
        got.append(p.requested_output())
        p.send(m.FileItem(str(got[1]), len(data)).encode() + data + m.End().encode())

    back = FakeWorker(q.port, whole)
    drive(q, back)
    assert got[0] == m.Resumed(1) and got[1] == asked[0]
    done = returned(q)
    assert done is t and done.result == wq.WORK_QUEUE_RESULT_SUCCESS
    with open("out.txt", "rb") as f:
        assert f.read() == data
    back.sock.close()
