"""What the manager and the worker wait on (sockets, task pidfds, warm interpreters), and
how they read a socket that is ready.

A thin layer over ``epoll`` (``selectors`` elsewhere): the caller registers a file
descriptor with the object to hand back when it is readable.  ``selectors`` builds a key
object per registration and per event; with one short task at a time that overhead is a
measurable part of a task's round trip.
"""

from __future__ import annotations

import select
import selectors
import socket
import ssl
from typing import Any


class ReadWatcher:
    """Readable-file watcher: ``register(fd, data)``, then ``wait(timeout)`` -> [data]."""

    def __init__(self) -> None:
        self._data: dict[int, Any] = {}
        #: The descriptor each registered object had (it may be closed by unregister time).
        self._fd_of: dict[Any, int] = {}
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._selector = None if self._epoll is not None else selectors.DefaultSelector()

    def register(self, fileobj: Any, data: Any) -> None:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        if not isinstance(fileobj, int):
            self._fd_of[fileobj] = fd
        if self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN)
        else:
            self._selector.register(fd, selectors.EVENT_READ)  # type: ignore[union-attr]
        self._data[fd] = data

    def want_write(self, fileobj: Any, on: bool) -> None:
        """Also report ``fileobj`` when it has room to write (``on``), or no longer."""
        fd = self._fd_of.get(fileobj, -1) if not isinstance(fileobj, int) else fileobj
        if fd < 0 or fd not in self._data:
            return
        if self._epoll is not None:
            self._epoll.modify(fd, select.EPOLLIN | (select.EPOLLOUT if on else 0))
        else:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
            self._selector.modify(fd, events)  # type: ignore[union-attr]

    def unregister(self, fileobj: Any) -> None:
        """Stop watching (a file descriptor not being watched is fine)."""
        if isinstance(fileobj, int):
            fd = fileobj
        else:
            fd = self._fd_of.pop(fileobj, -1)
            if fd < 0:
                fd = fileobj.fileno()
        if self._data.pop(fd, self) is self:
            return
        try:
            if self._epoll is not None:
                self._epoll.unregister(fd)
            else:
                self._selector.unregister(fd)  # type: ignore[union-attr]
        except (KeyError, ValueError, OSError):
            pass

    def wait(self, timeout: float) -> list[Any]:
        """The data of every registered descriptor that is readable within ``timeout`` s."""
        if self._epoll is not None:
            try:
                events = self._epoll.poll(timeout, max(1, len(self._data)))
            except InterruptedError:
                return []
            data = self._data
            return [data[fd] for fd, _ in events if fd in data]
        ready = self._selector.select(timeout)  # type: ignore[union-attr]
        return [self._data[key.fd] for key, _ in ready if key.fd in self._data]

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        else:
            self._selector.close()  # type: ignore[union-attr]
        self._data.clear()
        self._fd_of.clear()


def read_ready(sock: socket.socket, buf: bytearray, view: memoryview,
               streamed_left: int) -> bytes | memoryview | None:
    """One read from a readable ``sock`` into the caller's kept ``buf`` (``view`` of it): no
    fresh 1 MB allocation per read.  None when nothing can be read after all; ``b""`` when
    the peer closed; other errors raise OSError.

    ``streamed_left`` > 0 means the reader is inside a file's bytes with that many still to
    come and nothing buffered: the read stops at the file's end and returns a view of
    ``buf``, valid until the next read into it (the consumer writes it out before that).
    Otherwise a copy.  On a TLS socket, decrypted bytes the poller cannot see are read too.
    """
    tls = isinstance(sock, ssl.SSLSocket)
    try:
        if streamed_left > 0 and not tls:
            n = sock.recv_into(view[:min(streamed_left, len(buf))])
            return view[:n]
        n = sock.recv_into(buf)
        data = bytes(view[:n])
        while tls and n and sock.pending():  # type: ignore[attr-defined]
            n = sock.recv_into(buf)
            data += view[:n]
        return data
    except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return None


def endpoints_of(sock: socket.socket) -> tuple[object, object] | None:
    """A connected socket's (local, peer) addresses, for the password exchange's reflection
    rule (``protocol.auth``): (host, port) each, an IPv4-mapped IPv6 host written as IPv4, so
    that the two ends of one connection in one process name it alike.  None when the socket
    cannot say (closed, not connected)."""
    try:
        return _address(sock.getsockname()), _address(sock.getpeername())
    except OSError:
        return None


def _address(addr: Any) -> object:
    if isinstance(addr, tuple):
        host = addr[0]
        if isinstance(host, str) and host.startswith("::ffff:"):
            host = host[len("::ffff:"):]
        return host, addr[1]
    return addr
