"""Status answers on the manager port (``work_queue_status``, HTTP, ``q.status()``).

What the records say is read from the queue by ``snapshot.take``; this module formats the
replies and runs the thread that answers while the program is busy between ``wait()`` calls.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ..errors import AuthenticationError
from ..events import endpoints_of
from .snapshot import HTTP_ALIASES, take

#: The status requests of the protocol (CCTools ``process_queue_status``).
STATUS_REQUESTS = ("queue_status", "task_status", "worker_status", "wable_status",
                   "resources_status")

#: How long the status thread waits for the manager's loop to stand aside before it hands a
#: status client to the manager, which answers it inside ``wait()``.
LOCK_WAIT = 0.25


def build(q: Any, request: str, now: float) -> list[dict[str, Any]]:
    """Records for a status ``request`` (see ``snapshot.take``)."""
    return take(q, request, now)


def http_reply(q: Any, path: str, now: float) -> bytes:
    name = path.strip("/")
    if name in ("", "index.html"):
        body = ("<html><head><title>Work Queue</title></head><body><h1>Work Queue manager "
                f"{q.name or ''} on port {q.port}</h1><ul>"
                + "".join(f'<li><a href="/{k}">{k}</a></li>' for k in HTTP_ALIASES)
                + "</ul></body></html>").encode()
        ctype = "text/html"
    else:
        records = build(q, name, now)
        body = json.dumps(records, separators=(",", ":")).encode()
        ctype = "text/plain"
    head = ("HTTP/1.1 200 OK\nConnection: close\nAccess-Control-Allow-Origin: *\n"
            f"Content-type: {ctype}\n\n").encode()
    return head + body


# -- catalog and busy-time status answers (issue 5) ----------------------------------------------

def is_status_request(first_line: bytes) -> bool:
    """Whether a client's first line asks for status (a protocol request or an HTTP GET)."""
    text = first_line.decode("utf-8", "replace").strip()
    words = text.split()
    return (len(words) >= 2 and words[0] == "GET") or text in STATUS_REQUESTS


def answer(q: Any, first_line: bytes, now: float) -> bytes | None:
    """The reply to a status client's first line, or None if it is not a status request.
    In another thread than the manager's, call it holding the manager's state lock."""
    if not is_status_request(first_line):
        return None
    text = first_line.decode("utf-8", "replace").strip()
    words = text.split()
    if words[0] == "GET":
        return http_reply(q, words[1], now)
    return json.dumps(build(q, text, now), separators=(",", ":")).encode()


class StatusResponder:
    """Answers status queries on the manager's port while the application is busy between
    ``wait()`` calls (CCTools answers only inside ``wait``).

    The manager holds ``lock`` while it runs its loop.  When it does not, this thread accepts
    the connections waiting on the listening socket, does TLS and the password exchange like
    the manager would, and reads the first line: a status request is answered here; anything
    else (a worker) is handed to the manager through ``handoff``, with the bytes read so far.
    """

    MAX_CLIENTS = 32

    def __init__(self, q: Any) -> None:
        import queue as queue_module
        import threading
        import weakref

        # A weak reference: an unclosed, forgotten queue is still collected (and closed).
        self._q = weakref.ref(q)
        self.listener = q._listener
        self.lock = threading.Lock()
        self.handoff: queue_module.SimpleQueue[tuple[Any, Any, bytes, bool]] = \
            queue_module.SimpleQueue()
        self._stop = threading.Event()
        self._clients = threading.BoundedSemaphore(self.MAX_CLIENTS)
        self._thread = threading.Thread(target=self._run, name="wq-status", daemon=True)
        import socket

        self._wake_r, self._wake_w = socket.socketpair()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (before the listening socket closes); drop unclaimed handoffs."""
        self._stop.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread.is_alive() and not sys.is_finalizing():
            self._thread.join(1)
        for s in (self._wake_r, self._wake_w):
            s.close()
        while not self.handoff.empty():
            try:
                self.handoff.get_nowait()[0].close()
            except Exception:
                pass

    def _run(self) -> None:
        import select

        listener = self.listener
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([listener, self._wake_r], [], [], 5.0)
            except (OSError, ValueError):
                return  # the listener was closed
            if listener not in readable:
                continue
            if not self.lock.acquire(blocking=False):
                self._stop.wait(0.05)  # the manager is in wait(): it accepts
                continue
            accepted = []
            try:
                if self._stop.is_set():
                    return
                for _ in range(16):
                    try:
                        accepted.append(listener.accept())
                    except OSError:  # BlockingIOError when none is left
                        break
            finally:
                self.lock.release()
            for sock, addr in accepted:
                if not self._clients.acquire(blocking=False):
                    sock.close()
                    continue
                import threading

                threading.Thread(target=self._serve, args=(sock, addr), daemon=True,
                                 name="wq-status-client").start()

    def _answer_standing_in(self, q: Any, first: bytes) -> bytes | None:
        """The reply to a status request, built while the manager's loop stands aside (this
        thread holds ``lock``, so the records are a consistent snapshot); None for anything
        else, or when the manager is in ``wait()``, which then answers it itself."""
        import time

        if not is_status_request(first) or not self.lock.acquire(timeout=LOCK_WAIT):
            return None
        try:
            # Same order as wait(): ``lock`` then the state lock, which submit() and the
            # other public mutators hold while they change the tables the records read.
            if not q._state_lock.acquire(timeout=LOCK_WAIT):
                return None
            try:
                if not q._submit_lock.acquire(timeout=LOCK_WAIT):
                    return None
                try:
                    return answer(q, first, time.time())
                finally:
                    q._submit_lock.release()
            finally:
                q._state_lock.release()
        finally:
            self.lock.release()

    def _serve(self, sock: Any, addr: Any) -> None:
        """One client accepted while the manager is busy: answer it if it asks for status,
        else hand it (with the bytes read so far) to the manager; close it on any error."""
        q = self._q()
        handed = False
        try:
            if q is None:
                return
            conversation = _Client.open(sock, q)
            sock = conversation.sock
            if conversation.authed is None:
                return  # the password exchange failed
            first = conversation.first_line()
            if first is not None:
                reply = self._answer_standing_in(q, first)
                if reply is not None:
                    sock.sendall(reply)
                    return
                conversation.unread(first + b"\n")  # a worker, or the manager answers
            if self._stop.is_set():
                return
            self.handoff.put((sock, addr, conversation.rest(), bool(conversation.authed)))
            handed = True
        except (OSError, ValueError):
            pass
        finally:
            self._clients.release()
            if not handed:
                try:
                    sock.close()
                except OSError:
                    pass


class _Client:
    """The start of a client's conversation on the status thread: keepalive, TLS, the
    password exchange and the first line, read with a blocking socket and the manager's
    short timeout (the manager's own loop reads the same way without blocking)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buf = bytearray()
        #: True after a password exchange, False without a password, None when it failed.
        self.authed: bool | None = False

    @classmethod
    def open(cls, sock: Any, q: Any) -> _Client:
        from ..protocol import auth
        from .connection import set_keepalive

        set_keepalive(sock)
        sock.setblocking(True)
        sock.settimeout(q._short_timeout)
        if q._tls is not None:
            sock = q._tls.wrap_socket(sock, server_side=True)
        client = cls(sock)
        if q._password is not None:
            exchange = auth.PasswordExchange(q._password, initiator=False,
                                              endpoints=endpoints_of(sock))
            try:
                auth.run_blocking(exchange, sock.sendall, client.line)
                client.authed = True
            except AuthenticationError:
                client.authed = None
        return client

    def line(self) -> bytes | None:
        """The next line (without its end), or None at the end of the stream or after 4 KB
        without one."""
        while b"\n" not in self.buf:
            if len(self.buf) > 4096:
                return None
            data = self.sock.recv(4096)
            if not data:
                return None
            self.buf.extend(data)
        i = self.buf.index(b"\n")
        out = bytes(self.buf[:i]).replace(b"\r", b"")
        del self.buf[:i + 1]
        return out

    def first_line(self) -> bytes | None:
        try:
            return self.line()
        except TimeoutError:
            return None

    def unread(self, data: bytes) -> None:
        self.buf[:0] = data

    def rest(self) -> bytes:
        """What was read and not used, including decrypted bytes that select cannot see; the
        socket is left non-blocking for the manager's loop."""
        while getattr(self.sock, "pending", None) and self.sock.pending():
            self.buf.extend(self.sock.recv(self.sock.pending()))
        self.sock.setblocking(False)
        return bytes(self.buf)
