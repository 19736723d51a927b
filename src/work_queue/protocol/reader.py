"""Incremental decoder: feed received bytes, pull messages out.

``next_event()`` returns

* a :class:`~.messages.Message`; messages with a whole payload (``cmd``, ``env``, ``result``,
  ...) arrive only once every payload byte is here, with ``msg.payload`` filled;
* for *streamed* messages (``put``, ``file``) the message first, then one or more
  :class:`Chunk` events, the last with ``last=True`` (even for a zero-length payload);
* with ``blocks=True``, a :class:`~.task_block.TaskSpec` for each ``task ... end`` block
  (one event instead of a dozen; see :class:`TaskBlockReader`);
* :data:`NEED_DATA` when more bytes must be fed.

Lines longer than ``WORK_QUEUE_LINE_MAX`` raise :class:`RemoteProtocolError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ..constants import WORK_QUEUE_LINE_MAX
from ..errors import RemoteProtocolError
from .buffer import ReceiveBuffer, line_at
from .messages import Message, TaskStart, parse_from_manager, parse_from_worker
from .task_block import TaskSpec, read_task_block


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()

#: Streamed payloads are delivered in chunks of at most this many bytes.
CHUNK_SIZE = 1 << 20


@dataclass(slots=True)
class Chunk:
    """A piece of a streamed payload.

    ``data`` may be a memoryview of the caller's receive buffer (when it fed one): it is
    valid until the caller reads into that buffer again, so a consumer that keeps the bytes
    copies them.
    """

    data: bytes
    last: bool


Event = Message | Chunk | TaskSpec | _NeedData


class MessageReader:
    """Turns a byte stream into messages using one direction's parse table."""

    __slots__ = ("_buffer", "_parse", "_whole", "_stream_left", "_max_line", "_direct",
                 "_blocks", "admit", "_discarding", "payloads_started", "payload_length")
    # next_event reads ReceiveBuffer's fields directly on its fast path (the same module
    # family; kept in step with buffer.py).

    def __init__(self, parse: Callable[[bytes], Message], max_line: int = WORK_QUEUE_LINE_MAX,
                 blocks: bool = False):
        self._buffer = ReceiveBuffer()
        #: Return a task block that is all here as one TaskSpec event (see task_block.py).
        self._blocks = blocks
        self._parse = parse
        self._whole: Message | None = None
        self._stream_left = -1
        self._max_line = max_line
        #: Received bytes that are all payload of the current streamed message, kept as they
        #: came instead of being copied through the buffer (bulk transfers stay zero-copy).
        self._direct: bytes | None = None
        #: Asked about each message whose payload is read whole, before a byte of it is kept:
        #: True keeps it, False reads it to nowhere (the message then comes with an empty
        #: payload), and an exception refuses it.  None keeps everything.
        self.admit: Callable[[Message], bool] | None = None
        #: The message whose payload is being read to nowhere, delivered once it has passed.
        self._discarding: Message | None = None
        #: How many payloads have started, and the length of the last one (for deadlines).
        self.payloads_started = 0
        self.payload_length = 0

    def feed(self, data: bytes) -> None:
        if (self._direct is None and 0 < len(data) <= self._stream_left
                and not self._buffer and len(data) <= CHUNK_SIZE):
            self._direct = data
            return
        if self._direct is not None:
            self._buffer.feed(self._direct)
            self._direct = None
        self._buffer.feed(data)

    @property
    def streamed_left(self) -> int:
        """Bytes of the current streamed payload still to come when nothing is buffered
        (the next read can then go straight to the consumer), else -1."""
        if self._direct is None and not self._buffer:
            return self._stream_left
        return -1

    @property
    def buffered(self) -> int:
        return len(self._buffer) + (len(self._direct) if self._direct is not None else 0)

    @property
    def in_payload(self) -> bool:
        """True while in the middle of a payload (a message boundary has not been reached)."""
        return self._whole is not None or self._stream_left >= 0 or self._direct is not None

    def next_event(self) -> Event:
        buf = self._buffer
        if self._stream_left < 0 and self._whole is None and self._direct is None:
            # The common case, a plain line, read from the buffer's fields directly.
            data = buf._data
            start = buf._start
            if self._blocks and data.startswith(b"task ", start):
                whole = read_task_block(data, start, self._parse, self._max_line)
                if whole is not None:
                    buf._start = buf._scan = whole[1]
                    return whole[0]
                # Not all here yet: line by line, as the rest arrives.
            got = line_at(data, start, self._max_line, buf._scan)
            if got is not None:
                line, buf._start = got
                buf._scan = buf._start
                msg = self._parse(line)
                if not msg.HAS_PAYLOAD:
                    return msg
                return self._payload_of(msg, line)
        return self._slow_next_event()

    def _slow_next_event(self) -> Event:
        if self._discarding is None:
            return self._next_from_buffer()
        while True:  # a payload read to nowhere: its chunks are dropped as they come
            event = self._next_from_buffer()
            if not isinstance(event, Chunk):
                return event
            if event.last:
                msg, self._discarding = self._discarding, None
                return msg

    def _next_from_buffer(self) -> Event:
        buf = self._buffer
        if self._direct is not None:
            data, self._direct = self._direct, None
            self._stream_left -= len(data)
            if self._stream_left == 0:
                self._stream_left = -1
                return Chunk(data, True)
            return Chunk(data, False)
        if self._stream_left >= 0:
            if self._stream_left == 0:
                self._stream_left = -1
                return Chunk(b"", True)
            piece = buf.maybe_at_most(min(self._stream_left, CHUNK_SIZE))
            if piece is None:
                return NEED_DATA
            self._stream_left -= len(piece)
            if self._stream_left == 0:
                self._stream_left = -1
                return Chunk(piece, True)
            return Chunk(piece, False)
        if self._whole is not None:
            msg = self._whole
            payload = buf.maybe_exactly(msg.payload_length)
            if payload is None:
                return NEED_DATA
            self._whole = None
            msg.payload = payload  # type: ignore[attr-defined]
            return msg
        line = buf.maybe_next_line()
        if line is None:
            if buf.pending_line_length() > self._max_line:
                raise RemoteProtocolError("line longer than %d bytes" % self._max_line)
            return NEED_DATA
        if len(line) > self._max_line:
            # Same verdict whether the line arrived in one piece or byte by byte.
            raise RemoteProtocolError("line longer than %d bytes" % self._max_line)
        msg = self._parse(line)
        if not msg.HAS_PAYLOAD:
            return msg
        return self._payload_of(msg, line)

    def _payload_of(self, msg: Message, line: bytes) -> Event:
        """Start (streamed) or complete (whole) the payload announced by ``msg``."""
        buf = self._buffer
        n = msg.payload_length
        if n < 0:
            raise RemoteProtocolError(f"negative payload length in {line!r}")
        self.payloads_started += 1
        self.payload_length = n
        if msg.STREAMED:
            self._stream_left = n
            return msg
        if self.admit is not None and not self.admit(msg):
            msg.payload = b""  # type: ignore[attr-defined]
            self._discarding = msg
            self._stream_left = n
            return self._slow_next_event()
        if n:
            data = buf.maybe_exactly(n)
            if data is None:
                self._whole = msg
                return NEED_DATA
            msg.payload = data  # type: ignore[attr-defined]
        return msg

    def take_remaining(self) -> bytes:
        """Everything buffered and not yet decoded (e.g. to hand over after a handshake)."""
        if self._direct is not None:
            self._buffer.feed(self._direct)
            self._direct = None
        return self._buffer.take_all()


class TaskBlockReader(MessageReader):
    """The reader of what a worker receives: a ``task ... end`` block always comes out as one
    :class:`TaskSpec`, whether it arrived in one piece (read in one go by
    ``read_task_block``) or in several (its lines gathered here as they come)."""

    __slots__ = ("_block",)

    def __init__(self, max_line: int = WORK_QUEUE_LINE_MAX) -> None:
        super().__init__(parse_from_manager, max_line, blocks=True)
        #: The block being gathered line by line, None between blocks.
        self._block: TaskSpec | None = None

    def next_event(self) -> Event:
        event = MessageReader.next_event(self)
        if self._block is None and not isinstance(event, TaskStart):
            return event  # a whole block (TaskSpec), or a message outside any block
        return self._gather(event)

    def _gather(self, event: Event) -> Event:
        """Add the lines of a block that came in pieces until its ``end``."""
        while True:
            block = self._block
            if block is None:
                if not isinstance(event, TaskStart):
                    return event
                self._block = TaskSpec(event.task_id)  # the rest has not arrived yet
            elif event is NEED_DATA:
                return event
            elif not isinstance(event, Message):  # a block inside a block
                raise RemoteProtocolError(f"unexpected data in task {block.task_id}")
            elif block.add(event):  # refuses what has no place in a block (put, file...)
                self._block = None
                return block
            event = MessageReader.next_event(self)

    @property
    def in_block(self) -> bool:
        """True while a task block has begun and its ``end`` has not arrived."""
        return self._block is not None


def worker_stream_reader() -> MessageReader:
    """Reader for what a manager receives from a worker."""
    return MessageReader(parse_from_worker)


def manager_stream_reader(blocks: bool = False) -> MessageReader:
    """Reader for what a worker receives from a manager; with ``blocks``, each task block
    comes as one :class:`TaskSpec` (see :class:`TaskBlockReader`) instead of a message per
    line."""
    if blocks:
        return TaskBlockReader()
    return MessageReader(parse_from_manager)
