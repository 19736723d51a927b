"""The worker's side of ``wq-py-resume``: when the connection to the manager drops, the
tasks go on and the worker comes back for them (docs/protocol-resume.md).

A manager that takes resumed sessions answers the worker's ``feature wq-py-resume`` with a
token and a grace time (``on_token``).  When the connection then drops (the socket reads
end-of-file or fails) while the worker holds tasks, the session does not end: it goes *away*
(``lost``).  Its loop goes on (tasks start, end, are killed at their wall time, the worker's
own ``--wall-time`` still ends it) but results are kept, not sent (the core's ManagerLost).
Every so often (at once, then with the worker's backoff) ``step`` connects again,
authenticates if there is a password, and sends ``wq-py-resume`` with the token, the worker
id and the tasks it holds:

* ``wq-py-resumed``: the new connection replaces the old one; the results go out again (the
  manager takes each once) and the session goes on as if nothing happened;
* ``wq-py-resume-refused`` (a new manager at the address, or the grace time is over): the
  session ends, which kills the tasks and empties the cache, and the worker serves the
  manager normally on the same connection (``handover``);
* the connection closes without an answer (a manager that does not know the extension):
  the session ends and the worker reconnects as usual.

After the grace time without coming back, the session ends too: the manager has given the
tasks to others by then.  A CCTools manager never hands out a token, so with it nothing here
happens: the session ends when the connection drops, as CCTools' worker's does.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..core import worker_state as ws
from ..errors import AuthenticationError, RemoteProtocolError
from ..protocol import messages as m
from ..protocol.reader import MessageReader, manager_stream_reader
from . import login

if TYPE_CHECKING:
    from .session import Session

logger = logging.getLogger(__name__)

#: Seconds a resume attempt waits for the manager's answer.
REPLY_TIMEOUT = 30.0


def claim(sock: socket.socket, password: bytes | None, token: str, worker_id: str,
          held: dict[int, str]) -> tuple[m.Message, MessageReader]:
    """Authenticate, send ``wq-py-resume`` with the ``held`` tasks, read the answer
    (blocking, bounded by REPLY_TIMEOUT): the reply, and the reader that holds what came
    after it.  Used by the worker and by the foreman (``foreman_uplink.py``)."""
    sock.settimeout(REPLY_TIMEOUT)
    reader = manager_stream_reader(blocks=True)
    buf = reader._buffer  # bytes after the answer stay for the session's reader
    if password is not None:
        login.authenticate(sock, password, buf)
    payload = m.Resume.held_payload(held)
    sock.sendall(m.Resume(token, worker_id, len(payload)).encode() + payload)
    line = login.line_reader(sock, buf, lambda: RemoteProtocolError(
        "the manager closed the connection"))()
    reply = m.parse_from_manager(line)
    if not isinstance(reply, m.Resumed | m.ResumeRefused):
        raise RemoteProtocolError(f"unexpected answer to wq-py-resume: {line[:100]!r}")
    return reply, reader


class Rejoin:
    """Coming back to the manager after the connection dropped (see the module docstring)."""

    def __init__(self, session: Session) -> None:
        self.s = session
        #: the session's token and grace time, from ``wq-py-resume-token`` ("": none)
        self.token = ""
        self.grace = 0.0
        #: when the connection dropped (-1: connected), when to try next, the next backoff
        self.away_since = -1.0
        self.next_try = 0.0
        self.backoff = 0.0
        #: a connection to a manager that refused the resume, authenticated, for the next
        #: session
        self.handover: socket.socket | None = None
        #: the cache object a ``put`` was writing when the connection dropped
        self.partial: str | None = None

    def on_token(self, msg: m.ResumeToken) -> None:
        self.token, self.grace = msg.token, float(msg.grace)

    def serve(self, loop: Callable[[], None]) -> None:
        """Run the session's loop; when sending or reading fails, go away and run it again
        (if the session may come back), else let the error end the session."""
        while True:
            try:
                loop()
                return
            except OSError:
                if not self.lost(time.time()):
                    raise

    def lost(self, now: float) -> bool:
        """The connection dropped: True if the session waits to come back (it is away)."""
        s = self.s
        if self.away_since >= 0:
            return True
        if not self.token or not s.core.tasks:
            return False
        logger.warning("connection to the manager lost; keeping %d task(s) and coming back "
                       "for them (for up to %g s)", len(s.core.tasks), self.grace)
        self.away_since = self.next_try = now
        self.backoff = max(0.1, min(1.0, s.cfg.min_backoff))
        s.watcher.unregister(s.sock)
        try:
            s.sock.close()
        except OSError:
            pass
        s.out.clear()
        # A task block or a file cut short: the manager sends the task again elsewhere and
        # is told the object is not in the cache.
        s.pending_task = None
        self.partial = s.incoming.abandon()
        s.core.handle(ws.ManagerLost(), now)
        return True

    def timeout(self, timeout: float, now: float) -> float:
        """The session loop's wait ``timeout``, shortened to the next attempt when away."""
        return min(timeout, self.next_try - now) if self.away_since >= 0 else timeout

    def step(self, now: float) -> None:
        """Away: try to come back if it is time; end the session after the grace time."""
        s = self.s
        if self.away_since < 0 or now < self.next_try:
            return
        if now - self.away_since > self.grace:
            logger.warning("could not reach the manager again in %g s; dropping the tasks",
                           self.grace)
            s.outcome = "lost"
            return
        sock = s.w._connect()
        if sock is None:
            self.next_try = now + self.backoff
            self.backoff = min(max(s.cfg.max_backoff, 0.1), self.backoff * 2)
            return
        try:
            reply, reader = self._claim(sock)
        except OSError as e:  # the link broke again, or no answer in time: try again
            sock.close()
            logger.info("resume attempt failed: %s", e)
            self.next_try = now + self.backoff
            return
        except (RemoteProtocolError, AuthenticationError) as e:
            # Closed without an answer: a manager that does not know the extension.
            sock.close()
            logger.warning("the manager did not take the session back (%s); dropping the "
                           "tasks", e)
            s.outcome = "lost"
            return
        if isinstance(reply, m.ResumeRefused):
            print(f"work_queue_worker: the manager refused to resume the session "
                  f"({reply.reason}); dropping its tasks", file=sys.stderr)
            self.handover = sock
            s.outcome = "lost"
            return
        self._resumed(sock, reader, reply, time.time())

    def _claim(self, sock: socket.socket) -> tuple[m.Message, MessageReader]:
        s = self.s
        return claim(sock, s.cfg.password, self.token, s.worker_id, s.core.held())

    def _resumed(self, sock: socket.socket, reader: MessageReader, reply: m.Resumed,
                 now: float) -> None:
        """The manager took the session back: serve it on the new connection."""
        s = self.s
        logger.warning("back with the manager after %.1f s: it kept %d task(s)",
                       now - self.away_since, reply.kept)
        sock.setblocking(False)
        s.sock = s.outgoing.sock = sock
        s.reader = reader
        s.watcher.register(sock, None)
        self.away_since = -1.0
        s.out.clear()
        if self.partial is not None:
            s.send(s.incoming.forget_cut_short(self.partial))
            self.partial = None
        s.core.handle(ws.ManagerSpoke(), now)
        s._do(s.core.handle(ws.ManagerBack(), now), now)
        s.flush()
        s._receive(buffered=True)  # what came with the answer (kill lines)

    def goodbye(self) -> None:
        """The session ends on purpose with the connection up: say so, so the manager takes
        the tasks back at once rather than wait for the worker to return."""
        if self.token and self.away_since < 0 and self.s.outcome != "lost":
            try:
                self.s.sock.send(m.Leaving().encode())
            except OSError:
                pass
