"""What every protocol-11 message shares, and the messages both sides send.

Theory of operation
-------------------
Control messages are single ``\\n``-terminated lines of space-separated fields.  Some lines
announce a payload of exactly N raw bytes that follows them (``cmd``, ``env``, ``put``,
``result``, ``file``, ...); :attr:`Message.payload_length` says how many.

Each message class carries both halves of its line: ``encode()`` writes it and the class
method ``from_parts(parts, line)`` reads it back from the line's fields (``parts[0]`` is the
verb), returning None when the line does not have this message's shape.  The two parse tables
(``sent_by_worker.parse_from_worker`` and ``sent_by_manager.parse_from_manager``) are then
just "which class owns this verb", because the *same* verb can mean different things in the
two directions (a manager's ``dir NAME`` opens a directory, a worker's ``dir NAME 0`` is an
item of a ``get`` reply).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import RemoteProtocolError
from .urlcodec import url_decode, url_encode


class Message:
    """Base of every message.  ``payload`` is filled by the reader for whole-payload messages."""

    __slots__ = ()
    VERB: ClassVar[bytes] = b""
    #: A streamed payload is handed to the consumer in chunks instead of all at once.
    STREAMED: ClassVar[bool] = False
    #: The line announces a payload (the class defines ``payload_length``); set per class.
    HAS_PAYLOAD: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.HAS_PAYLOAD = cls.payload_length is not Message.payload_length

    @property
    def payload_length(self) -> int:
        return 0

    def encode(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Message | None:
        """The message in a line split into ``parts`` (verb first), or None when the line
        does not have this message's shape (the parse table then decides what that means)."""
        raise NotImplementedError


#: What a parse table holds for a verb: a class's ``from_parts``.
LineReader = Callable[[list[bytes], bytes], "Message | None"]


def read_int(field_bytes: bytes, line: bytes) -> int:
    try:
        return int(field_bytes)
    except ValueError:
        # Resource values may come as "4.000000" (8.x worker) or "4" (7.x worker).
        try:
            return int(float(field_bytes))
        except (ValueError, OverflowError):
            raise RemoteProtocolError(f"bad number {field_bytes!r} in {line!r}") from None


def read_float(field_bytes: bytes, line: bytes) -> float:
    try:
        return float(field_bytes)
    except ValueError:
        raise RemoteProtocolError(f"bad number {field_bytes!r} in {line!r}") from None


# ---------------------------------------------------------------------------------------------
# Messages both sides send
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Alive(Message):
    VERB: ClassVar[bytes] = b"alive"

    def encode(self) -> bytes:
        return b"alive\n"

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Alive | None:
        return cls() if len(parts) == 1 else None


@dataclass(slots=True)
class End(Message):
    """``end``: closes a task block, a directory, a result stream or a ``get`` reply."""

    VERB: ClassVar[bytes] = b"end"

    def encode(self) -> bytes:
        return b"end\n"

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> End | None:
        return cls() if len(parts) == 1 else None


@dataclass(slots=True)
class Feature(Message):
    """``feature <urlencoded name>``."""

    VERB: ClassVar[bytes] = b"feature"
    name: str

    def encode(self) -> bytes:
        return f"feature {url_encode(self.name)}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Feature | None:
        return cls(url_decode(parts[1])) if len(parts) == 2 else None


@dataclass(slots=True)
class AuthRequest(Message):
    """``auth password sha1``: the peer wants to authenticate."""

    VERB: ClassVar[bytes] = b"auth"
    text: str = "password sha1"

    def encode(self) -> bytes:
        return f"auth {self.text}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> AuthRequest:
        return cls(b" ".join(parts[1:]).decode())
