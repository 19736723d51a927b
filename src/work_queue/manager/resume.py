"""The manager's side of ``wq-py-resume``, the I/O only (a part of ``WorkQueue``).

The rules are the core's (``core/resume.py``): which worker may come back, for how long,
which tasks it keeps.  Here a worker's ``feature wq-py-resume`` gets a token drawn from
``secrets``, a connection that opens with ``wq-py-resume`` becomes a core event, and the
core's answers go out: the token, ``wq-py-resumed`` (the connection then takes the place of
the one that dropped, under the worker's key), ``wq-py-resume-refused``, ``kill`` lines.
docs/protocol-resume.md specifies the exchange.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from ..core import events as ev
from ..core import instructions as ins
from ..core.manager_state import ManagerState
from ..errors import RemoteProtocolError
from ..protocol import extensions
from ..protocol import messages as m
from ..protocol.resume import TOKEN_HEX_DIGITS
from .connection import WorkerConnection

logger = logging.getLogger("work_queue.manager.queue")  # one name users filter on


def new_token() -> str:
    """An unguessable session token (128 bits)."""
    return secrets.token_hex(TOKEN_HEX_DIGITS // 2)


class ResumeShell:
    """Carries out the core's resume instructions (a mixin of WorkQueue)."""

    # Set by WorkQueue.__init__; declared for readers and type checkers.
    _state: ManagerState
    _conns: dict[int, WorkerConnection]
    _txn: Any
    _unsent: set[WorkerConnection]
    _watcher: Any

    def _resume_doers(self) -> dict[type, Any]:
        """How each resume instruction is carried out (joins WorkQueue._doers)."""
        return {ins.OfferResume: self._offer_resume, ins.AcceptResume: self._accept_resume,
                ins.RefuseResume: self._refuse_resume, ins.KillHeld: self._kill_held}

    def _on_resume(self, conn: WorkerConnection, msg: m.Resume, now: float) -> None:
        """``wq-py-resume``: the first message of a connection that claims a session."""
        if conn.worker is not None or conn.resume_claimed:
            raise RemoteProtocolError("wq-py-resume is only the first message of a connection")
        conn.resume_claimed = True
        held = msg.held()
        out = self._state.handle(
            ev.WorkerResumed(conn.key, conn.address, msg.token, msg.worker_id, held), now)
        self._carry_out(out)

    def _on_leaving(self, conn: WorkerConnection, msg: m.Leaving, now: float) -> None:
        """``wq-py-leaving``: the worker ends on purpose; its tasks are not kept for it."""
        if conn.worker is None:
            raise RemoteProtocolError("wq-py-leaving before the handshake")
        self._state.handle(ev.WorkerInfo(conn.worker, "leaving", ""), now)

    def _offer_resume(self, o: ins.OfferResume) -> None:
        conn = self._conns.get(o.worker_key)
        if conn is not None:
            conn.write(m.Feature(extensions.RESUME).encode()
                       + m.ResumeToken(o.token, o.grace).encode())

    def _accept_resume(self, a: ins.AcceptResume) -> None:
        """The connection takes the place of the worker's dropped one, under its key."""
        conn = self._conns.pop(a.conn_key)
        old = self._conns.get(a.worker.key)
        if old is not None:  # the worker saw the drop before the manager did
            self._conns.pop(old.key)
            self._unsent.discard(old)
            self._watcher.unregister(old.sock)
            old.close()
        conn.key = a.worker.key
        conn.worker = a.worker
        self._conns[conn.key] = conn
        conn.write(m.Resumed(a.kept).encode())
        self._debug_msg(f"worker {a.worker.hostname} resumed its session from "
                        f"{conn.address} with {a.kept} task(s)")
        if self._txn:
            self._txn.worker_connected(a.worker, conn.address, self._now())

    def _refuse_resume(self, r: ins.RefuseResume) -> None:
        conn = self._conns.get(r.conn_key)
        if conn is not None:
            self._debug_msg(f"{conn.address}: resume refused: {r.reason}")
            conn.write(m.ResumeRefused(r.reason).encode())

    def _kill_held(self, k: ins.KillHeld) -> None:
        conn = self._conns.get(k.worker_key)
        if conn is not None:
            conn.write(b"".join(m.Kill(task_id).encode() for task_id in k.task_ids))
