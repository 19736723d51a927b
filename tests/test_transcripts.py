"""Decode the CCTools 7.17.1 golden recordings with our codec and re-encode them byte for byte.

The recordings are kept in ``tests/data/protocol-transcripts``; a missing one is an error.

Each ``.wqt`` direction is one byte stream (record boundaries are timing artefacts).  The W->M
stream is decoded with ``parse_from_worker``, the M->W stream with ``parse_from_manager``; every
byte must be consumed, and re-encoding each message (plus its payload) must give back exactly the
bytes it came from.

Tolerated differences between a recorded message and its re-encoding (see ``_tolerated``):

* ``resource`` numbers: an 8.x worker prints them ``%lf`` (``4.000000``), we print integers like
  the 7.17.1 worker.  None of the current recordings needs this.
* Nothing else.  In particular ``put file-3-...-my%2520data.txt`` decodes to the cache name
  ``file-3-...-my%20data.txt`` (what ``infile``/``unlink`` carry verbatim) and url-encodes back to
  ``%2520``; a buffer ``put ... 777`` keeps its mode without the leading zero; a nested ``dir sub``
  inside a directory put and a top-level ``dir <cachename>`` share the (url-encoded) syntax.
  Lines that would not round-trip and are absent here: ``GET`` (HTTP version is normalised),
  ``info`` with runs of spaces (collapsed), a task-block ``dir`` whose remote name contains ``%``
  (C sends it raw, we decode it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from work_queue.protocol import messages as m
from work_queue.protocol.auth import AUTH_LINE, response_for
from work_queue.protocol.buffer import ReceiveBuffer
from work_queue.protocol.messages import parse_from_manager, parse_from_worker
from work_queue.protocol.reader import NEED_DATA, Chunk, MessageReader

#: Copies of the CCTools 7.17.1 recordings (shared/design/protocol-transcripts).
TRANSCRIPTS = Path(__file__).resolve().parent / "data" / "protocol-transcripts"
WQT_FILES = sorted(TRANSCRIPTS.glob("*.wqt"))
W2M, M2W = "W->M", "M->W"
PASSWORD = b"golden-secret\n"  # f-password's password file, trailing newline included

_RECORD_RE = re.compile(rb"^(>>> W->M|<<< M->W) (\d+)$")


def read_wqt(path: Path) -> tuple[list[str], list[tuple[str, bytes]]]:
    """``(header_lines, [(direction, bytes), ...])`` (after ``tools/proxy.py`` ``read_wqt``)."""
    data = path.read_bytes()
    pos = 0
    header = []
    while pos < len(data) and data[pos : pos + 1] == b"#":
        end = data.index(b"\n", pos)
        header.append(data[pos:end].decode("utf-8"))
        pos = end + 1
    records = []
    while pos < len(data):
        end = data.index(b"\n", pos)
        match = _RECORD_RE.match(data[pos:end])
        if not match:
            raise ValueError(f"bad record header at byte {pos}: {data[pos:end][:80]!r}")
        n = int(match.group(2))
        body = data[end + 1 : end + 1 + n]
        if len(body) != n or data[end + 1 + n : end + 2 + n] != b"\n":
            raise ValueError(f"truncated record at byte {pos}")
        records.append((W2M if match.group(1).startswith(b">>>") else M2W, body))
        pos = end + 2 + n
    return header, records


def stream_of(records, direction: str) -> bytes:
    return b"".join(body for d, body in records if d == direction)


def split_auth(stream: bytes) -> tuple[list[bytes], bytes]:
    """The four lines of one side of the password exchange, and everything after them."""
    buf = ReceiveBuffer()
    buf.feed(stream)
    lines = [buf.maybe_next_line() for _ in range(4)]
    assert None not in lines
    return lines, buf.take_all()


def decode_all(parse, pieces) -> list[tuple[object, bytes]]:
    """Decode a stream fed in ``pieces``; return ``(event, bytes it consumed)`` pairs."""
    stream = b"".join(pieces)
    reader = MessageReader(parse)
    out = []
    fed = 0
    for piece in pieces:
        reader.feed(piece)
        fed += len(piece)
        while True:
            start = fed - reader.buffered
            ev = reader.next_event()
            if ev is NEED_DATA:
                break
            out.append((ev, stream[start : fed - reader.buffered]))
    assert reader.buffered == 0, f"undecoded tail {reader.take_remaining()[:80]!r}"
    assert not reader.in_payload, "stream ends inside a payload"
    return out


def reencode(ev) -> bytes:
    if isinstance(ev, Chunk):
        return ev.data
    out = ev.encode()
    if not ev.STREAMED:
        out += getattr(ev, "payload", b"")
    return out


def _tolerated(ev, original: bytes, again: bytes) -> bool:
    if isinstance(ev, m.ResourceReport):
        return re.sub(rb"(\d+)\.\d+", rb"\1", original) == again
    return False


def _merge_chunks(pairs):
    out, acc = [], None
    for ev, _ in pairs:
        if isinstance(ev, Chunk):
            acc = (acc or b"") + ev.data
            if ev.last:
                out.append(acc)
                acc = None
        else:
            out.append(ev)
    return out


def conversation(path: Path) -> dict[str, bytes]:
    """Both directions of a worker conversation, with the password exchange removed."""
    _, records = read_wqt(path)
    streams = {W2M: stream_of(records, W2M), M2W: stream_of(records, M2W)}
    if streams[W2M].startswith(AUTH_LINE + b"\n"):
        for d in (W2M, M2W):
            streams[d] = split_auth(streams[d])[1]
    return streams


WORKER_CONVERSATIONS = [p for p in WQT_FILES if ".status-" not in p.name]
STATUS_CONNECTIONS = [p for p in WQT_FILES if ".status-" in p.name]


def _ids(paths):
    return [p.name for p in paths]


@pytest.fixture(autouse=True)
def _need_transcripts():
    """The recordings are part of the repository: their absence is a failure, not a skip."""
    assert (TRANSCRIPTS / "a-handshake-one-task.wqt").is_file(), f"no transcripts at {TRANSCRIPTS}"


def test_transcripts_present():
    names = {p.name for p in WQT_FILES}
    assert "a-handshake-one-task.wqt" in names and "f-password.wqt" in names
    assert len(STATUS_CONNECTIONS) == 3


@pytest.mark.parametrize("path", WORKER_CONVERSATIONS, ids=_ids(WORKER_CONVERSATIONS))
@pytest.mark.parametrize("direction", [W2M, M2W])
def test_decode_and_reencode_exactly(path, direction):
    parse = parse_from_worker if direction == W2M else parse_from_manager
    stream = conversation(path)[direction]
    assert stream
    pairs = decode_all(parse, [stream])
    for ev, original in pairs:
        assert not isinstance(ev, m.Unknown), f"unknown line {original!r}"
        again = reencode(ev)
        assert again == original or _tolerated(ev, original, again), (ev, original, again)
    assert b"".join(original for _, original in pairs) == stream
    # no \r\n anywhere in the framing, single spaces between fields
    for ev, original in pairs:
        if not isinstance(ev, Chunk):
            line = original.split(b"\n", 1)[0]
            assert b"\r" not in line and b"  " not in line and not line.endswith(b" ")


@pytest.mark.parametrize("path", WORKER_CONVERSATIONS, ids=_ids(WORKER_CONVERSATIONS))
def test_decoding_does_not_depend_on_chunking(path):
    _, records = read_wqt(path)
    for direction, parse in ((W2M, parse_from_worker), (M2W, parse_from_manager)):
        stream = conversation(path)[direction]
        whole = _merge_chunks(decode_all(parse, [stream]))
        bytewise = _merge_chunks(decode_all(parse, [stream[i : i + 1] for i in range(len(stream))]))
        assert bytewise == whole
        if "password" not in path.name:
            # the recorded chunks, as the manager/worker really received them
            pieces = [body for d, body in records if d == direction]
            assert _merge_chunks(decode_all(parse, pieces)) == whole


@pytest.mark.parametrize("path", WORKER_CONVERSATIONS, ids=_ids(WORKER_CONVERSATIONS))
def test_names_are_consistent(path):
    """Every ``infile`` names an object sent earlier; ``get`` replies stay under the name asked."""
    streams = conversation(path)
    sent: set[str] = set()
    depth = 0
    in_task = False
    for ev in _merge_chunks(decode_all(parse_from_manager, [streams[M2W]])):
        if isinstance(ev, m.TaskStart):
            in_task = True
        elif isinstance(ev, m.End):
            if depth:
                depth -= 1
            else:
                assert in_task
                in_task = False
        elif in_task:
            if isinstance(ev, m.TaskFile) and ev.direction == "infile":
                assert ev.cachename in sent
        elif isinstance(ev, m.Dir):
            if depth == 0:
                sent.add(ev.name)
            depth += 1
        elif isinstance(ev, m.Put | m.PutUrl) and depth == 0:
            sent.add(ev.cachename if isinstance(ev, m.PutUrl) else ev.name)
    assert depth == 0 and not in_task

    gets = [ev.name for ev in _merge_chunks(decode_all(parse_from_manager, [streams[M2W]]))
            if isinstance(ev, m.Get)]
    replies = [ev.name for ev in _merge_chunks(decode_all(parse_from_worker, [streams[W2M]]))
               if isinstance(ev, m.FileItem | m.DirItem | m.MissingItem)]
    for name in replies:
        assert any(name == g or name.startswith(g + "/") for g in gets), name


def test_handshake_order():
    streams = conversation(TRANSCRIPTS / "a-handshake-one-task.wqt")
    events = _merge_chunks(decode_all(parse_from_worker, [streams[W2M]]))
    assert isinstance(events[0], m.Hello) and events[0].protocol == 11
    assert isinstance(events[1], m.Info) and events[1].field == "worker-id"
    assert re.fullmatch(r"worker-[0-9a-f]{32}", events[1].value)
    assert events[2] == m.Alive()
    assert [e.name for e in events[3:9]] == ["workers", "disk", "memory", "gpus", "cores", "tag"]
    assert events[9:12] == [m.Info("end_of_resource_update", "0"), m.Info("tasks_running", "0"),
                            m.Info("worker-end-time", "0")]


def test_recorded_payloads():
    b = _merge_chunks(decode_all(parse_from_manager,
                                 [conversation(TRANSCRIPTS / "b-files.wqt")[M2W]]))
    env = next(e for e in b if isinstance(e, m.Env))
    assert (env.length, env.payload) == (20, b"GREETING=hello world\n")
    i = b.index(m.Put("file-0-05d367c75076f9ca29ee04d42830b92e-shared.txt", 12, 0o644))
    assert b[i + 1] == b"shared data\n"
    c = _merge_chunks(decode_all(parse_from_manager,
                                 [conversation(TRANSCRIPTS / "c-buffer-dir-url.wqt")[M2W]]))
    puts = [e for e in c if isinstance(e, m.Put)]
    assert puts[0] == m.Put("buffer-1-7f2db423a49b305459147332fb01cf87", 16, 0o777,
                            leading_zero=False)
    assert m.Put("file-3-512296c1a09e8d03ca6063b6164c9d76-my%20data.txt", 12, 0o644) in puts
    putcmd = next(e for e in c if isinstance(e, m.PutCmd))
    assert putcmd.source == "echo generated by command > %%"
    d = _merge_chunks(decode_all(parse_from_worker,
                                 [conversation(TRANSCRIPTS / "d-failure-missing-output.wqt")[W2M]]))
    first = next(e for e in d if isinstance(e, m.Result))
    assert (first.status, first.exit_code, first.payload) == (0, 3, b"failing\n")
    assert any(isinstance(e, m.MissingItem) and e.errno == 2 for e in d)


def test_password_exchange():
    _, records = read_wqt(TRANSCRIPTS / "f-password.wqt")
    w_lines, w_rest = split_auth(stream_of(records, W2M))
    m_lines, m_rest = split_auth(stream_of(records, M2W))
    for lines in (w_lines, m_lines):
        assert lines[0] == AUTH_LINE
        assert parse_from_worker(lines[0]) == m.AuthRequest("password sha1")
        assert parse_from_manager(lines[0]) == m.AuthRequest("password sha1")
        assert re.fullmatch(rb"[a-z]{63}", lines[1])
        assert re.fullmatch(rb"[0-9a-f]{40}", lines[2])
        assert lines[3] == b"ok"
    # each side answers the other's challenge with sha1(password file bytes + " " + challenge)
    assert w_lines[2] == response_for(PASSWORD, m_lines[1])
    assert m_lines[2] == response_for(PASSWORD, w_lines[1])
    assert w_rest.startswith(b"workqueue 11 ")
    assert m_rest.startswith(b"task 1\n")


@pytest.mark.parametrize("path", STATUS_CONNECTIONS, ids=_ids(STATUS_CONNECTIONS))
def test_status_connection(path):
    _, records = read_wqt(path)
    request = stream_of(records, W2M)
    reply = stream_of(records, M2W)
    kind = {"l": "queue_status", "W": "worker_status", "T": "task_status"}[path.stem[-1]]
    pairs = decode_all(parse_from_worker, [request])
    assert [ev for ev, _ in pairs] == [m.StatusRequest(kind)]
    assert pairs[0][0].encode() == request
    assert not reply.endswith(b"\n")
    data = json.loads(reply)
    assert isinstance(data, list) and data and all(isinstance(x, dict) for x in data)
