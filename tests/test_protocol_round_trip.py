"""Every message encodes and reads back equal (the h11 way): fed whole, byte by byte, and with
more data left behind it in the buffer.  Each class has a case here, so a new message without
both halves (encoder and reader) fails ``test_every_message_has_a_round_trip_case``."""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from work_queue.errors import RemoteProtocolError
from work_queue.protocol import messages as m
from work_queue.protocol.reader import NEED_DATA, Chunk, MessageReader, manager_stream_reader
from work_queue.protocol.task_block import TaskSpec

#: A field sent as it is (no url-encoding): no spaces, nothing a line cannot carry.
token = st.text(string.ascii_letters + string.digits + "._-:/", min_size=1, max_size=12)
#: Words separated by single spaces (fields the reader takes "to the end of the line").
words = st.lists(token, min_size=1, max_size=4).map(" ".join)
#: A url-encoded name may hold anything.
any_name = st.text(min_size=1, max_size=16)
number = st.integers(-(10**12), 10**12)
count = st.integers(0, 10**9)
payload = st.binary(max_size=40)


def plain(make: Callable[..., m.Message], *fields: Any) -> Any:
    return st.builds(lambda *values: (make(*values), b""), *fields)


def _put(name: str, length: int, mode: int, leading_zero: bool) -> m.Put:
    return m.Put(name, length, mode, leading_zero)


#: class -> (parse function of its direction, strategy of (message, payload bytes))
CASES: dict[type[m.Message], list[tuple[Callable[[bytes], m.Message], Any]]] = {
    # worker -> manager
    m.Hello: [(m.parse_from_worker, plain(m.Hello, count, token, token, token, token))],
    m.ResourceReport: [
        (m.parse_from_worker, plain(m.ResourceReport, token.filter(lambda s: s != "tag"),
                                    count, count, count)),
        (m.parse_from_worker, plain(lambda n: m.ResourceReport("tag", n), count))],
    m.Info: [(m.parse_from_worker, plain(m.Info, token, words))],
    m.AvailableResults: [(m.parse_from_worker, plain(m.AvailableResults))],
    m.CacheUpdate: [(m.parse_from_worker, plain(m.CacheUpdate, token, count, count))],
    m.CacheInvalid: [(m.parse_from_worker, st.builds(
        lambda data, name: (m.CacheInvalid(name, len(data), data), data), payload, token))],
    m.Result: [(m.parse_from_worker, st.builds(
        lambda data, s, e, t, i: (m.Result(s, e, len(data), t, i, data), data),
        payload, number, number, count, count))],
    m.MonitorSummary: [(m.parse_from_worker, st.builds(
        lambda data, i: (m.MonitorSummary(i, len(data), data), data), payload, count))],
    m.Update: [(m.parse_from_worker, st.builds(
        lambda data, i, name, off: (m.Update(i, name, off, len(data), data), data),
        payload, count, token, count))],
    m.FileItem: [(m.parse_from_worker, st.builds(
        lambda data, name: (m.FileItem(name, len(data)), data), payload, words))],
    m.DirItem: [(m.parse_from_worker, plain(m.DirItem, token))],
    m.MissingItem: [(m.parse_from_worker, plain(m.MissingItem, words, count))],
    m.StatusRequest: [(m.parse_from_worker,
                       plain(m.StatusRequest, st.sampled_from(sorted(m.STATUS_KINDS))))],
    m.HttpGet: [(m.parse_from_worker, plain(m.HttpGet, token))],
    m.NameQuery: [(m.parse_from_worker, plain(m.NameQuery))],
    # both directions
    m.Alive: [(m.parse_from_worker, plain(m.Alive)), (m.parse_from_manager, plain(m.Alive))],
    m.End: [(m.parse_from_worker, plain(m.End)), (m.parse_from_manager, plain(m.End))],
    m.Feature: [(m.parse_from_worker, plain(m.Feature, any_name)),
                (m.parse_from_manager, plain(m.Feature, any_name))],
    m.AuthRequest: [(m.parse_from_worker, plain(m.AuthRequest, words)),
                    (m.parse_from_manager, plain(m.AuthRequest, words))],
    # manager -> worker
    m.TaskStart: [(m.parse_from_manager, plain(m.TaskStart, count))],
    m.Cmd: [(m.parse_from_manager, st.builds(lambda d: (m.Cmd(len(d), d), d), payload))],
    m.Coprocess: [(m.parse_from_manager,
                   st.builds(lambda d: (m.Coprocess(len(d), d), d), payload))],
    m.Monitor: [(m.parse_from_manager, st.builds(lambda d: (m.Monitor(len(d), d), d), payload))],
    # env's count leaves out the newline that follows NAME=VALUE
    m.Env: [(m.parse_from_manager,
             st.builds(lambda d: (m.Env(len(d), d + b"\n"), d + b"\n"), payload))],
    m.Category: [(m.parse_from_manager, plain(m.Category, token))],
    m.TaskResource: [(m.parse_from_manager, plain(
        m.TaskResource, st.sampled_from(sorted(m.RESOURCE_FORMATS)),
        st.integers(0, 10**9).map(float)))],
    m.Dir: [(m.parse_from_manager, plain(m.Dir, any_name))],
    m.TaskFile: [(m.parse_from_manager, plain(m.TaskFile, st.sampled_from(["infile", "outfile"]),
                                              token, any_name, count))],
    # a mode of 0 is written "0", which reads back with a leading zero
    m.Put: [(m.parse_from_manager, st.builds(
        lambda d, name, mode, zero: (_put(name, len(d), mode, zero or mode == 0), d),
        payload, any_name, st.integers(0, 0o777), st.booleans()))],
    m.Symlink: [(m.parse_from_manager, st.builds(
        lambda d, name: (m.Symlink(name, len(d), d), d), payload, any_name))],
    m.PutUrl: [(m.parse_from_manager,
                plain(m.PutUrl, any_name, any_name, count, st.integers(0, 0o7777)))],
    m.PutCmd: [(m.parse_from_manager,
                plain(m.PutCmd, any_name, any_name, count, st.integers(0, 0o7777)))],
    m.Get: [(m.parse_from_manager, plain(m.Get, any_name))],
    m.Unlink: [(m.parse_from_manager, plain(m.Unlink, any_name))],
    m.Kill: [(m.parse_from_manager, plain(m.Kill, number))],
    m.SendResults: [(m.parse_from_manager, plain(m.SendResults, number))],
    m.Check: [(m.parse_from_manager, plain(m.Check))],
    m.Release: [(m.parse_from_manager, plain(m.Release))],
    m.Exit: [(m.parse_from_manager, plain(m.Exit))],
    m.InvalidateFile: [(m.parse_from_manager, plain(m.InvalidateFile, any_name))],
    m.Tlq: [(m.parse_from_manager, plain(m.Tlq, token))],
    # the wq-py-resume extension
    m.ResumeToken: [(m.parse_from_manager, plain(m.ResumeToken, token, count))],
    m.Resumed: [(m.parse_from_manager, plain(m.Resumed, count))],
    m.ResumeRefused: [(m.parse_from_manager, plain(m.ResumeRefused, any_name))],
    m.Resume: [(m.parse_from_worker, st.builds(
        lambda held, tok, wid: (lambda d: (m.Resume(tok, wid, len(d), d), d))(
            m.Resume.held_payload(held)),
        st.dictionaries(st.integers(1, 10**9), st.sampled_from(["waiting", "running",
                                                                "finished"]),
                        max_size=3), token, any_name))],
    m.Leaving: [(m.parse_from_worker, plain(m.Leaving))],
    m.Unknown: [(m.parse_from_manager, plain(lambda w: m.Unknown(b"no-such-verb " + w.encode()),
                                             words))],
}


def test_every_message_has_a_round_trip_case():
    exported = [getattr(m, name) for name in m.__all__]
    messages = {c for c in exported if isinstance(c, type) and issubclass(c, m.Message)}
    assert messages - {m.Message} == set(CASES)


#: A whole line and the beginning of the next, left in the buffer behind the message.
TRAILER = b"alive\nali"


def read_back(parse: Callable[[bytes], m.Message], data: bytes, step: int) -> tuple[
        list[m.Message], bytes, MessageReader]:
    """Feed ``data`` ``step`` bytes at a time: the messages read, and the streamed bytes."""
    reader = MessageReader(parse)
    messages: list[m.Message] = []
    streamed = b""
    for i in range(0, len(data), step):
        reader.feed(data[i:i + step])
        while (ev := reader.next_event()) is not NEED_DATA:
            if isinstance(ev, Chunk):
                streamed += bytes(ev.data)
            else:
                assert isinstance(ev, m.Message)
                messages.append(ev)
    return messages, streamed, reader


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_message_reads_back_equal(cls, data):
    parse, strategy = data.draw(st.sampled_from(CASES[cls]))
    msg, body = data.draw(strategy)
    assert type(msg) is cls
    wire = msg.encode()
    assert wire.endswith(b"\n") and wire.count(b"\n") == 1
    assert parse(wire[:-1]) == (msg if not msg.HAS_PAYLOAD or msg.STREAMED else
                                _without_payload(msg))
    for step in (len(wire + body), 1):
        got, streamed, _ = read_back(parse, wire + body, step)
        assert got == [msg] and streamed == (body if msg.STREAMED else b"")
    got, streamed, reader = read_back(parse, wire + body + TRAILER, len(wire + body + TRAILER))
    assert got == [msg, m.Alive()] and reader.buffered == 3


def _without_payload(msg: m.Message) -> m.Message:
    """The message as its line alone reads: the payload comes later."""
    return dataclasses.replace(msg, payload=b"")  # type: ignore[type-var]


# -- a task block always comes out as one record ------------------------------------------------

BLOCK = (b"task 9\ncmd 4\ntrueenv 3\nA=1\ncategory c\ncores 2.000\nmemory 10\n"
         b"infile f-1 in%20put 1\noutfile f-2 out 0\ndir d\nend\n")


@pytest.mark.parametrize("step", [1, 2, 3, 7, len(BLOCK)])
def test_a_task_block_comes_out_as_one_record_however_it_is_cut(step):
    reader = manager_stream_reader(blocks=True)
    events = []
    data = b"kill 1\n" + BLOCK + b"kill 2\n" + BLOCK.replace(b"task 9", b"task 10")
    for i in range(0, len(data), step):
        reader.feed(data[i:i + step])
        events.extend(iter(reader.next_event, NEED_DATA))
    assert [type(e) for e in events] == [m.Kill, TaskSpec, m.Kill, TaskSpec]
    spec = events[1]
    assert (spec.task_id, spec.command, spec.env, spec.category) == (9, "true", [("A", "1")], "c")
    assert (spec.cores, spec.memory) == (2, 10)
    assert spec.inputs == [("f-1", "in put", 1)] and spec.outputs == [("f-2", "out", 0)]
    assert spec.empty_dirs == ["d"] and events[3].task_id == 10


@settings(max_examples=100, deadline=None)
@given(token)
def test_an_empty_directory_of_a_task_block_reads_back_raw(name):
    wire = m.Dir(name).encode_in_block()
    assert wire == b"dir " + name.encode() + b"\n"
    assert m.parse_from_manager(wire[:-1]).raw == name


def test_a_block_in_pieces_refuses_what_has_no_place_in_it():
    """Cut anywhere, a block holding a ``put`` is refused as the whole-block reader refuses it."""
    data = b"task 3\ncmd 4\ntrue" + m.Put("x", 1, 0o644).encode() + b"y" + b"end\n"
    for step in (1, 5, len(data)):
        reader = manager_stream_reader(blocks=True)
        with pytest.raises(RemoteProtocolError):
            for i in range(0, len(data), step):
                reader.feed(data[i:i + step])
                list(iter(reader.next_event, NEED_DATA))
