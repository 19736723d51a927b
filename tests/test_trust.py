"""Hostile peers (issue 15): nobody without the password gets in, one bad peer stalls nobody,
outputs are complete or absent.  Each test plays the attacker byte by byte with one fake peer
(work_queue._testing) against the real manager or a real worker."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import tracemalloc

import pytest

import work_queue as wq
from tests.conftest import WORKER_CMD
from work_queue._testing import HANDSHAKE, FakeManager, FakePeer, FakeWorker, drive
from work_queue.errors import AuthenticationError
from work_queue.protocol import auth

PASSWORD = b"the-real-password\n"
HEX_ANSWER = re.compile(rb"^[0-9a-f]{40}$", re.M)


@pytest.fixture
def guarded(in_tmp):
    """A manager with a password and one task waiting for whoever gets in."""
    q = wq.WorkQueue(port=0)
    q.specify_password(PASSWORD.decode())
    q.submit(wq.Task("touch PWNED"))
    yield q
    q.close()


# -- 1. reflection -------------------------------------------------------------------------------

def test_exchange_objects_of_one_process_refuse_each_others_challenges():
    # an honest exchange with a peer (another process) that knows the password succeeds
    ours = auth.PasswordExchange(PASSWORD, initiator=True)
    assert ours.opening() == auth.AUTH_LINE + b"\n"
    mine = ours.receive(auth.AUTH_LINE).strip()
    theirs = b"q" * auth.CHALLENGE_LENGTH
    assert ours.receive(theirs).strip() == auth.response_for(PASSWORD, theirs)
    assert ours.receive(auth.response_for(PASSWORD, mine)) == b"ok\n"
    assert ours.receive(b"ok") == b"" and ours.done
    # a challenge this process issued, sent back on another exchange, is not answered
    victim = auth.PasswordExchange(PASSWORD, initiator=False)
    issued = victim.receive(auth.AUTH_LINE).split(b"\n")[1]
    other = auth.PasswordExchange(PASSWORD, initiator=False)
    other.receive(auth.AUTH_LINE)
    with pytest.raises(AuthenticationError, match="reflection"):
        other.receive(issued)
    victim.finish()  # once that exchange is over, its challenge is an ordinary string again
    third = auth.PasswordExchange(PASSWORD, initiator=False)
    third.receive(auth.AUTH_LINE)
    assert HEX_ANSWER.match(third.receive(issued).strip())


# A foreman is both: it accepts its own workers and connects to its manager, with the same
# password.  A stranger that is a "worker" of the foreman and the "manager" it connects to
# (a record with its project name in the catalog is enough for -M) must not have one role
# answer the challenge the other role issued.
FOREMAN_DOWN = (("10.0.0.1", 9123), ("10.0.0.66", 40000))  # (local, peer): its worker side
FOREMAN_UP = (("10.0.0.1", 50000), ("10.0.0.66", 9123))  # its connection to "its manager"


def test_a_challenge_issued_as_manager_is_not_answered_as_worker():
    down = auth.PasswordExchange(PASSWORD, initiator=False, endpoints=FOREMAN_DOWN)
    issued = down.receive(auth.AUTH_LINE).split(b"\n")[1]
    up = auth.PasswordExchange(PASSWORD, initiator=True, endpoints=FOREMAN_UP)
    up.opening()
    up.receive(auth.AUTH_LINE)
    with pytest.raises(AuthenticationError, match="reflection"):
        up.receive(issued)
    down.finish()


def test_a_challenge_issued_as_worker_is_not_answered_as_manager():
    up = auth.PasswordExchange(PASSWORD, initiator=True, endpoints=FOREMAN_UP)
    up.opening()
    issued = up.receive(auth.AUTH_LINE).strip()
    down = auth.PasswordExchange(PASSWORD, initiator=False, endpoints=FOREMAN_DOWN)
    down.receive(auth.AUTH_LINE)
    with pytest.raises(AuthenticationError, match="reflection"):
        down.receive(issued)
    up.finish()


def test_a_process_still_answers_itself_on_one_connection():
    """A program that queries its own manager's status: the challenge comes back on the very
    connection it was issued on, seen from its other end, which is no reflection."""
    here, there = ("127.0.0.1", 9123), ("127.0.0.1", 41000)
    manager = auth.PasswordExchange(PASSWORD, initiator=False, endpoints=(here, there))
    client = auth.PasswordExchange(PASSWORD, initiator=True, endpoints=(there, here))
    client.opening()
    sent = manager.receive(auth.AUTH_LINE)
    assert sent.startswith(auth.AUTH_LINE + b"\n")
    challenge = sent.split(b"\n")[1]
    mine = client.receive(auth.AUTH_LINE).strip()
    assert client.receive(challenge).strip() == auth.response_for(PASSWORD, challenge)
    assert manager.receive(mine).strip() == auth.response_for(PASSWORD, mine)
    manager.finish()
    client.finish()


def _reflect_on(peer: FakePeer, answerer: FakePeer | None = None) -> None:
    """The attack: take the manager's challenge, have the manager answer it (on ``answerer``,
    or on the same connection), replay the answer as ours, then ask for work."""
    peer.send(auth.AUTH_LINE + b"\n")
    assert peer.line() == auth.AUTH_LINE
    challenge = peer.line()
    assert challenge is not None
    helper = answerer or peer
    if answerer is not None:
        answerer.send(auth.AUTH_LINE + b"\n")
        assert answerer.line() == auth.AUTH_LINE
        answerer.line()  # the helper connection's own challenge, ignored
    helper.send(challenge + b"\n")
    answer = helper.line()
    if answer is None or not HEX_ANSWER.match(answer):
        peer.read_to_close(timeout=2)
        return  # refused: the manager did not compute the answer for us
    peer.send(answer + b"\n")
    peer.line()  # the manager's verdict on our response
    peer.send(b"ok\n" + HANDSHAKE)
    peer.read_to_close(timeout=3)


def test_manager_does_not_answer_its_own_challenge_on_the_same_connection(guarded):
    attacker = FakeWorker(guarded.port, _reflect_on)
    drive(guarded, attacker)
    assert not HEX_ANSWER.search(attacker.received), attacker.received
    assert b"touch PWNED" not in attacker.received
    assert attacker.closed_by_peer and guarded.stats.workers_connected == 0


def test_manager_does_not_answer_its_challenge_on_another_connection(guarded):
    helper_sock = socket.create_connection(("127.0.0.1", guarded.port))

    def script(peer: FakePeer) -> None:
        helper = FakePeer(helper_sock, lambda p: None)
        _reflect_on(peer, helper)
        helper.read_to_close(timeout=2)
        assert not HEX_ANSWER.search(helper.received), helper.received

    attacker = FakeWorker(guarded.port, script)
    drive(guarded, attacker)
    assert b"touch PWNED" not in attacker.received
    assert guarded.stats.workers_connected == 0


def test_status_thread_does_not_answer_a_challenge_of_the_loop(guarded):
    """The answer asked from the status thread (which serves while the program is outside
    wait()) while the loop's exchange is under way."""
    attacker_sock = socket.create_connection(("127.0.0.1", guarded.port))
    attacker_sock.sendall(auth.AUTH_LINE + b"\n")
    guarded.wait(0.2)  # the loop accepts it and sends its challenge
    reader = FakePeer(attacker_sock, lambda p: None)
    assert reader.line() == auth.AUTH_LINE
    challenge = reader.line()
    # outside wait(): the status thread takes the next connection
    helper = socket.create_connection(("127.0.0.1", guarded.port))
    helper.settimeout(5)
    helper.sendall(auth.AUTH_LINE + b"\n")
    got = b""
    while got.count(b"\n") < 2:
        got += helper.recv(4096)
    helper.sendall(challenge + b"\n")
    rest = b""
    try:
        while chunk := helper.recv(4096):
            rest += chunk
    except TimeoutError:
        pass
    assert not HEX_ANSWER.search(got + rest), got + rest
    helper.close()
    attacker_sock.close()


def test_worker_does_not_answer_its_own_challenge(tmp_path):
    """A fake manager echoes the worker's challenge and answer back: the worker refuses, runs
    nothing and does not compute the answer for it."""
    manager = FakeManager()
    pw = tmp_path / "pw"
    pw.write_bytes(PASSWORD)
    worker = subprocess.Popen([*WORKER_CMD, "--password", str(pw), "-t", "10", "-s",
                               str(tmp_path), "--single-shot", "localhost",
                               str(manager.port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              cwd=tmp_path)
    try:
        fake = manager.accept(timeout=20)
        assert fake.line() == auth.AUTH_LINE
        fake.send(auth.AUTH_LINE + b"\n")
        challenge = fake.line()
        assert challenge is not None
        fake.send(challenge + b"\n")  # the worker's own challenge, back to it
        answer = fake.line(timeout=5)
        if answer is not None and HEX_ANSWER.match(answer):
            fake.send(answer + b"\n")
            fake.line()
            fake.send(b"ok\n")
            command = b"touch PWNED"
            fake.send(b"task 1\ncmd %d\n%s\nend\n" % (len(command), command))
        fake.read_to_close(timeout=5)
        assert not HEX_ANSWER.search(fake.received), fake.received
    finally:
        worker.kill()
        worker.wait()
        manager.close()
    assert not any("PWNED" in files for _, _, files in os.walk(tmp_path))


def test_honest_peers_still_authenticate(guarded, workers):
    pw = os.path.abspath("pw")
    with open(pw, "wb") as f:
        f.write(PASSWORD)
    t = wq.Task("echo in")
    guarded.submit(t)
    workers.start(guarded.port, "--password", pw)
    done = []
    while len(done) < 2:
        r = guarded.wait(10)
        assert r is not None
        done.append(r)
    assert t.output == "in\n"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


# -- 2. memory before the handshake and for tasks never given ---------------------------------

def _peak_memory_driving(queue: wq.WorkQueue, peer: FakePeer) -> int:
    """The most memory Python held while the manager served ``peer`` to the end."""
    tracemalloc.start()
    try:
        drive(queue, peer)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("header", [
    b"result 0 0 157286400 1000 424242\n",
    b"cache-invalid file-1-x 157286400\n",
    b"wq-py-summary 424242 157286400\n",
    b"update 424242 out.txt 0 157286400\n",
])
def test_payloads_before_the_handshake_are_refused_at_once(queue, header):
    def script(peer: FakePeer) -> None:
        peer.send(header)
        try:
            for _ in range(40):  # up to 40 MB, unless the manager hangs up first
                peer.send(b"x" * (1 << 20))
        except OSError:
            pass
        peer.read_to_close(timeout=5)

    attacker = FakeWorker(queue.port, script)
    peak = _peak_memory_driving(queue, attacker)
    assert attacker.closed_by_peer
    assert peak < 8 << 20, f"the manager kept {peak} bytes for a stranger"


def test_output_of_a_task_never_given_is_read_to_nowhere(queue, workers):
    size = 30 << 20

    def script(peer: FakePeer) -> None:
        peer.send(HANDSHAKE)
        peer.send(b"result 0 0 %d 1000 424242\n" % size)
        for _ in range(size >> 20):
            peer.send(b"y" * (1 << 20))
        peer.send(b"alive\n")
        time.sleep(0.3)

    peer = FakeWorker(queue.port, script)
    peak = _peak_memory_driving(queue, peer)
    assert not peer.closed_by_peer  # an unknown task's output is no reason to hang up
    assert peak < 8 << 20, f"the manager kept {peak} bytes of an output nobody asked for"


# -- 4. directory outputs are staged -----------------------------------------------------------

def _die_inside_a_directory_reply(items: bytes):
    def script(peer: FakePeer) -> None:
        peer.send(HANDSHAKE)
        peer.read_until(b"end\n")
        task_id = int(re.search(rb"task (\d+)", peer.received).group(1))
        peer.send(b"available_results\n")
        peer.read_until(b"send_results")
        peer.send(b"result 0 0 0 1000 %d\nend\n" % task_id)
        name = peer.requested_output()
        peer.send(items.replace(b"NAME", name.encode()))
        time.sleep(0.2)
        peer.sock.close()  # dies in the middle of the reply
    return script


@pytest.mark.parametrize("kind", ["directory", "file"])
def test_an_output_half_received_leaves_nothing_for_the_rerun(queue, workers, kind):
    if kind == "directory":
        t = wq.Task("mkdir -p out && echo fresh > out/fresh.txt")
        t.specify_directory("out", "out", wq.WORK_QUEUE_OUTPUT)
    else:
        t = wq.Task("echo fresh > out")
        t.specify_output_file("out")
    queue.submit(t)
    fake = FakeWorker(queue.port, _die_inside_a_directory_reply(
        b"dir NAME 0\nfile NAME/stale.txt 6\nstale\n"))
    drive(queue, fake)
    assert not os.path.exists("out"), os.listdir(".")
    assert not [n for n in os.listdir(".") if n.startswith(".out")]  # no staging left behind
    workers.start(queue.port)
    (done,) = [queue.wait(30)]
    assert done is t and t.result == wq.WORK_QUEUE_RESULT_SUCCESS, t.result_str
    if kind == "directory":
        assert sorted(os.listdir("out")) == ["fresh.txt"]
    else:
        assert open("out").read() == "fresh\n"


# -- 10. a trickle is a stall ---------------------------------------------------------------------

def test_a_payload_trickling_in_is_dropped_at_its_deadline(queue, workers):
    """Every byte is progress, but 100 bytes/s for a 2,000-byte output misses the deadline
    the tunables give (at least min-transfer-timeout, here 1 s): the worker is dropped and the
    task runs elsewhere."""
    queue.tune("min-transfer-timeout", 1)
    t = wq.Task("echo honest")
    queue.submit(t)
    dropped_after = []

    def script(peer: FakePeer) -> None:
        peer.send(HANDSHAKE)
        peer.read_until(b"end\n")
        task_id = int(re.search(rb"task (\d+)", peer.received).group(1))
        peer.send(b"available_results\n")
        peer.read_until(b"send_results")
        peer.send(b"result 0 0 2000 1000 %d\n" % task_id)
        start = time.monotonic()
        try:
            for _ in range(2000):
                peer.send(b"z")
                time.sleep(0.01)
        except OSError:
            pass
        peer.read_to_close(timeout=1)
        dropped_after.append(time.monotonic() - start)

    fake = FakeWorker(queue.port, script)
    drive(queue, fake, timeout=30)
    assert fake.closed_by_peer and dropped_after and dropped_after[0] < 5, dropped_after
    workers.start(queue.port)
    assert queue.wait(30) is t and t.output == "honest\n"


# -- 3. a worker that does not read stalls nobody ----------------------------------------------

def test_a_worker_that_does_not_read_blocks_nobody(queue, workers):
    """A fake worker takes a task with a 20 MB input and never reads it.  The manager keeps
    serving: a real worker's task comes back meanwhile; the reader is dropped at its transfer
    deadline (20 MB at a tenth of 100 MB/s: 2 s here) and its task runs on the real worker."""
    queue.tune("min-transfer-timeout", 1)
    queue.tune("default-transfer-rate", 100 << 20)
    with open("big.bin", "wb") as f:
        f.write(os.urandom(20 << 20))
    big = wq.Task("wc -c < big.bin")
    big.specify_input_file("big.bin")
    queue.submit(big)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", queue.port))

    def script(peer: FakePeer) -> None:
        peer.send(HANDSHAKE)
        time.sleep(4)  # reads nothing

    fake = FakePeer(sock, script)
    deadline = time.time() + 10
    while queue.stats.tasks_running < 1:
        queue.wait(0.1)
        assert time.time() < deadline, "the fake worker never got the big task"
    small = wq.Task("echo small")
    queue.submit(small)
    workers.start(queue.port)
    start = time.time()
    first = queue.wait(10)
    assert first is small, "the manager did not serve the other worker meanwhile"
    assert time.time() - start < 3
    assert queue.wait(20) is big and big.output.strip() == str(20 << 20)
    fake.sock.close()


# -- 9. names as long as the file system allows --------------------------------------------------

@pytest.mark.parametrize("name", ["n" * 240, "名" * 26 + ".txt", "d" * 255])
def test_local_names_as_long_as_the_file_system_allows(queue, workers, name):
    """Outputs and inputs whose local names are long (240 and 255 bytes, or 26 CJK characters,
    which CCTools' cache names made too long) come back and go out like any other."""
    with open(name, "wb") as f:
        f.write(b"i" * (2 << 20))
    t = wq.Task("wc -c < in > out.txt && cp out.txt result")
    t.specify_input_file(name, "in")
    t.specify_output_file(name + ".out" if len(name.encode()) < 250 else name[:-5] + ".out",
                          "result")
    queue.submit(t)
    workers.start(queue.port)
    assert queue.wait(30) is t
    assert t.result == wq.WORK_QUEUE_RESULT_SUCCESS, t.result_str
    out = name + ".out" if len(name.encode()) < 250 else name[:-5] + ".out"
    assert open(out).read().strip() == str(2 << 20)
    assert not [n for n in os.listdir(".") if n.endswith(".part")]


# -- a task that made three workers drop in a row ----------------------------------------------

def _take_and_die(peer: FakePeer) -> None:
    """A worker that dies as soon as its task arrived."""
    peer.send(HANDSHAKE)
    peer.read_until(b"end\n")
    peer.sock.close()


def test_a_task_that_three_workers_died_with_comes_back_forsaken(queue):
    """Each worker that takes the task dies with it (here: hangs up once the task arrived).
    After the third the task comes back FORSAKEN instead of being tried forever."""
    t = wq.Task("echo never")
    queue.submit(t)

    for _ in range(3):
        assert t.result == wq.WORK_QUEUE_RESULT_UNKNOWN
        drive(queue, FakeWorker(queue.port, _take_and_die))  # its wait() returns the task
    assert t.result == wq.WORK_QUEUE_RESULT_FORSAKEN, t.result_str
    assert queue.empty()


def test_lost_workers_count_only_in_a_row(queue, workers):
    """Fewer than three lost workers give nothing up: after two, an honest worker runs it."""
    t = wq.Task("echo ok")
    queue.submit(t)

    for _ in range(2):
        drive(queue, FakeWorker(queue.port, _take_and_die))
    workers.start(queue.port)
    assert queue.wait(30) is t and t.result == wq.WORK_QUEUE_RESULT_SUCCESS


# -- 8. any name crosses the wire -----------------------------------------------------------------

def test_a_newline_in_a_name_inside_an_output_directory(queue, workers):
    t = wq.Task("mkdir o && printf x > 'o/a\nb' && printf y > 'o/100% sure'")
    t.specify_directory("o", "o", wq.WORK_QUEUE_OUTPUT)
    queue.submit(t)
    workers.start(queue.port)
    assert queue.wait(30) is t
    assert t.result == wq.WORK_QUEUE_RESULT_SUCCESS, t.result_str
    assert sorted(os.listdir("o")) == ["100% sure", "a\nb"]
    assert open("o/a\nb").read() == "x" and open("o/100% sure").read() == "y"
