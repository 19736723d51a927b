"""A TCP proxy on loopback that can cut every connection through it at once.

What a NAT table expiring, a firewall resetting long-lived connections or a switch flapping
does to a manager and its workers: both ends of each connection see it reset, and new
connections go through again.  ``ResettingProxy(port)`` listens on a port of its own and
forwards each connection to ``127.0.0.1:port``; :meth:`reset` closes both sides of every
connection open now with a TCP reset (``SO_LINGER`` 0), the way a middlebox that forgot the
connection answers; with :attr:`refusing` set, new connections are reset too (the link stays
down).  One thread runs it (a selector), so the bytes keep their order.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading


class ResettingProxy:
    """Forwards connections to ``127.0.0.1:target``; :meth:`reset` cuts them all."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.port: int = self.listener.getsockname()[1]
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        #: socket -> its other end, for every open connection (both directions)
        self.peer: dict[socket.socket, socket.socket] = {}
        #: connections accepted so far, and resets done
        self.accepted = 0
        self.resets = 0
        #: While True, new connections are reset at once (the link is still down).
        self.refusing = False
        self._lock = threading.Lock()
        self._reset_wanted = threading.Event()
        self._reset_done = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="resetting-proxy", daemon=True)
        self._thread.start()

    def open_connections(self) -> int:
        with self._lock:
            return len(self.peer) // 2

    def reset(self, timeout: float = 5.0) -> int:
        """Reset every connection open now; returns how many were cut."""
        n = self.open_connections()
        self._reset_done.clear()
        self._reset_wanted.set()
        self._reset_done.wait(timeout)
        return n

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        with self._lock:
            for s in list(self.peer):
                s.close()
            self.peer.clear()
        self.listener.close()
        self.selector.close()

    def _run(self) -> None:
        while not self._stop:
            if self._reset_wanted.is_set():
                self._reset_all()
                self._reset_wanted.clear()
                self._reset_done.set()
            for key, _ in self.selector.select(0.05):
                if key.data is None:
                    self._accept()
                else:
                    self._forward(key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except BlockingIOError:
            return
        if self.refusing:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            return
        try:
            server = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError:
            client.close()
            return
        self.accepted += 1
        for s in (client, server):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.selector.register(s, selectors.EVENT_READ, True)
        with self._lock:
            self.peer[client] = server
            self.peer[server] = client

    def _forward(self, sock: socket.socket) -> None:
        other = self.peer.get(sock)
        if other is None:
            return
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock, reset=False)
            return
        try:
            other.setblocking(True)
            other.sendall(data)
            other.setblocking(False)
        except OSError:
            self._drop(sock, reset=False)

    def _drop(self, sock: socket.socket, reset: bool) -> None:
        with self._lock:
            other = self.peer.pop(sock, None)
            if other is not None:
                self.peer.pop(other, None)
        for s in (sock, other):
            if s is None:
                continue
            try:
                self.selector.unregister(s)
            except (KeyError, ValueError):
                pass
            if reset:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()

    def _reset_all(self) -> None:
        with self._lock:
            clients = list(self.peer)
        done: set[socket.socket] = set()
        for s in clients:
            if s not in done:
                done.add(s)
                done.add(self.peer.get(s, s))
                self._drop(s, reset=True)
        self.resets += 1
