"""One accepted TCP connection on the manager port (a worker or a status client).

Reads are non-blocking (the manager's selector says when); control lines are buffered and
flushed once per loop pass; bulk file data goes out with ``sendfile``.  Sends never block:
what the socket does not take waits in the connection's :class:`~.outbox.Outbox`, and the
manager drops a worker that does not take it within its transfer deadline.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import ssl
import tempfile
import time
from collections.abc import Callable
from typing import Any

from ..core.scheduling import WorkerRecord
from ..errors import RemoteProtocolError
from ..events import read_ready
from ..protocol.auth import PasswordExchange
from ..protocol.reader import MessageReader, worker_stream_reader
from .conversation import Conversation
from .outbox import Outbox

RECV_SIZE = 1 << 20
_RECV_BUFFER = bytearray(RECV_SIZE)
_RECV_VIEW = memoryview(_RECV_BUFFER)


class WorkerConnection:
    """Socket plus protocol state of one peer."""

    def __init__(self, sock: socket.socket, address: str, key: int, now: float,
                 pending: set[WorkerConnection] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.sock = sock
        #: Bytes and files the socket did not take yet (sending never blocks).
        self.outbox = Outbox(sock, clock)
        #: Told (connection, True/False) when the connection starts or stops waiting for room
        #: to write, so the manager watches its socket for that.
        self.watch_write: Callable[[WorkerConnection, bool], None] | None = None
        self.watching_write = False
        #: The manager's set of connections with something queued to send (this one joins
        #: it when it queues something), so a flush looks at those only.
        self.pending: set[WorkerConnection] = pending if pending is not None else set()
        self.address = address
        self.key = key
        self.reader: MessageReader = worker_stream_reader()
        self.out = bytearray()
        #: ``kill`` lines of finished tasks, sent after whatever ``out`` holds at the next
        #: flush (see ``write_after``), and the ids of those tasks.
        self.tail = bytearray()
        self.tail_ids: set[int] = set()
        #: ``out`` holds something the peer is waiting for (not only cleanup lines).
        self.urgent = False
        self.connected_at = now
        self.last_message = now
        self.last_check = now
        self.spoke_since_check = False
        self.worker: WorkerRecord | None = None
        #: The replies this connection waits for, and the output arriving now.
        self.talk = Conversation()
        #: Password exchange progress (None when no password, "done" once verified).
        #: The password exchange while it is under way (None: no password, or done).
        self.auth: PasswordExchange | None = None
        #: When the payload arriving now must be complete (see WorkQueue._transfer_wait),
        #: and which payload of the reader that deadline is for.
        self.payload_deadline = 0.0
        self.payload_number = 0
        self.closed = False
        #: It opened with ``wq-py-resume`` (one claim per connection).
        self.resume_claimed = False
        #: The peer closed its end in order (end of file, no reset): its process ended.
        #: Never set over TLS (see receive).
        self.peer_closed = False
        self.bytes_received = 0
        #: Debug-log writer when the manager has a debug log.
        self.debug: Any = None

    def fileno(self) -> int:
        return self.sock.fileno()

    # -- output --------------------------------------------------------------------------------

    def write(self, data: bytes, later: bool = False) -> None:
        """Queue ``data`` for the next flush.  ``later``: cleanup lines (``kill``/``unlink`` of
        a finished task) that need not make a flush happen; they leave with the next task
        rather than delay returning this one."""
        if self.debug is not None:
            from .logs import wire_text

            self.debug(wire_text("tx to", self, data))
        self.out += data
        self.pending.add(self)
        if not later:
            self.urgent = True

    def write_after(self, data: bytes, task_id: int) -> None:
        """Queue the ``kill`` of finished task ``task_id``: a cleanup line that may follow
        whatever is sent next, so the next task reaches the worker (and starts) first."""
        self.tail += data
        self.tail_ids.add(task_id)
        self.pending.add(self)

    def before_task(self, task_id: int) -> None:
        """Called before task ``task_id`` is written: an earlier attempt of the same task
        is killed before it, not after."""
        if task_id in self.tail_ids:
            self._untail()

    def _untail(self) -> None:
        if self.debug is not None:
            from .logs import wire_text

            self.debug(wire_text("tx to", self, bytes(self.tail)))
        self.out += self.tail
        self.tail.clear()
        self.tail_ids.clear()

    def flush(self, tail: bool = True) -> None:
        """Send what is queued; with ``tail`` (at a message boundary) the ``write_after``
        lines too.  ``send_file`` flushes without them: it is in the middle of a ``put``."""
        if tail and self.tail:
            self._untail()
        if self.out and not self.closed:
            data = bytes(self.out)
            self.out.clear()
            self.urgent = False
            self.outbox.send(data)
            if self.outbox:
                self._watch(True)

    def drain(self) -> None:
        """Send more of what waits in the outbox (its socket has room)."""
        if self.outbox.drain():
            self._watch(False)

    def _watch(self, on: bool) -> None:
        if on != self.watching_write:
            self.watching_write = on
            if self.watch_write is not None:
                self.watch_write(self, on)

    def send_file(self, fileobj: Any, offset: int, count: int) -> None:
        """Send ``count`` bytes of ``fileobj`` from ``offset`` (after pending control lines).

        Small files join the output buffer, so a task with small inputs leaves in one send;
        large ones go out with ``sendfile``.
        """
        if count <= 0:
            return
        if count < 65536:
            fileobj.seek(offset)
            data = fileobj.read(count)
            if len(data) != count:
                raise OSError(f"short read of {getattr(fileobj, 'name', '?')}")
            self.out += data
            self.pending.add(self)
            if isinstance(self.sock, ssl.SSLSocket):
                # End the file's bytes with this send, hence with a TLS record.  A CCTools
                # worker reads them with SSL_read sized to what is left of the file; bytes of
                # the next message left decrypted inside OpenSSL are invisible to its poll(),
                # and it would wait for more traffic before reading the task.
                self.flush(tail=False)
            return
        self.flush(tail=False)  # the file's header goes first; cleanup lines must not follow it
        try:
            fd = fileobj.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            fileobj.seek(offset)
            self.outbox.send(fileobj.read(count))  # a buffer in memory
        else:
            self.outbox.send_file(fd, offset, count)
        if self.outbox:
            self._watch(True)

    # -- input ---------------------------------------------------------------------------------

    def receive(self) -> bool | None:
        """Read what is available: True if something came, None if nothing could be read,
        False when the peer closed the connection."""
        # Into one buffer kept for all connections: the manager reads them one at a time,
        # and writes a streamed chunk out before it reads from any connection again.
        try:
            data = read_ready(self.sock, _RECV_BUFFER, _RECV_VIEW, self.reader.streamed_left)
        except OSError:
            return False
        if data is None:
            return None
        if not data:
            # Over TLS a reset reads as an end of file too (a "ragged" one, which the ssl
            # module does not tell apart): only plain TCP says the peer closed in order.
            self.peer_closed = not isinstance(self.sock, ssl.SSLSocket)
            return False
        self.bytes_received += len(data)
        self.reader.feed(data)  # type: ignore[arg-type]
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.auth is not None:
                self.auth.finish()  # its challenge is no longer one of ours
                self.auth = None
            self.talk.abort()  # a half-received output never appears under its name
            self.outbox.close()
            try:
                self.sock.close()
            except OSError:
                pass


def set_keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


def local_output_path(base: str, requested: str, item: str) -> str:
    """Local path of an item of a ``get`` reply: base + the part of ``item`` after the name.

    An item that is not the requested name or below it, or that climbs out with ``..``, is a
    hostile or broken worker: RemoteProtocolError.
    """
    if item == requested:
        return base
    suffix = item[len(requested):]
    if not item.startswith(requested + "/") or ".." in suffix.split("/") or "//" in suffix:
        raise RemoteProtocolError(f"worker sent {item!r}, which is not inside the requested "
                                  f"output {requested!r}")
    return base + suffix


def ensure_parent(path: str) -> None:
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)


class MemoryOutput:
    """Sink for an output the manager keeps instead of writing it at a local path.

    Small outputs stay in memory; larger ones go to an anonymous temporary file, so a huge
    result never has to fit in the manager's memory.  On close the task's
    ``memory_outputs[remote_name]`` holds ``bytes`` or an open binary file positioned at 0.
    """

    IN_MEMORY_LIMIT = 16 << 20

    def __init__(self, task: Any, remote_name: str, length: int) -> None:
        self.task = task
        self.remote_name = remote_name
        self.file: Any = tempfile.TemporaryFile() if length > self.IN_MEMORY_LIMIT else None
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        if self.file is not None:
            self.file.write(data)
        else:
            self.parts.append(bytes(data))  # data may be a view of the receive buffer

    def commit(self) -> None:
        if self.file is not None:
            self.file.seek(0)
            value: Any = self.file
        else:
            value = b"".join(self.parts)
        if "memory_outputs" not in self.task.__dict__:
            self.task.memory_outputs = {}
        self.task.memory_outputs[self.remote_name] = value

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
        self.parts = []


class StagedDirectory:
    """A directory output received beside its final name and renamed into place when its
    ``get`` reply ended without error, so a directory output is complete or absent: a worker
    that dies halfway, a disk that fills, or a ``dir`` reply for a file output leave nothing,
    and a later attempt never sees an earlier attempt's pieces.  Committing replaces whatever
    was at the final path (an earlier run's directory or file)."""

    def __init__(self, path: str) -> None:
        ensure_parent(path)
        self.path = path
        self.failed = False
        # 0o777 minus the umask, like any directory the program creates itself
        self.staging, _ = create_beside(path, ".part", lambda p: os.mkdir(p, 0o777))

    def path_for(self, final: str) -> str:
        """Where an item whose final path is ``final`` (the directory or below it) goes now."""
        return self.staging + final[len(self.path):]

    def commit(self) -> None:
        old = None
        if os.path.lexists(self.path):
            old, _ = create_beside(self.path, ".old", lambda p: os.mkdir(p, 0o700))
            os.replace(self.path, os.path.join(old, "x"))
        os.replace(self.staging, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def short_name(name: str, limit: int = 100) -> str:
    """At most ``limit`` bytes of ``name`` (whole characters), for the temporary names made
    beside an output: the output's own name may be as long as the file system allows."""
    data = os.fsencode(name)
    if len(data) <= limit:
        return name
    return os.fsdecode(data[:limit].decode("utf-8", "ignore").encode("utf-8"))


def create_beside(path: str, suffix: str, make: Callable[[str], Any]) -> tuple[str, Any]:
    """Create something new beside ``path`` under a fresh hidden name (``make(name)`` must
    fail with FileExistsError when the name is taken); returns the name and what ``make``
    returned."""
    directory, name = os.path.split(path)
    while True:
        candidate = os.path.join(directory, f".{short_name(name)}.{os.urandom(4).hex()}{suffix}")
        try:
            return candidate, make(candidate)
        except FileExistsError:
            continue


class FileOutput:
    """Sink for an output file: written beside its final name, renamed when complete.

    So an output file is either complete or absent, whatever happens to the worker or the
    connection while it streams.
    """

    def __init__(self, path: str) -> None:
        ensure_parent(path)
        if os.path.isdir(path) and not os.path.islink(path):
            raise IsADirectoryError(f"{path} is a directory")
        # 0o666 minus the umask, like any file the program creates itself
        self.partial, fd = create_beside(
            path, ".part", lambda p: os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        self.file = os.fdopen(fd, "wb")
        self.path = path

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def commit(self) -> None:
        self.file.close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            try:
                os.unlink(self.partial)
            except OSError:
                pass


