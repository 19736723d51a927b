"""The messages a worker (or a status client) sends to a manager, each with its reader.

Names are url-encoded where CCTools encodes them; which side decodes what is recorded in the
docstring of each class (see ``cctools-protocol-and-api.md`` 1.5-1.9).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import RemoteProtocolError
from .message_base import Alive, AuthRequest, End, Feature, LineReader, Message, read_int
from .resume import Leaving, Resume


@dataclass(slots=True)
class Hello(Message):
    """``workqueue <protocol> <hostname> <os> <arch> <version>``: first line of a worker."""

    VERB: ClassVar[bytes] = b"workqueue"
    protocol: int
    hostname: str
    os: str
    arch: str
    version: str

    def encode(self) -> bytes:
        return (
            f"workqueue {self.protocol} {self.hostname} {self.os} {self.arch} {self.version}\n"
        ).encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Hello | None:
        if len(parts) != 6:
            return None
        return cls(read_int(parts[1], line), parts[2].decode(), parts[3].decode(),
                   parts[4].decode(), parts[5].decode())


@dataclass(slots=True)
class ResourceReport(Message):
    """``resource <name> <total> <smallest> <largest>`` or ``resource tag <n>``."""

    VERB: ClassVar[bytes] = b"resource"
    name: str
    total: int
    smallest: int = 0
    largest: int = 0

    def encode(self) -> bytes:
        if self.name == "tag":
            return f"resource tag {self.total}\n".encode()
        return f"resource {self.name} {self.total} {self.smallest} {self.largest}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> ResourceReport | None:
        n = len(parts)
        if n == 3 and parts[1] == b"tag":
            return cls("tag", read_int(parts[2], line))
        if n == 5:
            return cls(parts[1].decode(), read_int(parts[2], line), read_int(parts[3], line),
                       read_int(parts[4], line))
        return None


@dataclass(slots=True)
class Info(Message):
    """``info <field> <value...>``."""

    VERB: ClassVar[bytes] = b"info"
    field: str
    value: str

    def encode(self) -> bytes:
        return f"info {self.field} {self.value}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Info:
        if len(parts) < 3:
            raise RemoteProtocolError(f"malformed info line {line!r}")
        return cls(parts[1].decode(), b" ".join(parts[2:]).decode("utf-8", "replace"))


@dataclass(slots=True)
class AvailableResults(Message):
    VERB: ClassVar[bytes] = b"available_results"

    def encode(self) -> bytes:
        return b"available_results\n"

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> AvailableResults:
        return cls()  # any trailing fields are ignored, as before


@dataclass(slots=True)
class CacheUpdate(Message):
    """``cache-update <cachename> <size_bytes> <transfer_usec>``: a puturl/putcmd object exists."""

    VERB: ClassVar[bytes] = b"cache-update"
    cachename: str
    size: int
    transfer_usec: int

    def encode(self) -> bytes:
        return f"cache-update {self.cachename} {self.size} {self.transfer_usec}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> CacheUpdate | None:
        if len(parts) != 4:
            return None
        return cls(parts[1].decode(), read_int(parts[2], line), read_int(parts[3], line))


@dataclass(slots=True)
class CacheInvalid(Message):
    """``cache-invalid <cachename> <len>`` + error text: a puturl/putcmd object failed."""

    VERB: ClassVar[bytes] = b"cache-invalid"
    cachename: str
    length: int
    payload: bytes = b""

    @property
    def payload_length(self) -> int:
        return self.length

    def encode(self) -> bytes:
        return f"cache-invalid {self.cachename} {self.length}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> CacheInvalid | None:
        if len(parts) != 3:
            return None
        return cls(parts[1].decode(), read_int(parts[2], line))


@dataclass(slots=True)
class Result(Message):
    """``result <task_status> <exit_status> <stdout_len> <exec_time_usec> <taskid>`` + stdout."""

    VERB: ClassVar[bytes] = b"result"
    status: int
    exit_code: int
    output_length: int
    exec_time_usec: int
    task_id: int
    payload: bytes = b""

    @property
    def payload_length(self) -> int:
        return self.output_length

    def encode(self) -> bytes:
        return (
            f"result {self.status} {self.exit_code} {self.output_length} "
            f"{self.exec_time_usec} {self.task_id}\n"
        ).encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Result | None:
        if len(parts) != 6:
            return None
        try:  # the manager reads one of these per task: plain integers first
            return cls(int(parts[1]), int(parts[2]), int(parts[3]), int(parts[4]),
                       int(parts[5]))
        except ValueError:
            return cls(read_int(parts[1], line), read_int(parts[2], line), read_int(parts[3], line),
                       read_int(parts[4], line), read_int(parts[5], line))


@dataclass(slots=True)
class MonitorSummary(Message):
    """``wq-py-summary <taskid> <len>`` + JSON (extension ``wq-py-monitor``): the resource
    summary of a task the worker measured, sent just before its ``result``."""

    VERB: ClassVar[bytes] = b"wq-py-summary"
    task_id: int
    length: int
    payload: bytes = b""

    @property
    def payload_length(self) -> int:
        return self.length

    def encode(self) -> bytes:
        return f"wq-py-summary {self.task_id} {self.length}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> MonitorSummary | None:
        if len(parts) != 3:
            return None
        return cls(read_int(parts[1], line), read_int(parts[2], line))


@dataclass(slots=True)
class Update(Message):
    """``update <taskid> <remote_name> <offset> <length>`` + bytes: a watched file grew."""

    VERB: ClassVar[bytes] = b"update"
    task_id: int
    remote_name: str
    offset: int
    length: int
    payload: bytes = b""

    @property
    def payload_length(self) -> int:
        return self.length

    def encode(self) -> bytes:
        return f"update {self.task_id} {self.remote_name} {self.offset} {self.length}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Update | None:
        if len(parts) != 5:
            return None
        return cls(read_int(parts[1], line), parts[2].decode("utf-8", "surrogateescape"),
                   read_int(parts[3], line), read_int(parts[4], line))


def _name_and_number(parts: list[bytes], line: bytes) -> tuple[str, bytes] | None:
    """The name and the number of a ``file``/``missing`` line.  The C manager matches
    ``^file (.+) (%d+)$``: the worker sends names as they are, so an output directory entry
    may contain spaces (everything between the verb and the last space is the name)."""
    n = len(parts)
    if n == 3:
        return parts[1].decode("utf-8", "surrogateescape"), parts[2]
    if n > 3:
        name, _, number = line[len(parts[0]) + 1:].rpartition(b" ")
        return name.decode("utf-8", "surrogateescape"), number
    return None


@dataclass(slots=True)
class FileItem(Message):
    """``file <name> <bytes>`` + bytes: one file of a ``get`` reply (streamed)."""

    VERB: ClassVar[bytes] = b"file"
    STREAMED: ClassVar[bool] = True
    name: str
    length: int

    @property
    def payload_length(self) -> int:
        return self.length

    def encode(self) -> bytes:
        return f"file {self.name} {self.length}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> FileItem | None:
        got = _name_and_number(parts, line)
        return None if got is None else cls(got[0], read_int(got[1], line))


@dataclass(slots=True)
class DirItem(Message):
    """``dir <name> 0``: a directory in a ``get`` reply."""

    VERB: ClassVar[bytes] = b"dir"
    name: str

    def encode(self) -> bytes:
        return f"dir {self.name} 0\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> DirItem | None:
        if len(parts) != 3:
            return None
        return cls(parts[1].decode("utf-8", "surrogateescape"))


@dataclass(slots=True)
class MissingItem(Message):
    """``missing <name> <errno>``: a requested output does not exist."""

    VERB: ClassVar[bytes] = b"missing"
    name: str
    errno: int

    def encode(self) -> bytes:
        return f"missing {self.name} {self.errno}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> MissingItem | None:
        got = _name_and_number(parts, line)
        return None if got is None else cls(got[0], read_int(got[1], line))


STATUS_KINDS = frozenset(
    {"queue_status", "task_status", "worker_status", "wable_status", "resources_status"}
)


@dataclass(slots=True)
class StatusRequest(Message):
    """A status client's one-line query (``queue_status``, ``task_status``, ...)."""

    VERB: ClassVar[bytes] = b""  # one verb per kind: see STATUS_KINDS
    kind: str

    def encode(self) -> bytes:
        return f"{self.kind}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> StatusRequest | None:
        return cls(parts[0].decode()) if len(parts) == 1 else None


@dataclass(slots=True)
class HttpGet(Message):
    """``GET <path> HTTP/x.y``: a browser asking the manager port for status."""

    VERB: ClassVar[bytes] = b"GET"
    path: str

    def encode(self) -> bytes:
        return f"GET {self.path} HTTP/1.1\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> HttpGet | None:
        return cls(parts[1].decode("utf-8", "replace")) if len(parts) >= 2 else None


@dataclass(slots=True)
class NameQuery(Message):
    VERB: ClassVar[bytes] = b"name"

    def encode(self) -> bytes:
        return b"name\n"

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> NameQuery | None:
        return cls() if len(parts) == 1 else None


#: Which class reads a line a worker sends, by its verb.
FROM_WORKER: dict[bytes, LineReader] = {
    cls.VERB: cls.from_parts
    for cls in (Info, Result, End, MonitorSummary, Alive, AvailableResults, FileItem, DirItem,
                MissingItem, ResourceReport, Update, Hello, Feature, CacheUpdate, CacheInvalid,
                HttpGet, NameQuery, AuthRequest, Resume, Leaving)
}
FROM_WORKER.update({kind.encode(): StatusRequest.from_parts for kind in STATUS_KINDS})


def parse_from_worker(line: bytes) -> Message:
    """Parse one line a worker (or a status client) sent to the manager."""
    parts = line.split()
    if not parts:
        raise RemoteProtocolError("empty line from worker")
    read = FROM_WORKER.get(parts[0])
    if read is not None:
        try:
            msg = read(parts, line)
        except UnicodeDecodeError:
            raise RemoteProtocolError(f"undecodable line {line!r}") from None
        if msg is not None:
            return msg
    raise RemoteProtocolError(f"unexpected line from worker: {line[:200]!r}")
