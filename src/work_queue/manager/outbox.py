"""What waits to go out on one connection, sent without ever blocking the manager's loop.

A worker that reads slowly (or not at all) must not hold up everyone else: when its socket
buffer is full, the rest of a message or of a file waits here, in order, and goes out as the
socket takes it (the manager watches the socket for room to write).  How long that may take
is the manager's rule (:meth:`WorkQueue._transfer_wait`, from ``blocked_since`` and
``blocked_bytes``); past it the worker is dropped and its tasks run elsewhere.

Files are sent with ``sendfile`` from a duplicate of the caller's descriptor (the caller may
close its file at once); over TLS, which ``sendfile`` cannot encrypt, they are read in pieces
and sent as bytes.
"""

from __future__ import annotations

import os
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any

#: Bytes of a file read at a time over TLS.
TLS_PIECE = 256 * 1024

_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantWriteError,
                ssl.SSLWantReadError)


class _FileRange:
    __slots__ = ("fd", "offset", "left")

    def __init__(self, fd: int, offset: int, count: int) -> None:
        self.fd = fd
        self.offset = offset
        self.left = count


class Outbox:
    """The ordered bytes and file ranges still to send on ``sock`` (non-blocking)."""

    def __init__(self, sock: Any, clock: Callable[[], float]) -> None:
        self.sock = sock
        self.clock = clock
        self._items: deque[bytes | memoryview | _FileRange] = deque()
        #: Since when something has been waiting, and how many bytes were queued since then.
        self.blocked_since: float | None = None
        self.blocked_bytes = 0

    def __bool__(self) -> bool:
        return bool(self._items)

    def send(self, data: bytes) -> None:
        """Send ``data`` now, as far as the socket takes it; queue the rest."""
        if not self._items:
            try:
                sent = self.sock.send(data)  # usually all of it: the buffer has room
            except _WOULD_BLOCK:
                sent = 0
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        self._queue(data, len(data))
        self.drain()

    def send_file(self, fd: int, offset: int, count: int) -> None:
        """Send ``count`` bytes of the file open at ``fd`` from ``offset`` (a duplicate of
        ``fd`` is kept until they are sent)."""
        self._queue(_FileRange(os.dup(fd), offset, count), count)
        self.drain()

    def _queue(self, item: bytes | memoryview | _FileRange, size: int) -> None:
        if self.blocked_since is None:
            self.blocked_since = self.clock()
            self.blocked_bytes = 0
        self.blocked_bytes += size
        self._items.append(item)

    def drain(self) -> bool:
        """Send what the socket takes now; True once nothing is left.  OSError: the
        connection is broken."""
        items = self._items
        while items:
            item = items[0]
            if isinstance(item, _FileRange):
                if not self._send_range(item):
                    return False
                os.close(item.fd)
                items.popleft()
                continue
            try:
                sent = self.sock.send(item)
            except _WOULD_BLOCK:
                return False
            if sent < len(item):
                items[0] = memoryview(item)[sent:]
                return False
            items.popleft()
        self.blocked_since = None
        return True

    def _send_range(self, r: _FileRange) -> bool:
        """Advance one file range; True when it is all sent."""
        tls = isinstance(self.sock, ssl.SSLSocket)
        while r.left > 0:
            try:
                if tls:
                    piece = os.pread(r.fd, min(r.left, TLS_PIECE), r.offset)
                    if not piece:
                        raise OSError(f"the file ended {r.left} bytes early")
                    sent = self.sock.send(piece)
                else:
                    sent = os.sendfile(self.sock.fileno(), r.fd, r.offset, r.left)
                    if sent == 0:
                        raise OSError(f"the file ended {r.left} bytes early")
            except _WOULD_BLOCK:
                return False
            r.offset += sent
            r.left -= sent
        return True

    def close(self) -> None:
        """Forget what was not sent (the connection is going away)."""
        for item in self._items:
            if isinstance(item, _FileRange):
                os.close(item.fd)
        self._items.clear()
        self.blocked_since = None
