"""A whole ``task ... end`` block: what a worker is told about one task.

The lines of a block are the messages of ``messages.py`` (``task``, ``cmd``, ``category``,
``cores``..., ``env``, ``infile``/``outfile``, ``dir``, ``coprocess``, ``monitor``, ``end``).
``TaskSpec.add`` gives each its meaning; ``read_task_block`` reads a complete block out of a
receive buffer in one go, with the same line parser, so a worker handles a task as one event
instead of a dozen.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import RemoteProtocolError
from . import messages as m
from .buffer import line_at
from .names import escapes
from .urlcodec import url_decode


@dataclass(slots=True)
class TaskSpec:
    """A task as the manager described it in its ``task ... end`` block."""

    task_id: int
    command: str = ""
    coprocess: str = ""
    category: str = "default"
    cores: float = -1
    memory: float = -1
    disk: float = -1
    gpus: float = -1
    wall_time: float = 0
    end_time: float = 0
    #: (name, value) in order; a value of None unsets the variable
    env: list[tuple[str, str | None]] = field(default_factory=list)
    empty_dirs: list[str] = field(default_factory=list)
    #: (cachename, remote_name, flags)
    inputs: list[tuple[str, str, int]] = field(default_factory=list)
    outputs: list[tuple[str, str, int]] = field(default_factory=list)
    #: the manager's ``monitor`` request (extension wq-py-monitor): limits and options
    monitor: dict[str, Any] | None = None

    def add(self, msg: m.Message) -> bool:
        """Take one line of the block (payload included); True when it was ``end``."""
        if isinstance(msg, m.TaskResource):
            setattr(self, msg.name, msg.value)
        elif isinstance(msg, m.End):
            return True
        elif isinstance(msg, m.Cmd):
            self.command = msg.payload.decode("utf-8", "surrogateescape")
        elif isinstance(msg, m.Category):
            self.category = msg.name
        elif isinstance(msg, m.TaskFile):
            check_remote_name(msg.remote_name)
            entry = (msg.cachename, msg.remote_name, msg.flags)
            (self.inputs if msg.direction == "infile" else self.outputs).append(entry)
        elif isinstance(msg, m.Env):
            text = msg.payload[:-1].decode("utf-8", "surrogateescape")
            name, sep, value = text.partition("=")
            # NAME without '=' asks to unset NAME (CCTools' worker drops such entries).
            self.env.append((name, value if sep else None))
        elif isinstance(msg, m.Dir):
            check_remote_name(msg.raw or msg.name)
            self.empty_dirs.append(msg.raw or msg.name)
        elif isinstance(msg, m.Coprocess):
            self.coprocess = msg.payload.decode()
        elif isinstance(msg, m.Monitor):
            try:
                request = json.loads(msg.payload)
            except ValueError:
                request = None
            if not isinstance(request, dict):
                raise RemoteProtocolError(f"malformed monitor request in task {self.task_id}")
            self.monitor = request
        else:
            raise RemoteProtocolError(f"unexpected line in task {self.task_id}: {msg!r}")
        return False


def check_remote_name(name: str) -> None:
    """Refuse a sandbox name that would leave the sandbox (absolute, or through ``..``)."""
    if escapes(name):
        raise RemoteProtocolError(f"refusing remote name {name!r} that escapes the sandbox")


def read_task_block(data: bytearray, start: int, parse: Callable[[bytes], m.Message],
                    max_line: int) -> tuple[TaskSpec, int] | None:
    """Read the block that begins at ``data[start]`` (its ``task`` line).

    Returns the task and the offset just past ``end``, or None while the block is not all
    here.  Raises RemoteProtocolError for a malformed block, as the line-by-line reader would.
    """
    quick = _read_plain_block(data, start, max_line)
    if quick is not None:
        return quick
    spec: TaskSpec | None = None
    pos = start
    size = len(data)
    while True:
        got = line_at(data, pos, max_line)
        if got is None:
            return None
        line, pos = got
        msg = parse(line)
        if msg.HAS_PAYLOAD:
            n = msg.payload_length
            if n < 0 or msg.STREAMED:
                raise RemoteProtocolError(f"unexpected line in a task block: {line!r}")
            if pos + n > size:
                return None
            msg.payload = bytes(data[pos:pos + n])  # type: ignore[attr-defined]
            pos += n
        if spec is None:
            if not isinstance(msg, m.TaskStart):
                raise RemoteProtocolError(f"a task block starts with {line!r}")
            spec = TaskSpec(msg.task_id)
        elif spec.add(msg):
            return spec, pos


#: The resource lines of a block as our manager writes them.
_USUAL_LINES = re.compile(rb"category ([^ \n]+)\ncores ([^ \n]+)\ngpus ([^ \n]+)\n"
                          rb"memory ([^ \n]+)\ndisk ([^ \n]+)\n")


def _read_plain_block(data: bytearray, start: int, max_line: int) -> tuple[TaskSpec, int] | None:
    """The usual block read in one copy and without a message object per line: ``task``,
    ``cmd``, a ``coprocess`` (a PythonTask in a warm interpreter), ``category``, ``cores``,
    ``gpus``, ``memory``, ``disk`` as our manager writes them, then ``infile``/``outfile``
    lines, ``end``.  None for anything else (or anything odd), which ``read_task_block`` then
    reads line by line with the same result or the same refusal."""
    end = data.find(b"\nend\n", start)
    if end < 0:
        return None
    block = bytes(data[start:end + 1])
    if b"\r" in block:
        return None
    size = len(block)
    nl = block.find(b"\n")
    if not block.startswith(b"task ") or b" " in block[5:nl] or nl > max_line:
        return None
    try:
        spec = TaskSpec(int(block[5:nl]))
        pos = nl + 1
        for verb in (b"cmd ", b"coprocess "):
            if not block.startswith(verb, pos):
                continue
            nl = block.find(b"\n", pos)
            length = block[pos + len(verb):nl]
            n = int(length)
            if b" " in length or n < 0 or nl + 1 + n > size or nl - pos > max_line:
                return None  # a payload holding a line "end" is read the long way
            payload = block[nl + 1:nl + 1 + n]
            if verb == b"cmd ":
                spec.command = payload.decode("utf-8", "surrogateescape")
            else:
                spec.coprocess = payload.decode()
            pos = nl + 1 + n
        usual = _USUAL_LINES.match(block, pos)
        if usual is None or usual.end() - pos > max_line:
            return None
        # The lines exactly as our manager writes them: one match instead of a loop.
        category, cores, gpus, memory, disk = usual.groups()
        spec.category = category.decode()
        spec.cores, spec.gpus = float(cores), float(gpus)
        spec.memory, spec.disk = float(memory), float(disk)
        if not _read_file_lines(block, usual.end(), max_line, spec):
            return None
    except (ValueError, UnicodeDecodeError):
        return None
    return spec, end + 5


def _read_file_lines(block: bytes, pos: int, max_line: int, spec: TaskSpec) -> bool:
    """The ``infile``/``outfile`` lines from ``pos`` to the end of ``block`` into ``spec``;
    False at any other line, or an odd one (left to the line-by-line reading)."""
    size = len(block)
    while pos < size:
        nl = block.find(b"\n", pos)
        if nl - pos > max_line:
            return False
        parts = block[pos:nl].split(b" ")
        if len(parts) != 4 or parts[0] not in (b"infile", b"outfile") \
                or b"." in parts[3] or b"e" in parts[3].lower():
            return False
        remote = url_decode(parts[2])
        if escapes(remote):
            return False  # refused by the line-by-line reading, with its message
        entry = (parts[1].decode("utf-8", "surrogateescape"), remote, int(parts[3]))
        (spec.inputs if parts[0] == b"infile" else spec.outputs).append(entry)
        pos = nl + 1
    return True
