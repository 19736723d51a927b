"""The messages of the ``wq-py-resume`` extension: a worker whose connection dropped comes
back and keeps its tasks (docs/protocol-resume.md is the specification).

Both directions live here, each with its reader beside its encoder, and join the parse tables
of ``sent_by_worker.py`` and ``sent_by_manager.py``.  A CCTools peer never sees any of them:
the manager sends its lines only to a worker that announced the feature, and the worker sends
``wq-py-resume`` only to a manager that handed it a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import RemoteProtocolError
from .message_base import Message, read_int
from .urlcodec import url_decode, url_encode

#: The largest ``wq-py-resume`` payload a manager reads (about 80,000 held tasks): it arrives
#: before the handshake, so it is bounded far below other payloads.
MAX_RESUME_PAYLOAD = 1 << 20

#: What a worker says of each task it holds.
HELD_STATES = ("waiting", "running", "finished")

#: The token's length in hex digits (128 bits from the manager's ``secrets``).
TOKEN_HEX_DIGITS = 32


# -- manager -> worker ----------------------------------------------------------------------


@dataclass(slots=True)
class ResumeToken(Message):
    """``wq-py-resume-token <token> <grace>``: the manager takes resumed sessions from this
    worker: it keeps the worker's tasks ``grace`` seconds after the connection drops, and
    a returning worker proves it is this one with ``token``."""

    VERB: ClassVar[bytes] = b"wq-py-resume-token"
    token: str
    grace: int

    def encode(self) -> bytes:
        return f"wq-py-resume-token {self.token} {self.grace}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> ResumeToken | None:
        if len(parts) != 3:
            return None
        return cls(parts[1].decode("ascii"), read_int(parts[2], line))


@dataclass(slots=True)
class Resumed(Message):
    """``wq-py-resumed <kept>``: the manager took the worker back; ``kill`` lines for the
    held tasks it no longer wants follow, then the session goes on as before."""

    VERB: ClassVar[bytes] = b"wq-py-resumed"
    kept: int

    def encode(self) -> bytes:
        return f"wq-py-resumed {self.kept}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Resumed | None:
        return cls(read_int(parts[1], line)) if len(parts) == 2 else None


@dataclass(slots=True)
class ResumeRefused(Message):
    """``wq-py-resume-refused <reason>``: no session to resume (unknown token, grace time
    over, another worker's token); the worker drops what it holds and sends the ordinary
    handshake on the same connection."""

    VERB: ClassVar[bytes] = b"wq-py-resume-refused"
    reason: str

    def encode(self) -> bytes:
        return f"wq-py-resume-refused {url_encode(self.reason)}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> ResumeRefused | None:
        return cls(url_decode(parts[1])) if len(parts) == 2 else None


# -- worker -> manager ----------------------------------------------------------------------


@dataclass(slots=True)
class Resume(Message):
    """``wq-py-resume <token> <worker-id> <length>`` + ``length`` bytes of lines
    ``<taskid> <state>`` (state: waiting, running or finished): the first message of a
    connection that resumes a session, instead of the handshake."""

    VERB: ClassVar[bytes] = b"wq-py-resume"
    token: str
    worker_id: str
    length: int
    payload: bytes = b""

    @property
    def payload_length(self) -> int:
        return self.length

    def encode(self) -> bytes:
        return f"wq-py-resume {self.token} {url_encode(self.worker_id)} {self.length}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Resume | None:
        if len(parts) != 4:
            return None
        length = read_int(parts[3], line)
        if not 0 <= length <= MAX_RESUME_PAYLOAD:
            raise RemoteProtocolError(f"resume list of {length} bytes (the limit is "
                                      f"{MAX_RESUME_PAYLOAD})")
        return cls(parts[1].decode("ascii"), url_decode(parts[2]), length)

    @staticmethod
    def held_payload(held: dict[int, str]) -> bytes:
        """The payload listing ``held`` (task id -> state)."""
        return "".join(f"{task_id} {state}\n" for task_id, state in held.items()).encode()

    def held(self) -> dict[int, str]:
        """The tasks the payload lists (task id -> state); a protocol error if malformed."""
        out: dict[int, str] = {}
        for line in self.payload.split(b"\n"):
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1].decode("ascii", "replace") not in HELD_STATES:
                raise RemoteProtocolError(f"bad line in a resume list: {line[:100]!r}")
            task_id = read_int(parts[0], line)
            if task_id <= 0:  # -1 would be "every task" in a kill
                raise RemoteProtocolError(f"bad task id in a resume list: {line[:100]!r}")
            out[task_id] = parts[1].decode("ascii")
        return out


@dataclass(slots=True)
class Leaving(Message):
    """``wq-py-leaving``: the worker ends this session on purpose (its tasks die with it):
    the manager takes them back at once instead of waiting for it to return."""

    VERB: ClassVar[bytes] = b"wq-py-leaving"

    def encode(self) -> bytes:
        return b"wq-py-leaving\n"

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Leaving | None:
        return cls() if len(parts) == 1 else None
