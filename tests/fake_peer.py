"""One fake Work Queue peer for hostile and timing tests: a raw socket that a test script
drives byte by byte from a thread while the test runs the real manager's loop (or a real
worker connects to it, when it listens)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

#: What a worker says when it connects (CCTools 7.17.1's handshake, one core).
HANDSHAKE = (b"workqueue 11 fakehost Linux x86_64 7.17.1\n"
             b"info worker-id worker-00000000000000000000000000000000\n"
             b"alive\nresource workers 1 1 1\nresource disk 1000 1000 1000\n"
             b"resource memory 1000 1000 1000\nresource gpus 0 0 0\nresource cores 1 1 1\n"
             b"resource tag 0\ninfo end_of_resource_update 0\ninfo tasks_running 0\n"
             b"info worker-end-time 0\n")


class FakePeer:
    """A scripted peer on a raw socket, run in a thread while the test drives the manager.

    Connects to ``port`` (a manager), or takes an already connected socket.  The script gets
    this object; everything read is kept in :attr:`received`, and an exception in the script
    is kept in :attr:`error` for the test to raise."""

    def __init__(self, port_or_sock: int | socket.socket, script: Callable[[FakePeer], Any],
                 ) -> None:
        self.sock = (port_or_sock if isinstance(port_or_sock, socket.socket)
                     else socket.create_connection(("127.0.0.1", port_or_sock)))
        self.received = b""
        self._unread = b""
        self.closed_by_peer = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(script,), daemon=True)
        self.thread.start()

    def _run(self, script: Callable[[FakePeer], Any]) -> None:
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

    # compatibility with the scripts of test_faults
    def take_task_and_report(self, result: bytes) -> None:
        """Handshake, receive a task, announce a result and send ``result`` when asked."""
        self.send(HANDSHAKE)
        self.read_until(b"end\n")
        self.send(b"available_results\n")
        self.read_until(b"send_results")
        self.send(result)

    def requested_output(self) -> str:
        """Wait for the manager's ``get`` and return the name it asks for."""
        self.read_until(b"get ")
        data = self.read_until(b" 1\n", after=b"get ")
        return data.split(b"get ")[1].split()[0].decode()


def drive(q: Any, *peers: FakePeer, timeout: float = 10) -> None:
    """Run the manager's loop until every peer's script has ended (or ``timeout``)."""
    deadline = time.time() + timeout
    while any(p.thread.is_alive() for p in peers) and time.time() < deadline:
        q.wait(0.05)
    for p in peers:
        p.check()
