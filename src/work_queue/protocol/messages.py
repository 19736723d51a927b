"""One small class per protocol-11 message, with parsing from and encoding to a line.

Theory of operation
-------------------
Control messages are single ``\\n``-terminated lines of space-separated fields.  Some lines
announce a payload of exactly N raw bytes that follows them (``cmd``, ``env``, ``put``,
``result``, ``file``, ...); :attr:`Message.payload_length` says how many.  The *same* verb can
mean different things in the two directions (a manager's ``dir NAME`` opens a directory, a
worker's ``dir NAME 0`` is an item of a ``get`` reply), so there are two parse tables:
:func:`parse_from_worker` and :func:`parse_from_manager`.

Names are url-encoded where CCTools encodes them; which side decodes what is recorded in the
docstring of each class (see ``cctools-protocol-and-api.md`` 1.5-1.9).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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


def _int(field_bytes: bytes, line: bytes) -> int:
    try:
        return int(field_bytes)
    except ValueError:
        # Resource values may come as "4.000000" (8.x worker) or "4" (7.x worker).
        try:
            return int(float(field_bytes))
        except (ValueError, OverflowError):
            raise RemoteProtocolError(f"bad number {field_bytes!r} in {line!r}") from None


def _float(field_bytes: bytes, line: bytes) -> float:
    try:
        return float(field_bytes)
    except ValueError:
        raise RemoteProtocolError(f"bad number {field_bytes!r} in {line!r}") from None


# ---------------------------------------------------------------------------------------------
# Worker -> manager
# ---------------------------------------------------------------------------------------------


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


@dataclass(slots=True)
class Alive(Message):
    VERB: ClassVar[bytes] = b"alive"

    def encode(self) -> bytes:
        return b"alive\n"


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


@dataclass(slots=True)
class Feature(Message):
    """``feature <urlencoded name>``."""

    VERB: ClassVar[bytes] = b"feature"
    name: str

    def encode(self) -> bytes:
        return f"feature {url_encode(self.name)}\n".encode()


@dataclass(slots=True)
class Info(Message):
    """``info <field> <value...>``."""

    VERB: ClassVar[bytes] = b"info"
    field: str
    value: str

    def encode(self) -> bytes:
        return f"info {self.field} {self.value}\n".encode()


@dataclass(slots=True)
class AvailableResults(Message):
    VERB: ClassVar[bytes] = b"available_results"

    def encode(self) -> bytes:
        return b"available_results\n"


@dataclass(slots=True)
class CacheUpdate(Message):
    """``cache-update <cachename> <size_bytes> <transfer_usec>``: a puturl/putcmd object exists."""

    VERB: ClassVar[bytes] = b"cache-update"
    cachename: str
    size: int
    transfer_usec: int

    def encode(self) -> bytes:
        return f"cache-update {self.cachename} {self.size} {self.transfer_usec}\n".encode()


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


@dataclass(slots=True)
class End(Message):
    """``end``: closes a task block, a directory, a result stream or a ``get`` reply."""

    VERB: ClassVar[bytes] = b"end"

    def encode(self) -> bytes:
        return b"end\n"


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


@dataclass(slots=True)
class DirItem(Message):
    """``dir <name> 0``: a directory in a ``get`` reply."""

    VERB: ClassVar[bytes] = b"dir"
    name: str

    def encode(self) -> bytes:
        return f"dir {self.name} 0\n".encode()


@dataclass(slots=True)
class MissingItem(Message):
    """``missing <name> <errno>``: a requested output does not exist."""

    VERB: ClassVar[bytes] = b"missing"
    name: str
    errno: int

    def encode(self) -> bytes:
        return f"missing {self.name} {self.errno}\n".encode()


@dataclass(slots=True)
class StatusRequest(Message):
    """A status client's one-line query (``queue_status``, ``task_status``, ...)."""

    VERB: ClassVar[bytes] = b""
    kind: str

    def encode(self) -> bytes:
        return f"{self.kind}\n".encode()


@dataclass(slots=True)
class HttpGet(Message):
    """``GET <path> HTTP/x.y``: a browser asking the manager port for status."""

    VERB: ClassVar[bytes] = b"GET"
    path: str

    def encode(self) -> bytes:
        return f"GET {self.path} HTTP/1.1\n".encode()


@dataclass(slots=True)
class NameQuery(Message):
    VERB: ClassVar[bytes] = b"name"

    def encode(self) -> bytes:
        return b"name\n"


@dataclass(slots=True)
class AuthRequest(Message):
    """``auth password sha1``: the peer wants to authenticate."""

    VERB: ClassVar[bytes] = b"auth"
    text: str = "password sha1"

    def encode(self) -> bytes:
        return f"auth {self.text}\n".encode()


STATUS_KINDS = frozenset(
    {"queue_status", "task_status", "worker_status", "wable_status", "resources_status"}
)


def parse_from_worker(line: bytes) -> Message:
    """Parse one line a worker (or a status client) sent to the manager."""
    parts = line.split()
    if not parts:
        raise RemoteProtocolError("empty line from worker")
    verb = parts[0]
    n = len(parts)
    try:
        if verb == b"info":
            if n < 3:
                raise RemoteProtocolError(f"malformed info line {line!r}")
            return Info(parts[1].decode(), b" ".join(parts[2:]).decode("utf-8", "replace"))
        if verb == b"result" and n == 6:
            return Result(
                _int(parts[1], line), _int(parts[2], line), _int(parts[3], line),
                _int(parts[4], line), _int(parts[5], line),
            )
        if verb == b"end" and n == 1:
            return End()
        if verb == b"wq-py-summary" and n == 3:
            return MonitorSummary(_int(parts[1], line), _int(parts[2], line))
        if verb == b"alive" and n == 1:
            return Alive()
        if verb == b"available_results":
            return AvailableResults()
        if verb in (b"file", b"missing") and n > 3:
            # The C manager matches ``^file (.+) (%d+)$``: the worker sends names as they are,
            # so an output directory entry may contain spaces.
            name, _, number = line[len(verb) + 1 :].rpartition(b" ")
            parts = [verb, name, number]
            n = 3
        if verb == b"file" and n == 3:
            return FileItem(parts[1].decode("utf-8", "surrogateescape"), _int(parts[2], line))
        if verb == b"dir" and n == 3:
            return DirItem(parts[1].decode("utf-8", "surrogateescape"))
        if verb == b"missing" and n == 3:
            return MissingItem(parts[1].decode("utf-8", "surrogateescape"), _int(parts[2], line))
        if verb == b"resource":
            if n == 3 and parts[1] == b"tag":
                return ResourceReport("tag", _int(parts[2], line))
            if n == 5:
                return ResourceReport(
                    parts[1].decode(), _int(parts[2], line), _int(parts[3], line),
                    _int(parts[4], line),
                )
        if verb == b"update" and n == 5:
            return Update(
                _int(parts[1], line), parts[2].decode("utf-8", "surrogateescape"),
                _int(parts[3], line), _int(parts[4], line),
            )
        if verb == b"workqueue" and n == 6:
            return Hello(
                _int(parts[1], line), parts[2].decode(), parts[3].decode(), parts[4].decode(),
                parts[5].decode(),
            )
        if verb == b"feature" and n == 2:
            return Feature(url_decode(parts[1]))
        if verb == b"cache-update" and n == 4:
            return CacheUpdate(parts[1].decode(), _int(parts[2], line), _int(parts[3], line))
        if verb == b"cache-invalid" and n == 3:
            return CacheInvalid(parts[1].decode(), _int(parts[2], line))
        if n == 1 and verb.decode() in STATUS_KINDS:
            return StatusRequest(verb.decode())
        if verb == b"GET" and n >= 2:
            return HttpGet(parts[1].decode("utf-8", "replace"))
        if verb == b"name" and n == 1:
            return NameQuery()
        if verb == b"auth":
            return AuthRequest(b" ".join(parts[1:]).decode())
    except UnicodeDecodeError:
        raise RemoteProtocolError(f"undecodable line {line!r}") from None
    raise RemoteProtocolError(f"unexpected line from worker: {line[:200]!r}")


# ---------------------------------------------------------------------------------------------
# Manager -> worker
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class TaskStart(Message):
    """``task <id>``: opens a task description block."""

    VERB: ClassVar[bytes] = b"task"
    task_id: int

    def encode(self) -> bytes:
        return f"task {self.task_id}\n".encode()


@dataclass(slots=True)
class Cmd(Message):
    """``cmd <len>`` + command line (no trailing newline)."""

    VERB: ClassVar[bytes] = b"cmd"
    length: int
    payload: bytes = b""

    @property
    def payload_length(self) -> int:
        return self.length

    def encode(self) -> bytes:
        return f"cmd {self.length}\n".encode()


@dataclass(slots=True)
class Coprocess(Message):
    """``coprocess <len>`` + coprocess name."""

    VERB: ClassVar[bytes] = b"coprocess"
    length: int
    payload: bytes = b""

    @property
    def payload_length(self) -> int:
        return self.length

    def encode(self) -> bytes:
        return f"coprocess {self.length}\n".encode()


@dataclass(slots=True)
class Monitor(Message):
    """``monitor <len>`` + JSON (extension ``wq-py-monitor``): measure the task, with limits."""

    VERB: ClassVar[bytes] = b"monitor"
    length: int
    payload: bytes = b""

    @property
    def payload_length(self) -> int:
        return self.length

    def encode(self) -> bytes:
        return f"monitor {self.length}\n".encode()


@dataclass(slots=True)
class Env(Message):
    """``env <len>`` + ``NAME=VALUE\\n``; the length excludes the newline, which is sent."""

    VERB: ClassVar[bytes] = b"env"
    length: int
    payload: bytes = b""

    @property
    def payload_length(self) -> int:
        # A negative count stays negative so the reader rejects it (``env -1`` is not 0 bytes).
        return self.length + 1 if self.length >= 0 else self.length

    def encode(self) -> bytes:
        return f"env {self.length}\n".encode()


@dataclass(slots=True)
class Category(Message):
    VERB: ClassVar[bytes] = b"category"
    name: str

    def encode(self) -> bytes:
        return f"category {self.name}\n".encode()


#: Task resource lines and their number formats (``rmsummary_resource_to_str``).
RESOURCE_FORMATS = {
    "cores": "{:.3f}",
    "gpus": "{:.0f}",
    "memory": "{:.0f}",
    "disk": "{:.0f}",
    "end_time": "{:.6f}",
    "wall_time": "{:.6f}",
}


@dataclass(slots=True)
class TaskResource(Message):
    """``cores 1.000`` / ``memory 512`` / ``wall_time 10.000000`` inside a task block."""

    name: str
    value: float

    def encode(self) -> bytes:
        return f"{self.name} {RESOURCE_FORMATS[self.name].format(self.value)}\n".encode()


@dataclass(slots=True)
class Dir(Message):
    """``dir <name>``: an empty directory in a task block, or the start of a directory put."""

    VERB: ClassVar[bytes] = b"dir"
    name: str
    #: The name exactly as sent.  A directory put url-encodes it (C ``put_directory``), but
    #: a task block's empty-directory line carries the remote name raw, so a worker reading
    #: a task block uses ``raw``.
    raw: str = field(default="", compare=False)

    def encode(self) -> bytes:
        return f"dir {url_encode(self.name)}\n".encode()


@dataclass(slots=True)
class TaskFile(Message):
    """``infile|outfile <cachename> <urlenc remote_name> <flags>`` inside a task block.

    The cache name is used verbatim by the worker; the remote name is url-decoded.
    """

    direction: str  # "infile" or "outfile"
    cachename: str
    remote_name: str
    flags: int

    def encode(self) -> bytes:
        return (
            f"{self.direction} {self.cachename} {url_encode(self.remote_name)} {self.flags}\n"
        ).encode()


@dataclass(slots=True)
class Put(Message):
    """``put <urlenc name> <bytes> <octal mode>`` + bytes (streamed)."""

    VERB: ClassVar[bytes] = b"put"
    STREAMED: ClassVar[bool] = True
    name: str
    length: int
    mode: int
    #: Files are sent as ``0644``; buffers as ``777`` (no leading zero), like CCTools.
    leading_zero: bool = True

    @property
    def payload_length(self) -> int:
        return self.length

    def encode(self) -> bytes:
        mode = f"0{self.mode & 0o777:o}" if self.leading_zero else f"{self.mode & 0o777:o}"
        return f"put {url_encode(self.name)} {self.length} {mode}\n".encode()


@dataclass(slots=True)
class Symlink(Message):
    """``symlink <urlenc name> <len>`` + link target, inside a directory put."""

    VERB: ClassVar[bytes] = b"symlink"
    name: str
    length: int
    payload: bytes = b""

    @property
    def payload_length(self) -> int:
        return self.length

    def encode(self) -> bytes:
        return f"symlink {url_encode(self.name)} {self.length}\n".encode()


@dataclass(slots=True)
class PutUrl(Message):
    """``puturl <urlenc url> <urlenc cachename> <size> <octal mode>``: fetch lazily."""

    VERB: ClassVar[bytes] = b"puturl"
    source: str
    cachename: str
    size: int = 0
    mode: int = 0o777

    def encode(self) -> bytes:
        return (
            f"puturl {url_encode(self.source)} {url_encode(self.cachename)} {self.size} "
            f"{self.mode:o}\n"
        ).encode()


@dataclass(slots=True)
class PutCmd(PutUrl):
    """``putcmd <urlenc cmd> <urlenc cachename> <size> <octal mode>``: run lazily, ``%%`` = path."""

    VERB: ClassVar[bytes] = b"putcmd"

    def encode(self) -> bytes:
        return (
            f"putcmd {url_encode(self.source)} {url_encode(self.cachename)} {self.size} "
            f"{self.mode:o}\n"
        ).encode()


@dataclass(slots=True)
class Get(Message):
    """``get <urlenc cachename> 1``: stream an output back."""

    VERB: ClassVar[bytes] = b"get"
    name: str

    def encode(self) -> bytes:
        return f"get {url_encode(self.name)} 1\n".encode()


@dataclass(slots=True)
class Unlink(Message):
    """``unlink <urlenc cachename>``."""

    VERB: ClassVar[bytes] = b"unlink"
    name: str

    def encode(self) -> bytes:
        return f"unlink {url_encode(self.name)}\n".encode()


@dataclass(slots=True)
class Kill(Message):
    """``kill <taskid>`` (``-1`` = every task)."""

    VERB: ClassVar[bytes] = b"kill"
    task_id: int

    def encode(self) -> bytes:
        return f"kill {self.task_id}\n".encode()


@dataclass(slots=True)
class SendResults(Message):
    VERB: ClassVar[bytes] = b"send_results"
    count: int = -1

    def encode(self) -> bytes:
        return f"send_results {self.count}\n".encode()


@dataclass(slots=True)
class Check(Message):
    VERB: ClassVar[bytes] = b"check"

    def encode(self) -> bytes:
        return b"check\n"


@dataclass(slots=True)
class Release(Message):
    VERB: ClassVar[bytes] = b"release"

    def encode(self) -> bytes:
        return b"release\n"


@dataclass(slots=True)
class Exit(Message):
    VERB: ClassVar[bytes] = b"exit"

    def encode(self) -> bytes:
        return b"exit\n"


@dataclass(slots=True)
class InvalidateFile(Message):
    VERB: ClassVar[bytes] = b"invalidate-file"
    name: str

    def encode(self) -> bytes:
        return f"invalidate-file {url_encode(self.name)}\n".encode()


@dataclass(slots=True)
class Tlq(Message):
    VERB: ClassVar[bytes] = b"tlq"
    url: str

    def encode(self) -> bytes:
        return f"tlq {self.url}\n".encode()


@dataclass(slots=True)
class Unknown(Message):
    """A line we do not understand; kept so the caller can decide what to do with it."""

    line: bytes = field(default=b"")

    def encode(self) -> bytes:
        return self.line + b"\n"


def _resource_line(name: str) -> Callable[[bytes, bytes], Message]:
    return lambda value, line: TaskResource(name, _float(value, line))


#: Parsers of the two-word lines of a task block, by verb.
_TASK_LINES: dict[bytes, Callable[[bytes, bytes], Message]] = {
    b"task": lambda value, line: TaskStart(_int(value, line)),
    b"cmd": lambda value, line: Cmd(_int(value, line)),
    b"category": lambda value, line: Category(value.decode()),
    b"env": lambda value, line: Env(_int(value, line)),
    b"kill": lambda value, line: Kill(_int(value, line)),
    **{name.encode(): _resource_line(name) for name in RESOURCE_FORMATS},
}


def parse_from_manager(line: bytes) -> Message:
    """Parse one line a manager sent to a worker.

    Unknown verbs come back as :class:`Unknown` (the C worker drops the connection on them;
    the worker shell decides).
    """
    parts = line.split(b" ")
    verb = parts[0]
    n = len(parts)
    if n == 2:
        make = _TASK_LINES.get(verb)
        if make is not None:  # the lines of a task block, the bulk of what a worker reads
            try:
                return make(parts[1], line)
            except (UnicodeDecodeError, ValueError):
                raise RemoteProtocolError(f"malformed line from manager: {line[:200]!r}") \
                    from None
    elif line == b"end":
        return End()
    # task, cmd, category, env, kill and the resource lines were read above (_TASK_LINES).
    s = verb.decode("utf-8", "replace")
    try:
        if verb in (b"infile", b"outfile") and n == 4:
            return TaskFile(s, parts[1].decode("utf-8", "surrogateescape"),
                            url_decode(parts[2]), _int(parts[3], line))
        if verb == b"put" and n == 4:
            return Put(url_decode(parts[1]), _int(parts[2], line), int(parts[3], 8),
                       leading_zero=parts[3].startswith(b"0"))
        if verb == b"dir" and n == 2:
            return Dir(url_decode(parts[1]), parts[1].decode("utf-8", "surrogateescape"))
        if verb == b"send_results":
            return SendResults(_int(parts[1], line) if n > 1 else -1)
        if verb == b"unlink" and n == 2:
            return Unlink(url_decode(parts[1]))
        if verb == b"get" and n >= 2:
            return Get(url_decode(parts[1]))
        if verb == b"symlink" and n == 3:
            return Symlink(url_decode(parts[1]), _int(parts[2], line))
        if verb in (b"puturl", b"putcmd") and n == 5:
            cls = PutUrl if verb == b"puturl" else PutCmd
            return cls(url_decode(parts[1]), url_decode(parts[2]), _int(parts[3], line),
                       int(parts[4], 8))
        if verb == b"coprocess" and n == 2:
            return Coprocess(_int(parts[1], line))
        if verb == b"monitor" and n == 2:
            return Monitor(_int(parts[1], line))
        if verb == b"check" and n == 1:
            return Check()
        if verb == b"release" and n == 1:
            return Release()
        if verb == b"exit" and n == 1:
            return Exit()
        if verb == b"invalidate-file" and n == 2:
            return InvalidateFile(url_decode(parts[1]))
        if verb == b"tlq" and n == 2:
            return Tlq(parts[1].decode())
        if verb == b"auth":
            return AuthRequest(b" ".join(parts[1:]).decode())
        if verb == b"feature" and n == 2:
            return Feature(url_decode(parts[1]))
        if verb == b"alive" and n == 1:
            return Alive()
    except (UnicodeDecodeError, ValueError):
        raise RemoteProtocolError(f"malformed line from manager: {line[:200]!r}") from None
    return Unknown(line)
