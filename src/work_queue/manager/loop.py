"""The manager's network loop: accept, poll, read, flush, timers (a part of ``WorkQueue``).

A pass (``_pass``): dispatch what the core says, flush, poll the sockets (the only place the
manager blocks, never holding ``_state_lock``), feed each connection's bytes to its reader and
the messages to ``Receiver``, then the timers: fast abort every 0.1 s, liveness, draining,
factory trimming and the stats log every second.  What to do is decided by the core
(``core/manager_state.py``) and carried out by ``Dispatcher``.
"""

from __future__ import annotations

import errno
import logging
import time
from typing import Any

from ..core import events as ev
from ..core.manager_state import ManagerState
from ..core.policies import CHECK, DROP_HANDSHAKE, KEEP, Liveness, liveness_verdict
from ..core.policies import transfer_wait as _policy_transfer_wait
from ..errors import AuthenticationError, RemoteProtocolError
from ..events import endpoints_of
from ..protocol import auth
from ..protocol import messages as m
from ..protocol.reader import NEED_DATA, Chunk
from . import logs
from .connection import (
    WorkerConnection,
    set_keepalive,
)
from .receiver import admission

logger = logging.getLogger("work_queue.manager.queue")  # one name users filter on

#: Seconds a loop pass may spend reading ready connections before it answers them and polls
#: again (a thousand workers answering at once would otherwise make one long pass).
PASS_BUDGET = 0.04

#: What the timer says when it drops a connection (policies.liveness_verdict).
_DROP_MESSAGES = {
    "slow-reader": "did not take {blocked} bytes in time; dropping it",
    "slow-payload": "sends a payload of {payload} bytes too slowly; dropping it",
    "stalled": "stalled for {stall:.0f} s in the middle of a message; dropping it",
    "silent": "did not answer a keepalive check; dropping it",
}

class ManagerLoop:
    """The loop half of WorkQueue (a mixin: it shares the queue's attributes)."""

    # Set by WorkQueue.__init__; declared for readers and type checkers.
    _state: ManagerState


    def _pass(self, now: float, poll_timeout: float) -> bool:
        """One iteration of the manager loop; True if anything happened."""
        progressed = self._dispatch_all(now)
        self._flush_all()
        # The statistics of the tasks returned since the last pass, now that the workers
        # have their next tasks (they are off the path from one task to the next).
        self._state.settle()
        # Block in poll unless there is more to do now: more tasks to place, or tasks to return.
        more = progressed and self._state.dispatch_pending
        poll = 0.0 if more or self._state.returned else poll_timeout
        t0 = time.perf_counter()
        events = self._poll(poll)
        started = time.perf_counter()
        self._state.time_spent("polling", int((started - t0) * 1e6))  # handle(TimeSpent)
        handled = 0
        for conn in events:
            if handled and time.perf_counter() - started > PASS_BUDGET:
                # A bounded pass: the other connections are still readable at the next poll
                # (epoll is level-triggered), after this pass's answers have gone out.
                break
            handled += 1
            if conn is None:
                self._accept(self._now())
                progressed = True
                continue
            if conn.closed:
                continue
            if conn.watching_write:
                try:
                    conn.drain()
                except OSError as e:
                    self._debug_msg(f"sending to {conn.address} failed: {e}")
                    self._drop(conn, "UNKNOWN" if conn.worker is None else "FAILURE")
                    continue
            got = conn.receive()
            if got is None:
                continue  # it had room to write, nothing to read
            if not got:
                self._drop(conn, "UNKNOWN" if conn.worker is None else "FAILURE")
                progressed = True
                continue
            try:
                self._process(conn, self._now())
            except (RemoteProtocolError, OSError, ValueError) as e:
                logger.warning("dropping worker %s: %s", conn.address, e)
                self._debug_msg(f"dropping worker {conn.address}: {e}")
                self._drop(conn, "FAILURE")
            progressed = True
        if events:
            # Answers to what just arrived (the next task, kill/unlink of finished ones) leave
            # together in one send per worker.
            self._dispatch_all(self._now(), burst=min(handled, 100))
        # Cleanup lines for tasks about to be returned wait for the next pass (or close()),
        # so wait() returns without a send on its path.
        self._flush_all(everything=not self._state.returned)
        now = self._now()
        if now - self._last_fast_abort >= 0.1:
            self._last_fast_abort = now
            self._abort_slow_tasks(now)
        if now - self._last_periodic >= 1.0:
            self._periodic(now)
        self._state.capacity.pass_done(progressed)
        return progressed

    def _poll(self, timeout: float) -> Any:
        """The readable connections (None: the listener), waiting up to ``timeout``.  While
        it blocks the state does not change, so ``_state_lock`` is free for another thread."""
        if timeout <= 0:
            return self._watcher.wait(0.0)
        self._submit_release()
        self._state_lock.release()
        try:
            return self._watcher.wait(timeout)
        finally:
            self._state_lock.acquire()
            self._submit_acquire()

    def _flush_all(self, everything: bool = True) -> None:
        if not self._unsent:
            return
        for conn in list(self._unsent):
            if not (conn.out or conn.tail) or conn.closed:
                self._unsent.discard(conn)
            elif everything or conn.urgent:
                self._unsent.discard(conn)
                try:
                    conn.flush()
                except OSError as e:
                    logger.warning("send to %s failed: %s", conn.address, e)
                    self._drop(conn, "FAILURE")

    def _dispatch_all(self, now: float, burst: int = 100) -> bool:
        progressed = False
        # A bounded burst, so results keep flowing in while many workers are being filled.
        for _ in range(burst):
            d = self._state.next_dispatch(now)
            if d is None:
                break
            progressed = True
            self._send_task(d, now)
        if self._state.out:  # tasks past their end time failed while choosing
            self._carry_out(self._state.collect())
        return progressed

    def _accept(self, now: float) -> None:
        for _ in range(max(10, self._state.wait_for_workers)):
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                logger.warning("accept failed: %s", e)
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    self._shed_idle_connection()
                return
            set_keepalive(sock)
            if self._tls is not None:
                # Like CCTools, the TLS handshake is done right away (bounded by short-timeout).
                sock.settimeout(self._short_timeout)
                try:
                    sock = self._tls.wrap_socket(sock, server_side=True)
                except (OSError, ValueError) as e:
                    logger.warning("TLS handshake with %s failed: %s", addr[0], e)
                    sock.close()
                    continue
            sock.setblocking(False)
            self._add_connection(sock, addr, now, self._password is not None)

    def _add_connection(self, sock: Any, addr: Any, now: float,
                        needs_password: bool) -> WorkerConnection:
        """Make a connection of ``sock`` and watch it; with ``needs_password``, nothing but
        the password exchange is accepted from it until that succeeds."""
        key = self._next_key
        self._next_key += 1
        conn = WorkerConnection(sock, f"{addr[0]}:{addr[1]}", key, now, self._unsent,
                                self._now)
        conn.watch_write = self._watch_write
        if self._debug:
            conn.debug = self._debug.write
            self._debug.write(f"new connection from {conn.address}")
        if needs_password:
            assert self._password is not None
            conn.auth = auth.PasswordExchange(self._password, initiator=False,
                                              endpoints=endpoints_of(sock))
        conn.reader.admit = admission(conn)
        self._conns[key] = conn
        self._watcher.register(sock, conn)
        return conn

    def _adopt_handoffs(self) -> None:
        """Connections the status thread accepted while the application was busy and that
        turned out to be workers (issue 5): they join the loop with the bytes read so far."""
        handoff = self._status_responder.handoff
        while not handoff.empty():
            sock, addr, data, authed = handoff.get()
            now = self._now()
            conn = self._add_connection(sock, addr, now, False)  # authenticated if need be
            if data:
                conn.bytes_received += len(data)
                conn.reader.feed(data)
                try:
                    self._process(conn, now)
                except (RemoteProtocolError, OSError, ValueError) as e:
                    logger.warning("dropping worker %s: %s", conn.address, e)
                    self._drop(conn, "FAILURE")

    def _shed_idle_connection(self) -> None:
        """Out of file descriptors: close the oldest connection that never handshook."""
        pending = [c for c in self._conns.values() if c.worker is None]
        if pending:
            oldest = min(pending, key=lambda c: c.connected_at)
            self._debug_msg(f"out of file descriptors: dropping {oldest.address}, which "
                            "never completed a handshake")
            self._drop(oldest, "UNKNOWN")

    def _drop(self, conn: WorkerConnection, reason: str, released: bool = False) -> None:
        """Close ``conn``; the core takes its worker's tasks back (``WorkerGone``)."""
        if conn.closed and conn.key not in self._conns:
            return
        self._conns.pop(conn.key, None)
        self._unsent.discard(conn)
        self._watcher.unregister(conn.sock)
        conn.close()
        w = conn.worker
        if w is None:
            if reason == "STATUS_WORKER" and self._txn:
                # CCTools logs a status client's goodbye as a worker without an id
                self._txn.worker_disconnected(None, conn.address, reason, self._now())
            return
        now = self._now()
        self._carry_out(self._state.handle(
            ev.WorkerGone(w.key, reason, released=released, ended=conn.peer_closed), now))
        if self._txn:
            self._txn.worker_disconnected(w, conn.address, reason, now)

    def _last_word(self, conn: WorkerConnection, data: bytes, reason: str,
                   released: bool = False) -> None:
        """Send ``data`` (if the peer still listens) and close the connection on purpose."""
        try:
            conn.write(data)
            conn.flush()
        except OSError:
            pass
        self._drop(conn, reason, released)

    def _watch_write(self, conn: WorkerConnection, on: bool) -> None:
        self._watcher.want_write(conn.sock, on)

    def _transfer_wait(self, length: int) -> float:
        """Seconds a transfer of ``length`` bytes may take (see policies.transfer_wait)."""
        tune = self._tune
        return _policy_transfer_wait(length, float(tune["default-transfer-rate"]),
                                     float(tune["transfer-outlier-factor"]),
                                     float(tune["min-transfer-timeout"]))

    def _periodic(self, now: float) -> None:
        self._last_periodic = now
        self._advertiser.maybe_update(now)  # issue 5
        for conn in list(self._conns.values()):
            self._check_liveness(conn, now)
        limits = self._factory_limits
        limits.maybe_fetch(now)
        fresh = dict(limits.max_workers) if limits.take() else None
        self._carry_out(self._state.handle(ev.Tick(fresh), now))
        if now - self._last_unfit_warning >= self.unfit_warning_interval:
            self._last_unfit_warning = now
            self._warn_unfit_tasks()
        if self._stats_log:
            self._stats_log.write(self._stats_now(), now)

    def _check_liveness(self, conn: WorkerConnection, now: float) -> None:
        """Keepalive checks, and the handshake, stall and transfer deadlines of one
        connection (the rule: policies.liveness_verdict)."""
        reader, box = conn.reader, conn.outbox
        w = conn.worker
        facts = Liveness(
            connected_at=conn.connected_at, last_message=conn.last_message,
            last_check=conn.last_check, spoke_since_check=conn.spoke_since_check,
            ready=w is not None and w.ready, blocked_since=box.blocked_since,
            blocked_bytes=box.blocked_bytes,
            in_payload=reader.in_payload and conn.payload_number == reader.payloads_started,
            payload_length=reader.payload_length, payload_deadline=conn.payload_deadline,
            expecting=reader.in_payload or bool(conn.talk.expected))
        stall = float(self._tune["min-transfer-timeout"])
        verdict = liveness_verdict(facts, now, self._keepalive_interval,
                                   self._keepalive_timeout, stall, self._transfer_wait)
        if verdict == KEEP:
            return
        if verdict == CHECK:
            conn.write(m.Check().encode())
            conn.last_check = now
            conn.spoke_since_check = False
        elif verdict == DROP_HANDSHAKE:
            self._debug_msg(f"{conn.address} did not complete its handshake in "
                            f"{self._keepalive_timeout:.0f} s; dropping it")
            self._drop(conn, "UNKNOWN")
        else:
            text = _DROP_MESSAGES[verdict].format(blocked=box.blocked_bytes, stall=stall,
                                                  payload=reader.payload_length)
            self._debug_msg(f"worker {conn.address} {text}")
            self._drop(conn, "FAILURE")

    def _abort_slow_tasks(self, now: float) -> None:
        """Fast abort (the rule: ManagerState, on SlowTaskCheck)."""
        self._carry_out(self._state.handle(ev.SlowTaskCheck(), now))

    def _warn_unfit_tasks(self) -> None:
        """Say which waiting tasks are larger than every connected worker (every 3 min)."""
        for category, n in sorted(self._state.unfit_tasks().items()):
            largest = self._state.largest_worker()
            text = (f"{n} waiting task(s) of category '{category}' need more than any "
                    f"connected worker offers (largest worker: {largest.cores:g} cores, "
                    f"{largest.memory:g} MB memory, {largest.disk:g} MB disk, "
                    f"{largest.gpus:g} gpus); they will wait until a larger worker connects")
            logger.warning(text)
            self._debug_msg(text)

    def _process(self, conn: WorkerConnection, now: float) -> None:
        conn.last_message = now
        conn.spoke_since_check = True
        if conn.auth is not None and not self._authenticate(conn):
            return
        reader = conn.reader
        while not conn.closed:
            ev = reader.next_event()
            if ev is NEED_DATA:
                if reader.in_payload and conn.payload_number != reader.payloads_started:
                    conn.payload_number = reader.payloads_started
                    conn.payload_deadline = now + self._transfer_wait(reader.payload_length)
                return
            if isinstance(ev, Chunk):
                self._on_chunk(conn, ev)
            else:
                if self._debug:
                    self._debug.write(logs.wire_text("rx from", conn, ev))
                self._on_message(conn, ev, now)  # type: ignore[arg-type]

    def _authenticate(self, conn: WorkerConnection) -> bool:
        """Advance the password exchange; True once it succeeded."""
        exchange = conn.auth
        assert exchange is not None
        buf = conn.reader._buffer
        while not exchange.done:
            line = buf.maybe_next_line()
            if line is None:
                return False
            try:
                reply = exchange.receive(line)
            except AuthenticationError as e:
                raise RemoteProtocolError(f"password authentication failed: {e}") from None
            if reply:
                conn.write(reply)
        conn.flush()
        conn.auth = None
        return True

    def _log_category(self, c: Any) -> None:
        """CATEGORY lines of the transactions log (on a mode change or a new first allocation)."""
        writer = getattr(self._txn, "category", None)
        if writer is not None:
            writer(c, self._now())

    def _debug_msg(self, text: str) -> None:
        if self._debug:
            self._debug.write(text)
