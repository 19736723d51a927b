"""Replay the CCTools 7.17.1 recordings against our own manager and our own worker.

The recordings are kept in ``tests/data/protocol-transcripts`` (see its README, "What a replay
test should check"); a missing one is an error, not a skip.

* **Playing the worker** (``test_manager_replays``): the test connects to our ``WorkQueue`` like
  the recorded CCTools worker, sends the recorded W->M stream message by message (each group only
  after our manager has sent everything the recorded manager sent before it) and checks that our
  manager sends the recorded M->W messages byte for byte.  The scenario's manager program is
  re-enacted in a fresh directory with the same relative file names, and the file counter of the
  cache names is reset, so task ids and cache names match exactly.  Tolerated differences:

  - our manager url-encodes the cache name in ``unlink``/``get`` (``my%2520data.txt`` in ``c``;
    docs/compatibility.md), so those names are url-decoded once before comparing;
  - the entries of a directory ``put`` come in readdir order, which depends on the file system,
    so siblings are compared as a sorted list;
  - our manager sends the ``kill`` of a finished task after the next thing it sends (the next
    task's block, docs/compatibility.md), so ``kill`` lines are compared as a whole, not in place.

  The URL input of ``c`` is never fetched (the worker is played by the test), so the recorded URL
  is reused as it is.  What the manager program reports (result, return status, stdout, files
  written) must match the header's "Outcome as seen by the manager program".

* **Playing the manager** (``test_worker_replays``): the test listens, starts our worker with the
  recorded command line, checks the shape of its handshake, then sends the recorded M->W records
  one by one, waiting for the worker's replies where the recording shows the worker speaking, and
  compares them with the recorded W->M messages.  Tolerated: the execution time in ``result``,
  ``info`` lines anywhere (our worker reports ``tasks_running`` at other moments), and the two
  ``feature`` lines of our extensions in the handshake.  The test never confirms an extension
  (a CCTools manager would not), so the worker must use ``available_results``/``send_results``.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest

import work_queue as wq
from work_queue._testing import FakeManager, FakePeer, FakeWorker
from work_queue._testing.peers import Script
from work_queue.manager import files as manager_files
from work_queue.protocol import extensions
from work_queue.protocol import messages as m
from work_queue.protocol.messages import parse_from_manager, parse_from_worker
from work_queue.protocol.reader import NEED_DATA, Chunk, MessageReader
from work_queue.protocol.urlcodec import url_decode

#: Copies of the CCTools 7.17.1 recordings (shared/design/protocol-transcripts).
TRANSCRIPTS = Path(__file__).resolve().parent / "data" / "protocol-transcripts"
W2M, M2W = "W->M", "M->W"
IO_TIMEOUT = 10.0

_RECORD_RE = re.compile(rb"^(>>> W->M|<<< M->W) (\d+)$")


@pytest.fixture(autouse=True)
def _need_transcripts():
    """The recordings are part of the repository: their absence is a failure, not a skip."""
    assert (TRANSCRIPTS / "a-handshake-one-task.wqt").is_file(), f"no transcripts at {TRANSCRIPTS}"


# -- reading recordings ------------------------------------------------------------------------


def read_wqt(path: Path) -> tuple[list[str], list[tuple[str, bytes]]]:
    """``(header_lines, [(direction, bytes), ...])`` of a ``.wqt`` file."""
    data = path.read_bytes()
    pos, header, records = 0, [], []
    while data[pos : pos + 1] == b"#":
        end = data.index(b"\n", pos)
        header.append(data[pos:end].decode())
        pos = end + 1
    while pos < len(data):
        end = data.index(b"\n", pos)
        match = _RECORD_RE.match(data[pos:end])
        assert match, f"bad record header at byte {pos}"
        n = int(match.group(2))
        records.append((W2M if match.group(1).startswith(b">>>") else M2W,
                        data[end + 1 : end + 1 + n]))
        pos = end + 2 + n
    return header, records


def recorded_outcomes(header: list[str]) -> list[str]:
    """The lines under "Outcome as seen by the manager program", without "manager deleted"."""
    start = header.index("# Outcome as seen by the manager program:") + 1
    out = []
    for line in header[start:]:
        if not line.startswith("#   "):
            break
        out.append(line[4:])
    return [o for o in out if o != "manager deleted"]


class Splitter:
    """Cuts a byte stream into whole messages: the raw bytes of each line plus its payload."""

    def __init__(self, parse: Callable[[bytes], m.Message]) -> None:
        self.reader = MessageReader(parse)
        self.data = bytearray()
        self.start = 0
        self.streamed: m.Message | None = None

    def feed(self, data: bytes) -> list[tuple[m.Message, bytes]]:
        self.reader.feed(data)
        self.data += data
        out = []
        while (ev := self.reader.next_event()) is not NEED_DATA:
            end = len(self.data) - self.reader.buffered
            if isinstance(ev, Chunk):
                if not ev.last:
                    continue
                msg, self.streamed = self.streamed, None
            elif ev.STREAMED:
                self.streamed = ev
                continue
            else:
                msg = ev
            out.append((msg, bytes(self.data[self.start : end])))
            self.start = end
        return out

    @property
    def partial(self) -> bool:
        return self.start < len(self.data)


def split(stream: bytes, parse: Callable[[bytes], m.Message]) -> list[tuple[m.Message, bytes]]:
    s = Splitter(parse)
    out = s.feed(stream)
    assert not s.partial, f"stream ends inside a message: {bytes(s.data[s.start:])[:80]!r}"
    return out


class Inbox:
    """Whole messages received on a socket, with timeouts."""

    def __init__(self, sock: socket.socket, parse: Callable[[bytes], m.Message],
                 skip: Callable[[m.Message], bool] = lambda msg: False) -> None:
        self.sock = sock
        self.splitter = Splitter(parse)
        self.ready: deque[tuple[m.Message, bytes]] = deque()
        self.skip = skip
        self.skipped: list[bytes] = []
        self.eof = False

    def _receive(self, timeout: float) -> bool:
        """Read once; False on timeout."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            return False
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return True
        for msg, raw in self.splitter.feed(data):
            if self.skip(msg):
                self.skipped.append(raw)
            else:
                self.ready.append((msg, raw))
        return True

    def take(self, n: int, timeout: float = IO_TIMEOUT) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.ready) < n:
            got = [raw for _, raw in self.ready]
            assert not self.eof, f"connection closed; expected {n} messages, got {got}"
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; expected {n} messages, got {got}"
            self._receive(left)
        return [self.ready.popleft()[1] for _ in range(n)]

    def settle(self, seconds: float) -> list[bytes]:
        """Whatever (not skipped) arrives within ``seconds``."""
        deadline = time.monotonic() + seconds
        while not self.eof and (left := deadline - time.monotonic()) > 0:
            self._receive(left)
        out = [raw for _, raw in self.ready]
        self.ready.clear()
        return out

    def until_eof(self, timeout: float = IO_TIMEOUT) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            assert left > 0, "the peer did not close the connection"
            self._receive(left)
        assert not self.splitter.partial, "connection closed inside a message"
        out = [raw for _, raw in self.ready]
        self.ready.clear()
        return out


# -- playing the worker against our manager -----------------------------------------------------


def _sorted_dirs(raws: list[bytes]) -> list[bytes]:
    """Sort the entries of every directory ``put`` (``dir`` ... ``end`` outside a task block)."""

    def subtree(i: int) -> tuple[bytes, int]:
        # raws[i] is a "dir" line; returns the canonical bytes of the subtree and the next index
        entries = []
        j = i + 1
        while raws[j] != b"end\n":
            if raws[j].startswith(b"dir "):
                entry, j = subtree(j)
            else:
                entry, j = raws[j], j + 1
            entries.append(entry)
        return raws[i] + b"".join(sorted(entries)) + b"end\n", j + 1

    out, i, in_task = [], 0, False
    while i < len(raws):
        raw = raws[i]
        if in_task:
            in_task = raw != b"end\n"
        elif raw.startswith(b"task "):
            in_task = True
        elif raw.startswith(b"dir "):
            canonical, i = subtree(i)
            out.append(canonical)
            continue
        out.append(raw)
        i += 1
    return out


def _decode_names(raws: list[bytes]) -> list[bytes]:
    """Our manager url-encodes ``unlink``/``get`` names, CCTools does not (compatibility.md)."""
    out = []
    for raw in raws:
        if raw.startswith((b"unlink ", b"get ")):
            words = raw.rstrip(b"\n").split(b" ")
            words[1] = url_decode(words[1].decode()).encode()
            raw = b" ".join(words) + b"\n"
        out.append(raw)
    return out


def play_records(records: list[tuple[str, bytes]], all_sent: threading.Event) -> Script:
    """The script of a fake worker that sends the recorded W->M records and checks what our
    manager sends in between (``all_sent`` is set once the last W->M record is out)."""
    last_w2m = max(i for i, (d, _) in enumerate(records) if d == W2M)

    def play(peer: FakePeer) -> None:
        try:
            _play(peer.sock, records, last_w2m, all_sent)
        finally:
            all_sent.set()
            peer.sock.close()

    return play


def _play(sock: socket.socket, records: list[tuple[str, bytes]], last_w2m: int,
          all_sent: threading.Event) -> None:
    inbox = Inbox(sock, parse_from_manager, skip=lambda msg: isinstance(msg, m.Kill))
    kills: list[bytes] = []
    for i, (direction, body) in enumerate(records):
        if direction == W2M:
            for _, raw in split(body, parse_from_worker):
                sock.sendall(raw)
            if i == last_w2m:
                all_sent.set()
            continue
        expected = []
        for msg, raw in split(body, parse_from_manager):
            (kills if isinstance(msg, m.Kill) else expected).append(raw)
        got = _decode_names(inbox.take(len(expected)))
        assert _sorted_dirs(got) == _sorted_dirs(expected), f"record {i}"
    assert inbox.until_eof() == [], "our manager sent more than the recorded one"
    assert sorted(inbox.skipped) == sorted(kills)


class Manager:
    """Our manager plus the fake worker, pumped from the test thread."""

    def __init__(self, records: list[tuple[str, bytes]]) -> None:
        self.q = wq.WorkQueue(port=0)
        self.all_sent = threading.Event()
        self.worker = FakeWorker(self.q.port, play_records(records, self.all_sent), start=False)
        self.worker.sock.settimeout(IO_TIMEOUT)
        self.deadline = time.monotonic() + IO_TIMEOUT
        self.outcomes: list[str] = []

    def pump(self, until: Callable[[], bool]) -> None:
        while not until():
            self._check()
            t = self.q.wait(0.05)
            if t is not None:
                self.outcomes.append(
                    "task %d: result=%d (%s) return_status=%d stdout=%r"
                    % (t.id, t.result, t.result_str, t.return_status, t.output))

    def wait_all(self) -> None:
        self.pump(self.q.empty)

    def _check(self) -> None:
        self.worker.check()
        assert time.monotonic() < self.deadline, f"scenario timed out: {self.outcomes}"

    def finish(self) -> None:
        self.pump(self.all_sent.is_set)
        self.q.close()
        self.worker.thread.join(IO_TIMEOUT)
        assert not self.worker.thread.is_alive(), "fake worker still running"
        self.worker.check()


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)  # the recorded put lines say 0644 whatever our umask is


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def scenario_a(mgr: Manager, records) -> None:
    mgr.q.submit(wq.Task("echo hello"))
    mgr.wait_all()


def scenario_b(mgr: Manager, records) -> None:
    _write("shared.txt", "shared data\n")
    _write("in.txt", "input one\n")
    t1 = wq.Task("cat shared.txt in.txt > out.txt")
    t1.specify_input_file("shared.txt", cache=True)
    t1.specify_input_file("in.txt", cache=False)
    t1.specify_output_file("out.txt", cache=False)
    mgr.q.submit(t1)
    mgr.wait_all()
    mgr.outcomes.append("out.txt contains %r" % _read("out.txt"))
    t2 = wq.Task("cat shared.txt > out2.txt && echo GREETING=$GREETING")
    t2.specify_input_file("shared.txt", cache=True)
    t2.specify_output_file("out2.txt", cache=False)
    t2.specify_cores(1)
    t2.specify_memory(100)
    t2.specify_disk(100)
    t2.specify_tag("second-task")
    t2.specify_category("small")
    t2.specify_environment_variable("GREETING", "hello world")
    mgr.q.submit(t2)
    mgr.wait_all()
    mgr.outcomes.append("out2.txt contains %r" % _read("out2.txt"))


def scenario_c(mgr: Manager, records) -> None:
    _write("indir/top.txt", "top level\n")
    _write("indir/sub/nested.txt", "nested file\n")
    _write("my data.txt", "spaced name\n")
    # The URL is only passed on to the worker, which is played by the test: reuse the recorded
    # one so that its cache name (md5 of the URL) is the recorded one too.
    stream = b"".join(body for d, body in records if d == M2W)
    url = next(msg.source for msg, _ in split(stream, parse_from_manager)
               if type(msg) is m.PutUrl)
    t = wq.Task("cat buf.txt indir/top.txt indir/sub/nested.txt fromurl.txt fromcmd.txt "
                "'my data.txt' && mkdir -p outdir/deeper && echo a > outdir/a.txt "
                "&& echo b > outdir/deeper/b.txt")
    t.specify_buffer("buffer contents\n", "buf.txt")
    t.specify_directory("indir", "indir", wq.WORK_QUEUE_INPUT, recursive=True)
    t.specify_input_file("my data.txt", "my data.txt")
    t.specify_url(url, "fromurl.txt")
    t.specify_file_command("echo generated by command > %%", "fromcmd.txt")
    t.specify_directory("outdir", "outdir", wq.WORK_QUEUE_OUTPUT)
    mgr.q.submit(t)
    mgr.wait_all()
    for root, _dirs, names in sorted(os.walk("outdir")):
        for fn in sorted(names):
            p = os.path.join(root, fn)
            mgr.outcomes.append("retrieved %s = %r" % (p, _read(p)))


def scenario_d(mgr: Manager, records) -> None:
    mgr.q.submit(wq.Task("echo failing; exit 3"))
    mgr.wait_all()
    t2 = wq.Task("echo no output here")
    t2.specify_output_file("never.txt")
    mgr.q.submit(t2)
    mgr.wait_all()
    mgr.outcomes.append("never.txt exists locally: %s" % os.path.exists("never.txt"))


def scenario_g(mgr: Manager, records) -> None:
    tid = mgr.q.submit(wq.Task("sleep 30"))
    mgr.pump(lambda: mgr.q.task_state(tid) == wq.WORK_QUEUE_TASK_RUNNING)
    mgr.pump(mgr.all_sent.is_set)  # the worker said "info tasks_running 1"
    for _ in range(2):
        mgr.q.wait(0.05)
    t = mgr.q.cancel_by_taskid(tid)
    mgr.outcomes.append("cancel_by_taskid(%d) returned %s; task_state now %d"
                        % (tid, "the task" if t else None, mgr.q.task_state(tid)))
    for _ in range(2):
        mgr.q.wait(0.05)


MANAGER_SCENARIOS = {
    "a-handshake-one-task": scenario_a,
    "b-files": scenario_b,
    "c-buffer-dir-url": scenario_c,
    "d-failure-missing-output": scenario_d,
    "g-cancel": scenario_g,
}


@pytest.mark.parametrize("name", list(MANAGER_SCENARIOS))
def test_manager_replays(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Cache ids come from a process-wide counter (CCTools: one per manager process).
    monkeypatch.setattr(manager_files, "_counter", itertools.count(1))
    header, records = read_wqt(TRANSCRIPTS / f"{name}.wqt")
    mgr = Manager(records)
    try:
        mgr.worker.start()
        MANAGER_SCENARIOS[name](mgr, records)
        mgr.finish()
    finally:
        mgr.q.close()
        if mgr.worker.thread.is_alive():
            mgr.worker.thread.join(IO_TIMEOUT)
    assert mgr.outcomes == recorded_outcomes(header)


# -- playing the manager against our worker -----------------------------------------------------

_OUR_FEATURES = {b"feature %s\n" % name.encode() for name in extensions.WORKER_EXTENSIONS}


def _is_info(msg: m.Message) -> bool:
    return isinstance(msg, m.Info)


def _without_exec_time(raw: bytes) -> bytes:
    """``result <status> <exit> <len> <usec> <id>``: the execution time varies."""
    if raw.startswith(b"result "):
        line, nl, payload = raw.partition(b"\n")
        words = line.split(b" ")
        assert len(words) == 6 and words[4].isdigit(), raw
        words[4] = b"<usec>"
        raw = b" ".join(words) + nl + payload
    return raw


def check_handshake(got: list[bytes], recorded: list[bytes]) -> None:
    assert re.fullmatch(rb"workqueue 11 \S+ \S+ \S+ \S+\n", got[0]), got[0]
    assert re.fullmatch(rb"info worker-id worker-[0-9a-f]{32}\n", got[1]), got[1]
    features = list(itertools.takewhile(lambda raw: raw.startswith(b"feature "), got[2:]))
    assert set(features) <= _OUR_FEATURES, features
    # alive, resources workers/disk/memory/gpus/cores (integers), tag, end of update, counters
    assert got[2 + len(features):] == recorded[2:]
    assert recorded[-1] == b"info worker-end-time 0\n"


def _start_worker(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "work_queue.cli.worker", "--single-shot", "-t", "20",
           "--cores", "2", "--memory", "2000", "--disk", "2000", "-s", str(workdir),
           "127.0.0.1", str(port)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


WORKER_SCENARIOS = ["a-handshake-one-task", "b-files", "d-failure-missing-output", "g-cancel"]


@pytest.mark.parametrize("name", WORKER_SCENARIOS)
def test_worker_replays(name, tmp_path):
    _, records = read_wqt(TRANSCRIPTS / f"{name}.wqt")
    assert records[0][0] == W2M and records[-1][0] == M2W
    manager = FakeManager()
    proc = _start_worker(manager.port, tmp_path / "worker")
    try:
        sock = manager.accept_socket(IO_TIMEOUT)
        with sock:
            # The handshake, read up to its last line.
            inbox = Inbox(sock, parse_from_worker)
            got = []
            while not got or got[-1] != b"info worker-end-time 0\n":
                got += inbox.take(1)
            check_handshake(got, [raw for _, raw in split(records[0][1], parse_from_worker)])
            assert inbox.settle(0.05) == [], "the worker spoke before the manager"
            inbox.skip = _is_info
            for i, (direction, body) in enumerate(records[1:], start=1):
                if direction == M2W:
                    sock.sendall(body)
                    continue
                expected = [_without_exec_time(raw) for msg, raw in split(body, parse_from_worker)
                            if not _is_info(msg)]
                if expected:
                    got = [_without_exec_time(raw) for raw in inbox.take(len(expected))]
                else:
                    # only "info tasks_running 1" was recorded (g-cancel): give the task a moment
                    got = inbox.settle(0.3)
                assert got == expected, f"record {i}"
            # After the final "release": nothing but info lines, then the worker hangs up.
            assert inbox.until_eof() == []
            assert all(re.fullmatch(rb"info \S+ \S+\n", raw) for raw in inbox.skipped)
        assert proc.wait(timeout=IO_TIMEOUT) == 0
    finally:
        manager.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    assert "Traceback" not in stderr, stderr
