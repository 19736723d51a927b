"""The manager's fast writer of a task block: ``task <id>`` ... ``end`` in one ``bytes``.

A block is what the encoders of ``protocol/messages.py`` give line by line (``TaskStart``,
``Cmd``, ``Monitor``, ``Coprocess``, ``Category``, ``TaskResource``, ``Env``, ``Dir``,
``TaskFile``, ``End``); this writer produces the same bytes without a message object per
line, and keeps the category and resource lines of each allocation, which repeat from task
to task (tests/test_task_writer.py checks it against the encoders).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from .urlcodec import url_encode


class FileLike(Protocol):
    """What the writer reads of a task's file (``manager/files.py`` FileSpec)."""

    @property
    def is_input(self) -> bool: ...
    @property
    def empty_dir(self) -> bool: ...
    @property
    def cachename(self) -> str: ...
    @property
    def remote_name(self) -> str: ...
    @property
    def flags(self) -> int: ...


class TaskWriter:
    """Writes task blocks; remembers the lines of the last 1000 (category, box) pairs."""

    def __init__(self) -> None:
        self._box_lines: dict[tuple[str, float, float, float, float], bytes] = {}

    def box_lines(self, category: str, cores: float, gpus: float, memory: float,
                  disk: float) -> bytes:
        """``category``, ``cores``, ``gpus``, ``memory`` and ``disk`` lines."""
        key = (category, cores, gpus, memory, disk)
        lines = self._box_lines.get(key)
        if lines is None:
            if len(self._box_lines) > 1000:
                self._box_lines.clear()
            lines = self._box_lines[key] = (
                f"category {category}\ncores {cores:.3f}\ngpus {gpus:.0f}\n"
                f"memory {memory:.0f}\ndisk {disk:.0f}\n".encode())
        return lines

    def block(self, task_id: int, command: bytes, box_lines: bytes, *,
              monitor: bytes | None = None, coprocess: str | None = None,
              end_time: float = 0.0, wall_time: float = 0.0,
              env: Mapping[str, str | None] | None = None,
              files: Iterable[FileLike] = ()) -> bytes:
        """The whole block.  ``end_time``/``wall_time`` are left out when not above 0; an
        ``env`` value of None sends the name alone (unset it); ``files``: empty input
        directories become ``dir`` lines, other inputs ``infile``, outputs ``outfile``."""
        parts = [f"task {task_id}\ncmd {len(command)}\n".encode(), command]
        if monitor is not None:
            parts += [f"monitor {len(monitor)}\n".encode(), monitor]
        if coprocess:
            cop = coprocess.encode()
            parts += [f"coprocess {len(cop)}\n".encode(), cop]
        parts.append(box_lines)
        if end_time > 0:
            parts.append(f"end_time {end_time:.6f}\n".encode())
        if wall_time > 0:
            # Seconds, as the manual says.  A CCTools 7.x worker reads this as microseconds
            # (rounding up to 1 s); see docs/compatibility.md.
            parts.append(f"wall_time {wall_time:.6f}\n".encode())
        for name, value in (env or {}).items():
            data = (f"{name}={value}" if value is not None else name).encode()
            parts += [f"env {len(data)}\n".encode(), data, b"\n"]
        parts += _file_lines(files)
        parts.append(b"end\n")
        return b"".join(parts)


def _file_lines(files: Iterable[FileLike]) -> list[bytes]:
    """``dir`` lines, then ``infile`` lines, then ``outfile`` lines (CCTools' order)."""
    dirs: list[bytes] = []
    inputs: list[bytes] = []
    outputs: list[bytes] = []
    for spec in files:
        if spec.is_input and spec.empty_dir:
            dirs.append(f"dir {spec.remote_name}\n".encode())
        elif spec.is_input:
            inputs.append(f"infile {spec.cachename} {url_encode(spec.remote_name)} "
                          f"{spec.flags}\n".encode())
        else:
            outputs.append(f"outfile {spec.cachename} {url_encode(spec.remote_name)} "
                           f"{spec.flags}\n".encode())
    return dirs + inputs + outputs
