"""The messages a manager sends to a worker, each with its reader.

Names are url-encoded where CCTools encodes them; which side decodes what is recorded in the
docstring of each class (see ``cctools-protocol-and-api.md`` 1.5-1.9).  The lines of a task
block (``task`` ... ``end``) are messages too; ``task_block.py`` gathers them into one record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..errors import RemoteProtocolError
from .message_base import (
    Alive,
    AuthRequest,
    End,
    Feature,
    LineReader,
    Message,
    read_float,
    read_int,
)
from .resume import Resumed, ResumeRefused, ResumeToken
from .urlcodec import url_decode, url_encode


@dataclass(slots=True)
class TaskStart(Message):
    """``task <id>``: opens a task description block."""

    VERB: ClassVar[bytes] = b"task"
    task_id: int

    def encode(self) -> bytes:
        return f"task {self.task_id}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> TaskStart | None:
        return cls(read_int(parts[1], line)) if len(parts) == 2 else None


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

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Cmd | None:
        return cls(read_int(parts[1], line)) if len(parts) == 2 else None


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

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Coprocess | None:
        return cls(read_int(parts[1], line)) if len(parts) == 2 else None


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

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Monitor | None:
        return cls(read_int(parts[1], line)) if len(parts) == 2 else None


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

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Env | None:
        return cls(read_int(parts[1], line)) if len(parts) == 2 else None


@dataclass(slots=True)
class Category(Message):
    VERB: ClassVar[bytes] = b"category"
    name: str

    def encode(self) -> bytes:
        return f"category {self.name}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Category | None:
        return cls(parts[1].decode()) if len(parts) == 2 else None


#: Task resource lines and their number formats (``rmsummary_resource_to_str``).
RESOURCE_FORMATS = {
    "cores": "{:.3f}",
    "gpus": "{:.0f}",
    "memory": "{:.0f}",
    "disk": "{:.0f}",
    "end_time": "{:.6f}",
    "wall_time": "{:.6f}",
}
_RESOURCE_NAMES = {name.encode(): name for name in RESOURCE_FORMATS}


@dataclass(slots=True)
class TaskResource(Message):
    """``cores 1.000`` / ``memory 512`` / ``wall_time 10.000000`` inside a task block."""

    name: str
    value: float

    def encode(self) -> bytes:
        return f"{self.name} {RESOURCE_FORMATS[self.name].format(self.value)}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> TaskResource | None:
        if len(parts) != 2:
            return None
        return cls(_RESOURCE_NAMES[parts[0]], read_float(parts[1], line))


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

    def encode_in_block(self) -> bytes:
        """The line as a task block carries it: the name raw (CCTools does not encode it
        there), read back as :attr:`raw`."""
        return f"dir {self.raw or self.name}\n".encode("utf-8", "surrogateescape")

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Dir | None:
        if len(parts) != 2:
            return None
        return cls(url_decode(parts[1]), parts[1].decode("utf-8", "surrogateescape"))


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

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> TaskFile | None:
        if len(parts) != 4:
            return None
        return cls(parts[0].decode(), parts[1].decode("utf-8", "surrogateescape"),
                   url_decode(parts[2]), read_int(parts[3], line))


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

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Put | None:
        if len(parts) != 4:
            return None
        return cls(url_decode(parts[1]), read_int(parts[2], line), int(parts[3], 8),
                   leading_zero=parts[3].startswith(b"0"))


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

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Symlink | None:
        if len(parts) != 3:
            return None
        return cls(url_decode(parts[1]), read_int(parts[2], line))


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
            f"{self.VERB.decode()} {url_encode(self.source)} {url_encode(self.cachename)} "
            f"{self.size} {self.mode:o}\n"
        ).encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> PutUrl | None:
        if len(parts) != 5:
            return None
        return cls(url_decode(parts[1]), url_decode(parts[2]), read_int(parts[3], line),
                   int(parts[4], 8))


@dataclass(slots=True)
class PutCmd(PutUrl):
    """``putcmd <urlenc cmd> <urlenc cachename> <size> <octal mode>``: run lazily, ``%%`` = path."""

    VERB: ClassVar[bytes] = b"putcmd"


@dataclass(slots=True)
class Get(Message):
    """``get <urlenc cachename> 1``: stream an output back."""

    VERB: ClassVar[bytes] = b"get"
    name: str

    def encode(self) -> bytes:
        return f"get {url_encode(self.name)} 1\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Get | None:
        return cls(url_decode(parts[1])) if len(parts) >= 2 else None


@dataclass(slots=True)
class Unlink(Message):
    """``unlink <urlenc cachename>``."""

    VERB: ClassVar[bytes] = b"unlink"
    name: str

    def encode(self) -> bytes:
        return f"unlink {url_encode(self.name)}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Unlink | None:
        return cls(url_decode(parts[1])) if len(parts) == 2 else None


@dataclass(slots=True)
class Kill(Message):
    """``kill <taskid>`` (``-1`` = every task)."""

    VERB: ClassVar[bytes] = b"kill"
    task_id: int

    def encode(self) -> bytes:
        return f"kill {self.task_id}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Kill | None:
        return cls(read_int(parts[1], line)) if len(parts) == 2 else None


@dataclass(slots=True)
class SendResults(Message):
    VERB: ClassVar[bytes] = b"send_results"
    count: int = -1

    def encode(self) -> bytes:
        return f"send_results {self.count}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> SendResults:
        return cls(read_int(parts[1], line) if len(parts) > 1 else -1)


@dataclass(slots=True)
class Check(Message):
    VERB: ClassVar[bytes] = b"check"

    def encode(self) -> bytes:
        return b"check\n"

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Check | None:
        return cls() if len(parts) == 1 else None


@dataclass(slots=True)
class Release(Message):
    VERB: ClassVar[bytes] = b"release"

    def encode(self) -> bytes:
        return b"release\n"

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Release | None:
        return cls() if len(parts) == 1 else None


@dataclass(slots=True)
class Exit(Message):
    VERB: ClassVar[bytes] = b"exit"

    def encode(self) -> bytes:
        return b"exit\n"

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Exit | None:
        return cls() if len(parts) == 1 else None


@dataclass(slots=True)
class InvalidateFile(Message):
    VERB: ClassVar[bytes] = b"invalidate-file"
    name: str

    def encode(self) -> bytes:
        return f"invalidate-file {url_encode(self.name)}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> InvalidateFile | None:
        return cls(url_decode(parts[1])) if len(parts) == 2 else None


@dataclass(slots=True)
class Tlq(Message):
    VERB: ClassVar[bytes] = b"tlq"
    url: str

    def encode(self) -> bytes:
        return f"tlq {self.url}\n".encode()

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Tlq | None:
        return cls(parts[1].decode()) if len(parts) == 2 else None


@dataclass(slots=True)
class Unknown(Message):
    """A line we do not understand; kept so the caller can decide what to do with it."""

    line: bytes = field(default=b"")

    def encode(self) -> bytes:
        return self.line + b"\n"

    @classmethod
    def from_parts(cls, parts: list[bytes], line: bytes) -> Unknown:
        return cls(line)


#: Which class reads a line a manager sends, by its verb.
FROM_MANAGER: dict[bytes, LineReader] = {
    cls.VERB: cls.from_parts
    for cls in (TaskStart, Cmd, Category, Env, Kill, End, Dir, Put, SendResults, Unlink, Get,
                Symlink, PutUrl, PutCmd, Coprocess, Monitor, Check, Release, Exit,
                InvalidateFile, Tlq, AuthRequest, Feature, Alive, ResumeToken, Resumed,
                ResumeRefused)
}
FROM_MANAGER.update({verb: TaskResource.from_parts for verb in _RESOURCE_NAMES})
FROM_MANAGER.update({b"infile": TaskFile.from_parts, b"outfile": TaskFile.from_parts})


def parse_from_manager(line: bytes) -> Message:
    """Parse one line a manager sent to a worker.

    Unknown verbs, and known verbs with the wrong number of fields, come back as
    :class:`Unknown` (the C worker drops the connection on them; the worker shell decides).
    """
    parts = line.split(b" ")
    read = FROM_MANAGER.get(parts[0])
    if read is None:
        return Unknown(line)
    try:
        msg = read(parts, line)
    except (UnicodeDecodeError, ValueError):
        raise RemoteProtocolError(f"malformed line from manager: {line[:200]!r}") from None
    return Unknown(line) if msg is None else msg
