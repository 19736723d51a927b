"""One fake worker and one fake manager that speak the wire protocol byte by byte.

Both run on real loopback sockets.  A *script* (a function given the peer) plays one side of
the conversation in a thread while the test drives the real other side: the real manager's
loop (``drive``), or a real worker process that connects to a :class:`FakeManager`.
What the fakes send of their own (the handshake, ``available_results``) is written with the
protocol's message encoders; a script may send any bytes at all, which is how hostile peers
are played.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ..protocol import messages as m
from ..protocol.reader import Chunk, MessageReader, manager_stream_reader, worker_stream_reader
from ..protocol.task_block import TaskSpec

Script = Callable[["FakePeer"], Any]


def worker_handshake(hostname: str = "fakehost", cores: int = 1, memory: int = 1000,
                     disk: int = 1000) -> bytes:
    """What a CCTools 7.17.1 worker says when it connects (``workqueue`` line, resources,
    the end-of-resources marker)."""
    lines = [
        m.Hello(11, hostname, "Linux", "x86_64", "7.17.1"),
        m.Info("worker-id", "worker-" + "0" * 32),
        m.Alive(),
        m.ResourceReport("workers", 1, 1, 1),
        m.ResourceReport("disk", disk, disk, disk),
        m.ResourceReport("memory", memory, memory, memory),
        m.ResourceReport("gpus", 0, 0, 0),
        m.ResourceReport("cores", cores, cores, cores),
        m.ResourceReport("tag", 0),
        m.Info("end_of_resource_update", "0"),
        m.Info("tasks_running", "0"),
        m.Info("worker-end-time", "0"),
    ]
    return b"".join(msg.encode() for msg in lines)


#: The handshake of a one-core fake worker.
HANDSHAKE = worker_handshake()


class FakePeer:
    """A scripted peer on a raw socket, run in a thread while the test drives the other side.

    Connects to ``port_or_sock`` (a port on 127.0.0.1), or takes an already connected socket.
    The script gets this object; everything read is kept in :attr:`received`, and an exception
    in the script is kept in :attr:`error` for the test to raise (:meth:`check`).  With
    ``start=False`` the script waits for :meth:`start`."""

    #: How :meth:`message` reads what the other side sends (a worker reads a manager).
    make_reader: Callable[[], MessageReader] = staticmethod(worker_stream_reader)

    def __init__(self, port_or_sock: int | socket.socket, script: Script,
                 start: bool = True) -> None:
        self.sock = (port_or_sock if isinstance(port_or_sock, socket.socket)
                     else socket.create_connection(("127.0.0.1", port_or_sock)))
        self.received = b""
        self._unread = b""
        self._reader = self.make_reader()
        #: The bytes of the last streamed message (``put``, ``file``) :meth:`message` read.
        self.streamed = b""
        self.closed_by_peer = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(script,), daemon=True)
        if start:
            self.thread.start()

    def start(self) -> None:
        self.thread.start()

    def _run(self, script: Script) -> None:
        try:
            script(self)
        except BaseException as e:  # reported by check()
            self.error = e

    def check(self) -> None:
        """Raise what the script raised, in the test's thread."""
        if self.error is not None:
            raise self.error

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed_by_peer = True
            return False
        self.received += data
        self._unread += data
        return True

    def line(self, timeout: float = 10) -> bytes | None:
        """The next line the other side sent (without its newline); None once it closed."""
        while b"\n" not in self._unread:
            if not self._fill(timeout):
                return None
        line, _, self._unread = self._unread.partition(b"\n")
        return line

    def message(self, timeout: float = 10) -> m.Message | TaskSpec | None:
        """The next whole message the other side sent, read with the protocol's reader (a
        payload included, a task block as one TaskSpec, a streamed payload in
        :attr:`streamed`); None once it closed.  A peer reads by messages or by lines
        (:meth:`line`), not both."""
        while True:
            self._reader.feed(self._unread)
            self._unread = b""
            event = self._reader.next_event()
            if isinstance(event, Chunk):
                raise AssertionError("a payload chunk outside a streamed message")
            if isinstance(event, m.Message | TaskSpec):
                if isinstance(event, m.Message) and event.STREAMED:
                    self.streamed = self._rest_of_stream(timeout)
                return event
            if not self._fill(timeout):
                return None

    def _rest_of_stream(self, timeout: float) -> bytes:
        data = b""
        while True:
            event = self._reader.next_event()
            if isinstance(event, Chunk):
                data += bytes(event.data)
                if event.last:
                    return data
            elif not self._fill(timeout):
                raise AssertionError("the connection closed inside a payload")
            else:
                self._reader.feed(self._unread)
                self._unread = b""

    def read_until(self, marker: bytes, timeout: float = 10, after: bytes = b"") -> bytes:
        """Read until ``marker`` appears (after the first ``after``, if given)."""
        while marker not in self.received[self.received.find(after):]:
            if not self._fill(timeout):
                break
        self._unread = b""
        return self.received

    def read_to_close(self, timeout: float = 10) -> bytes:
        """Everything until the other side closes the connection, or is silent ``timeout``
        seconds (see :attr:`closed_by_peer`)."""
        try:
            while self._fill(timeout):
                pass
        except TimeoutError:
            pass
        return self.received


class FakeWorker(FakePeer):
    """A fake worker: a :class:`FakePeer` that connects to a manager's port, with the steps
    most scripts share."""

    make_reader = staticmethod(lambda: manager_stream_reader(blocks=True))

    def handshake(self) -> None:
        self.send(HANDSHAKE)

    def take_task_and_report(self, result: bytes) -> None:
        """Handshake, receive a task, announce a result and send ``result`` when asked."""
        self.handshake()
        self.read_until(m.End().encode())
        self.send(m.AvailableResults().encode())
        self.read_until(m.SendResults.VERB)
        self.send(result)

    def requested_output(self) -> str:
        """Wait for the manager's ``get`` and return the name it asks for."""
        self.read_until(b"get ")
        data = self.read_until(b" 1\n", after=b"get ")
        return data.split(b"get ")[1].split()[0].decode()


class FakeManager:
    """A fake manager: a port on 127.0.0.1 that a real worker connects to.

    ``accept(script)`` takes the worker's connection as a :class:`FakePeer` that runs the
    script (or none); ``accept_socket()`` hands over the raw socket."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]

    def accept_socket(self, timeout: float = 20) -> socket.socket:
        self.listener.settimeout(timeout)
        sock, _ = self.listener.accept()
        return sock

    def accept(self, script: Script | None = None, timeout: float = 20) -> FakePeer:
        return FakePeer(self.accept_socket(timeout), script or (lambda peer: None))

    def close(self) -> None:
        self.listener.close()

    def __enter__(self) -> FakeManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def drive(q: Any, *peers: FakePeer, timeout: float = 10) -> None:
    """Run the manager's loop (``q.wait``) until every peer's script has ended (or
    ``timeout``), then raise what a script raised."""
    deadline = time.time() + timeout
    while any(p.thread.is_alive() for p in peers) and time.time() < deadline:
        q.wait(0.05)
    for p in peers:
        p.check()
